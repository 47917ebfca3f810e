//! The UCR time-series classification archive (Dau et al. 2019): `<Name>_TRAIN.tsv` and
//! `<Name>_TEST.tsv`, one series per line, the class label first and then the values.
//!
//! Rules, as the 2018 archive writes its files:
//! - fields are separated by tabs (the 2018 archive) or commas (older copies); blank lines are
//!   ignored; files may be gzipped (recognised by content);
//! - the label is any token; classes are numbered in the numeric order of their labels (textual
//!   order when a label is not a number), `1` and `1.0` being one class; the test file uses the
//!   training file's classes, and a label the training file lacks is an error naming its line;
//! - a series ends at its first `NaN`: the archive pads the variable-length sets with trailing
//!   `NaN`s. A number after that padding, a value that is not a finite number, or a line without
//!   values is an error naming file, line and column (or the line is skipped and counted under
//!   [`BadInputPolicy::Skip`]);
//! - series of different lengths are brought to one length — `length` when given, else the
//!   longest of the training and test series: longer ones keep their first `length` values,
//!   shorter ones are padded at the end with zeros or with their last value ([`Pad`]);
//! - with `znorm`, each series is z-normalised over its own values (before padding); a constant
//!   series becomes zeros;
//! - with `standardise`, every value of both splits is standardised with the mean and standard
//!   deviation of all the training split's values (before padding), as TS2Vec's loader treats the
//!   sets that the archive leaves unnormalised.
use super::open_maybe_gzip;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most (decompressed) bytes one series file may hold.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// How series shorter than the common length are filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pad {
    /// With zeros (the value of a z-normalised series' mean).
    #[default]
    Zero,
    /// With the series' last value.
    Last,
}

/// Reading options of a UCR set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UcrOptions {
    /// Z-normalise each series (most UCR sets are distributed z-normalised already).
    pub znorm: bool,
    /// The common length (default: the longest series of the two files).
    pub length: Option<usize>,
    pub pad: Pad,
    /// Standardise with the training split's mean and standard deviation over all its values.
    pub standardise: bool,
}

/// Series of one length with class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSet {
    /// The file the series come from.
    pub path: PathBuf,
    /// `len × length` values, row-major.
    pub values: Vec<f32>,
    pub len: usize,
    pub length: usize,
    /// Each series' own length (before padding or truncation).
    pub lengths: Vec<usize>,
    /// Class index per series.
    pub labels: Vec<i64>,
    /// The label of each class index, as the training file writes it.
    pub classes: Vec<String>,
}

impl SeriesSet {
    /// The values of series `i`.
    pub fn series(&self, i: usize) -> &[f32] {
        &self.values[i * self.length..(i + 1) * self.length]
    }
}

/// A line as read: its 1-based number, label and values (the NaN padding removed).
struct Row {
    line: usize,
    label: String,
    values: Vec<f64>,
}

/// Finds `<name>_<SPLIT>.tsv` (or `.tsv.gz`) in `dir`, `dir/<name>/` or `dir/UCRArchive_2018/<name>/`.
fn find_file(dir: &Path, name: &str, split: &str) -> Option<PathBuf> {
    let file = format!("{name}_{split}.tsv");
    [
        dir.to_path_buf(),
        dir.join(name),
        dir.join("UCRArchive_2018").join(name),
    ]
    .iter()
    .flat_map(|d| [d.join(&file), d.join(format!("{file}.gz"))])
    .find(|p| p.is_file())
}

