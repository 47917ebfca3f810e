//! Typed errors for everything that comes from a user: files, recipes, command lines.
use std::path::{Path, PathBuf};

/// An error in user data. Every variant names the file, and where it can, the position in it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file as a whole is malformed (bad magic number, wrong size, undecodable image, ...).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// One record is malformed. `line` and `column` are 1-based; column 0 means "the whole line".
    #[error("{path}:{line}:{column}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Nothing usable is left (an empty file or folder, or every record was skipped).
    #[error("{path}: no usable samples ({message})")]
    Empty { path: PathBuf, message: String },
    /// A dataset named in a recipe is not (or not wholly) in the data root.
    #[error(
        "{path}: the dataset {name} is {}; get it with `selfsup data fetch {name}` \
         (add `--from DIR` to import an offline copy)",
        if *partial { "incomplete" } else { "not there" }
    )]
    MissingDataset {
        name: String,
        path: PathBuf,
        partial: bool,
    },
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
    /// The file the error is about (every variant names one).
    pub fn path(&self) -> &Path {
        match self {
            DataError::Io { path, .. }
            | DataError::Format { path, .. }
            | DataError::Record { path, .. }
            | DataError::Empty { path, .. }
            | DataError::MissingDataset { path, .. } => path,
        }
    }
    pub fn record(
        path: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        DataError::Record {
            path: path.into(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// What to do with a sample that cannot be read (`--on-bad-input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadInputPolicy {
    /// Stop with an error naming the file and position (the default: nothing is silently dropped).
    #[default]
    Fail,
    /// Leave the sample out, count it, and report the count (and the first few reasons).
    Skip,
}

impl std::str::FromStr for BadInputPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(BadInputPolicy::Fail),
            "skip" => Ok(BadInputPolicy::Skip),
            other => Err(format!(
                "--on-bad-input must be fail or skip, not {other:?}"
            )),
        }
    }
}

/// What a reader left out under [`BadInputPolicy::Skip`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SkipReport {
    /// The exact number of samples (files or records) left out.
    pub skipped: usize,
    /// The first few reasons (at most [`SkipReport::MAX_EXAMPLES`]), each naming file and position.
    pub examples: Vec<String>,
    /// Every file that had something skipped, in the order met, each listed once: for an image
    /// folder, exactly the skipped images; for a table, the file its skipped rows came from.
    /// Kept in full (unlike `examples`) so that a caller can list or move every bad file.
    pub paths: Vec<PathBuf>,
}

impl SkipReport {
    pub const MAX_EXAMPLES: usize = 5;

    /// Applies `policy` to `err`: returns it under `Fail`, records it under `Skip`.
    pub fn handle(&mut self, policy: BadInputPolicy, err: DataError) -> Result<(), DataError> {
        match policy {
            BadInputPolicy::Fail => Err(err),
            BadInputPolicy::Skip => {
                self.skipped += 1;
                self.note_path(err.path());
                if self.examples.len() < Self::MAX_EXAMPLES {
                    self.examples.push(err.to_string());
                }
                Ok(())
            }
        }
    }

    pub fn merge(&mut self, other: SkipReport) {
        self.skipped += other.skipped;
        for e in other.examples {
            if self.examples.len() < Self::MAX_EXAMPLES {
                self.examples.push(e);
            }
        }
        for p in &other.paths {
            self.note_path(p);
        }
    }

    /// Records `path` unless it is the last one recorded: a reader meets a file's records
    /// together, so this lists each file once without a set (and without one entry per row
    /// of a table that is bad throughout).
    fn note_path(&mut self, path: &Path) {
        if self.paths.last().map(PathBuf::as_path) != Some(path) {
            self.paths.push(path.to_path_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_report_counts_exactly_and_lists_every_file_once() {
        let mut r = SkipReport::default();
        for i in 0..8 {
            let e = DataError::format(format!("img{i}.png"), "bad");
            r.handle(BadInputPolicy::Skip, e).unwrap();
        }
        for line in 2..5 {
            r.handle(
                BadInputPolicy::Skip,
                DataError::record("t.csv", line, 1, "bad"),
            )
            .unwrap();
        }
        assert_eq!(r.skipped, 11);
        assert_eq!(r.examples.len(), SkipReport::MAX_EXAMPLES);
        let want: Vec<PathBuf> = (0..8)
            .map(|i| PathBuf::from(format!("img{i}.png")))
            .chain([PathBuf::from("t.csv")])
            .collect();
        assert_eq!(r.paths, want);
        let mut total = SkipReport::default();
        total.merge(r.clone());
        total.merge(r);
        assert_eq!(total.skipped, 22);
        assert_eq!(total.paths.len(), 18);
        let e = DataError::format("x.png", "bad");
        assert!(SkipReport::default()
            .handle(BadInputPolicy::Fail, e)
            .is_err());
    }
}
