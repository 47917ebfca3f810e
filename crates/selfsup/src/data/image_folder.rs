//! A folder of PNG/JPEG images: one sub-folder per class (labelled), or a flat folder (unlabelled).
use super::ImageSet;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How to read an image folder into one [`ImageSet`] (all images share one size and channel count).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFolderOptions {
    /// Resize every image to `[height, width]`; `None` = every image must have the first image's size.
    pub size: Option<[usize; 2]>,
    /// 1 (luma) or 3 (RGB); `None` = 3 if the first image has colour, else 1. Alpha is dropped.
    pub channels: Option<usize>,
    /// Refuse an image whose header declares more pixels than this, before decoding it.
    pub max_pixels: u64,
    /// Decode the images from disk in the loader threads as training asks for them, instead of
    /// reading them all into memory first (`data/image_stream.rs`): memory stays flat however many
    /// images the folder holds. Only the headers are read up front.
    pub stream: bool,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions {
            size: None,
            channels: None,
            max_pixels: 40_000_000,
            stream: false,
        }
    }
}

/// Reads `dir` into an [`ImageSet`].
///
/// If `dir` has sub-folders, each is a class (sorted by name; the index is the label) and image
/// files directly in `dir` are an error; otherwise the images in `dir` are unlabelled. Files ending
/// in .png/.jpg/.jpeg (any case) are images; hidden entries are ignored, other files are ignored
/// with a warning. A file that cannot be used is an error under `Fail` and counted under `Skip`.
pub fn load_image_folder(
    dir: &Path,
    opts: &ImageFolderOptions,
    policy: BadInputPolicy,
) -> Result<(ImageSet, SkipReport), DataError> {
    let (files, class_names) = list_image_files(dir, opts)?;
    let labelled = !class_names.is_empty();
    let mut report = SkipReport::default();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut sources = Vec::new();
    // Fixed by the first image that decodes: (channels, height, width, path it came from).
    let mut shape: Option<(usize, usize, usize, PathBuf)> = None;
    for (path, label) in &files {
        match read_one(path, opts, &mut shape) {
            Ok(planes) => {
                pixels.extend_from_slice(&planes);
                sources.push(path.display().to_string());
                if let Some(l) = label {
                    labels.push(*l);
                }
            }
            Err(e) => report.handle(policy, e)?,
        }
    }
    let Some((channels, height, width, _)) = shape else {
        return Err(DataError::Empty {
            path: dir.into(),
            message: format!("all {} image files were skipped as unreadable", files.len()),
        });
    };
    if report.skipped > 0 {
        tracing::warn!(
            "{}: skipped {} unreadable image(s)",
            dir.display(),
            report.skipped
        );
    }
    let len = pixels.len() / (channels * height * width);
    let set = ImageSet {
        pixels,
        len,
        channels,
        height,
        width,
        labels: labelled.then_some(labels),
        class_names,
        sources: Some(sources),
    };
    Ok((set, report))
}

/// The image files of `dir` in sample order with their labels (class sub-folders sorted by name,
/// files sorted by name), and the class names (empty for a flat, unlabelled folder).
pub(crate) fn list_image_files(
    dir: &Path,
    opts: &ImageFolderOptions,
) -> Result<(Vec<(PathBuf, Option<i64>)>, Vec<String>), DataError> {
    check_options(dir, opts)?;
    if !dir.is_dir() {
        return Err(DataError::format(
            dir,
            "no such folder (the recipe's data.train or data.test; set it with --set data.train=DIR)",
        ));
    }
    let top = list_dir(dir)?;
    let mut other_files = top.others;
    let (files, class_names): (Vec<(PathBuf, Option<i64>)>, Vec<String>) = if top.dirs.is_empty() {
        (
            top.images.into_iter().map(|p| (p, None)).collect(),
            Vec::new(),
        )
    } else {
        if let Some(stray) = top.images.first() {
            return Err(DataError::format(
                stray,
                format!(
                    "image directly in {} although it has class sub-folders; move it into a class folder",
                    dir.display()
                ),
            ));
        }
        let mut files = Vec::new();
        let mut names = Vec::new();
        for (label, class_dir) in top.dirs.iter().enumerate() {
            let listing = list_dir(class_dir)?;
            if !listing.dirs.is_empty() {
                tracing::warn!(
                    "{}: ignoring {} nested sub-folder(s); class folders are not searched recursively",
                    class_dir.display(),
                    listing.dirs.len()
                );
            }
            if listing.images.is_empty() {
                tracing::warn!(
                    "{}: class folder has no PNG or JPEG files",
                    class_dir.display()
                );
            }
            other_files += listing.others;
            // `label` indexes at most the number of directory entries, far below i64::MAX.
            files.extend(listing.images.into_iter().map(|p| (p, Some(label as i64))));
            let name = class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            names.push(name);
        }
        (files, names)
    };
    if other_files > 0 {
        tracing::warn!(
            "{}: ignored {other_files} file(s) that are not .png/.jpg/.jpeg",
            dir.display()
        );
    }
    if files.is_empty() {
        return Err(DataError::Empty {
            path: dir.into(),
            message: "no .png, .jpg or .jpeg files".into(),
        });
    }

    Ok((files, class_names))
}

