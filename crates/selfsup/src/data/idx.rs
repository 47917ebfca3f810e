//! IDX files (MNIST, Fashion-MNIST): big-endian header, then raw unsigned bytes. Raw or gzip.
//!
//! Layout: a 4-byte magic `00 00 <dtype> <ndims>`, `ndims` big-endian u32 dimensions, then the
//! data. Only unsigned-byte data (`dtype` 0x08) is supported: images are `count × rows × cols`
//! (magic 0x00000803) and labels are `count` (magic 0x00000801).
use super::{open_maybe_gzip, ImageSet};
use crate::error::DataError;
use std::io::Read;
use std::path::Path;

/// Magic number of an IDX file of u8 images (`count × rows × cols`).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (`count`).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The most data bytes a header may declare. The whole of MNIST's training images is 47 MB;
/// anything declaring more than this is almost certainly a corrupt header, and refusing it up
/// front keeps a damaged file from driving us into a huge allocation or a very long read.
const MAX_IDX_DATA_BYTES: usize = 1 << 32;

/// IDX dtype byte for unsigned bytes.
const DTYPE_U8: u8 = 0x08;

/// Reads an IDX file of u8 images (magic 0x00000803) into a single-channel [`ImageSet`] without labels.
pub fn read_idx_images(path: &Path) -> Result<ImageSet, DataError> {
    let (dims, pixels) = read_idx_u8(path, IDX_IMAGES_MAGIC)?;
    let (len, height, width) = (dims[0], dims[1], dims[2]);
    if len == 0 {
        return Err(DataError::Empty {
            path: path.into(),
            message: "the IDX header declares 0 images".into(),
        });
    }
    if height == 0 || width == 0 {
        return Err(DataError::format(
            path,
            format!("the IDX header declares {height}×{width} images; both sides must be positive"),
        ));
    }
    Ok(ImageSet {
        pixels,
        len,
        channels: 1,
        height,
        width,
        labels: None,
        class_names: Vec::new(),
        sources: None,
    })
}

/// Reads an IDX file of u8 labels (magic 0x00000801).
pub fn read_idx_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let (dims, data) = read_idx_u8(path, IDX_LABELS_MAGIC)?;
    if dims[0] == 0 {
        return Err(DataError::Empty {
            path: path.into(),
            message: "the IDX header declares 0 labels".into(),
        });
    }
    Ok(data.into_iter().map(i64::from).collect())
}

/// Reads an IDX image file and, optionally, its label file. With labels, the counts must match
/// and `class_names` is `"0"..="max label"`.
pub fn load_idx(images: &Path, labels: Option<&Path>) -> Result<ImageSet, DataError> {
    let mut set = read_idx_images(images)?;
    if let Some(label_path) = labels {
        let ys = read_idx_labels(label_path)?;
        if ys.len() != set.len {
            return Err(DataError::format(
                label_path,
                format!(
                    "{} labels, but {} has {} images",
                    ys.len(),
                    images.display(),
                    set.len
                ),
            ));
        }
        // Labels are u8, so the maximum is at most 255 and the name list stays small.
        let max = ys.iter().copied().max().unwrap_or(0);
        set.class_names = (0..=max).map(|c| c.to_string()).collect();
        set.labels = Some(ys);
    }
    Ok(set)
}

