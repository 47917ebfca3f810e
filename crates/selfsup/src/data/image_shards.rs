//! Images packed into tar shards (`[data] format = "image_shards"`), the WebDataset convention:
//! each shard is a plain `.tar` whose members are grouped by key (the name up to the first dot),
//! `KEY.jpg` / `KEY.jpeg` / `KEY.png` the image and `KEY.cls` its class index as text. A few
//! large files instead of one per image: listing, copying and reading 200k images from a network
//! file system or an object store stop costing a file-system operation each, and several
//! processes can each read their own shards.
//!
//! Opening walks the tar headers only (seeking past the data), so it records where every image
//! lies; images are then read by offset and decoded in the loader threads when a view asks for
//! them, exactly as a streamed folder ([`super::image_stream`]): the same keyed order, views and
//! resume. `selfsup data pack` writes shards from an image folder in the folder's sample order,
//! so a packed folder trains to the same weights as the folder itself.
use super::decode_errors::DecodeErrors;
use super::image_folder::{list_image_files, planes_from_bytes, ImageFolderOptions};
use super::ImageSource;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where one image's bytes lie.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    offset: u64,
    len: u64,
    /// `shard.tar/member`, for messages.
    name: PathBuf,
}

pub struct ImageShards {
    shards: Vec<PathBuf>,
    entries: Vec<Entry>,
    labels: Option<Vec<i64>>,
    n_classes: usize,
    shape: (usize, usize, usize),
    first: PathBuf,
    opts: ImageFolderOptions,
    errors: DecodeErrors,
}

fn is_image_ext(ext: &str) -> bool {
    matches!(ext, "jpg" | "jpeg" | "png")
}

/// The `.tar` files of `dir`, sorted by name (the sample order).
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::format(
            dir,
            "no such folder of shards (the recipe's data.train or data.test; set it with --set data.train=DIR)",
        ));
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tar")))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(DataError::Empty {
            path: dir.into(),
            message: "no .tar shards".into(),
        });
    }
    Ok(shards)
}

impl ImageShards {
    /// Indexes every shard of `dir` and decodes the first image to fix the shape.
    pub fn open(
        dir: &Path,
        opts: &ImageFolderOptions,
        policy: BadInputPolicy,
    ) -> Result<(ImageShards, SkipReport), DataError> {
        let shards = shard_files(dir)?;
        let mut report = SkipReport::default();
        // Images in order, and the class of each key that has one.
        let mut images: Vec<(String, Entry)> = Vec::new();
        let mut classes: HashMap<String, i64> = HashMap::new();
        let mut ignored = 0usize;
        for (s, shard) in shards.iter().enumerate() {
            let file = std::fs::File::open(shard).map_err(|e| DataError::io(shard, e))?;
            let mut archive = tar::Archive::new(file);
            let bad = |e: std::io::Error| {
                DataError::format(shard, format!("not a readable tar shard: {e}"))
            };
            for entry in archive.entries_with_seek().map_err(bad)? {
                let mut entry = entry.map_err(bad)?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let member = entry.path().map_err(bad)?.into_owned();
                let name = shard.join(&member);
                let file_name = member
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some((key, ext)) = file_name.split_once('.') else {
                    ignored += 1;
                    continue;
                };
                let key = member.with_file_name(key).to_string_lossy().into_owned();
                let ext = ext.to_ascii_lowercase();
                if ext == "cls" {
                    let mut text = String::new();
                    // A class index is a few digits; more is not a .cls member.
                    let read = (&mut entry).take(64).read_to_string(&mut text);
                    match read.ok().and_then(|_| text.trim().parse::<i64>().ok()) {
                        Some(c) if c >= 0 => {
                            classes.insert(key, c);
                        }
                        _ => report.handle(
                            policy,
                            DataError::format(&name, "a .cls member must hold a class index ≥ 0"),
                        )?,
                    }
                } else if is_image_ext(&ext) {
                    let entry = Entry {
                        shard: s,
                        offset: entry.raw_file_position(),
                        len: entry.size(),
                        name,
                    };
                    images.push((key, entry));
                } else {
                    ignored += 1;
                }
            }
        }
        if ignored > 0 {
            tracing::warn!(
                "{}: ignored {ignored} member(s) that are neither images nor .cls",
                dir.display()
            );
        }
        let labelled = !classes.is_empty();
        let mut entries = Vec::with_capacity(images.len());
        let mut labels = Vec::new();
        for (key, e) in images {
            if labelled {
                match classes.get(&key) {
                    Some(&c) => labels.push(c),
                    None => {
                        report.handle(
                            policy,
                            DataError::format(
                                &e.name,
                                "image without a .cls member in a labelled set",
                            ),
                        )?;
                        continue;
                    }
                }
            }
            entries.push(e);
        }
        let mut set = ImageShards {
            shards,
            entries,
            n_classes: labels.iter().copied().max().map_or(0, |m| m as usize + 1),
            labels: labelled.then_some(labels),
            shape: (0, 0, 0),
            first: PathBuf::new(),
            opts: opts.clone(),
            errors: DecodeErrors::new(policy),
        };
        // The first image that decodes fixes channels and size; those before it are bad.
        let mut shape = None;
        let mut bad = 0;
        for i in 0..set.entries.len() {
            match set
                .bytes(i)
                .and_then(|b| planes_from_bytes(&b, &set.entries[i].name, opts, &mut shape))
            {
                Ok(_) => break,
                Err(e) => {
                    report.handle(policy, e)?;
                    bad += 1;
                }
            }
        }
        let Some((c, h, w, first)) = shape else {
            return Err(DataError::Empty {
                path: dir.into(),
                message: "no image in the shards could be decoded".into(),
            });
        };
        set.entries.drain(..bad);
        if let Some(l) = set.labels.as_mut() {
            l.drain(..bad);
        }
        set.shape = (c, h, w);
        set.first = first;
        Ok((set, report))
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.entries.truncate(n);
        if let Some(l) = self.labels.as_mut() {
            l.truncate(n);
        }
    }

