//! Property tests of the file readers against hostile input: arbitrary bytes, and valid files
//! damaged by random edits. Every reader must return `Ok` or an error that names the file (and the
//! line and column where it has them); a panic anywhere is a failure (proptest catches it and
//! shrinks the input). Case counts are kept small enough for a debug build to run the whole file in
//! seconds; raise them for a longer search with `PROPTEST_CASES`.
use super::csv_table::{load_csv_fit, load_csv_with, CsvOptions};
use super::idx::{load_idx, read_idx_images, read_idx_labels, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use super::image_folder::{load_image_folder, ImageFolderOptions};
use super::pickle::{self, test_support::Writer};
use super::{planetoid, tu};
use crate::error::{BadInputPolicy, DataError};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs `test` on `cases` inputs drawn from `strategy` (or `PROPTEST_CASES` when set); panics
/// with the shrunk failing input. No regression files are written into the source tree.
fn check<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{e}");
    }
}

/// One random edit of a byte string. Positions are taken modulo the current length.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..=max)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        match *e {
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Delete(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The error's text must start with the file's path (every [`DataError`] is `path…: message`).
fn names_file(e: &DataError, path: &Path) -> TestCaseResult {
    let text = e.to_string();
    prop_assert!(
        text.starts_with(&path.display().to_string()),
        "error does not name {}: {text}",
        path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------- IDX

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// Reads `bytes` as IDX images and as IDX labels; checks that whatever is returned is consistent.
fn idx_property(dir: &Path, bytes: &[u8]) -> TestCaseResult {
    let path = dir.join("fuzz-idx");
    std::fs::write(&path, bytes).unwrap();
    match read_idx_images(&path) {
        Ok(set) => {
            prop_assert!(set.len > 0 && set.height > 0 && set.width > 0);
            prop_assert_eq!(set.pixels.len(), set.len * set.height * set.width);
        }
        Err(e) => names_file(&e, &path)?,
    }
    match read_idx_labels(&path) {
        Ok(labels) => prop_assert!(!labels.is_empty()),
        Err(e) => names_file(&e, &path)?,
    }
    Ok(())
}

#[test]
fn idx_arbitrary_headers_and_bytes_never_panic() {
    let magic = prop_oneof![
        Just(IDX_IMAGES_MAGIC),
        Just(IDX_LABELS_MAGIC),
        Just(0x0000_0d03u32),
        any::<u32>(),
    ];
    let dim = prop_oneof![0u32..6, any::<u32>()];
    let input = (
        magic,
        prop::collection::vec(dim, 0..4),
        prop::collection::vec(any::<u8>(), 0..128),
        any::<bool>(),
        any::<bool>(),
    );
    let dir = tempfile::tempdir().unwrap();
    check(400, input, |(magic, dims, data, raw, gz)| {
        // Either a header-shaped prefix, or nothing but the arbitrary bytes.
        let bytes = if raw {
            data
        } else {
            idx_bytes(magic, &dims, &data)
        };
        let bytes = if gz { gzip(&bytes) } else { bytes };
        idx_property(dir.path(), &bytes)
    });
}

#[test]
fn idx_mutated_valid_files_never_panic() {
    let images = idx_bytes(IDX_IMAGES_MAGIC, &[3, 2, 4], &(0..24).collect::<Vec<u8>>());
    let labels = idx_bytes(IDX_LABELS_MAGIC, &[3], &[0, 2, 1]);
    let dir = tempfile::tempdir().unwrap();
    let label_path = dir.path().join("labels");
    std::fs::write(&label_path, &labels).unwrap();
    check(
        400,
        (any::<bool>(), edits(4), any::<bool>(), any::<bool>()),
        |(of_images, edits, gz_before, gz_after)| {
            let valid = if of_images { &images } else { &labels };
            // Edit the raw file, or the gzip stream around it.
            let bytes = if gz_before {
                apply(gzip(valid), &edits)
            } else {
                apply(valid.clone(), &edits)
            };
            let bytes = if gz_after && !gz_before {
                gzip(&bytes)
            } else {
                bytes
            };
            idx_property(dir.path(), &bytes)?;
            // Paired with intact labels: a count mismatch names the label file.
            let path = dir.path().join("fuzz-idx");
            match load_idx(&path, Some(&label_path)) {
                Ok(set) => prop_assert_eq!(set.labels.map(|l| l.len()), Some(set.len)),
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(
                        text.contains("fuzz-idx") || text.contains("labels"),
                        "{text}"
                    );
                }
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------- image folder

fn png_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
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

/// Rewrites the IHDR width and height of an encoded PNG, with a correct chunk CRC, so that the
/// decoder believes the header.
fn set_png_dims(png: &mut [u8], width: u32, height: u32) {
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
}

/// A class folder of five valid 8×8 grey PNGs; the fuzzed file is `b/zz_fuzz.png`, last in
/// the loader's order, so it is judged against the shape the valid images set.
struct Folder {
    _dir: tempfile::TempDir,
    root: PathBuf,
    fuzz: PathBuf,
    valid: usize,
}

fn image_folder() -> Folder {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for (class, n) in [("a", 3), ("b", 2)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            let img = GrayImage::from_fn(8, 8, |x, y| Luma([(x * 16 + y + i) as u8]));
            DynamicImage::ImageLuma8(img)
                .save(root.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let fuzz = root.join("b/zz_fuzz.png");
    Folder {
        _dir: dir,
        root,
        fuzz,
        valid: 5,
    }
}

/// Small enough that a lying header cannot make a test allocate much.
fn small_limit() -> ImageFolderOptions {
    ImageFolderOptions {
        max_pixels: 4096,
        ..Default::default()
    }
}

/// Loads the folder with `bytes` as the fuzzed file under both policies. Returns the `Fail`
/// error's text, if any.
fn folder_property(f: &Folder, bytes: &[u8]) -> Result<Option<String>, TestCaseError> {
    std::fs::write(&f.fuzz, bytes).unwrap();
    let opts = small_limit();
    let failed = match load_image_folder(&f.root, &opts, BadInputPolicy::Fail) {
        Ok((set, report)) => {
            prop_assert_eq!(set.len, f.valid + 1);
            prop_assert_eq!(report.skipped, 0);
            None
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.contains("zz_fuzz.png"), "{text}");
            prop_assert_eq!(e.path(), f.fuzz.as_path());
            Some(text)
        }
    };
    let (set, report) = load_image_folder(&f.root, &opts, BadInputPolicy::Skip)
        .map_err(|e| TestCaseError::fail(format!("skip failed: {e}")))?;
    prop_assert_eq!(set.len + report.skipped, f.valid + 1);
    prop_assert_eq!(set.pixels.len(), set.len * 64);
    prop_assert_eq!(report.skipped, usize::from(failed.is_some()));
    if failed.is_some() {
        prop_assert_eq!(&report.paths, &vec![f.fuzz.clone()]);
        prop_assert!(report.examples[0].contains("zz_fuzz.png"));
    }
    Ok(failed)
}

#[test]
fn image_folder_arbitrary_bytes_never_panic() {
    let f = image_folder();
    // Arbitrary bytes, alone or behind a PNG or JPEG signature so the decoders get past sniffing.
    let prefix = prop_oneof![
        Just(Vec::new()),
        Just(b"\x89PNG\r\n\x1a\n".to_vec()),
        Just(vec![0xff, 0xd8, 0xff]),
    ];
    let input = (prefix, prop::collection::vec(any::<u8>(), 0..300));
    check(300, input, |(mut bytes, tail)| {
        bytes.extend(tail);
        folder_property(&f, &bytes).map(|_| ())
    });
}

#[test]
fn image_folder_mutated_png_and_jpeg_never_panic() {
    let f = image_folder();
    // A noisy colour image: its compressed data is long enough to be cut mid-stream.
    let noisy = DynamicImage::ImageRgb8(RgbImage::from_fn(8, 8, |x, y| {
        Rgb([(x * 37 + y * 11) as u8, (x * y * 7) as u8, (x ^ y) as u8])
    }));
    let (png, jpeg) = (png_bytes(&noisy), jpeg_bytes(&noisy));
    check(300, (any::<bool>(), edits(3)), |(is_png, edits)| {
        let valid = if is_png { &png } else { &jpeg };
        folder_property(&f, &apply(valid.clone(), &edits)).map(|_| ())
    });
}

#[test]
fn image_folder_declared_dimensions_are_checked_before_decoding() {
    let f = image_folder();
    let png = png_bytes(&DynamicImage::ImageLuma8(GrayImage::new(8, 8)));
    let side = prop_oneof![0u32..80, 1u32..100_000, any::<u32>()];
    check(300, (side.clone(), side), |(w, h)| {
        let mut bytes = png.clone();
        set_png_dims(&mut bytes, w, h);
        let failed = folder_property(&f, &bytes)?;
        let declared = u64::from(w) * u64::from(h);
        // PNG itself caps each side at 2^31 - 1; past that the header is refused as invalid.
        let valid_header = w > 0 && h > 0 && w <= i32::MAX as u32 && h <= i32::MAX as u32;
        let limit = small_limit().max_pixels;
        if valid_header && declared > limit {
            // Refused by the configured limit: by the declared total, or (a side alone past the
            // limit) by the decoder held to it while reading the header.
            let text = failed.unwrap_or_default();
            let by_total = u64::from(w.max(h)) <= limit;
            prop_assert!(
                text.contains(&format!("max_pixels = {limit}"))
                    && (!by_total || text.contains(&format!("= {declared} pixels"))),
                "{w}×{h}: {text}"
            );
        } else if (w, h) != (8, 8) {
            // Within the limit but not what the data holds: an error naming the file.
            prop_assert!(failed.is_some(), "{w}×{h} was accepted");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------- CSV

/// Arbitrary text, biased towards CSV's own characters.
fn csv_text() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b",\n\r\"; ?.-e".to_vec()),
        4 => b'0'..=b'9',
        2 => b'a'..=b'z',
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..300)
}

/// Whatever a table reader returns must be usable: finite values, one label per row.
fn table_ok(t: &super::TableSet) -> TestCaseResult {
    prop_assert!(t.n_rows > 0);
    prop_assert_eq!(t.values.len(), t.n_rows * t.n_features());
    prop_assert!(t.values.iter().all(|v| v.is_finite()));
    if let Some(l) = &t.labels {
        prop_assert_eq!(l.len(), t.n_rows);
    }
    Ok(())
}

#[test]
fn csv_arbitrary_text_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.csv");
    let options = prop_oneof![
        Just(CsvOptions::default()),
        Just(CsvOptions {
            label: Some("y".into()),
            ..Default::default()
        }),
        Just(CsvOptions {
            header: false,
            columns: Some(vec!["a".into(), "b".into()]),
            skip_lines: 1,
            ..Default::default()
        }),
        Just(CsvOptions {
            delimiter: ';',
            categorical: Some(vec![]),
            trim: false,
            ..Default::default()
        }),
    ];
    check(
        400,
        (csv_text(), options, any::<bool>()),
        |(text, opts, gz)| {
            let bytes = if gz { gzip(&text) } else { text };
            std::fs::write(&path, &bytes).unwrap();
            for policy in [BadInputPolicy::Fail, BadInputPolicy::Skip] {
                match load_csv_fit(&path, &opts, policy) {
                    Ok((t, report)) => {
                        table_ok(&t)?;
                        prop_assert_eq!(report.paths.len(), usize::from(report.skipped > 0));
                        // The same file encoded with its own fit.
                        match load_csv_with(&path, &opts, &t, policy) {
                            Ok((t2, _)) => table_ok(&t2)?,
                            Err(e) => names_file(&e, &path)?,
                        }
                    }
                    Err(e) => names_file(&e, &path)?,
                }
            }
            Ok(())
        },
    );
}

/// One cell of a generated table: a plain number or a bad one.
#[derive(Debug, Clone)]
enum CsvCell {
    Num(i32),
    /// Number-like but not finite: bad in any numeric column.
    NonFinite(&'static str),
    /// Text: bad only where the column is declared numeric.
    Text(&'static str),
    /// A configured missing marker: never bad.
    Missing(&'static str),
}

impl CsvCell {
    fn text(&self) -> String {
        match self {
            CsvCell::Num(v) => v.to_string(),
            CsvCell::NonFinite(s) | CsvCell::Text(s) | CsvCell::Missing(s) => s.to_string(),
        }
    }
}

fn csv_cell() -> impl Strategy<Value = CsvCell> {
    prop_oneof![
        12 => (-1000i32..1000).prop_map(CsvCell::Num),
        1 => prop::sample::select(vec!["nan", "inf", "-inf", "+Infinity", "1e999", "-1e400", "NAN"])
            .prop_map(CsvCell::NonFinite),
        1 => prop::sample::select(vec!["abc", "1.2.3", "0x10", "--1", "e5"]).prop_map(CsvCell::Text),
        1 => prop::sample::select(vec!["", "?", "NA", "NaN"]).prop_map(CsvCell::Missing),
    ]
}

/// A row: its cells, and a ragged variant (`Some(true)` one cell too many, `Some(false)` one
/// field only).
type CsvRow = (Vec<CsvCell>, Option<bool>);

#[test]
fn csv_bad_cells_and_ragged_rows_are_reported_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.csv");
    let clean_path = dir.path().join("clean.csv");
    let table = (2usize..5).prop_flat_map(|cols| {
        let row = (
            prop::collection::vec(csv_cell(), cols),
            prop::option::weighted(0.1, any::<bool>()),
        );
        (Just(cols), prop::collection::vec(row, 1..12), any::<bool>())
    });
    check(
        300,
        table,
        |(cols, rows, declared_numeric): (usize, Vec<CsvRow>, bool)| {
            let names: Vec<String> = (0..cols).map(|c| format!("c{c}")).collect();
            // Declared numeric, text is bad; automatic, text only makes its column categorical.
            let opts = CsvOptions {
                categorical: declared_numeric.then(Vec::new),
                ..Default::default()
            };
            let text_is_categorical: Vec<bool> = (0..cols)
                .map(|c| {
                    !declared_numeric
                        && rows.iter().any(|(cells, ragged)| {
                            ragged.is_none() && matches!(cells[c], CsvCell::Text(_))
                        })
                })
                .collect();
            let mut text = names.join(",") + "\n";
            // (line, column) of each bad row's first problem; ragged rows (found while reading, before
            // any cell is parsed) and bad cells are listed apart.
            let (mut ragged_at, mut cell_at) = (Vec::new(), Vec::new());
            for (i, (cells, ragged)) in rows.iter().enumerate() {
                let line = i + 2;
                let mut fields: Vec<String> = cells.iter().map(CsvCell::text).collect();
                match ragged {
                    Some(true) => {
                        fields.push("1".into());
                        ragged_at.push((line, 0));
                    }
                    Some(false) => {
                        fields = vec!["1".into()];
                        ragged_at.push((line, 0));
                    }
                    None => {
                        // In a column that text made categorical, "nan" is just another level.
                        let bad = cells.iter().enumerate().position(|(c, cell)| {
                            matches!(cell, CsvCell::NonFinite(_) | CsvCell::Text(_))
                                && !text_is_categorical[c]
                        });
                        if let Some(c) = bad {
                            cell_at.push((line, c + 1));
                        }
                    }
                }
                text += &(fields.join(",") + "\n");
            }
            std::fs::write(&path, &text).unwrap();
            let bad_rows = ragged_at.len() + cell_at.len();
            let first_bad = ragged_at.first().or(cell_at.first()).copied();

            match (load_csv_fit(&path, &opts, BadInputPolicy::Fail), first_bad) {
                (Ok((t, _)), None) => {
                    prop_assert_eq!(t.n_rows, rows.len());
                    table_ok(&t)?;
                }
                (
                    Err(DataError::Record {
                        path: p,
                        line,
                        column,
                        ..
                    }),
                    Some(at),
                ) => {
                    prop_assert_eq!(&p, &path);
                    prop_assert_eq!((line, column), at);
                }
                (other, want) => {
                    return Err(TestCaseError::fail(format!(
                        "{other:?}, wanted an error at {want:?}"
                    )))
                }
            }
            match load_csv_fit(&path, &opts, BadInputPolicy::Skip) {
                Ok((t, report)) => {
                    prop_assert_eq!(report.skipped, bad_rows);
                    prop_assert_eq!(t.n_rows, rows.len() - bad_rows);
                    prop_assert_eq!(report.paths.len(), usize::from(bad_rows > 0));
                    table_ok(&t)?;
                }
                // Every row bad: an error, not an empty table.
                Err(DataError::Empty { .. }) => prop_assert_eq!(bad_rows, rows.len()),
                Err(e) => return Err(TestCaseError::fail(format!("skip: {e}"))),
            }

            // The same rows as a test file, encoded with the fit of a clean all-numeric file:
            // text is bad in every column there.
            std::fs::write(
                &clean_path,
                format!("{}\n{}\n", names.join(","), vec!["1"; cols].join(",")),
            )
            .unwrap();
            let fitted = load_csv_fit(&clean_path, &opts, BadInputPolicy::Fail)
                .unwrap()
                .0;
            let first_cell_bad = rows.iter().enumerate().find_map(|(i, (cells, ragged))| {
                if ragged.is_some() {
                    return None;
                }
                cells
                    .iter()
                    .position(|c| matches!(c, CsvCell::NonFinite(_) | CsvCell::Text(_)))
                    .map(|c| (i + 2, c + 1))
            });
            let want = ragged_at.first().copied().or(first_cell_bad);
            match (
                load_csv_with(&path, &opts, &fitted, BadInputPolicy::Fail),
                want,
            ) {
                (Ok((t, _)), None) => table_ok(&t)?,
                (Err(DataError::Record { line, column, .. }), Some(at)) => {
                    prop_assert_eq!((line, column), at)
                }
                (other, want) => {
                    return Err(TestCaseError::fail(format!(
                        "test file: {other:?}, wanted {want:?}"
                    )))
                }
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------------- pickle

#[test]
fn pickle_arbitrary_and_mutated_streams_never_panic() {
    let mut w = Writer::new();
    w.csr(3, 4, &[0, 2, 2, 3], &[0, 3, 1], &[1.0, 2.0, 0.5]);
    let csr = w.finish();
    let mut w = Writer::new();
    w.defaultdict(&[(0, vec![1, 2]), (1, vec![0]), (2, vec![0, 5])]);
    let dict = w.finish();
    let path = Path::new("fuzz.pkl");
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96).prop_map(|b| [vec![0x80, 2], b].concat()),
        (any::<bool>(), edits(4)).prop_map(move |(which, e)| {
            apply(if which { csr.clone() } else { dict.clone() }, &e)
        }),
    ];
    check(500, input, |bytes| {
        match pickle::parse(&bytes, path) {
            Ok(v) => {
                // The interpreters must be as robust on whatever did parse.
                for r in [
                    pickle::csr_matrix(&v, path, "x").map(|_| ()),
                    pickle::ndarray(&v, path, "x").map(|_| ()),
                    pickle::int_list_dict(&v, path, "x").map(|_| ()),
                ] {
                    if let Err(e) = r {
                        names_file(&e, path)?;
                    }
                }
            }
            Err(e) => names_file(&e, path)?,
        }
        Ok(())
    });
}

#[test]
fn planetoid_npz_arbitrary_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.npz");
    let input = (
        prop_oneof![
            Just(Vec::new()),
            Just(b"PK\x03\x04".to_vec()),
            Just(b"PK\x05\x06".to_vec())
        ],
        prop::collection::vec(any::<u8>(), 0..200),
    );
    check(200, input, |(mut bytes, tail)| {
        bytes.extend(tail);
        std::fs::write(&path, &bytes).unwrap();
        match planetoid::load_planetoid_npz(&path) {
            Ok(g) => prop_assert!(g
                .edges
                .iter()
                .flatten()
                .all(|&n| (n as usize) < g.num_nodes)),
            Err(e) => names_file(&e, &path)?,
        }
        Ok(())
    });
}

// ----------------------------------------------------------------------------------------- TU

/// Two graphs: nodes 1–3 and 4–5, labels 1 and -1 (as in the TU reader's own tests).
const TU_FILES: [(&str, &str); 5] = [
    ("A", "1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n"),
    ("graph_indicator", "1\n1\n1\n2\n2\n"),
    ("graph_labels", "1\n-1\n"),
    ("node_labels", "0\n2\n0\n1\n1\n"),
    ("node_attributes", "1.5, 0\n0, 0\n-2, 3\n0.25, 0\n0, 1\n"),
];

/// Writes the tiny set with file `which` replaced by `text`, loads it, and checks the outcome.
fn tu_property(root: &Path, which: usize, text: &[u8], with_attributes: bool) -> TestCaseResult {
    let dir = root.join("TINY");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (suffix, valid)) in TU_FILES.iter().enumerate() {
        let body = if i == which { text } else { valid.as_bytes() };
        std::fs::write(dir.join(format!("TINY_{suffix}.txt")), body).unwrap();
    }
    match tu::load_tu(root, "TINY", with_attributes) {
        Ok(set) => {
            prop_assert_eq!(set.graphs.len(), set.labels.len());
            prop_assert!(set.labels.iter().all(|&l| (l as usize) < set.num_classes));
            for g in &set.graphs {
                prop_assert!(g
                    .edges
                    .iter()
                    .flatten()
                    .all(|&n| (n as usize) < g.num_nodes));
                prop_assert_eq!(g.features.rows, g.num_nodes);
                prop_assert_eq!(g.features.cols, set.num_features);
                prop_assert!(g.features.values.iter().all(|v| v.is_finite()));
            }
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.contains("TINY"), "{text}");
            prop_assert!(e.path().starts_with(root), "{}", e.path().display());
        }
    }
    Ok(())
}

#[test]
fn tu_arbitrary_file_text_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let byte = prop_oneof![
        4 => prop::sample::select(b"0123456789, \n-.".to_vec()),
        1 => prop::sample::select(b"xe+\t\rnaif".to_vec()),
        1 => any::<u8>(),
    ];
    let input = (
        0..TU_FILES.len(),
        prop::collection::vec(byte, 0..120),
        any::<bool>(),
    );
    check(300, input, |(which, text, attrs)| {
        tu_property(dir.path(), which, &text, attrs)
    });
}

/// A line-level edit of a TU file: drop, duplicate, or replace a number with a hostile one.
#[derive(Debug, Clone)]
enum LineEdit {
    Drop(usize),
    Duplicate(usize),
    Number(usize, i64),
}

#[test]
fn tu_mutated_lines_never_panic_and_missing_nodes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let number = prop_oneof![
        -2i64..12,
        Just(i64::from(u32::MAX)),
        Just(i64::MAX),
        Just(i64::MIN)
    ];
    let edit = prop_oneof![
        any::<usize>().prop_map(LineEdit::Drop),
        any::<usize>().prop_map(LineEdit::Duplicate),
        (any::<usize>(), number).prop_map(|(i, n)| LineEdit::Number(i, n)),
    ];
    let input = (
        0..TU_FILES.len(),
        prop::collection::vec(edit, 1..4),
        any::<bool>(),
    );
    check(300, input, |(which, edits, attrs)| {
        let mut lines: Vec<String> = TU_FILES[which].1.lines().map(str::to_string).collect();
        for e in &edits {
            let n = lines.len();
            match *e {
                LineEdit::Drop(i) if n > 0 => {
                    lines.remove(i % n);
                }
                LineEdit::Duplicate(i) if n > 0 => lines.insert(i % n, lines[i % n].clone()),
                LineEdit::Number(i, v) if n > 0 => {
                    // Replace the first field of the line.
                    let line = &mut lines[i % n];
                    let rest = line
                        .find(',')
                        .map(|k| line[k..].to_string())
                        .unwrap_or_default();
                    *line = format!("{v}{rest}");
                }
                _ => {}
            }
        }
        let text = lines.join("\n") + "\n";
        tu_property(dir.path(), which, text.as_bytes(), attrs)?;
        // An edge to a missing node (or across graphs) is an error naming the edge file and the
        // first such line.
        if which == 0 {
            let graph = |n: i64| if n <= 3 { 1 } else { 2 };
            let bad_line = lines.iter().position(|l| {
                let ends: Vec<i64> = l.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                ends.iter().any(|&n| !(1..=5).contains(&n)) || graph(ends[0]) != graph(ends[1])
            });
            if let Some(k) = bad_line {
                let e = tu::load_tu(dir.path(), "TINY", attrs)
                    .unwrap_err()
                    .to_string();
                prop_assert!(e.contains(&format!("TINY_A.txt:{}:", k + 1)), "{e}");
            }
        }
        Ok(())
    });
}

/// UCR files of arbitrary text (tab/comma-separated numbers, NaNs, labels, junk) and bytes: the
/// reader returns series or an error naming the file, never panics; what it returns has one
/// length and a class per series.
#[test]
fn ucr_files_never_panic() {
    use super::ucr::{load_ucr, UcrOptions};
    let line = "[0-9a-z\\-]{0,3}([\\t,]([0-9.\\-e]{0,6}|NaN|nan|inf)){0,6}";
    let text = prop::collection::vec(line, 0..6).prop_map(|l| l.join("\n"));
    let input = (
        text.clone(),
        text,
        any::<bool>(),
        prop::option::of(0usize..5),
    );
    check(300, input, |(train, test, skip, length)| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("F_TRAIN.tsv"), &train).unwrap();
        std::fs::write(dir.path().join("F_TEST.tsv"), &test).unwrap();
        let policy = if skip {
            BadInputPolicy::Skip
        } else {
            BadInputPolicy::Fail
        };
        let opts = UcrOptions {
            length,
            ..Default::default()
        };
        match load_ucr(dir.path(), "F", &opts, policy) {
            Ok((tr, te, _)) => {
                prop_assert_eq!(tr.length, te.length);
                prop_assert_eq!(tr.values.len(), tr.len * tr.length);
                prop_assert_eq!(te.values.len(), te.len * te.length);
                prop_assert!(tr.labels.iter().all(|&c| (c as usize) < tr.classes.len()));
                prop_assert!(tr.values.iter().all(|v| v.is_finite()));
            }
            Err(e) => {
                prop_assert!(e.to_string().contains("F_T") || e.to_string().contains("length = 0"))
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------- text

fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"\t\n\r\" ,".to_vec()),
        4 => b'a'..=b'z',
        1 => b'0'..=b'1',
        1 => prop::sample::select(vec![0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff, 0x80]),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..300)
}

/// Text files of arbitrary bytes in every layout, plain or gzip: a read never panics; it gives
/// usable texts (non-empty ones, one label per text) or an error naming the file; a short line
/// limit exercises the long-line policies.
#[test]
fn text_files_of_arbitrary_bytes_never_panic() {
    use super::text::reader::{read_text_file, LongLinePolicy, Utf8Policy};
    use super::text::{Column, TextFile, TextFormat};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.txt");
    let layout = prop_oneof![
        Just((TextFormat::Tsv, true)),
        Just((TextFormat::Tsv, false)),
        Just((TextFormat::Csv, true)),
        Just((TextFormat::Lines, false)),
        Just((TextFormat::Windows, false)),
    ];
    check(
        400,
        (
            text_bytes(),
            layout,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        |(text, (format, labelled), gz, lenient, short)| {
            let bytes = if gz { gzip(&text) } else { text };
            std::fs::write(&path, &bytes).unwrap();
            let file = TextFile {
                header: labelled && format == TextFormat::Csv,
                text: Column::Index(usize::from(labelled)),
                label: labelled.then_some(Column::Index(0)),
                window: 16,
                utf8: if lenient {
                    Utf8Policy::Replace
                } else {
                    Utf8Policy::Strict
                },
                long_lines: if lenient {
                    LongLinePolicy::Truncate
                } else {
                    LongLinePolicy::Strict
                },
                max_line_bytes: if short { 24 } else { 1 << 20 },
                ..TextFile::new(&path, format)
            };
            for policy in [BadInputPolicy::Fail, BadInputPolicy::Skip] {
                match read_text_file(&file, policy) {
                    Ok((t, _)) => {
                        prop_assert!(!t.texts.is_empty());
                        prop_assert!(t.texts.iter().all(|s| !s.trim().is_empty()));
                        if let Some(l) = &t.labels {
                            prop_assert_eq!(l.len(), t.texts.len());
                        }
                        if format == TextFormat::Windows {
                            prop_assert!(t.texts.iter().all(|s| s.chars().count() <= 16));
                        }
                    }
                    Err(e) => names_file(&e, &path)?,
                }
            }
            Ok(())
        },
    );
}