/// The bytes of one split: from a folder, or from a `.tar`/`.tar.xz` archive of the archive's
/// folders.
fn split_bytes(path: &Path, name: &str, split: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(DataError::format(
            path,
            format!("{name:?} is not a UCR data set name"),
        ));
    }
    if path.is_dir() {
        let file = find_file(path, name, split).ok_or_else(|| {
            DataError::format(
                path,
                format!("no {name}_{split}.tsv here, in {name}/ or in UCRArchive_2018/{name}/"),
            )
        })?;
        let mut bytes = Vec::new();
        open_maybe_gzip(&file)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(&file, e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(DataError::format(
                &file,
                format!("larger than {MAX_FILE_BYTES} bytes (refused)"),
            ));
        }
        return Ok((file, bytes));
    }
    let wanted = format!("{name}_{split}.tsv");
    let mut found = super::archive::read_members(path, |file| {
        (file == wanted || file == format!("{wanted}.gz")).then(|| "split".to_string())
    })?;
    let member = found
        .remove("split")
        .ok_or_else(|| DataError::format(path, format!("the archive holds no {wanted}")))?;
    let bytes = if member.bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&member.bytes[..])
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::io(&member.path, e))?;
        out
    } else {
        member.bytes
    };
    Ok((member.path, bytes))
}

/// Parses one file's rows under `policy`.
fn parse(
    path: &Path,
    bytes: &[u8],
    policy: BadInputPolicy,
    report: &mut SkipReport,
) -> Result<Vec<Row>, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DataError::record(path, line, 1, "not UTF-8 text")
    })?;
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(path, line, raw) {
            Ok(row) => rows.push(row),
            Err(e) => report.handle(policy, e)?,
        }
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            message: "no series".into(),
        });
    }
    Ok(rows)
}

fn parse_line(path: &Path, line: usize, raw: &str) -> Result<Row, DataError> {
    let sep = if raw.contains('\t') { '\t' } else { ',' };
    let mut fields = raw.split(sep).map(str::trim);
    let label = fields.next().unwrap_or("").to_string();
    if label.is_empty() {
        return Err(DataError::record(path, line, 1, "no class label"));
    }
    if label.parse::<f64>().is_ok_and(|x| !x.is_finite()) {
        return Err(DataError::record(
            path,
            line,
            1,
            format!("{label} is not a class label"),
        ));
    }
    let mut values = Vec::new();
    let mut padded_from = None;
    for (k, field) in fields.enumerate() {
        let column = k + 2;
        let v: f64 = field.parse().map_err(|_| {
            DataError::record(path, line, column, format!("{field:?} is not a number"))
        })?;
        if v.is_nan() {
            padded_from.get_or_insert(column);
            continue;
        }
        if let Some(from) = padded_from {
            return Err(DataError::record(
                path,
                line,
                column,
                format!("a value after the NaN padding that starts at column {from}"),
            ));
        }
        if !v.is_finite() {
            return Err(DataError::record(
                path,
                line,
                column,
                format!("{field} is not a finite number"),
            ));
        }
        values.push(v);
    }
    if values.is_empty() {
        return Err(DataError::record(path, line, 2, "a series without values"));
    }
    Ok(Row {
        line,
        label,
        values,
    })
}

