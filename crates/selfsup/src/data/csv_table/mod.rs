//! CSV tables with numeric and categorical columns (raw or gzip), fitted on a training file.
//!
//! [`load_csv_fit`] reads the training file and fits the schema (numeric mean/std, categorical
//! levels, label names); [`load_csv_with`] encodes another file (a test split) with that fit, so
//! both splits share feature order, scaling and category codes.
use super::{open_maybe_gzip, Feature, FeatureKind, TableSet};
use crate::error::{BadInputPolicy, DataError, SkipReport};
use std::collections::BTreeSet;
use std::path::Path;

/// The most (decompressed) bytes a table file may hold. Tables are held in memory whole; this
/// keeps a gzip bomb or a wrong path (a disk image, say) from exhausting memory.
pub(super) const MAX_TABLE_BYTES: u64 = 1 << 32;

/// The level that stands for a missing value in a categorical column.
pub(super) const MISSING_LEVEL: &str = "?";

/// How to read a CSV table. Every field has a default, so a recipe names only what differs.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// Field separator (an ASCII character).
    pub delimiter: char,
    /// Whether the first line (after `skip_lines`) names the columns. When false, `columns` must.
    pub header: bool,
    /// Column names. With a header, they must equal it (a check that the file is the expected one).
    pub columns: Option<Vec<String>>,
    /// The label column; `None` = unlabelled.
    pub label: Option<String>,
    /// The categorical columns; `None` = automatic: a column is categorical if any non-missing
    /// training value is not a number. Number-like non-finite values ("nan", "inf", "1e999") do
    /// not make a column categorical: in a numeric column they are record errors (or skipped
    /// under `--on-bad-input=skip`), never fed to training. A value listed in `missing` (by
    /// default "", "?", "NA" and "NaN", as pandas and R write a missing value) is missing, not NaN.
    pub categorical: Option<Vec<String>>,
    /// Columns to drop.
    pub ignore: Vec<String>,
    /// Cell values (after trimming) that mean "missing".
    pub missing: Vec<String>,
    /// Lines skipped at the start of the file, before the header.
    pub skip_lines: usize,
    /// Trim spaces around cells (UCI Adult separates fields with ", ").
    pub trim: bool,
    /// Removed from label values that end with it (adult.test labels end in ".", adult.data's do not).
    pub label_strip_suffix: Option<String>,
    /// "classification" (labels become class indices) or "regression" (labels become f32 targets).
    pub task: String,
    /// Regression targets are multiplied by this (e.g. 1e-5 for house values in units of $100k,
    /// as scikit-learn's California housing reports them).
    pub target_scale: f64,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            header: true,
            columns: None,
            label: None,
            categorical: None,
            ignore: Vec::new(),
            missing: ["", "?", "NA", "NaN"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            skip_lines: 0,
            trim: true,
            label_strip_suffix: None,
            task: "classification".into(),
            target_scale: 1.0,
        }
    }
}