fn check_options(dir: &Path, opts: &ImageFolderOptions) -> Result<(), DataError> {
    if let Some(c) = opts.channels {
        if c != 1 && c != 3 {
            return Err(DataError::format(
                dir,
                format!("image channels must be 1 or 3, not {c}"),
            ));
        }
    }
    if let Some([h, w]) = opts.size {
        let pixels = (h as u64).saturating_mul(w as u64);
        if h == 0
            || w == 0
            || pixels > opts.max_pixels
            || h > u32::MAX as usize
            || w > u32::MAX as usize
        {
            return Err(DataError::format(
                dir,
                format!(
                    "image size [{h}, {w}] must be positive and at most max_pixels = {} pixels",
                    opts.max_pixels
                ),
            ));
        }
    }
    Ok(())
}

/// One directory's non-hidden entries, each list sorted by file name.
struct Listing {
    dirs: Vec<PathBuf>,
    images: Vec<PathBuf>,
    others: usize,
}

fn list_dir(dir: &Path) -> Result<Listing, DataError> {
    let mut entries: Vec<(OsString, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push((name, entry.path()));
    }
    // read_dir order is file-system dependent; sorting makes labels and sample order reproducible.
    entries.sort();
    let mut listing = Listing {
        dirs: Vec::new(),
        images: Vec::new(),
        others: 0,
    };
    for (_, path) in entries {
        // fs::metadata follows symlinks, so linked class folders and images work.
        let meta = std::fs::metadata(&path).map_err(|e| DataError::io(&path, e))?;
        if meta.is_dir() {
            listing.dirs.push(path);
        } else if is_image_name(&path) {
            listing.images.push(path);
        } else {
            listing.others += 1;
        }
    }
    Ok(listing)
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg")
}

/// Decodes one image and returns it as planar `[C, H, W]` bytes in the set's shape, fixing that
/// shape (`shape`) from the first image that decodes.
pub(crate) fn read_one(
    path: &Path,
    opts: &ImageFolderOptions,
    shape: &mut Option<(usize, usize, usize, PathBuf)>,
) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    planes_from_bytes(&bytes, path, opts, shape)
}

/// As [`read_one`] for an image already in memory (a member of a shard); `path` names it in
/// errors.
pub(crate) fn planes_from_bytes(
    bytes: &[u8],
    path: &Path,
    opts: &ImageFolderOptions,
    shape: &mut Option<(usize, usize, usize, PathBuf)>,
) -> Result<Vec<u8>, DataError> {
    let img = decode(bytes, path, opts.max_pixels)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        // Later code divides by the image size; a degenerate header must not get that far.
        return Err(DataError::format(
            path,
            format!("image has zero size ({h}×{w})"),
        ));
    }
    let (channels, height, width) = match shape {
        Some((c, sh, sw, first)) => {
            if opts.size.is_none() && (h, w) != (*sh, *sw) {
                return Err(DataError::format(
                    path,
                    format!(
                        "image is {h}×{w} (height×width) but the first image {} is {sh}×{sw}; set `size` to resize",
                        first.display()
                    ),
                ));
            }
            (*c, *sh, *sw)
        }
        None => {
            let c = opts
                .channels
                .unwrap_or(if img.color().has_color() { 3 } else { 1 });
            let [sh, sw] = opts.size.unwrap_or([h, w]);
            *shape = Some((c, sh, sw, path.to_path_buf()));
            (c, sh, sw)
        }
    };
    // check_options bounds `size` by u32::MAX, and decoded sides come from u32, so these fit.
    let (tw, th) = (width as u32, height as u32);
    let plane = height * width;
    let mut out = vec![0u8; channels * plane];
    if channels == 1 {
        let mut g = img.to_luma8();
        if (h, w) != (height, width) {
            g = image::imageops::resize(&g, tw, th, FilterType::Triangle);
        }
        out.copy_from_slice(g.as_raw());
    } else {
        let mut rgb = img.to_rgb8();
        if (h, w) != (height, width) {
            rgb = image::imageops::resize(&rgb, tw, th, FilterType::Triangle);
        }
        // Interleaved RGB → planar R, G, B.
        for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
            out[i] = px[0];
            out[plane + i] = px[1];
            out[2 * plane + i] = px[2];
        }
    }
    Ok(out)
}

