//! Text files → sentences with optional labels.
//!
//! Two shapes of file: delimited rows (TSV or CSV) with a text column and an optional label
//! column (GLUE's SST-2, the SMS spam collection), and plain corpora cut into lines or into
//! windows of about `window` characters (Tiny Shakespeare). Bytes are read as they are, so that
//! a line that is not UTF-8 or is too long is met as a record with a line number — and then
//! fails the read, is repaired by the file's policy, or is skipped and counted.
use crate::error::{BadInputPolicy, DataError, SkipReport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a file's text is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// Tab-separated columns; when the text is the last column it runs to the end of the line,
    /// tabs included.
    #[default]
    Tsv,
    /// Comma-separated columns with RFC 4180 quoting.
    Csv,
    /// A corpus: every non-blank line is one sample.
    Lines,
    /// A corpus: consecutive lines joined and cut into pieces of about `window` characters at
    /// whitespace.
    Windows,
}

/// A column by 0-based position or by its header name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    Index(usize),
    Name(String),
}

/// What to do with bytes that are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Utf8Policy {
    /// A bad record (fails the read, or is skipped and counted under `--on-bad-input skip`).
    #[default]
    Strict,
    /// Each invalid sequence becomes U+FFFD, and the repairs are counted.
    Replace,
}

/// What to do with a line longer than `max_line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongLinePolicy {
    /// A bad record (fails the read, or is skipped and counted).
    #[default]
    Strict,
    /// Cut at the last character boundary before the limit, and counted.
    Truncate,
}

/// One text file of a recipe (`data.train`, `data.test`, `data.corpora[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextFile {
    pub path: PathBuf,
    #[serde(default)]
    pub format: TextFormat,
    /// The first line names the columns (delimited formats).
    #[serde(default)]
    pub header: bool,
    /// The text column (delimited formats).
    #[serde(default = "first_column")]
    pub text: Column,
    /// The label column, if the file has labels.
    #[serde(default)]
    pub label: Option<Column>,
    /// Characters per sample for `format = "windows"`.
    #[serde(default = "window_chars")]
    pub window: usize,
    #[serde(default)]
    pub utf8: Utf8Policy,
    #[serde(default)]
    pub long_lines: LongLinePolicy,
    /// Longest line accepted, in bytes.
    #[serde(default = "max_line_bytes")]
    pub max_line_bytes: usize,
}

fn first_column() -> Column {
    Column::Index(0)
}
fn window_chars() -> usize {
    512
}
fn max_line_bytes() -> usize {
    1 << 20
}

impl TextFile {
    /// A file of `format` at `path` with every other field at its default.
    pub fn new(path: impl Into<PathBuf>, format: TextFormat) -> TextFile {
        TextFile {
            path: path.into(),
            format,
            header: false,
            text: first_column(),
            label: None,
            window: window_chars(),
            utf8: Utf8Policy::Strict,
            long_lines: LongLinePolicy::Strict,
            max_line_bytes: max_line_bytes(),
        }
    }
    /// The rules of the fields, checked with the recipe.
    pub fn check(&self) -> Result<(), String> {
        if self.max_line_bytes == 0 {
            return Err(format!(
                "{}: max_line_bytes must be > 0",
                self.path.display()
            ));
        }
        if self.format == TextFormat::Windows && self.window < 8 {
            return Err(format!(
                "{}: window must be at least 8 characters",
                self.path.display()
            ));
        }
        if matches!(self.format, TextFormat::Lines | TextFormat::Windows) && self.label.is_some() {
            return Err(format!(
                "{}: a {:?} corpus has no label column",
                self.path.display(),
                self.format
            ));
        }
        Ok(())
    }
}

/// Texts with their labels as they appear in the file (class indices come later, when the
/// training file's classes are known).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTexts {
    pub texts: Vec<String>,
    pub labels: Option<Vec<String>>,
    /// Lines repaired under `utf8 = "replace"` or `long_lines = "truncate"`.
    pub repaired: usize,
}