/// Reads the training table at `path`, fits the feature schema and label names on it, and encodes it.
pub fn load_csv_fit(
    path: &Path,
    opts: &CsvOptions,
    policy: BadInputPolicy,
) -> Result<(TableSet, SkipReport), DataError> {
    let task = Task::parse(path, opts)?;
    let mut report = SkipReport::default();
    let raw = read_raw(path, opts, policy, &mut report)?;
    let layout = Layout::for_fit(path, &raw.columns, opts)?;
    let is_cat: Vec<bool> = match &opts.categorical {
        Some(names) => layout
            .features
            .iter()
            .map(|&c| names.contains(&raw.columns[c]))
            .collect(),
        None => layout
            .features
            .iter()
            .map(|&c| {
                raw.rows
                    .iter()
                    .any(|r| !is_missing(opts, &r.cells[c]) && !is_number_like(&r.cells[c]))
            })
            .collect(),
    };
    let rows = parse_rows(
        path,
        &raw,
        &layout,
        &is_cat,
        task,
        opts,
        policy,
        &mut report,
    )?;

    let mut features = Vec::with_capacity(layout.features.len());
    for (f, (&col, &cat)) in layout.features.iter().zip(&is_cat).enumerate() {
        let name = raw.columns[col].clone();
        let kind = if cat {
            fit_levels(&rows, f)
        } else {
            fit_numeric(path, &name, &rows, f)?
        };
        features.push(Feature { name, kind });
    }
    let label_names: Vec<String> = match task {
        Task::Classification if layout.label.is_some() => rows
            .iter()
            .filter_map(|r| match &r.label {
                Label::Class(s) => Some(s.clone()),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let has_labels = layout.label.is_some();
    let table = encode(
        path,
        &layout,
        rows,
        features,
        label_names,
        task,
        has_labels,
        policy,
        &mut report,
    )?;
    Ok((table, report))
}

/// Reads another table (a test split) and encodes it with `fitted`, the training fit: same feature
/// order, training mean/std and levels, training label names (an unseen label is an error).
pub fn load_csv_with(
    path: &Path,
    opts: &CsvOptions,
    fitted: &TableSet,
    policy: BadInputPolicy,
) -> Result<(TableSet, SkipReport), DataError> {
    let task = Task::parse(path, opts)?;
    if opts.label.is_some() {
        let fit_has = match task {
            Task::Classification => fitted.labels.is_some(),
            Task::Regression => fitted.targets.is_some(),
        };
        if !fit_has {
            return Err(DataError::format(
                path,
                format!(
                    "label column {:?} requested, but the training fit has no {task:?} labels",
                    opts.label
                ),
            ));
        }
    }
    let mut report = SkipReport::default();
    let raw = read_raw(path, opts, policy, &mut report)?;
    let layout = Layout::for_fitted(path, &raw.columns, opts, fitted)?;
    let is_cat: Vec<bool> = fitted
        .features
        .iter()
        .map(|f| matches!(f.kind, FeatureKind::Categorical { .. }))
        .collect();
    let rows = parse_rows(
        path,
        &raw,
        &layout,
        &is_cat,
        task,
        opts,
        policy,
        &mut report,
    )?;
    let has_labels = layout.label.is_some();
    let table = encode(
        path,
        &layout,
        rows,
        fitted.features.clone(),
        fitted.label_names.clone(),
        task,
        has_labels,
        policy,
        &mut report,
    )?;
    Ok((table, report))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Task {
    Classification,
    Regression,
}

impl Task {
    pub(super) fn parse(path: &Path, opts: &CsvOptions) -> Result<Task, DataError> {
        match opts.task.as_str() {
            "classification" => Ok(Task::Classification),
            "regression" => Ok(Task::Regression),
            other => Err(DataError::format(
                path,
                format!("task must be \"classification\" or \"regression\", not {other:?}"),
            )),
        }
    }
}

mod encode;
mod fit;
mod read;
use encode::*;
use fit::*;
use read::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn opts() -> CsvOptions {
        CsvOptions {
            label: Some("y".into()),
            ..Default::default()
        }
    }

    fn fit(p: &Path, o: &CsvOptions) -> TableSet {
        load_csv_fit(p, o, BadInputPolicy::Fail).unwrap().0
    }

    fn numeric(t: &TableSet, f: usize) -> (f64, f64) {
        match t.features[f].kind {
            FeatureKind::Numeric { mean, std } => (mean, std),
            _ => panic!("feature {f} is not numeric: {:?}", t.features[f]),
        }
    }

    fn levels(t: &TableSet, f: usize) -> Vec<String> {
        match &t.features[f].kind {
            FeatureKind::Categorical { levels } => levels.clone(),
            _ => panic!("feature {f} is not categorical"),
        }
    }

    fn column(t: &TableSet, f: usize) -> Vec<f32> {
        (0..t.n_rows).map(|i| t.row(i)[f]).collect()
    }

    #[test]
    fn header_auto_categorical_and_labels() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "t.csv",
            "a, colour ,y\n1,red,yes\n3, blue,no\n\n5,red ,yes\n",
        );
        let t = fit(&p, &opts());
        assert_eq!(t.n_rows, 3);
        assert_eq!(
            t.features
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "colour"]
        );
        let (mean, std) = numeric(&t, 0);
        assert!((mean - 3.0).abs() < 1e-12 && (std - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let z = column(&t, 0);
        assert!((z[0] + z[2]).abs() < 1e-6 && z[1].abs() < 1e-6 && z[2] > 1.0);
        assert_eq!(levels(&t, 1), ["blue", "red"]);
        assert_eq!(column(&t, 1), [1.0, 0.0, 1.0]);
        assert_eq!(t.label_names, ["no", "yes"]);
        assert_eq!(t.labels, Some(vec![1, 0, 1]));
        assert!(t.targets.is_none());
        assert_eq!(t.encoded_dim(), 3);
    }

    #[test]
    fn no_header_with_columns_explicit_categorical_and_ignore() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "t.csv", "junk line\n1;7;a;0\n2;8;b;1\n");
        let o = CsvOptions {
            delimiter: ';',
            header: false,
            columns: Some(vec!["id".into(), "code".into(), "x".into(), "y".into()]),
            // An explicit list is the whole truth: "x" is categorical only because it is listed.
            categorical: Some(vec!["code".into(), "x".into()]),
            ignore: vec!["id".into()],
            skip_lines: 1,
            ..opts()
        };
        let t = fit(&p, &o);
        assert_eq!(t.n_rows, 2);
        assert_eq!(levels(&t, 0), ["7", "8"]);
        assert_eq!(levels(&t, 1), ["a", "b"]);
        assert_eq!(t.label_names, ["0", "1"]);
        // Header given and columns given: they must agree.
        let p = write(d.path(), "h.csv", "a,b,y\n1,2,3\n");
        let o = CsvOptions {
            columns: Some(vec!["a".into(), "c".into(), "y".into()]),
            ..opts()
        };
        let e = load_csv_fit(&p, &o, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("h.csv:1:0"), "{e}");
        // header = false without columns, and unknown names in options.
        let o = CsvOptions {
            header: false,
            ..opts()
        };
        assert!(load_csv_fit(&p, &o, BadInputPolicy::Fail).is_err());
        let o = CsvOptions {
            ignore: vec!["nope".into()],
            ..opts()
        };
        let e = load_csv_fit(&p, &o, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn missing_values() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "t.csv", "a,c,y\n1,x,p\n?,?,p\n3,,q\nNA,y,q\n");
        let t = fit(&p, &opts());
        // Mean over 1 and 3 only; missing cells are stored as 0 (the mean).
        assert_eq!(numeric(&t, 0), (2.0, 1.0));
        assert_eq!(column(&t, 0), [-1.0, 0.0, 1.0, 0.0]);
        assert_eq!(levels(&t, 1), ["x", "y", "?"]);
        assert_eq!(column(&t, 1), [0.0, 2.0, 2.0, 1.0]);
        // A constant column gets std 1.
        let p = write(d.path(), "c.csv", "a,y\n4,p\n4,q\n");
        assert_eq!(numeric(&fit(&p, &opts()), 0), (4.0, 1.0));
    }

    #[test]
    fn regression_targets() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "r.csv", "x,y\n1,0.5\n2,-1.5e2\n");
        let o = CsvOptions {
            task: "regression".into(),
            ..opts()
        };
        let t = fit(&p, &o);
        assert_eq!(t.targets, Some(vec![0.5, -150.0]));
        assert!(t.labels.is_none() && t.label_names.is_empty());
        let p = write(d.path(), "bad.csv", "x,y\n1,0.5\n2,high\n");
        let e = load_csv_fit(&p, &o, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.csv:3:2"), "{e}");
        let o = CsvOptions {
            task: "ranking".into(),
            ..opts()
        };
        assert!(load_csv_fit(&p, &o, BadInputPolicy::Fail).is_err());
    }

    #[test]
    fn test_file_uses_training_fit() {
        let d = tempfile::tempdir().unwrap();
        let train = write(d.path(), "train.csv", "a,c,k,y\n1,x,u,p.\n3,?,v,q\n");
        let test = write(d.path(), "test.csv", "a,c,k,y\n5,z,w,q.\n1,x,u,p\n");
        let o = CsvOptions {
            label_strip_suffix: Some(".".into()),
            ..opts()
        };
        let fitted = fit(&train, &o);
        assert_eq!(fitted.labels, Some(vec![0, 1]));
        let (t, report) = load_csv_with(&test, &o, &fitted, BadInputPolicy::Fail).unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!(t.features, fitted.features);
        assert_eq!(t.label_names, ["p", "q"]);
        assert_eq!(t.labels, Some(vec![1, 0]));
        // Standardised with the training mean 2 and std 1.
        assert_eq!(column(&t, 0), [3.0, -1.0]);
        // "z" is unseen: column c has a missing level (levels x, ?), so code 1; column k has
        // none, so code 0.
        assert_eq!(column(&t, 1), [1.0, 0.0]);
        assert_eq!(column(&t, 2), [0.0, 0.0]);
        // An unseen label is a record error naming the line; under Skip the row is dropped.
        let test2 = write(d.path(), "test2.csv", "a,c,k,y\n1,x,u,p\n2,x,u,r\n");
        let e = load_csv_with(&test2, &o, &fitted, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test2.csv:3:4") && e.contains("\"r\""), "{e}");
        let (t, report) = load_csv_with(&test2, &o, &fitted, BadInputPolicy::Skip).unwrap();
        assert_eq!((t.n_rows, report.skipped), (1, 1));
        // A numeric training column that is text in the test file names line and column.
        let test3 = write(d.path(), "test3.csv", "a,c,k,y\nabc,x,u,p\n");
        let e = load_csv_with(&test3, &o, &fitted, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test3.csv:2:1"), "{e}");
        // A column missing from the test file.
        let test4 = write(d.path(), "test4.csv", "a,k,y\n1,u,p\n");
        assert!(load_csv_with(&test4, &o, &fitted, BadInputPolicy::Fail).is_err());
    }

    #[test]
    fn record_errors_name_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "file.csv", "a,b,y\n1,2,p\n3,4\n5,6,q\n");
        let err = load_csv_fit(&p, &opts(), BadInputPolicy::Fail).unwrap_err();
        assert!(matches!(
            err,
            DataError::Record {
                line: 3,
                column: 0,
                ..
            }
        ));
        assert!(err.to_string().contains("file.csv:3:"), "{err}");
        // An explicit numeric column with text in it: line 4, column 2.
        let p = write(d.path(), "num.csv", "a,b,y\n1,2,p\n3,4,q\n5,inf,q\n6,x,p\n");
        let o = CsvOptions {
            categorical: Some(vec![]),
            ..opts()
        };
        let err = load_csv_fit(&p, &o, BadInputPolicy::Fail).unwrap_err();
        assert!(err.to_string().contains("num.csv:4:2"), "{err}");
        let (t, report) = load_csv_fit(&p, &o, BadInputPolicy::Skip).unwrap();
        assert_eq!((t.n_rows, report.skipped), (2, 2));
        assert!(
            report.examples[1].contains("num.csv:5:2"),
            "{:?}",
            report.examples
        );
        // A missing label.
        let p = write(d.path(), "lab.csv", "a,y\n1,p\n2,?\n");
        let err = load_csv_fit(&p, &opts(), BadInputPolicy::Fail).unwrap_err();
        assert!(
            err.to_string().contains("lab.csv:3:2") && err.to_string().contains("missing label"),
            "{err}"
        );
        // Not UTF-8 on line 3, field 1.
        let p = d.path().join("bin.csv");
        std::fs::write(&p, b"a,y\n1,p\n\xff\xfe,q\n2,q\n").unwrap();
        let err = load_csv_fit(&p, &opts(), BadInputPolicy::Fail).unwrap_err();
        assert!(
            err.to_string().contains("bin.csv:3:1") && err.to_string().contains("UTF-8"),
            "{err}"
        );
        let (t, report) = load_csv_fit(&p, &opts(), BadInputPolicy::Skip).unwrap();
        assert_eq!((t.n_rows, report.skipped), (2, 1));
        // Line numbers count skipped lines, the header and empty lines.
        let p = write(d.path(), "skip.csv", "# comment\n\na,y\n\n1,p\n2\n");
        let o = CsvOptions {
            skip_lines: 1,
            ..opts()
        };
        let err = load_csv_fit(&p, &o, BadInputPolicy::Fail).unwrap_err();
        assert!(err.to_string().contains("skip.csv:6:0"), "{err}");
    }

    /// A record error's position, or a panic naming what came back instead.
    fn position(r: Result<(TableSet, SkipReport), DataError>) -> (String, usize, usize) {
        match r {
            Err(DataError::Record {
                path, line, column, ..
            }) => (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                line,
                column,
            ),
            other => panic!("expected a record error, got {other:?}"),
        }
    }

    #[test]
    fn non_finite_numbers_are_record_errors_not_categories() {
        let d = tempfile::tempdir().unwrap();
        // Automatic kinds: "nan" and "inf" read as numbers, so column b stays numeric and they
        // are bad values in it (before, they turned b into a categorical column of strings).
        for bad in ["nan", "inf", "-inf", "Infinity", "1e999", "-1E400"] {
            let p = write(
                d.path(),
                "nf.csv",
                &format!("a,b,y\n1,2,p\n3,{bad},q\n5,6,p\n7,8,q\n"),
            );
            let r = load_csv_fit(&p, &opts(), BadInputPolicy::Fail);
            let e = r.as_ref().map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("not a finite number"), "{bad}: {e}");
            assert_eq!(position(r), ("nf.csv".into(), 3, 2), "{bad}");
            let (t, report) = load_csv_fit(&p, &opts(), BadInputPolicy::Skip).unwrap();
            assert_eq!((t.n_rows, report.skipped), (3, 1), "{bad}");
            assert_eq!(report.paths, vec![p.clone()]);
            let (mean, std) = numeric(&t, 1);
            assert!((mean - 16.0 / 3.0).abs() < 1e-12, "{mean}");
            assert!((std - (56.0f64 / 9.0).sqrt()).abs() < 1e-12, "{std}");
            assert!(t.values.iter().all(|v| v.is_finite()));
        }
        // "NaN" is a configured missing marker (pandas and R write missing values so): it is
        // imputed, not fed as NaN. Without it in `missing`, it is an error like "nan".
        let p = write(d.path(), "m.csv", "a,y\n1,p\nNaN,q\n3,p\n");
        let t = fit(&p, &opts());
        assert_eq!(column(&t, 0), [-1.0, 0.0, 1.0]);
        let o = CsvOptions {
            missing: vec![],
            ..opts()
        };
        let r = load_csv_fit(&p, &o, BadInputPolicy::Fail);
        assert_eq!(position(r), ("m.csv".into(), 3, 1));
        // A real text value still makes an automatic column categorical, "nan" then a level.
        let p = write(d.path(), "cat.csv", "a,y\nred,p\nnan,q\n");
        assert_eq!(levels(&fit(&p, &opts()), 0), ["nan", "red"]);
        // Every row bad: nothing left is an error under Skip, not an empty table.
        let p = write(d.path(), "all.csv", "a,y\ninf,p\nnan,q\n");
        let r = load_csv_fit(&p, &o, BadInputPolicy::Skip);
        assert!(matches!(r, Err(DataError::Empty { .. })), "{r:?}");
    }

    #[test]
    fn test_file_non_finite_and_overflowing_values_name_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let train = write(d.path(), "train.csv", "a,b,y\n1,2,p\n3,4,q\n");
        let fitted = fit(&train, &opts());
        let cases = [
            ("a,b,y\n1,2,p\n1,inf,q\n", 3, 2, "not a finite number"),
            ("a,b,y\nnan,2,p\n", 2, 1, "not a finite number"),
            // Finite in f64, infinite in f32 once standardised with the training fit.
            (
                "a,b,y\n1,2,p\n2,3,q\n1e300,2,p\n",
                4,
                1,
                "does not fit in f32",
            ),
            ("a,b,y\n1,-1e39,p\n", 2, 2, "does not fit in f32"),
            ("a,b,y\n1,x,p\n", 2, 2, "not a finite number"),
        ];
        for (text, line, column, msg) in cases {
            let p = write(d.path(), "test.csv", text);
            let r = load_csv_with(&p, &opts(), &fitted, BadInputPolicy::Fail);
            let e = r.as_ref().map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(msg), "{text:?}: {e}");
            assert_eq!(position(r), ("test.csv".into(), line, column), "{text:?}");
            match load_csv_with(&p, &opts(), &fitted, BadInputPolicy::Skip) {
                Ok((t, report)) => {
                    assert_eq!(report.skipped, 1);
                    assert_eq!(t.n_rows + 1, text.lines().count() - 1);
                    assert!(t.values.iter().all(|v| v.is_finite()));
                    assert_eq!(t.labels.as_ref().unwrap().len(), t.n_rows);
                }
                Err(e) => assert!(matches!(e, DataError::Empty { .. }), "{e}"),
            }
        }
    }

    #[test]
    fn mistyped_cell_in_numeric_column_names_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "typed.csv",
            "a,b,c,y\n1,2,3,p\n4,5,6,q\n7,8,seven,p\n",
        );
        let o = CsvOptions {
            categorical: Some(vec![]),
            ..opts()
        };
        let r = load_csv_fit(&p, &o, BadInputPolicy::Fail);
        let e = r.as_ref().map(|_| ()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:4:3: ", p.display())), "{e}");
        assert!(
            e.contains("\"seven\"") && e.contains("numeric column \"c\""),
            "{e}"
        );
        assert_eq!(position(r), ("typed.csv".into(), 4, 3));
    }

    #[test]
    fn empty_results() {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("e1.csv", ""),
            ("e2.csv", "a,y\n"),
            ("e3.csv", "a,y\n1\n2\n\n"),
        ] {
            let p = write(d.path(), name, text);
            let r = load_csv_fit(&p, &opts(), BadInputPolicy::Skip);
            assert!(matches!(r, Err(DataError::Empty { .. })), "{name}: {r:?}");
        }
        assert!(matches!(
            load_csv_fit(
                Path::new("/nonexistent/t.csv"),
                &opts(),
                BadInputPolicy::Fail
            ),
            Err(DataError::Io { .. })
        ));
    }

    #[test]
    fn gzip_input_and_unlabelled() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"a,b\n1,2\n3,4\n").unwrap();
        std::fs::write(&p, enc.finish().unwrap()).unwrap();
        let t = fit(&p, &CsvOptions::default());
        assert_eq!((t.n_rows, t.n_features()), (2, 2));
        assert!(t.labels.is_none() && t.targets.is_none() && t.label_names.is_empty());
    }

    #[test]
    fn options_deserialise_with_defaults() {
        let o: CsvOptions = serde_json::from_str(r#"{"label": "y", "skip_lines": 1}"#).unwrap();
        assert_eq!(
            o,
            CsvOptions {
                skip_lines: 1,
                ..opts()
            }
        );
        assert!(serde_json::from_str::<CsvOptions>(r#"{"lable": "y"}"#).is_err());
    }

    fn adult_opts() -> CsvOptions {
        let columns = [
            "age",
            "workclass",
            "fnlwgt",
            "education",
            "education-num",
            "marital-status",
            "occupation",
            "relationship",
            "race",
            "sex",
            "capital-gain",
            "capital-loss",
            "hours-per-week",
            "native-country",
            "income",
        ];
        CsvOptions {
            header: false,
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            label: Some("income".into()),
            label_strip_suffix: Some(".".into()),
            ..Default::default()
        }
    }

    #[test]
    fn real_uci_adult() {
        let Some(dir) = crate::data::shared_data("adult") else {
            return;
        };
        let o = adult_opts();
        let (train, report) =
            load_csv_fit(&dir.join("adult.data.gz"), &o, BadInputPolicy::Fail).unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!(train.n_rows, 32_561);
        assert_eq!(train.label_names, ["<=50K", ">50K"]);
        let count = |t: &TableSet, c: i64| {
            t.labels
                .as_ref()
                .unwrap()
                .iter()
                .filter(|&&y| y == c)
                .count()
        };
        assert_eq!((count(&train, 0), count(&train, 1)), (24_720, 7_841));
        let cats: Vec<&str> = train
            .features
            .iter()
            .filter(|f| matches!(f.kind, FeatureKind::Categorical { .. }))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            cats,
            [
                "workclass",
                "education",
                "marital-status",
                "occupation",
                "relationship",
                "race",
                "sex",
                "native-country"
            ]
        );
        assert!(levels(&train, 1).last().is_some_and(|l| l == "?"));
        let (age_mean, _) = numeric(&train, 0);
        assert!((age_mean - 38.58).abs() < 0.01, "{age_mean}");

        let o_test = CsvOptions { skip_lines: 1, ..o };
        let (test, report) = load_csv_with(
            &dir.join("adult.test.gz"),
            &o_test,
            &train,
            BadInputPolicy::Fail,
        )
        .unwrap();
        assert_eq!(report.skipped, 0);
        assert_eq!(test.n_rows, 16_281);
        assert_eq!((count(&test, 0), count(&test, 1)), (12_435, 3_846));
        assert_eq!(test.encoded_dim(), train.encoded_dim());
    }
}
