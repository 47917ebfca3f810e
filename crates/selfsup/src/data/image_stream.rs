//! An image folder read from disk while training runs (`[data] stream = true`): the loader
//! threads decode each image when a view of it is asked for, so memory holds the file list and
//! the batches in flight, not the collection. 200k images of 224×224 RGB are 30 GB as in-memory
//! u8 planes; streamed, the process stays near its model's size.
//!
//! Opening reads only the file headers (format and size, a few hundred bytes each): a file that
//! is not a PNG/JPEG, declares too many pixels, or (without `size`) differs in size from the first
//! is an error naming it, or skipped and counted under `--on-bad-input skip`, before training
//! starts. A file whose body turns out to be corrupt is only found when it is decoded: under
//! `fail` the error is kept and the learner stops on it at the next step, naming the file; under
//! `skip` the image is blank for that view, counted and warned about.
use super::decode_errors::DecodeErrors;
use super::image_folder::{list_image_files, png_or_jpeg, read_one, ImageFolderOptions};
use super::ImageSource;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use image::ImageReader;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub struct ImageStream {
    files: Vec<PathBuf>,
    labels: Option<Vec<i64>>,
    class_names: Vec<String>,
    /// (channels, height, width) of every decoded image.
    shape: (usize, usize, usize),
    /// The first image that decoded (for size-mismatch messages).
    first: PathBuf,
    opts: ImageFolderOptions,
    /// Images found corrupt while training runs.
    errors: DecodeErrors,
}

/// Width and height from the header alone (no pixel data is read).
fn header(path: &Path, max_pixels: u64) -> Result<(u32, u32), DataError> {
    let r = ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    png_or_jpeg(r.format(), path)?;
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| DataError::format(path, format!("cannot read the image header: {e}")))?;
    let declared = u64::from(w) * u64::from(h);
    if w == 0 || h == 0 || declared > max_pixels {
        return Err(DataError::format(
            path,
            format!("image declares {w}×{h} pixels; it must be non-empty and at most max_pixels = {max_pixels}"),
        ));
    }
    Ok((w, h))
}

impl ImageStream {
    /// Lists `dir` (the layout of [`super::image_folder::load_image_folder`]), checks every
    /// file's header and decodes the first good image to fix the shape.
    pub fn open(
        dir: &Path,
        opts: &ImageFolderOptions,
        policy: BadInputPolicy,
    ) -> Result<(ImageStream, SkipReport), DataError> {
        let (listed, class_names) = list_image_files(dir, opts)?;
        let mut report = SkipReport::default();
        let mut files = Vec::with_capacity(listed.len());
        let mut labels = Vec::with_capacity(listed.len());
        let mut shape: Option<(usize, usize, usize, PathBuf)> = None;
        let mut first_size: Option<(u32, u32)> = None;
        for (path, label) in listed {
            let checked = header(&path, opts.max_pixels).and_then(|size| {
                if shape.is_none() {
                    // The first good file fixes channels and size, as the in-memory reader does.
                    read_one(&path, opts, &mut shape)?;
                    first_size = Some(size);
                } else if opts.size.is_none() && Some(size) != first_size {
                    let (fw, fh) = first_size.unwrap_or_default();
                    return Err(DataError::format(
                        &path,
                        format!(
                            "image is {}×{} (height×width) but the first image is {fh}×{fw}; set `size` to resize",
                            size.1, size.0
                        ),
                    ));
                }
                Ok(())
            });
            match checked {
                Ok(()) => {
                    files.push(path);
                    if let Some(l) = label {
                        labels.push(l);
                    }
                }
                Err(e) => report.handle(policy, e)?,
            }
        }
        let Some((c, h, w, first)) = shape else {
            return Err(DataError::Empty {
                path: dir.into(),
                message: "no image file could be read".into(),
            });
        };
        if report.skipped > 0 {
            tracing::warn!(
                "{}: skipped {} unreadable image(s)",
                dir.display(),
                report.skipped
            );
        }
        let labelled = !class_names.is_empty();
        Ok((
            ImageStream {
                files,
                labels: labelled.then_some(labels),
                class_names,
                shape: (c, h, w),
                first,
                opts: opts.clone(),
                errors: DecodeErrors::new(policy),
            },
            report,
        ))
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.files.truncate(n);
        if let Some(l) = self.labels.as_mut() {
            l.truncate(n);
        }
    }

    /// Images blanked so far because they could not be decoded (skip policy).
    pub fn blanked(&self) -> usize {
        self.errors.blanked()
    }