/// Reads an IDX file of u8 data whose magic must be `magic`; returns its dimensions and data.
fn read_idx_u8(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut reader = open_maybe_gzip(path)?;
    let want_dims = (magic & 0xff) as usize;

    let mut head = [0u8; 4];
    read_header_bytes(&mut reader, &mut head, path)?;
    let got = u32::from_be_bytes(head);
    if head[0] != 0 || head[1] != 0 {
        return Err(DataError::format(
            path,
            format!("not an IDX file: magic number 0x{got:08x}, expected 0x{magic:08x}"),
        ));
    }
    if head[2] != DTYPE_U8 {
        return Err(DataError::format(
            path,
            format!(
                "IDX data type 0x{:02x} is not unsigned byte (0x08): magic number 0x{got:08x}, expected 0x{magic:08x}",
                head[2]
            ),
        ));
    }
    if head[3] as usize != want_dims {
        return Err(DataError::format(
            path,
            format!(
                "IDX file has {} dimensions, expected {want_dims}: magic number 0x{got:08x}, expected 0x{magic:08x}",
                head[3]
            ),
        ));
    }

    let mut raw_dims = vec![0u8; 4 * want_dims];
    read_header_bytes(&mut reader, &mut raw_dims, path)?;
    let dims: Vec<usize> = raw_dims
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shape = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_IDX_DATA_BYTES)
        .ok_or_else(|| {
            DataError::format(
                path,
                format!("the IDX header declares {shape} values, more than the {MAX_IDX_DATA_BYTES}-byte limit (corrupt header?)"),
            )
        })?;

    // No `Vec::with_capacity(expected)`: the buffer grows only as real bytes arrive, so a header
    // that lies about its size cannot make us allocate more than the file actually holds.
    let mut data = Vec::new();
    (&mut reader)
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(path, e))?;
    if data.len() < expected {
        return Err(DataError::format(
            path,
            format!("truncated: the header declares {shape} = {expected} data bytes, but only {} are present", data.len()),
        ));
    }
    // Count (without storing) whatever follows, so the message can say how much there is.
    let trailing =
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| DataError::io(path, e))?;
    if trailing > 0 {
        return Err(DataError::format(
            path,
            format!("{trailing} trailing bytes after the {shape} = {expected} data bytes the header declares"),
        ));
    }
    Ok((dims, data))
}