/// Reads `file` (gzip or plain). Bad records fail the read under [`BadInputPolicy::Fail`], or
/// are left out and counted in the returned report under `Skip`.
pub fn read_text_file(
    file: &TextFile,
    policy: BadInputPolicy,
) -> Result<(RawTexts, SkipReport), DataError> {
    file.check().map_err(|m| DataError::format(&file.path, m))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut super::super::open_maybe_gzip(&file.path)?, &mut bytes)
        .map_err(|e| DataError::io(&file.path, e))?;
    let mut skipped = SkipReport::default();
    let out = match file.format {
        TextFormat::Csv => read_csv(file, &bytes, policy, &mut skipped)?,
        _ => read_lines(file, &bytes, policy, &mut skipped)?,
    };
    if out.texts.is_empty() {
        return Err(DataError::Empty {
            path: file.path.clone(),
            message: format!("no text read ({} records skipped)", skipped.skipped),
        });
    }
    Ok((out, skipped))
}

/// One line's bytes → text, by the file's UTF-8 and length policies. `Ok(None)`: skipped.
fn decode_line(
    file: &TextFile,
    line_no: usize,
    bytes: &[u8],
    policy: BadInputPolicy,
    skipped: &mut SkipReport,
    repaired: &mut usize,
) -> Result<Option<String>, DataError> {
    let mut bytes = bytes;
    let mut fixed = false;
    if bytes.len() > file.max_line_bytes {
        match file.long_lines {
            LongLinePolicy::Strict => {
                let err = DataError::record(
                    &file.path,
                    line_no,
                    0,
                    format!(
                        "line of {} bytes is longer than max_line_bytes = {} \
                         (set long_lines = \"truncate\" to cut it)",
                        bytes.len(),
                        file.max_line_bytes
                    ),
                );
                skipped.handle(policy, err)?;
                return Ok(None);
            }
            LongLinePolicy::Truncate => {
                bytes = &bytes[..file.max_line_bytes];
                fixed = true;
            }
        }
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // A cut in the middle of a character is the truncation's doing, not the file's.
        Err(e) if fixed && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()])
                .expect("valid up to here")
                .to_string()
        }
        Err(e) => match file.utf8 {
            Utf8Policy::Strict => {
                let err = DataError::record(
                    &file.path,
                    line_no,
                    e.valid_up_to() + 1,
                    "invalid UTF-8 (set utf8 = \"replace\" to substitute U+FFFD)",
                );
                skipped.handle(policy, err)?;
                return Ok(None);
            }
            Utf8Policy::Replace => {
                fixed = true;
                String::from_utf8_lossy(bytes).into_owned()
            }
        },
    };
    if fixed {
        *repaired += 1;
    }
    Ok(Some(text))
}

/// The lines of `bytes`, without their `\n` or `\r\n`, numbered from 1.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(move |_| !bytes.is_empty())
}

