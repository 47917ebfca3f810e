//! CSV tables with numeric and categorical columns (raw or gzip), fitted on a training file.
//!
//! [`load_csv_fit`] reads the training file and fits the schema (numeric mean/std, categorical
//! levels, label names); [`load_csv_with`] encodes another file (a test split) with that fit, so
//! both splits share feature order, scaling and category codes.
use super::{open_maybe_gzip, Feature, FeatureKind, TableSet};
use crate::error::{BadInputPolicy, DataError, SkipReport};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// The most (decompressed) bytes a table file may hold. Tables are held in memory whole; this
/// keeps a gzip bomb or a wrong path (a disk image, say) from exhausting memory.
const MAX_TABLE_BYTES: u64 = 1 << 32;

/// The level that stands for a missing value in a categorical column.
const MISSING_LEVEL: &str = "?";

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
enum Task {
    Classification,
    Regression,
}

impl Task {
    fn parse(path: &Path, opts: &CsvOptions) -> Result<Task, DataError> {
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

/// The file's rows as trimmed strings, each with its 1-based line number in the file.
struct Raw {
    columns: Vec<String>,
    rows: Vec<RawRow>,
}

struct RawRow {
    line: usize,
    cells: Vec<String>,
}

fn read_raw(
    path: &Path,
    opts: &CsvOptions,
    policy: BadInputPolicy,
    report: &mut SkipReport,
) -> Result<Raw, DataError> {
    let delimiter = u8::try_from(opts.delimiter)
        .ok()
        .filter(|d| d.is_ascii())
        .ok_or_else(|| {
            DataError::format(
                path,
                format!("delimiter {:?} must be one ASCII character", opts.delimiter),
            )
        })?;
    if !opts.header && opts.columns.is_none() {
        return Err(DataError::format(
            path,
            "header = false, so `columns` must name every column",
        ));
    }
    let mut bytes = Vec::new();
    open_maybe_gzip(path)?
        .take(MAX_TABLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > MAX_TABLE_BYTES {
        return Err(DataError::format(
            path,
            format!("larger than the {MAX_TABLE_BYTES}-byte limit for a table"),
        ));
    }

    // Skipped lines are cut off here rather than read as records: they are often not CSV at all
    // (adult.test starts with "|1x3 Cross validator"). Line numbers are offset to match the file.
    let mut start = 0;
    for _ in 0..opts.skip_lines {
        match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start += i + 1,
            None => {
                return Err(DataError::Empty {
                    path: path.into(),
                    message: format!(
                        "the file has fewer than skip_lines = {} lines",
                        opts.skip_lines
                    ),
                })
            }
        }
    }
    let mut body = &bytes[start..];
    if start == 0 {
        body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    }
    let line_offset = opts.skip_lines;

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        // Ragged rows are reported by us, with a line number, instead of aborting the reader.
        .flexible(true)
        .from_reader(body);
    let mut columns: Option<Vec<String>> = if opts.header {
        None
    } else {
        opts.columns.clone()
    };
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize) + line_offset;
                return Err(DataError::record(
                    path,
                    line,
                    0,
                    format!("cannot read CSV: {e}"),
                ));
            }
        }
        let line = record.position().map_or(0, |p| p.line() as usize) + line_offset;
        // csv skips empty lines itself; a line of blanks is just as empty (and not a record).
        if record.len() == 1 && record[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let cells: Result<Vec<String>, DataError> = record
            .iter()
            .enumerate()
            .map(|(i, field)| {
                std::str::from_utf8(field)
                    .map(|s| if opts.trim { s.trim() } else { s }.to_string())
                    .map_err(|_| DataError::record(path, line, i + 1, "not valid UTF-8"))
            })
            .collect();
        match &columns {
            None => {
                // The header: a problem here leaves nothing to read, whatever the policy.
                let header = cells?;
                if let Some(expected) = &opts.columns {
                    if *expected != header {
                        return Err(DataError::record(
                            path,
                            line,
                            0,
                            format!("header {header:?} differs from the configured columns {expected:?}"),
                        ));
                    }
                }
                columns = Some(header);
            }
            Some(cols) => {
                if record.len() != cols.len() {
                    let e = DataError::record(
                        path,
                        line,
                        0,
                        format!("expected {} fields, found {}", cols.len(), record.len()),
                    );
                    report.handle(policy, e)?;
                    continue;
                }
                match cells {
                    Ok(cells) => rows.push(RawRow { line, cells }),
                    Err(e) => report.handle(policy, e)?,
                }
            }
        }
    }
    let columns = columns.ok_or_else(|| DataError::Empty {
        path: path.into(),
        message: "no header line".into(),
    })?;
    Ok(Raw { columns, rows })
}

