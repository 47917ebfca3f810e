//! Reading a CSV file into trimmed cells, checked against the recipe's column layout, and
//! parsing each row into numbers, category levels and a label.
use super::*;
use crate::data::TableSet;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

/// The file's rows as trimmed strings, each with its 1-based line number in the file.
pub(super) struct Raw {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<RawRow>,
}

pub(super) struct RawRow {
    pub(super) line: usize,
    pub(super) cells: Vec<String>,
}

pub(super) fn read_raw(
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
pub(super) struct Layout {
    pub(super) label: Option<usize>,
    pub(super) features: Vec<usize>,
}

impl Layout {
    pub(super) fn for_fit(
        path: &Path,
        columns: &[String],
        opts: &CsvOptions,
    ) -> Result<Layout, DataError> {
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
    pub(super) fn for_fitted(
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
pub(super) fn check_names(
    path: &Path,
    columns: &[String],
    opts: &CsvOptions,
) -> Result<(), DataError> {
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

pub(super) fn find_label(
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

pub(super) fn is_missing(opts: &CsvOptions, cell: &str) -> bool {
    opts.missing.iter().any(|m| m == cell)
}

/// Whether `cell` reads as a number at all, finite or not ("inf", "NaN" and "1e999" do): such a
/// value in an otherwise numeric column is a bad number, not a category.
pub(super) fn is_number_like(cell: &str) -> bool {
    cell.parse::<f64>().is_ok()
}

pub(super) fn parse_finite(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(super) enum Cell {
    Missing,
    Num(f64),
    Text(String),
}

pub(super) enum Label {
    None,
    Class(String),
    Target(f64),
}

/// A row whose cells have been checked against the feature kinds (one cell per feature).
pub(super) struct Row {
    pub(super) line: usize,
    pub(super) cells: Vec<Cell>,
    pub(super) label: Label,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn parse_rows(
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

pub(super) fn parse_row(
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