fn read_lines(
    file: &TextFile,
    bytes: &[u8],
    policy: BadInputPolicy,
    skipped: &mut SkipReport,
) -> Result<RawTexts, DataError> {
    let mut out = RawTexts::default();
    let mut rows: Vec<(usize, String)> = Vec::new();
    for (no, raw) in lines(bytes) {
        if let Some(text) = decode_line(file, no, raw, policy, skipped, &mut out.repaired)? {
            rows.push((no, text));
        }
    }
    match file.format {
        TextFormat::Lines => {
            out.texts = rows
                .into_iter()
                .map(|(_, t)| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }
        TextFormat::Windows => {
            out.texts = windows(rows.iter().map(|(_, t)| t.as_str()), file.window)
        }
        TextFormat::Tsv => {
            let mut columns: Option<Vec<String>> = None;
            let mut labels = Vec::new();
            for (no, line) in rows {
                if line.trim().is_empty() {
                    continue;
                }
                let fields: Vec<&str> = line.split('\t').collect();
                if file.header && columns.is_none() {
                    columns = Some(fields.iter().map(|f| f.trim().to_string()).collect());
                    continue;
                }
                let names = columns.as_deref();
                let t = column_index(file, &file.text, names)?;
                let l = match &file.label {
                    Some(c) => Some(column_index(file, c, names)?),
                    None => None,
                };
                // A text column after every other column takes the rest of the line.
                let text = match fields.get(t) {
                    None => String::new(),
                    Some(_) if l.map_or(true, |l| l < t) => fields[t..].join("\t"),
                    Some(f) => f.to_string(),
                };
                let label = l.and_then(|l| fields.get(l).map(|s| s.trim().to_string()));
                if let Some(problem) = row_problem(t, fields.len(), &text, &file.label, &label) {
                    skipped.handle(policy, DataError::record(&file.path, no, 0, problem))?;
                    continue;
                }
                out.texts.push(text.trim().to_string());
                labels.extend(label);
            }
            if file.label.is_some() {
                out.labels = Some(labels);
            }
        }
        TextFormat::Csv => unreachable!("CSV is read by read_csv"),
    }
    Ok(out)
}

/// Why a delimited row is unusable, if it is.
fn row_problem(
    text_col: usize,
    n_fields: usize,
    text: &str,
    label_col: &Option<Column>,
    label: &Option<String>,
) -> Option<String> {
    if text_col >= n_fields {
        return Some(format!(
            "{n_fields} columns, the text is column {}",
            text_col + 1
        ));
    }
    if text.trim().is_empty() {
        return Some("empty text".into());
    }
    if label_col.is_some() && label.as_deref().map_or(true, str::is_empty) {
        return Some("no label".into());
    }
    None
}

fn column_index(file: &TextFile, c: &Column, names: Option<&[String]>) -> Result<usize, DataError> {
    match c {
        Column::Index(i) => Ok(*i),
        Column::Name(n) => {
            let names = names.ok_or_else(|| {
                DataError::format(
                    &file.path,
                    format!("column {n:?} is named, but the file has no header (header = false)"),
                )
            })?;
            names.iter().position(|h| h == n).ok_or_else(|| {
                DataError::format(
                    &file.path,
                    format!("no column {n:?} in the header {names:?}"),
                )
            })
        }
    }
}

fn read_csv(
    file: &TextFile,
    bytes: &[u8],
    policy: BadInputPolicy,
    skipped: &mut SkipReport,
) -> Result<RawTexts, DataError> {
    let mut out = RawTexts::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(file.header)
        .flexible(true)
        .from_reader(bytes);
    let names: Option<Vec<String>> = if file.header {
        let h = reader
            .byte_headers()
            .map_err(|e| DataError::format(&file.path, e.to_string()))?;
        Some(
            h.iter()
                .map(|f| String::from_utf8_lossy(f).trim().to_string())
                .collect(),
        )
    } else {
        None
    };
    let t = column_index(file, &file.text, names.as_deref())?;
    let l = match &file.label {
        Some(c) => Some(column_index(file, c, names.as_deref())?),
        None => None,
    };
    let mut labels = Vec::new();
    for rec in reader.byte_records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                skipped.handle(
                    policy,
                    DataError::record(&file.path, line, 0, e.to_string()),
                )?;
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let field = |i: usize, out: &mut RawTexts, sk: &mut SkipReport| match rec.get(i) {
            Some(b) => decode_line(file, line, b, policy, sk, &mut out.repaired),
            None => Ok(Some(String::new())),
        };
        let Some(text) = field(t, &mut out, skipped)? else {
            continue;
        };
        let label = match l {
            Some(i) => match field(i, &mut out, skipped)? {
                Some(s) => Some(s.trim().to_string()),
                None => continue,
            },
            None => None,
        };
        if let Some(problem) = row_problem(t, rec.len(), &text, &file.label, &label) {
            skipped.handle(policy, DataError::record(&file.path, line, 0, problem))?;
            continue;
        }
        out.texts.push(text.trim().to_string());
        labels.extend(label);
    }
    if file.label.is_some() {
        out.labels = Some(labels);
    }
    Ok(out)
}