/// Which file columns are the label and the features (in feature order).
struct Layout {
    label: Option<usize>,
    features: Vec<usize>,
}

impl Layout {
    fn for_fit(path: &Path, columns: &[String], opts: &CsvOptions) -> Result<Layout, DataError> {
        check_names(path, columns, opts)?;
        let label = find_label(path, columns, opts)?;
        let features: Vec<usize> = (0..columns.len())
            .filter(|&c| Some(c) != label && !opts.ignore.contains(&columns[c]))
            .collect();
        if features.is_empty() {
            return Err(DataError::format(
                path,
                "no feature columns left after the label and `ignore`",
            ));
        }
        Ok(Layout { label, features })
    }

    /// The layout of a file read with the training fit: every fitted feature must be present,
    /// and every other column must be the label or ignored.
    fn for_fitted(
        path: &Path,
        columns: &[String],
        opts: &CsvOptions,
        fitted: &TableSet,
    ) -> Result<Layout, DataError> {
        check_names(path, columns, opts)?;
        let label = find_label(path, columns, opts)?;
        let mut features = Vec::with_capacity(fitted.features.len());
        for f in &fitted.features {
            match columns.iter().position(|c| *c == f.name) {
                Some(c) => features.push(c),
                None => {
                    return Err(DataError::format(
                        path,
                        format!("column {:?} of the training fit is missing", f.name),
                    ))
                }
            }
        }
        for (c, name) in columns.iter().enumerate() {
            if Some(c) != label && !features.contains(&c) && !opts.ignore.contains(name) {
                return Err(DataError::format(
                    path,
                    format!("column {name:?} is not in the training fit (list it in `ignore` to drop it)"),
                ));
            }
        }
        Ok(Layout { label, features })
    }
}

/// Column names must be distinct, and every name the options mention must exist.
fn check_names(path: &Path, columns: &[String], opts: &CsvOptions) -> Result<(), DataError> {
    let mut seen = BTreeSet::new();
    for c in columns {
        if !seen.insert(c.as_str()) {
            return Err(DataError::format(
                path,
                format!("column name {c:?} appears more than once"),
            ));
        }
    }
    let mentioned = opts
        .ignore
        .iter()
        .map(|n| ("ignore", n))
        .chain(
            opts.categorical
                .iter()
                .flatten()
                .map(|n| ("categorical", n)),
        )
        .chain(opts.label.iter().map(|n| ("label", n)));
    for (option, name) in mentioned {
        if !seen.contains(name.as_str()) {
            return Err(DataError::format(
                path,
                format!(
                    "{option} names column {name:?}, which is not among the columns {columns:?}"
                ),
            ));
        }
    }
    Ok(())
}

fn find_label(
    path: &Path,
    columns: &[String],
    opts: &CsvOptions,
) -> Result<Option<usize>, DataError> {
    let Some(label) = &opts.label else {
        return Ok(None);
    };
    if opts.ignore.contains(label) || opts.categorical.iter().flatten().any(|c| c == label) {
        return Err(DataError::format(
            path,
            format!("label column {label:?} is also listed in ignore or categorical"),
        ));
    }
    Ok(columns.iter().position(|c| c == label))
}

fn is_missing(opts: &CsvOptions, cell: &str) -> bool {
    opts.missing.iter().any(|m| m == cell)
}

/// Whether `cell` reads as a number at all, finite or not ("inf", "NaN" and "1e999" do): such a
/// value in an otherwise numeric column is a bad number, not a category.
fn is_number_like(cell: &str) -> bool {
    cell.parse::<f64>().is_ok()
}