/// The formats image folders take: PNG and JPEG, recognised by content.
pub(crate) fn png_or_jpeg(format: Option<ImageFormat>, path: &Path) -> Result<(), DataError> {
    match format {
        Some(ImageFormat::Png) | Some(ImageFormat::Jpeg) => Ok(()),
        Some(other) => Err(DataError::format(
            path,
            format!("{other:?} images are not supported (only PNG and JPEG)"),
        )),
        None => Err(DataError::format(
            path,
            "not a PNG or JPEG image (unrecognised content)",
        )),
    }
}

/// Decodes a PNG or JPEG, refusing (from the header alone) one with more than `max_pixels` pixels.
fn decode(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<DynamicImage, DataError> {
    if bytes.is_empty() {
        return Err(DataError::format(
            path,
            "empty file (0 bytes), not an image",
        ));
    }
    let reader = || -> Result<ImageReader<std::io::Cursor<&[u8]>>, DataError> {
        let r = ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?;
        png_or_jpeg(r.format(), path)?;
        Ok(r)
    };
    // The configured budget governs the header read too: a decoder may size a row buffer from
    // the header (a PNG declaring 2^29 × 1 pixels), and without these limits the `image` crate's
    // own default (512 MiB) would decide instead of `max_pixels`. 16 bytes per pixel covers
    // 16-bit RGBA output plus decoder working memory.
    let mut limits = Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(16).max(64 << 20));
    let over_limit = |stage: &str, e: &image::ImageError| {
        DataError::format(
            path,
            format!("image exceeds max_pixels = {max_pixels} {stage}: {e}"),
        )
    };
    // Only the header is parsed here: nothing proportional to the declared size is allocated.
    let mut r = reader()?;
    r.limits(limits.clone());
    let (w, h) = r.into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => over_limit("by its header", &e),
        other => DataError::format(path, format!("cannot read the image header: {other}")),
    })?;
    let declared = u64::from(w) * u64::from(h);
    if declared > max_pixels {
        return Err(DataError::format(
            path,
            format!(
                "image declares {w}×{h} = {declared} pixels, more than max_pixels = {max_pixels}"
            ),
        ));
    }
    // Belt and braces: the decoder is held to the same budget, in case a format reports its size
    // lazily.
    let mut r = reader()?;
    r.limits(limits);
    r.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => over_limit("while decoding", &e),
        other => DataError::format(path, format!("cannot decode image: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb(f(x, y))))
    }

    fn gray(w: u32, h: u32, v: u8) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_pixel(w, h, Luma([v])))
    }

    fn save(img: &DynamicImage, path: &Path) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        img.save(path).unwrap();
    }

    fn load(
        dir: &Path,
        opts: &ImageFolderOptions,
        policy: BadInputPolicy,
    ) -> Result<(ImageSet, SkipReport), DataError> {
        load_image_folder(dir, opts, policy)
    }

    fn fail(dir: &Path, opts: &ImageFolderOptions) -> String {
        load(dir, opts, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn class_folders_give_labels_and_planar_rgb() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        // R = x, G = y, B = 200: easy to check the planar layout.
        save(
            &rgb(4, 3, |x, y| [x as u8, y as u8, 200]),
            &d.join("cat/b.png"),
        );
        save(&rgb(4, 3, |_, _| [10, 20, 30]), &d.join("cat/a.PNG"));
        save(&rgb(4, 3, |_, _| [128, 128, 128]), &d.join("dog/c.jpg"));
        std::fs::write(d.join("cat/notes.txt"), "not an image").unwrap();
        std::fs::write(d.join("dog/.hidden.png"), "").unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        let (set, report) = load(d, &ImageFolderOptions::default(), BadInputPolicy::Fail).unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!((set.len, set.channels, set.height, set.width), (3, 3, 3, 4));
        assert_eq!(set.class_names, vec!["cat", "dog"]);
        assert_eq!(set.labels, Some(vec![0, 0, 1]));
        // Sorted by name: a.PNG then b.png.
        assert!(set.image(0)[..12].iter().all(|&v| v == 10));
        let b = set.image(1);
        assert_eq!(&b[..4], &[0, 1, 2, 3]); // R plane, row 0
        assert_eq!(&b[12..16], &[0, 0, 0, 0]); // G plane, row 0
        assert_eq!(&b[16..20], &[1, 1, 1, 1]); // G plane, row 1
        assert!(b[24..].iter().all(|&v| v == 200)); // B plane
                                                    // JPEG is lossy: close to mid-grey.
        assert!(set.image(2).iter().all(|&v| (120..=136).contains(&v)));
    }

    #[test]
    fn flat_folder_is_unlabelled_and_channels_follow_first_image() {
        let t = tempfile::tempdir().unwrap();
        save(&gray(5, 2, 7), &t.path().join("1.png"));
        save(&gray(5, 2, 9), &t.path().join("2.jpeg"));
        let (set, _) = load(
            t.path(),
            &ImageFolderOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap();
        assert_eq!((set.len, set.channels, set.height, set.width), (2, 1, 2, 5));
        assert!(set.labels.is_none() && set.class_names.is_empty());
        assert!(set.image(0).iter().all(|&v| v == 7));
        // Grey to RGB: three equal planes.
        let opts = ImageFolderOptions {
            channels: Some(3),
            ..Default::default()
        };
        let (set, _) = load(t.path(), &opts, BadInputPolicy::Fail).unwrap();
        assert_eq!(set.channels, 3);
        assert!(set.image(0).iter().all(|&v| v == 7));
    }

    #[test]
    fn colour_to_luma_drops_alpha_and_resizes() {
        let t = tempfile::tempdir().unwrap();
        let grey_rgba =
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([100, 100, 100, 3])));
        save(&grey_rgba, &t.path().join("a.png"));
        save(&rgb(6, 2, |_, _| [100, 100, 100]), &t.path().join("b.png"));
        let opts = ImageFolderOptions {
            size: Some([2, 3]),
            channels: Some(1),
            ..Default::default()
        };
        let (set, _) = load(t.path(), &opts, BadInputPolicy::Fail).unwrap();
        assert_eq!((set.len, set.channels, set.height, set.width), (2, 1, 2, 3));
        assert!(set.pixels.iter().all(|&v| v == 100), "{:?}", set.pixels);
        // Auto channels with an RGBA first image: colour type RGBA has colour → 3 channels.
        let opts = ImageFolderOptions {
            size: Some([2, 2]),
            ..Default::default()
        };
        let (set, _) = load(t.path(), &opts, BadInputPolicy::Fail).unwrap();
        assert_eq!((set.channels, set.image_len()), (3, 12));
    }

    #[test]
    fn size_mismatch_without_resize() {
        let t = tempfile::tempdir().unwrap();
        save(&gray(4, 4, 1), &t.path().join("a.png"));
        save(&gray(3, 4, 1), &t.path().join("b.png"));
        let e = fail(t.path(), &ImageFolderOptions::default());
        assert!(e.contains("b.png") && e.contains("a.png"), "{e}");
        let (set, report) = load(
            t.path(),
            &ImageFolderOptions::default(),
            BadInputPolicy::Skip,
        )
        .unwrap();
        assert_eq!((set.len, report.skipped), (1, 1));
    }

    #[test]
    fn broken_files_fail_or_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        save(&gray(4, 4, 50), &d.join("a/good.png"));
        std::fs::write(d.join("a/zero.png"), b"").unwrap();
        // A noisy image, so the compressed data is long enough to cut in the middle of IDAT.
        let mut png = Vec::new();
        rgb(32, 32, |x, y| {
            [(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8]
        })
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
        std::fs::create_dir_all(d.join("b")).unwrap();
        std::fs::write(d.join("b/cut.png"), &png[..png.len() / 2]).unwrap();
        std::fs::write(d.join("b/text.png"), "hello, not a png").unwrap();
        let e = fail(d, &ImageFolderOptions::default());
        assert!(e.contains("zero.png"), "{e}");
        std::fs::remove_file(d.join("a/zero.png")).unwrap();
        let e = fail(d, &ImageFolderOptions::default());
        assert!(e.contains("cut.png"), "{e}");
        std::fs::write(d.join("a/zero.png"), b"").unwrap();
        let (set, report) = load(d, &ImageFolderOptions::default(), BadInputPolicy::Skip).unwrap();
        assert_eq!((set.len, report.skipped), (1, 3));
        assert_eq!(set.class_names, vec!["a", "b"]);
        assert_eq!(set.labels, Some(vec![0]));
        assert!(report.examples.iter().any(|m| m.contains("text.png")));
    }

    /// CRC-32 (IEEE), as PNG chunks use it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn huge_declared_png_is_refused_before_decoding() {
        let t = tempfile::tempdir().unwrap();
        let mut png = Vec::new();
        gray(2, 2, 0)
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        // Signature (8) + IHDR length (4) + "IHDR" (4) + width, height (at 16..24) ... CRC at 29..33.
        assert_eq!(&png[12..16], b"IHDR");
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(t.path().join("huge.png"), &png).unwrap();
        let e = fail(t.path(), &ImageFolderOptions::default());
        assert!(
            e.contains("huge.png") && e.contains("max_pixels") && e.contains("10000000000"),
            "{e}"
        );
        // Under Skip it is counted, and nothing is left: Empty.
        let r = load(
            t.path(),
            &ImageFolderOptions::default(),
            BadInputPolicy::Skip,
        );
        assert!(matches!(r, Err(DataError::Empty { .. })));
    }

    #[test]
    fn one_long_side_is_refused_by_max_pixels_not_by_the_decoder_default() {
        let t = tempfile::tempdir().unwrap();
        let mut png = Vec::new();
        gray(2, 2, 0)
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        // 2^29 + 1 wide, 1 high: its row buffer alone would pass 512 MiB, the `image` crate's
        // default budget; the configured limit must be the one that refuses it.
        png[16..20].copy_from_slice(&536_870_913u32.to_be_bytes());
        png[20..24].copy_from_slice(&1u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(t.path().join("long.png"), &png).unwrap();
        let e = fail(t.path(), &ImageFolderOptions::default());
        assert!(
            e.contains("long.png") && e.contains("max_pixels = 40000000 by its header"),
            "{e}"
        );
    }

    #[test]
    fn empty_folder_and_layout_errors() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(
                t.path(),
                &ImageFolderOptions::default(),
                BadInputPolicy::Fail
            ),
            Err(DataError::Empty { .. })
        ));
        std::fs::write(t.path().join("readme.txt"), "x").unwrap();
        assert!(matches!(
            load(
                t.path(),
                &ImageFolderOptions::default(),
                BadInputPolicy::Fail
            ),
            Err(DataError::Empty { .. })
        ));
        // An image beside class folders.
        save(&gray(2, 2, 0), &t.path().join("cls/a.png"));
        save(&gray(2, 2, 0), &t.path().join("stray.png"));
        let e = fail(t.path(), &ImageFolderOptions::default());
        assert!(e.contains("stray.png"), "{e}");
        let bad = ImageFolderOptions {
            channels: Some(2),
            ..Default::default()
        };
        assert!(fail(t.path(), &bad).contains("channels"));
        // A missing folder names itself and the recipe field that points at it.
        let e = fail(
            Path::new("/nonexistent/images"),
            &ImageFolderOptions::default(),
        );
        assert!(
            e.contains("/nonexistent/images: no such folder") && e.contains("data.train"),
            "{e}"
        );
    }

    #[test]
    fn options_deserialise_with_defaults() {
        let o: ImageFolderOptions = serde_json::from_str(r#"{"size": [32, 32]}"#).unwrap();
        assert_eq!(
            (o.size, o.channels, o.max_pixels),
            (Some([32, 32]), None, 40_000_000)
        );
        assert!(serde_json::from_str::<ImageFolderOptions>(r#"{"sise": [32, 32]}"#).is_err());
    }
}
