//! Images stored as CSV rows of pixel values (scikit-learn's 8×8 digits, Kaggle's MNIST CSVs):
//! one image per line, `height × width × channels` values in row-major, channel-planar order, and
//! an integer class in the first or last column. Raw or gzipped.
//!
//! Values are scaled from `0..=max_value` to bytes. A field that is not a number, a value outside
//! that range, a row of the wrong length or a negative class is a bad record named by
//! file:line:column (stop, or skip and count under `--on-bad-input skip`).
use super::{open_maybe_gzip, ImageSet};
use crate::error::{BadInputPolicy, DataError, SkipReport};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// Where a row keeps its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelColumn {
    First,
    #[default]
    Last,
    /// Unlabelled rows.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvImageOptions {
    pub height: usize,
    pub width: usize,
    #[serde(default = "one")]
    pub channels: usize,
    /// The value that stands for full intensity (16 for scikit-learn's digits, 255 for MNIST).
    #[serde(default = "full_byte")]
    pub max_value: f64,
    #[serde(default)]
    pub label: LabelColumn,
    /// Skip the first line.
    #[serde(default)]
    pub header: bool,
    /// Without a test file: this fraction of each class, drawn with `split_seed`, is the test set
    /// (scikit-learn's digits come as one file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    #[serde(default)]
    pub split_seed: u64,
}

fn one() -> usize {
    1
}
fn full_byte() -> f64 {
    255.0
}

impl CsvImageOptions {
    pub fn validate(&self) -> Result<(), String> {
        if self.height == 0 || self.width == 0 || self.channels == 0 {
            return Err("data.options: height, width and channels must be at least 1".into());
        }
        if !(self.max_value.is_finite() && self.max_value > 0.0) {
            return Err(format!(
                "data.options.max_value must be a positive number, not {}",
                self.max_value
            ));
        }
        if let Some(f) = self.test_fraction {
            if !(f > 0.0 && f < 1.0) {
                return Err(format!(
                    "data.options.test_fraction must lie strictly between 0 and 1, not {f}"
                ));
            }
        }
        Ok(())
    }
}

/// Reads the images of `path`.
pub fn load_csv_images(
    path: &Path,
    options: &CsvImageOptions,
    policy: BadInputPolicy,
) -> Result<(ImageSet, SkipReport), DataError> {
    let mut text = String::new();
    open_maybe_gzip(path)?
        .read_to_string(&mut text)
        .map_err(|e| DataError::format(path, format!("not readable as text: {e}")))?;
    let n_pixels = options.height * options.width * options.channels;
    let labelled = options.label != LabelColumn::None;
    let n_fields = n_pixels + usize::from(labelled);
    let mut skipped = SkipReport::default();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if (i == 0 && options.header) || line.trim().is_empty() {
            continue;
        }
        match parse_row(path, i + 1, line, options, n_fields) {
            Ok((row, label)) => {
                pixels.extend(row);
                labels.extend(label);
            }
            Err(e) => skipped.handle(policy, e)?,
        }
    }
    let len = pixels.len() / n_pixels;
    if len == 0 {
        return Err(DataError::Empty {
            path: path.into(),
            message: "no image rows".into(),
        });
    }
    let n_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    Ok((
        ImageSet {
            pixels,
            len,
            channels: options.channels,
            height: options.height,
            width: options.width,
            labels: labelled.then_some(labels),
            class_names: (0..n_classes).map(|c| c.to_string()).collect(),
            sources: None,
        },
        skipped,
    ))
}

fn parse_row(
    path: &Path,
    line: usize,
    text: &str,
    options: &CsvImageOptions,
    n_fields: usize,
) -> Result<(Vec<u8>, Option<i64>), DataError> {
    let record = |column: usize, message: String| DataError::Record {
        path: path.into(),
        line,
        column,
        message,
    };
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() != n_fields {
        return Err(record(
            0,
            format!(
                "{} fields, expected {n_fields} ({}×{}×{} pixels{})",
                fields.len(),
                options.channels,
                options.height,
                options.width,
                if options.label == LabelColumn::None {
                    ""
                } else {
                    " and a class"
                }
            ),
        ));
    }
    let (label_at, first_pixel) = match options.label {
        LabelColumn::First => (Some(0), 1),
        LabelColumn::Last => (Some(n_fields - 1), 0),
        LabelColumn::None => (None, 0),
    };
    let label = match label_at {
        Some(c) => Some(
            fields[c]
                .parse::<i64>()
                .ok()
                .filter(|&l| l >= 0)
                .ok_or_else(|| {
                    record(
                        c + 1,
                        format!("class {:?} is not an integer ≥ 0", fields[c]),
                    )
                })?,
        ),
        None => None,
    };
    let scale = 255.0 / options.max_value;
    let mut row = Vec::with_capacity(n_fields);
    for (k, f) in fields[first_pixel..first_pixel + n_fields - usize::from(label.is_some())]
        .iter()
        .enumerate()
    {
        let column = first_pixel + k + 1;
        let v: f64 = f
            .parse()
            .map_err(|_| record(column, format!("{f:?} is not a number")))?;
        if !(0.0..=options.max_value).contains(&v) {
            return Err(record(
                column,
                format!("{v} lies outside 0..={}", options.max_value),
            ));
        }
        row.push((v * scale).round() as u8);
    }
    Ok((row, label))
}