    fn decode_planes(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let (c, h, w) = self.shape;
        let mut shape = Some((c, h, w, self.first.clone()));
        let path = &self.files[i];
        // A file replaced since opening by one of another size is refused by read_one.
        read_one(path, &self.opts, &mut shape)
    }
}

impl ImageSource for ImageStream {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn shape(&self) -> (usize, usize, usize) {
        self.shape
    }
    fn image(&self, i: usize) -> Cow<'_, [u8]> {
        let (c, h, w) = self.shape;
        self.errors
            .planes_or_blank(self.decode_planes(i), c * h * w)
    }
    fn source(&self, i: usize) -> Option<String> {
        self.files.get(i).map(|p| p.display().to_string())
    }
    fn label(&self, i: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[i])
    }
    fn n_classes(&self) -> usize {
        if self.labels.is_some() {
            self.class_names.len()
        } else {
            0
        }
    }
    fn take_errors(&self) -> Vec<DataError> {
        self.errors.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image_folder::load_image_folder;
    use image::{Rgb, RgbImage};

    fn write_folder(root: &Path, per_class: u32) {
        for (k, class) in ["cat", "dog"].iter().enumerate() {
            let dir = root.join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let img = RgbImage::from_fn(12, 10, |x, y| {
                    Rgb([
                        (x * 20 + i) as u8,
                        (y * 25) as u8,
                        (k as u32 * 100 + i) as u8,
                    ])
                });
                img.save(dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }

    fn opts() -> ImageFolderOptions {
        ImageFolderOptions {
            size: Some([8, 8]),
            stream: true,
            ..Default::default()
        }
    }

    #[test]
    fn streamed_images_equal_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 3);
        let (mem, _) = load_image_folder(dir.path(), &opts(), BadInputPolicy::Fail).unwrap();
        let (stream, report) =
            ImageStream::open(dir.path(), &opts(), BadInputPolicy::Fail).unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!(ImageSource::len(&stream), 6);
        assert_eq!(stream.shape(), (3, 8, 8));
        assert_eq!(stream.n_classes(), 2);
        for i in 0..6 {
            assert_eq!(stream.image(i).as_ref(), mem.image(i), "image {i}");
            assert_eq!(stream.label(i), ImageSource::label(&mem, i));
        }
        assert!(stream.take_errors().is_empty());
    }

    #[test]
    fn bad_headers_are_refused_or_skipped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2);
        std::fs::write(dir.path().join("dog/zzz.png"), b"not an image at all").unwrap();
        let e = ImageStream::open(dir.path(), &opts(), BadInputPolicy::Fail)
            .err()
            .expect("a bad file fails the open");
        assert!(e.to_string().contains("zzz.png"), "{e}");
        let (s, report) = ImageStream::open(dir.path(), &opts(), BadInputPolicy::Skip).unwrap();
        assert_eq!((report.skipped, ImageSource::len(&s)), (1, 4));
    }

    #[test]
    fn a_body_corrupted_after_opening_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2);
        let (s, _) = ImageStream::open(dir.path(), &opts(), BadInputPolicy::Fail).unwrap();
        // Keep the valid header, cut the pixel data.
        let victim = dir.path().join("cat/001.png");
        let bytes = std::fs::read(&victim).unwrap();
        std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
        let blank = s.image(1);
        assert!(blank.iter().all(|&v| v == 0));
        let errors = s.take_errors();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("001.png"), "{}", errors[0]);
        assert!(s.take_errors().is_empty(), "errors are handed out once");
        let (skip, _) = ImageStream::open(dir.path(), &opts(), BadInputPolicy::Skip)
            .map(|(s, r)| (s, r))
            .unwrap_or_else(|_| panic!("the header is still valid"));
        let _ = skip.image(1);
        assert!(skip.take_errors().is_empty());
        assert_eq!(skip.blanked(), 1);
    }

    #[test]
    fn without_size_every_header_must_match_the_first() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2);
        RgbImage::new(5, 5)
            .save(dir.path().join("dog/odd.png"))
            .unwrap();
        let o = ImageFolderOptions {
            stream: true,
            ..Default::default()
        };
        let e = ImageStream::open(dir.path(), &o, BadInputPolicy::Fail)
            .err()
            .expect("a size mismatch fails");
        assert!(
            e.to_string().contains("odd.png") && e.to_string().contains("set `size`"),
            "{e}"
        );
    }
}