/// The classes of the training rows in label order: numeric when every label is a number.
fn classes(rows: &[Row]) -> Vec<String> {
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let numeric = labels.iter().all(|l| l.parse::<f64>().is_ok());
    if numeric {
        labels.sort_by(|a, b| {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
        labels.dedup_by(|a, b| a.parse::<f64>().ok() == b.parse::<f64>().ok());
    } else {
        labels.sort_unstable();
        labels.dedup();
    }
    labels.into_iter().map(str::to_string).collect()
}

/// The class index of `label` among `classes` (numeric labels compare as numbers).
fn class_of(classes: &[String], label: &str) -> Option<usize> {
    match label.parse::<f64>() {
        Ok(x) => classes
            .iter()
            .position(|c| c.parse::<f64>().ok() == Some(x)),
        Err(_) => classes.iter().position(|c| c == label),
    }
}

/// Brings the rows to `length` values each and numbers their classes.
fn assemble(
    path: &Path,
    rows: Vec<Row>,
    classes: &[String],
    length: usize,
    opts: &UcrOptions,
) -> Result<SeriesSet, DataError> {
    let mut set = SeriesSet {
        path: path.to_path_buf(),
        values: Vec::with_capacity(rows.len() * length),
        len: rows.len(),
        length,
        lengths: Vec::with_capacity(rows.len()),
        labels: Vec::with_capacity(rows.len()),
        classes: classes.to_vec(),
    };
    for row in rows {
        let class = class_of(classes, &row.label).ok_or_else(|| {
            DataError::record(
                path,
                row.line,
                1,
                format!("class {:?} does not occur in the training file", row.label),
            )
        })?;
        let mut v = row.values;
        if opts.znorm {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            for x in &mut v {
                *x = if std > 0.0 { (*x - mean) / std } else { 0.0 };
            }
        }
        set.lengths.push(v.len());
        let fill = match opts.pad {
            Pad::Zero => 0.0,
            Pad::Last => *v.last().unwrap_or(&0.0),
        };
        v.resize(length, fill);
        set.values.extend(v.iter().map(|&x| x as f32));
        set.labels.push(class as i64);
    }
    Ok(set)
}

/// Reads the training and test splits of UCR set `name` from `path` (a folder, or a `.tar` /
/// `.tar.xz` archive of the archive's folders), the test split numbered by the training
/// split's classes and both brought to one length.
pub fn load_ucr(
    path: &Path,
    name: &str,
    opts: &UcrOptions,
    policy: BadInputPolicy,
) -> Result<(SeriesSet, SeriesSet, SkipReport), DataError> {
    let mut report = SkipReport::default();
    let (train_path, train_bytes) = split_bytes(path, name, "TRAIN")?;
    let (test_path, test_bytes) = split_bytes(path, name, "TEST")?;
    let train = parse(&train_path, &train_bytes, policy, &mut report)?;
    let test = parse(&test_path, &test_bytes, policy, &mut report)?;
    if opts.length == Some(0) {
        return Err(DataError::format(path, "length = 0: a series needs values"));
    }
    let length = opts.length.unwrap_or_else(|| {
        train
            .iter()
            .chain(&test)
            .map(|r| r.values.len())
            .max()
            .unwrap_or(0)
    });
    let classes = classes(&train);
    let (mut train, mut test) = (train, test);
    if opts.standardise {
        let all = || train.iter().flat_map(|r| r.values.iter());
        let n = all().count().max(1) as f64;
        let mean = all().sum::<f64>() / n;
        let std = (all().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let std = if std > 0.0 { std } else { 1.0 };
        for r in train.iter_mut().chain(test.iter_mut()) {
            for x in &mut r.values {
                *x = (*x - mean) / std;
            }
        }
    }
    let train = assemble(&train_path, train, &classes, length, opts)?;
    let test = assemble(&test_path, test, &classes, length, opts)?;
    Ok((train, test, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shared_data;

    fn write(dir: &Path, name: &str, train: &str, test: &str) {
        std::fs::write(dir.join(format!("{name}_TRAIN.tsv")), train).unwrap();
        std::fs::write(dir.join(format!("{name}_TEST.tsv")), test).unwrap();
    }

    fn load(train: &str, test: &str, opts: &UcrOptions) -> Result<(SeriesSet, SeriesSet), String> {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "T", train, test);
        load_ucr(dir.path(), "T", opts, BadInputPolicy::Fail)
            .map(|(a, b, _)| (a, b))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn standardising_uses_the_training_values_for_both_splits() {
        let opts = UcrOptions {
            standardise: true,
            ..Default::default()
        };
        // Training values 1, 3, 5, 7: mean 4, standard deviation √5.
        let (tr, te) = load("1\t1\t3\n2\t5\t7\n", "1\t4\t9\n", &opts).unwrap();
        let s = 5f32.sqrt();
        let want = [-3.0 / s, -1.0 / s, 1.0 / s, 3.0 / s];
        for (a, b) in tr.values.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!((te.values[0] - 0.0).abs() < 1e-6 && (te.values[1] - 5.0 / s).abs() < 1e-6);
    }

    #[test]
    fn labels_become_classes_in_numeric_order_and_the_test_file_uses_them() {
        let (tr, te) = load(
            "2\t1\t2\t3\n-1\t0\t0\t1\n10\t5\t5\t5\n",
            "-1.0\t1\t1\t1\n10\t2\t2\t2\n",
            &UcrOptions::default(),
        )
        .unwrap();
        assert_eq!(tr.classes, ["-1", "2", "10"]);
        assert_eq!(tr.labels, [1, 0, 2]);
        assert_eq!(te.labels, [0, 2], "-1.0 is class -1");
        assert_eq!((tr.len, tr.length), (3, 3));
        assert_eq!(tr.series(0), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn nan_padding_ends_a_series_and_shorter_series_are_padded() {
        let train = "1,1,2,3,4\n2,5,6,NaN,NaN\n";
        let test = "1\t7\tNaN\tNaN\tNaN\n";
        let (tr, te) = load(train, test, &UcrOptions::default()).unwrap();
        assert_eq!(tr.length, 4);
        assert_eq!(tr.lengths, [4, 2]);
        assert_eq!(tr.series(1), [5.0, 6.0, 0.0, 0.0]);
        assert_eq!(te.series(0), [7.0, 0.0, 0.0, 0.0]);
        let last = UcrOptions {
            pad: Pad::Last,
            ..Default::default()
        };
        let (tr, _) = load(train, test, &last).unwrap();
        assert_eq!(tr.series(1), [5.0, 6.0, 6.0, 6.0]);
        let short = UcrOptions {
            length: Some(3),
            ..Default::default()
        };
        let (tr, _) = load(train, test, &short).unwrap();
        assert_eq!(
            tr.series(0),
            [1.0, 2.0, 3.0],
            "truncated to its first 3 values"
        );
    }

    #[test]
    fn znorm_uses_each_series_own_values() {
        let opts = UcrOptions {
            znorm: true,
            ..Default::default()
        };
        // Values 1, 2, 3: mean 2, population std √(2/3); a constant series becomes zeros.
        let (tr, _) = load("1\t1\t2\t3\n2\t4\t4\t4\n", "1\t1\t1\t1\n", &opts).unwrap();
        let s = (2.0f64 / 3.0).sqrt();
        let want = [-1.0 / s, 0.0, 1.0 / s];
        for (a, b) in tr.series(0).iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
        assert_eq!(tr.series(1), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn hostile_files_name_file_line_and_column() {
        let ok = "1\t1\t2\n";
        let cases = [
            ("1\t1\t2\n2\tabc\t3\n", "T_TRAIN.tsv:2:2", "is not a number"),
            ("1\t1\tNaN\t3\n", "T_TRAIN.tsv:1:4", "after the NaN padding"),
            ("1\t1\tinf\n", "T_TRAIN.tsv:1:3", "not a finite number"),
            ("1\n", "T_TRAIN.tsv:1:2", "without values"),
            ("\t1\t2\n", "T_TRAIN.tsv:1:1", "no class label"),
            ("NaN\t1\t2\n", "T_TRAIN.tsv:1:1", "not a class label"),
            ("", "T_TRAIN.tsv", "no usable samples"),
            ("\n\n", "T_TRAIN.tsv", "no usable samples"),
        ];
        for (train, place, message) in cases {
            let e = load(train, ok, &UcrOptions::default()).unwrap_err();
            assert!(e.contains(place) && e.contains(message), "{train:?}: {e}");
        }
        let e = load(ok, "3\t1\t2\n", &UcrOptions::default()).unwrap_err();
        assert!(
            e.contains("T_TEST.tsv:1:1") && e.contains("does not occur"),
            "{e}"
        );
        let e = load(
            ok,
            ok,
            &UcrOptions {
                length: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("length = 0"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = load_ucr(
            dir.path(),
            "T",
            &UcrOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no T_TRAIN.tsv"), "{e}");
        std::fs::write(dir.path().join("T_TRAIN.tsv"), [0xff, 0xfe, b'\n']).unwrap();
        std::fs::write(dir.path().join("T_TEST.tsv"), ok).unwrap();
        let e = load_ucr(
            dir.path(),
            "T",
            &UcrOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("T_TRAIN.tsv:1:1") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn ragged_and_bad_lines_are_skipped_and_counted_under_skip() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "T",
            "1\t1\t2\t3\n2\tx\t1\n2\t4\t5\n1\t1\tNaN\t2\n",
            "1\t1\t2\t3\n",
        );
        let (tr, _, report) = load_ucr(
            dir.path(),
            "T",
            &UcrOptions::default(),
            BadInputPolicy::Skip,
        )
        .unwrap();
        assert_eq!(report.skipped, 2);
        assert_eq!(tr.len, 2);
        // Mixed lengths are series of different lengths, not errors: padded to the longest.
        assert_eq!(tr.lengths, [3, 2]);
        assert_eq!(tr.series(1), [4.0, 5.0, 0.0]);
    }

    #[test]
    fn gzipped_files_and_archives_read_like_plain_folders() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("T");
        std::fs::create_dir(&sub).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"1\t1\t2\n2\t3\t4\n").unwrap();
        std::fs::write(sub.join("T_TRAIN.tsv.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(sub.join("T_TEST.tsv"), "2\t5\t6\n").unwrap();
        let (tr, te, _) = load_ucr(
            dir.path(),
            "T",
            &UcrOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap();
        assert_eq!((tr.len, te.labels.clone()), (2, vec![1]));
        // The same files in a tar archive.
        let mut builder = tar::Builder::new(Vec::new());
        for f in ["T_TRAIN.tsv.gz", "T_TEST.tsv"] {
            builder
                .append_path_with_name(sub.join(f), format!("UCRArchive_2018/T/{f}"))
                .unwrap();
        }
        let tar_path = dir.path().join("ucr.tar");
        std::fs::write(&tar_path, builder.into_inner().unwrap()).unwrap();
        let (a, b, _) =
            load_ucr(&tar_path, "T", &UcrOptions::default(), BadInputPolicy::Fail).unwrap();
        assert_eq!(
            (&a.values, &a.labels, &a.classes),
            (&tr.values, &tr.labels, &tr.classes)
        );
        assert_eq!(b.labels, te.labels);
        assert!(a.path.ends_with("ucr.tar/UCRArchive_2018/T/T_TRAIN.tsv.gz"));
    }

    /// The shared archive: the first sets of its summary table read with the counted sizes,
    /// from the archive itself and from its unpacked files.
    #[test]
    fn the_shared_ucr_sets_read_with_their_published_sizes() {
        let Some(root) = shared_data("ucr") else {
            return;
        };
        let summary = std::fs::read_to_string(root.join("ucr_subset_summary.tsv")).unwrap();
        let archive = root.join("ucr2018_subset.tar.xz");
        let sets: Vec<Vec<&str>> = summary
            .lines()
            .skip(1)
            .take(4)
            .map(|l| l.split('\t').collect())
            .collect();
        // Unpacked once (decompressing the archive per set would dominate the test).
        let names: Vec<String> = sets.iter().map(|f| f[0].to_string()).collect();
        let files = crate::data::archive::read_members(&archive, |file| {
            names
                .iter()
                .any(|n| file == format!("{n}_TRAIN.tsv") || file == format!("{n}_TEST.tsv"))
                .then(|| file.to_string())
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (file, member) in &files {
            std::fs::write(dir.path().join(file), &member.bytes).unwrap();
        }
        for f in &sets {
            let n: Vec<usize> = f[1..].iter().map(|x| x.parse().unwrap()).collect();
            let (tr, te, _) = load_ucr(
                dir.path(),
                f[0],
                &UcrOptions::default(),
                BadInputPolicy::Fail,
            )
            .unwrap();
            assert_eq!(
                (tr.len, te.len, tr.classes.len(), tr.length),
                (n[0], n[1], n[2], n[3]),
                "{}",
                f[0]
            );
        }
        let (tr, _, _) = load_ucr(
            &archive,
            sets[0][0],
            &UcrOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap();
        assert_eq!(tr.len, sets[0][1].parse::<usize>().unwrap());
    }
}