fn parse_finite(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

enum Cell {
    Missing,
    Num(f64),
    Text(String),
}

enum Label {
    None,
    Class(String),
    Target(f64),
}

/// A row whose cells have been checked against the feature kinds (one cell per feature).
struct Row {
    line: usize,
    cells: Vec<Cell>,
    label: Label,
}

#[allow(clippy::too_many_arguments)]
fn parse_rows(
    path: &Path,
    raw: &Raw,
    layout: &Layout,
    is_cat: &[bool],
    task: Task,
    opts: &CsvOptions,
    policy: BadInputPolicy,
    report: &mut SkipReport,
) -> Result<Vec<Row>, DataError> {
    let mut rows = Vec::with_capacity(raw.rows.len());
    for r in &raw.rows {
        match parse_row(path, raw, r, layout, is_cat, task, opts) {
            Ok(row) => rows.push(row),
            Err(e) => report.handle(policy, e)?,
        }
    }
    Ok(rows)
}

fn parse_row(
    path: &Path,
    raw: &Raw,
    r: &RawRow,
    layout: &Layout,
    is_cat: &[bool],
    task: Task,
    opts: &CsvOptions,
) -> Result<Row, DataError> {
    let label = match layout.label {
        None => Label::None,
        Some(c) => {
            let cell = r.cells[c].as_str();
            let value = match &opts.label_strip_suffix {
                Some(suffix) => cell.strip_suffix(suffix.as_str()).unwrap_or(cell),
                None => cell,
            };
            if is_missing(opts, cell) || is_missing(opts, value) {
                return Err(DataError::record(
                    path,
                    r.line,
                    c + 1,
                    format!("missing label in column {:?}", raw.columns[c]),
                ));
            }
            match task {
                Task::Classification => Label::Class(value.to_string()),
                Task::Regression => match parse_finite(value)
                    .map(|v| v * opts.target_scale)
                    .filter(|v| (*v as f32).is_finite())
                {
                    Some(v) => Label::Target(v),
                    None => {
                        return Err(DataError::record(
                            path,
                            r.line,
                            c + 1,
                            format!("regression target {value:?} is not a finite number"),
                        ))
                    }
                },
            }
        }
    };
    let mut cells = Vec::with_capacity(layout.features.len());
    for (&c, &cat) in layout.features.iter().zip(is_cat) {
        let cell = r.cells[c].as_str();
        cells.push(if is_missing(opts, cell) {
            Cell::Missing
        } else if cat {
            Cell::Text(cell.to_string())
        } else {
            match parse_finite(cell) {
                Some(v) => Cell::Num(v),
                None => {
                    return Err(DataError::record(
                        path,
                        r.line,
                        c + 1,
                        format!(
                            "{cell:?} in numeric column {:?} is not a finite number",
                            raw.columns[c]
                        ),
                    ))
                }
            }
        });
    }
    Ok(Row {
        line: r.line,
        cells,
        label,
    })
}

/// Mean and (population) std over the non-missing values of feature `f`; std 0 becomes 1 so a
/// constant column standardises to 0 instead of dividing by zero.
fn fit_numeric(path: &Path, name: &str, rows: &[Row], f: usize) -> Result<FeatureKind, DataError> {
    let values = || {
        rows.iter().filter_map(move |r| match r.cells[f] {
            Cell::Num(v) => Some(v),
            _ => None,
        })
    };
    let n = values().count();
    if n == 0 {
        return Ok(FeatureKind::Numeric {
            mean: 0.0,
            std: 1.0,
        });
    }
    // Running mean: a plain sum of large finite values could overflow to infinity.
    let mut mean = 0.0;
    for (i, v) in values().enumerate() {
        mean += (v - mean) / (i + 1) as f64;
    }
    let var = values()
        .map(|v| ((v - mean) / n as f64) * (v - mean))
        .sum::<f64>();
    let std = var.sqrt();
    if !mean.is_finite() || !std.is_finite() {
        return Err(DataError::format(
            path,
            format!("numeric column {name:?} has values too large to standardise"),
        ));
    }
    Ok(FeatureKind::Numeric {
        mean,
        std: if std > 0.0 { std } else { 1.0 },
    })
}

/// Sorted distinct values of feature `f`, plus the missing level if any value is missing.
fn fit_levels(rows: &[Row], f: usize) -> FeatureKind {
    let mut distinct = BTreeSet::new();
    let mut any_missing = false;
    for r in rows {
        match &r.cells[f] {
            Cell::Text(s) => {
                distinct.insert(s.as_str());
            }
            Cell::Missing => any_missing = true,
            Cell::Num(_) => {}
        }
    }
    let mut levels: Vec<String> = distinct.into_iter().map(str::to_string).collect();
    if any_missing && !levels.iter().any(|l| l == MISSING_LEVEL) {
        levels.push(MISSING_LEVEL.to_string());
    }
    FeatureKind::Categorical { levels }
}

/// The first numeric cell of `row` that is finite as f64 but not as f32 once standardised, as a
/// record error. Only a file encoded with another file's fit can have one (1e300 in a test file
/// whose training std is 1); it must not reach a model as infinity.
fn overflowing_cell(
    path: &Path,
    layout: &Layout,
    row: &Row,
    features: &[Feature],
) -> Option<DataError> {
    row.cells
        .iter()
        .zip(features)
        .zip(&layout.features)
        .find_map(|((cell, feature), &col)| match (&feature.kind, cell) {
            (FeatureKind::Numeric { mean, std }, Cell::Num(x))
                if !(((x - mean) / std) as f32).is_finite() =>
            {
                Some(DataError::record(
                    path,
                    row.line,
                    col + 1,
                    format!(
                        "{x} in numeric column {:?} does not fit in f32 once standardised \
                         (training mean {mean}, std {std})",
                        feature.name
                    ),
                ))
            }
            _ => None,
        })
}

/// Encodes parsed rows with a fitted schema. A label outside `label_names` is a record error;
/// a category outside the levels becomes the missing level (or code 0) and is counted.
#[allow(clippy::too_many_arguments)]
fn encode(
    path: &Path,
    layout: &Layout,
    rows: Vec<Row>,
    features: Vec<Feature>,
    label_names: Vec<String>,
    task: Task,
    has_labels: bool,
    policy: BadInputPolicy,
    report: &mut SkipReport,
) -> Result<TableSet, DataError> {
    let level_maps: Vec<Option<(HashMap<&str, usize>, Option<usize>)>> = features
        .iter()
        .map(|f| match &f.kind {
            FeatureKind::Categorical { levels } => Some((
                levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect(),
                levels.iter().position(|l| l == MISSING_LEVEL),
            )),
            FeatureKind::Numeric { .. } => None,
        })
        .collect();
    let label_index: HashMap<&str, i64> = label_names
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as i64))
        .collect();

    let mut values = Vec::with_capacity(rows.len() * features.len());
    let mut labels = Vec::new();
    let mut targets = Vec::new();
    // Per feature: how many unseen values, and the first few of them for the warning.
    let mut unseen: BTreeMap<usize, (usize, BTreeSet<String>)> = BTreeMap::new();
    let mut n_rows = 0;
    for row in rows {
        if let Some(e) = overflowing_cell(path, layout, &row, &features) {
            report.handle(policy, e)?;
            continue;
        }
        match &row.label {
            Label::Class(s) => match label_index.get(s.as_str()) {
                Some(&i) => labels.push(i),
                None => {
                    let col = layout.label.map_or(0, |c| c + 1);
                    let e = DataError::record(
                        path,
                        row.line,
                        col,
                        format!("label {s:?} was not seen in training (known: {label_names:?})"),
                    );
                    report.handle(policy, e)?;
                    continue;
                }
            },
            // Targets were checked to fit in f32 when parsed.
            Label::Target(t) => targets.push(*t as f32),
            Label::None => {}
        }
        for (f, (cell, feature)) in row.cells.iter().zip(&features).enumerate() {
            let v = match (&feature.kind, cell, &level_maps[f]) {
                (FeatureKind::Numeric { mean, std }, Cell::Num(x), _) => ((x - mean) / std) as f32,
                (FeatureKind::Numeric { .. }, _, _) => 0.0,
                (FeatureKind::Categorical { .. }, cell, Some((map, missing))) => {
                    let known = match cell {
                        Cell::Text(s) => map.get(s.as_str()).copied(),
                        _ => *missing,
                    };
                    match known {
                        Some(code) => code as f32,
                        None => {
                            let entry = unseen.entry(f).or_default();
                            entry.0 += 1;
                            if entry.1.len() < 5 {
                                entry.1.insert(match cell {
                                    Cell::Text(s) => s.clone(),
                                    _ => "(missing)".into(),
                                });
                            }
                            missing.unwrap_or(0) as f32
                        }
                    }
                }
                // level_maps is built from the same features, so this arm is unreachable; 0 is
                // a harmless value should it ever be reached.
                (FeatureKind::Categorical { .. }, _, None) => 0.0,
            };
            values.push(v);
        }
        n_rows += 1;
    }
    for (f, (count, examples)) in &unseen {
        let to = match &level_maps[*f] {
            Some((_, Some(_))) => "the missing level \"?\"",
            _ => "code 0",
        };
        tracing::warn!(
            "{}: column {:?}: {count} value(s) not seen in training (e.g. {examples:?}) encoded as {to}",
            path.display(),
            features[*f].name
        );
    }
    if n_rows == 0 {
        return Err(DataError::Empty {
            path: path.into(),
            message: format!("no data rows left (skipped {})", report.skipped),
        });
    }
    let (labels, targets, label_names) = match (has_labels, task) {
        (true, Task::Classification) => (Some(labels), None, label_names),
        (true, Task::Regression) => (None, Some(targets), Vec::new()),
        (false, _) => (None, None, Vec::new()),
    };
    Ok(TableSet {
        features,
        values,
        n_rows,
        labels,
        label_names,
        targets,
    })
}

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
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult");
        if !dir.is_dir() {
            println!("skipping: {} is absent", dir.display());
            return;
        }
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