    /// Images blanked so far because they could not be read or decoded (skip policy).
    pub fn blanked(&self) -> usize {
        self.errors.blanked()
    }

    /// The stored bytes of image `i`.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let e = &self.entries[i];
        let shard = &self.shards[e.shard];
        let mut f = std::fs::File::open(shard).map_err(|err| DataError::io(shard, err))?;
        f.seek(SeekFrom::Start(e.offset))
            .map_err(|err| DataError::io(&e.name, err))?;
        // The length comes from the tar header; a shard cut short since opening ends the read
        // early and is reported, it does not allocate beyond what the file holds.
        let mut buf = Vec::new();
        f.take(e.len)
            .read_to_end(&mut buf)
            .map_err(|err| DataError::io(&e.name, err))?;
        if buf.len() as u64 != e.len {
            return Err(DataError::format(
                &e.name,
                format!(
                    "the shard ends after {} of the member's {} bytes",
                    buf.len(),
                    e.len
                ),
            ));
        }
        Ok(buf)
    }
}

impl ImageSource for ImageShards {
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn shape(&self) -> (usize, usize, usize) {
        self.shape
    }
    fn image(&self, i: usize) -> Cow<'_, [u8]> {
        let (c, h, w) = self.shape;
        let mut shape = Some((c, h, w, self.first.clone()));
        let decoded = self
            .bytes(i)
            .and_then(|b| planes_from_bytes(&b, &self.entries[i].name, &self.opts, &mut shape));
        self.errors.planes_or_blank(decoded, c * h * w)
    }
    fn source(&self, i: usize) -> Option<String> {
        self.entries.get(i).map(|e| e.name.display().to_string())
    }
    fn label(&self, i: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[i])
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn take_errors(&self) -> Vec<DataError> {
        self.errors.take()
    }
}