/// The training set and the test set: a file of its own, or the `test_fraction` of each class
/// split off the training file, or none.
pub fn load_split(
    train: &Path,
    test: Option<&Path>,
    options: &CsvImageOptions,
    policy: BadInputPolicy,
) -> Result<(ImageSet, Option<ImageSet>, SkipReport), DataError> {
    let (set, mut skipped) = load_csv_images(train, options, policy)?;
    Ok(match (test, options.test_fraction) {
        (Some(p), _) => {
            let (t, s) = load_csv_images(p, options, policy)?;
            skipped.merge(s);
            (set, Some(t), skipped)
        }
        (None, Some(f)) => {
            let (a, b) = stratified_split(&set, f, options.split_seed);
            (a, Some(b), skipped)
        }
        (None, None) => (set, None, skipped),
    })
}

/// Splits `set` into (train, test), `fraction` of each class to the test set, drawn with `seed`;
/// both keep the file's order.
pub fn stratified_split(set: &ImageSet, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
    use rand::seq::SliceRandom;
    let labels = set.labels.clone().unwrap_or_else(|| vec![0; set.len]);
    let n_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut is_test = vec![false; set.len];
    for c in 0..n_classes {
        let mut members: Vec<usize> = (0..set.len).filter(|&i| labels[i] == c as i64).collect();
        let mut rng = crate::rng::keyed(seed, crate::rng::Stream::Eval, 0, c as u64, 0);
        members.shuffle(&mut rng);
        let k = (members.len() as f64 * fraction).round() as usize;
        for &i in &members[..k] {
            is_test[i] = true;
        }
    }
    let pick = |test: bool| {
        let idx: Vec<usize> = (0..set.len).filter(|&i| is_test[i] == test).collect();
        let n = set.image_len();
        ImageSet {
            pixels: idx
                .iter()
                .flat_map(|&i| set.pixels[i * n..(i + 1) * n].iter().copied())
                .collect(),
            len: idx.len(),
            labels: set
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            sources: set
                .sources
                .as_ref()
                .map(|s| idx.iter().map(|&i| s[i].clone()).collect()),
            ..set.clone_empty()
        }
    };
    (pick(false), pick(true))
}

impl ImageSet {
    /// The same geometry and classes, no images.
    fn clone_empty(&self) -> ImageSet {
        ImageSet {
            pixels: Vec::new(),
            len: 0,
            channels: self.channels,
            height: self.height,
            width: self.width,
            labels: None,
            class_names: self.class_names.clone(),
            sources: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> CsvImageOptions {
        CsvImageOptions {
            height: 2,
            width: 2,
            channels: 1,
            max_value: 16.0,
            label: LabelColumn::Last,
            header: false,
            test_fraction: None,
            split_seed: 0,
        }
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn rows_become_scaled_images_with_labels() {
        let f = write("0,16,8,4,3\n16,0,0,0,1\n");
        let (s, skipped) = load_csv_images(f.path(), &opts(), BadInputPolicy::Fail).unwrap();
        assert_eq!(s.len, 2);
        assert_eq!(s.image(0), &[0, 255, 128, 64]);
        assert_eq!(s.labels, Some(vec![3, 1]));
        assert_eq!(s.class_names.len(), 4);
        assert_eq!(skipped.skipped, 0);
    }

    #[test]
    fn bad_rows_are_named_by_line_and_column_or_skipped_and_counted() {
        let cases = [
            ("0,1,2,3,1\n0,1,2,1\n", 2, 0, "fields"),
            ("0,1,x,3,1\n", 1, 3, "not a number"),
            ("0,1,17,3,1\n", 1, 3, "outside"),
            ("0,1,2,3,-1\n", 1, 5, "class"),
            ("0,1,2,3,1.5\n", 1, 5, "class"),
        ];
        for (text, line, column, what) in cases {
            let f = write(text);
            let err = load_csv_images(f.path(), &opts(), BadInputPolicy::Fail).unwrap_err();
            match &err {
                DataError::Record {
                    line: l, column: c, ..
                } => assert_eq!((*l, *c), (line, column), "{text:?}: {err}"),
                other => panic!("{text:?}: {other}"),
            }
            assert!(err.to_string().contains(what), "{err}");
        }
        let f = write("0,1,2,3,1\n0,1,x,3,1\n4,5,6,7,0\n");
        let (s, skipped) = load_csv_images(f.path(), &opts(), BadInputPolicy::Skip).unwrap();
        assert_eq!((s.len, skipped.skipped), (2, 1));
        assert_eq!(s.labels, Some(vec![1, 0]));
    }

    #[test]
    fn an_empty_file_is_an_error_not_an_empty_set() {
        let f = write("\n\n");
        assert!(matches!(
            load_csv_images(f.path(), &opts(), BadInputPolicy::Fail),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn the_split_takes_the_fraction_of_every_class_and_is_keyed() {
        let mut text = String::new();
        for i in 0..30 {
            text += &format!("{},0,0,0,{}\n", i % 16, i % 3);
        }
        let f = write(&text);
        let (s, _) = load_csv_images(f.path(), &opts(), BadInputPolicy::Fail).unwrap();
        let (tr, te) = stratified_split(&s, 0.2, 7);
        assert_eq!((tr.len, te.len), (24, 6));
        for c in 0..3 {
            let n = te
                .labels
                .as_ref()
                .unwrap()
                .iter()
                .filter(|&&l| l == c)
                .count();
            assert_eq!(n, 2, "class {c}");
        }
        assert_eq!(stratified_split(&s, 0.2, 7).1, te);
        assert_ne!(stratified_split(&s, 0.2, 8).1.pixels, te.pixels);
    }
}