/// Consecutive lines joined with spaces and cut at whitespace into pieces of at most `window`
/// characters (a word longer than the window is cut where the window ends); blank lines end a
/// piece early, so a window does not run across a paragraph break.
pub fn windows<'a>(lines: impl Iterator<Item = &'a str>, window: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_chars = 0usize;
    let flush = |cur: &mut String, n: &mut usize, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
        *n = 0;
    };
    for line in lines {
        if line.trim().is_empty() {
            flush(&mut cur, &mut cur_chars, &mut out);
            continue;
        }
        for word in line.split_whitespace() {
            let mut word = word;
            loop {
                let w = word.chars().count();
                let need = w + usize::from(cur_chars > 0);
                if cur_chars + need <= window {
                    if cur_chars > 0 {
                        cur.push(' ');
                    }
                    cur.push_str(word);
                    cur_chars += need;
                    break;
                }
                if cur_chars > 0 {
                    flush(&mut cur, &mut cur_chars, &mut out);
                    continue;
                }
                // A word longer than a whole window: cut it.
                let cut = word
                    .char_indices()
                    .nth(window)
                    .map_or(word.len(), |(i, _)| i);
                out.push(word[..cut].to_string());
                word = &word[cut..];
                if word.is_empty() {
                    break;
                }
            }
        }
    }
    flush(&mut cur, &mut cur_chars, &mut out);
    out
}

/// Class names of `labels` in index order: numerically when every label is an integer, else
/// lexicographically (SST-2's "0"/"1" stay 0/1; "ham"/"spam" become 0/1).
pub fn class_names(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}