/// Packs the image folder `src` into shards of `per_shard` images in `out`
/// (`shard-000000.tar`, …), members `INDEX.EXT` (the file's bytes, not re-encoded) and, for a
/// labelled folder, `INDEX.cls`; the folder's sample order is kept. Each shard is written under a
/// temporary name and renamed when complete. Returns the number of images and of shards.
pub fn pack(src: &Path, out: &Path, per_shard: usize) -> Result<(usize, usize), DataError> {
    let per_shard = per_shard.max(1);
    let (files, _) = list_image_files(src, &ImageFolderOptions::default())?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let mut shards = 0;
    for (s, chunk) in files.chunks(per_shard).enumerate() {
        let path = out.join(format!("shard-{s:06}.tar"));
        let part = out.join(format!(".shard-{s:06}.tar.part"));
        let file = std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        let io = |e: std::io::Error| DataError::io(&part, e);
        for (k, (image, label)) in chunk.iter().enumerate() {
            let index = s * per_shard + k;
            let ext = image
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let bytes = std::fs::read(image).map_err(|e| DataError::io(image, e))?;
            append(&mut builder, &format!("{index:09}.{ext}"), &bytes).map_err(io)?;
            if let Some(l) = label {
                append(
                    &mut builder,
                    &format!("{index:09}.cls"),
                    l.to_string().as_bytes(),
                )
                .map_err(io)?;
            }
        }
        let writer = builder.into_inner().map_err(io)?;
        let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&part, &path).map_err(|e| DataError::io(&path, e))?;
        shards += 1;
    }
    Ok((files.len(), shards))
}

fn append<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image_folder::load_image_folder;
    use image::{Rgb, RgbImage};

    fn folder(root: &Path) {
        for (k, class) in ["a", "b", "c"].iter().enumerate() {
            let d = root.join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..5u32 {
                RgbImage::from_fn(9, 7, |x, y| {
                    Rgb([(x * 25) as u8, (y * 30 + i) as u8, (k * 80) as u8])
                })
                .save(d.join(format!("{i}.png")))
                .unwrap();
            }
        }
    }

    fn opts() -> ImageFolderOptions {
        ImageFolderOptions {
            size: Some([6, 6]),
            ..Default::default()
        }
    }

    #[test]
    fn packed_shards_hold_the_folder_in_its_order() {
        let dir = tempfile::tempdir().unwrap();
        folder(&dir.path().join("src"));
        let out = dir.path().join("shards");
        assert_eq!(pack(&dir.path().join("src"), &out, 4).unwrap(), (15, 4));
        let (mem, _) =
            load_image_folder(&dir.path().join("src"), &opts(), BadInputPolicy::Fail).unwrap();
        let (sh, report) = ImageShards::open(&out, &opts(), BadInputPolicy::Fail).unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!(
            (ImageSource::len(&sh), sh.shape(), sh.n_classes()),
            (15, (3, 6, 6), 3)
        );
        for i in 0..15 {
            assert_eq!(sh.image(i).as_ref(), mem.image(i), "image {i}");
            assert_eq!(sh.label(i), ImageSource::label(&mem, i));
        }
        assert!(sh.take_errors().is_empty());
    }

    #[test]
    fn a_shard_cut_short_after_opening_is_reported_with_the_member() {
        let dir = tempfile::tempdir().unwrap();
        folder(&dir.path().join("src"));
        let out = dir.path().join("shards");
        pack(&dir.path().join("src"), &out, 100).unwrap();
        let (sh, _) = ImageShards::open(&out, &opts(), BadInputPolicy::Fail).unwrap();
        let shard = out.join("shard-000000.tar");
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
        let _ = sh.image(14);
        let e = sh.take_errors();
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().contains("000000014.png"), "{}", e[0]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_shard_and_labels_must_be_complete() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.tar"), vec![7u8; 3000]).unwrap();
        let e = ImageShards::open(dir.path(), &opts(), BadInputPolicy::Fail)
            .err()
            .unwrap();
        assert!(e.to_string().contains("x.tar"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(ImageShards::open(empty.path(), &opts(), BadInputPolicy::Fail).is_err());
        // An image without its .cls in a labelled set.
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("s.tar")).unwrap();
        let mut b = tar::Builder::new(f);
        let mut png = Vec::new();
        RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        append(&mut b, "k1.png", &png).unwrap();
        append(&mut b, "k1.cls", b"2").unwrap();
        append(&mut b, "k2.png", &png).unwrap();
        b.finish().unwrap();
        drop(b);
        let e = ImageShards::open(d.path(), &opts(), BadInputPolicy::Fail)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("k2.png") && e.to_string().contains(".cls"),
            "{e}"
        );
        let (s, r) = ImageShards::open(d.path(), &opts(), BadInputPolicy::Skip).unwrap();
        assert_eq!((ImageSource::len(&s), r.skipped, s.n_classes()), (1, 1, 3));
    }
}