/// Fills `buf` from the start of the header, or fails with a "truncated header" error.
fn read_header_bytes(reader: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<(), DataError> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(DataError::format(
                    path,
                    format!(
                        "truncated IDX header: needed {} bytes here, found {got}",
                        buf.len()
                    ),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::path::PathBuf;

    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn write(dir: &Path, name: &str, bytes: &[u8], gzip: bool) -> PathBuf {
        let p = dir.join(name);
        let out = if gzip {
            let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(bytes).unwrap();
            enc.finish().unwrap()
        } else {
            bytes.to_vec()
        };
        std::fs::write(&p, out).unwrap();
        p
    }

    /// 3 images of 2×4 with distinct pixels, and labels 0, 2, 1.
    fn sample(dir: &Path, gzip: bool) -> (PathBuf, PathBuf) {
        let pixels: Vec<u8> = (0..24).collect();
        let imgs = write(
            dir,
            "imgs",
            &idx_bytes(IDX_IMAGES_MAGIC, &[3, 2, 4], &pixels),
            gzip,
        );
        let labs = write(
            dir,
            "labs",
            &idx_bytes(IDX_LABELS_MAGIC, &[3], &[0, 2, 1]),
            gzip,
        );
        (imgs, labs)
    }

    fn assert_sample(set: &ImageSet) {
        assert_eq!((set.len, set.channels, set.height, set.width), (3, 1, 2, 4));
        assert_eq!(set.image(1), &(8..16).collect::<Vec<u8>>()[..]);
        assert_eq!(set.labels.as_deref(), Some(&[0i64, 2, 1][..]));
        assert_eq!(set.class_names, vec!["0", "1", "2"]);
    }

    #[test]
    fn reads_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [false, true] {
            let sub = dir.path().join(if gzip { "gz" } else { "raw" });
            std::fs::create_dir(&sub).unwrap();
            let (imgs, labs) = sample(&sub, gzip);
            assert_sample(&load_idx(&imgs, Some(&labs)).unwrap());
            let unlabeled = load_idx(&imgs, None).unwrap();
            assert!(unlabeled.labels.is_none() && unlabeled.class_names.is_empty());
            assert_eq!(read_idx_labels(&labs).unwrap(), vec![0, 2, 1]);
        }
    }

    fn err_text(r: Result<impl std::fmt::Debug, DataError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn wrong_magic_and_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let (imgs, labs) = sample(dir.path(), false);
        // Labels where images are expected and vice versa: the dimension count differs.
        let e = err_text(read_idx_images(&labs));
        assert!(
            e.contains("labs") && e.contains("0x00000801") && e.contains("0x00000803"),
            "{e}"
        );
        let e = err_text(read_idx_labels(&imgs));
        assert!(
            e.contains("imgs") && e.contains("expected 0x00000801"),
            "{e}"
        );
        // A float IDX file (dtype 0x0d).
        let f = write(
            dir.path(),
            "float",
            &idx_bytes(0x0000_0d03, &[1, 1, 1], &[0; 4]),
            false,
        );
        let e = err_text(read_idx_images(&f));
        assert!(e.contains("float") && e.contains("0x0d"), "{e}");
        // Not IDX at all (a PNG signature).
        let p = write(dir.path(), "png", b"\x89PNG\r\n\x1a\n........", false);
        let e = err_text(read_idx_images(&p));
        assert!(e.contains("not an IDX file"), "{e}");
        // Shorter than a magic number.
        let t = write(dir.path(), "tiny", &[0, 0], true);
        let e = err_text(read_idx_images(&t));
        assert!(e.contains("truncated IDX header"), "{e}");
    }

    #[test]
    fn truncated_and_trailing() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [false, true] {
            let t = write(
                dir.path(),
                "trunc",
                &idx_bytes(IDX_IMAGES_MAGIC, &[3, 2, 4], &[7; 20]),
                gzip,
            );
            let e = err_text(read_idx_images(&t));
            assert!(
                e.contains("trunc") && e.contains("24") && e.contains("only 20"),
                "{e}"
            );
            let g = write(
                dir.path(),
                "garbage",
                &idx_bytes(IDX_LABELS_MAGIC, &[3], &[1, 2, 3, 4, 5]),
                gzip,
            );
            let e = err_text(read_idx_labels(&g));
            assert!(
                e.contains("garbage") && e.contains("2 trailing bytes"),
                "{e}"
            );
            // Dims cut short inside the header.
            let h = write(
                dir.path(),
                "shorthead",
                &idx_bytes(IDX_IMAGES_MAGIC, &[3], &[]),
                gzip,
            );
            let e = err_text(read_idx_images(&h));
            assert!(e.contains("truncated IDX header"), "{e}");
        }
    }

    #[test]
    fn huge_header_is_refused_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // 2^32-1 cubed overflows usize: refused by the size check.
        let p = write(
            dir.path(),
            "huge",
            &idx_bytes(IDX_IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2]),
            false,
        );
        let e = err_text(read_idx_images(&p));
        assert!(e.contains("limit"), "{e}");
        // Under the cap but far more than the file holds: reported as truncated, after reading
        // only what is there.
        let p = write(
            dir.path(),
            "big",
            &idx_bytes(IDX_IMAGES_MAGIC, &[60_000, 256, 256], &[1, 2]),
            false,
        );
        let e = err_text(read_idx_images(&p));
        assert!(e.contains("3932160000") && e.contains("only 2"), "{e}");
    }

    #[test]
    fn count_mismatch_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (imgs, _) = sample(dir.path(), false);
        let labs = write(
            dir.path(),
            "two",
            &idx_bytes(IDX_LABELS_MAGIC, &[2], &[0, 1]),
            false,
        );
        let e = err_text(load_idx(&imgs, Some(&labs)));
        assert!(
            e.contains("two") && e.contains("2 labels") && e.contains("3 images"),
            "{e}"
        );
        let z = write(
            dir.path(),
            "zero",
            &idx_bytes(IDX_IMAGES_MAGIC, &[0, 28, 28], &[]),
            false,
        );
        assert!(matches!(read_idx_images(&z), Err(DataError::Empty { .. })));
        let z = write(
            dir.path(),
            "flat",
            &idx_bytes(IDX_IMAGES_MAGIC, &[2, 0, 28], &[]),
            false,
        );
        assert!(matches!(read_idx_images(&z), Err(DataError::Format { .. })));
    }

    #[test]
    fn missing_file_is_io_error_naming_path() {
        let e = read_idx_images(Path::new("/nonexistent/dir/t10k-images")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().contains("t10k-images"));
    }

    #[test]
    fn real_fashion_mnist_test_split() {
        let Some(dir) = crate::data::shared_data("fashion_mnist") else {
            return;
        };
        let set = load_idx(
            &dir.join("t10k-images-idx3-ubyte.gz"),
            Some(&dir.join("t10k-labels-idx1-ubyte.gz")),
        )
        .unwrap();
        assert_eq!(
            (set.len, set.channels, set.height, set.width),
            (10_000, 1, 28, 28)
        );
        assert_eq!(set.pixels.len(), 10_000 * 28 * 28);
        assert_eq!(set.class_names.len(), 10);
        let mut counts = [0usize; 10];
        for &y in set.labels.as_ref().unwrap() {
            counts[y as usize] += 1;
        }
        assert_eq!(counts, [1000; 10]);
    }
}