/// Labels → indices into `names`; a label outside them is an error naming the file.
pub fn label_indices(
    labels: &[String],
    names: &[String],
    path: &Path,
) -> Result<Vec<i64>, DataError> {
    labels
        .iter()
        .map(|l| {
            names
                .iter()
                .position(|n| n == l)
                .map(|i| i as i64)
                .ok_or_else(|| {
                    DataError::format(
                        path,
                        format!("label {l:?} is not one of the training file's classes {names:?}"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn tsv(path: PathBuf) -> TextFile {
        TextFile {
            header: true,
            text: Column::Name("sentence".into()),
            label: Some(Column::Name("label".into())),
            ..TextFile::new(path, TextFormat::Tsv)
        }
    }

    #[test]
    fn tsv_with_header_reads_text_and_labels() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "a.tsv",
            b"sentence\tlabel\nit 's good \t1\r\n\nbad\t0\n",
        );
        let (t, s) = read_text_file(&tsv(p), BadInputPolicy::Fail).unwrap();
        assert_eq!(t.texts, vec!["it 's good", "bad"]);
        assert_eq!(t.labels.unwrap(), vec!["1", "0"]);
        assert_eq!(s.skipped, 0);
    }

    #[test]
    fn the_last_column_keeps_its_tabs() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "sms", b"ham\tsee you\tlater\nspam\tWIN\n");
        let f = TextFile {
            text: Column::Index(1),
            label: Some(Column::Index(0)),
            ..TextFile::new(p, TextFormat::Tsv)
        };
        let (t, _) = read_text_file(&f, BadInputPolicy::Fail).unwrap();
        assert_eq!(t.texts, vec!["see you\tlater", "WIN"]);
        assert_eq!(class_names(t.labels.as_ref().unwrap()), vec!["ham", "spam"]);
    }

    #[test]
    fn invalid_utf8_fails_with_line_and_column_or_is_skipped_or_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "bad.tsv",
            b"sentence\tlabel\nok\t1\nb\xffd\t0\nfine\t0\n",
        );
        let err = read_text_file(&tsv(p.clone()), BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.tsv:3:2") && err.contains("UTF-8"),
            "{err}"
        );
        let (t, s) = read_text_file(&tsv(p.clone()), BadInputPolicy::Skip).unwrap();
        assert_eq!((t.texts.len(), s.skipped), (2, 1));
        let f = TextFile {
            utf8: Utf8Policy::Replace,
            ..tsv(p)
        };
        let (t, s) = read_text_file(&f, BadInputPolicy::Fail).unwrap();
        assert_eq!(t.texts[1], "b\u{fffd}d");
        assert_eq!((t.repaired, s.skipped), (1, 0));
    }

    #[test]
    fn a_ten_megabyte_line_is_refused_cut_or_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = b"short line\n".to_vec();
        bytes.extend(std::iter::repeat(b'a').take(10 << 20));
        bytes.extend("é\nlast\n".as_bytes());
        let p = file(&d, "big.txt", &bytes);
        let f = TextFile::new(p, TextFormat::Lines);
        let err = read_text_file(&f, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("big.txt:2:") && err.contains("max_line_bytes"),
            "{err}"
        );
        let (t, s) = read_text_file(&f, BadInputPolicy::Skip).unwrap();
        assert_eq!(
            (t.texts.clone(), s.skipped),
            (vec!["short line".to_string(), "last".into()], 1)
        );
        // Cut one byte into the two-byte "é": the half character is dropped, not replaced.
        let f = TextFile {
            long_lines: LongLinePolicy::Truncate,
            max_line_bytes: (10 << 20) + 1,
            ..f
        };
        let (t, _) = read_text_file(&f, BadInputPolicy::Fail).unwrap();
        assert_eq!(t.texts[1].len(), 10 << 20);
        assert_eq!(t.repaired, 1);
    }

    #[test]
    fn empty_files_rows_without_text_and_missing_columns_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "empty.txt", b"\n\n  \n");
        let err = read_text_file(&TextFile::new(p, TextFormat::Lines), BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty.txt") && err.contains("no usable"),
            "{err}"
        );
        let p = file(&d, "rows.tsv", b"sentence\tlabel\n \t1\nonly\n");
        let err = read_text_file(&tsv(p.clone()), BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rows.tsv:2:0: empty text"), "{err}");
        let f = TextFile {
            label: Some(Column::Name("stars".into())),
            ..tsv(p)
        };
        let err = read_text_file(&f, BadInputPolicy::Skip)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column \"stars\""), "{err}");
    }

    #[test]
    fn csv_quotes_and_positions() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "a.csv", b"text,label\n\"a, quoted\nline\",x\nplain,y\n");
        let f = TextFile {
            header: true,
            text: Column::Name("text".into()),
            label: Some(Column::Index(1)),
            ..TextFile::new(p, TextFormat::Csv)
        };
        let (t, _) = read_text_file(&f, BadInputPolicy::Fail).unwrap();
        assert_eq!(t.texts, vec!["a, quoted\nline", "plain"]);
        assert_eq!(t.labels.unwrap(), vec!["x", "y"]);
    }

    #[test]
    fn windows_cut_at_whitespace_and_paragraphs() {
        let w = windows(["ab cd ef", "gh", "", "ij", "abcdefghijkl"].into_iter(), 8);
        assert_eq!(w, vec!["ab cd ef", "gh", "ij", "abcdefgh", "ijkl"]);
        assert!(w.iter().all(|p| p.chars().count() <= 8));
    }

    #[test]
    fn numeric_class_names_sort_as_numbers() {
        let l: Vec<String> = ["10", "2", "1", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(class_names(&l), vec!["1", "2", "10"]);
        let idx = label_indices(&l, &class_names(&l), Path::new("x")).unwrap();
        assert_eq!(idx, vec![2, 1, 0, 1]);
        assert!(label_indices(&["3".into()], &class_names(&l), Path::new("x")).is_err());
    }
}
