//! The datasets selfsup knows by name: a registry (`datasets.toml`, data rather than code) of
//! where each comes from, its licence and every file with its size and sha256; one data root
//! that holds them (`--data-root`, `$SELFSUP_DATA`, else the platform's cache folder); fetching
//! into it ([`fetch`]); and what `[data] dataset = "NAME"` in a recipe stands for ([`resolve`]).
pub mod fetch;
pub mod resolve;

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// The registry shipped with the library.
const BUILTIN: &str = include_str!("../../datasets.toml");

/// The environment variable naming the data root.
pub const DATA_ROOT_ENV: &str = "SELFSUP_DATA";

/// Every dataset the registry lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(rename = "dataset")]
    pub datasets: Vec<Dataset>,
}

/// One dataset: its files and how a recipe reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    pub title: String,
    /// The publisher or the reference repository (with the commit the checksums are of).
    pub source: String,
    pub licence: String,
    /// The folder name of this dataset in an offline mirror (`--from DIR` also looks in
    /// `DIR/<mirror>`).
    pub mirror: String,
    pub note: Option<String>,
    /// The recipe `[data]` table `dataset = "NAME"` stands for; string values that are `.` or
    /// start with `./` are paths inside the dataset's folder. Absent: no reader uses it yet.
    pub data: Option<toml::Table>,
    pub files: Vec<FileSpec>,
}

/// One file of a dataset, as stored in the data root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Relative path inside the dataset's folder.
    pub path: String,
    /// Bytes as stored.
    pub size: u64,
    /// sha256 of the bytes as stored (lower-case hex).
    pub sha256: String,
    /// Where it is downloaded from.
    pub url: String,
    /// The download is gzip-compressed; it is stored decompressed.
    #[serde(default)]
    pub gzip: bool,
    /// In an offline mirror the file may be `member` of this archive (`.tar`, `.tar.xz`).
    pub archive: Option<String>,
    pub member: Option<String>,
}

/// How much of a dataset the data root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Every file, at its registered size.
    Present,
    /// Some files (this many) but not all.
    Partial(usize),
    Absent,
}

impl Registry {
    /// The registry shipped with the library (checked by a test, so parsing cannot fail).
    pub fn builtin() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::parse(BUILTIN).unwrap_or_else(|e| panic!("datasets.toml: {e}"))
        })
    }

    /// Parses and checks a registry: unique names, relative paths that stay inside the
    /// dataset's folder, sha256 as 64 hex digits, archive and member given together.
    pub fn parse(text: &str) -> Result<Registry, String> {
        let registry: Registry = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = std::collections::BTreeSet::new();
        for d in &registry.datasets {
            if !names.insert(d.name.to_lowercase()) {
                return Err(format!("the dataset {} is listed twice", d.name));
            }
            if d.files.is_empty() {
                return Err(format!("{}: no files", d.name));
            }
            for f in &d.files {
                let bad = |why: &str| Err(format!("{}: file {:?}: {why}", d.name, f.path));
                if !is_inside(&f.path) {
                    return bad("the path must be relative and stay inside the dataset's folder");
                }
                if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad("sha256 must be 64 hexadecimal digits");
                }
                if f.archive.is_some() != f.member.is_some() {
                    return bad("`archive` and `member` go together");
                }
            }
            if let Some(t) = &d.data {
                for (k, v) in t {
                    if let Some(p) = v.as_str().and_then(template_path) {
                        if !is_inside(p) && p != "." {
                            return Err(format!(
                                "{}: data.{k} leaves the dataset's folder",
                                d.name
                            ));
                        }
                    }
                }
            }
        }
        Ok(registry)
    }

    /// The dataset called `name` (case does not matter).
    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.datasets
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Every name, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.datasets.iter().map(|d| d.name.as_str()).collect()
    }
}

impl Dataset {
    /// Total bytes as stored.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Which files `dir` holds at their registered size (a cheap check; `fetch` verifies the
    /// checksums).
    pub fn presence(&self, dir: &Path) -> Presence {
        let here = self
            .files
            .iter()
            .filter(|f| {
                std::fs::metadata(dir.join(&f.path)).is_ok_and(|m| m.is_file() && m.len() == f.size)
            })
            .count();
        match here {
            0 => Presence::Absent,
            n if n == self.files.len() => Presence::Present,
            n => Presence::Partial(n),
        }
    }
}

/// The folder that holds every fetched dataset, one sub-folder per dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot(PathBuf);

impl DataRoot {
    /// `dir`, made absolute against the working directory.
    pub fn new(dir: impl Into<PathBuf>) -> DataRoot {
        let dir = dir.into();
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir().map_or(dir.clone(), |cwd| cwd.join(&dir))
        };
        DataRoot(dir)
    }

    /// `$SELFSUP_DATA`, else `<platform cache folder>/selfsup/data` (`~/.cache/selfsup/data` on
    /// Linux), else `selfsup-data` in the working directory.
    pub fn from_env() -> DataRoot {
        match std::env::var_os(DATA_ROOT_ENV) {
            Some(d) if !d.is_empty() => DataRoot::new(d),
            _ => DataRoot::new(
                dirs::cache_dir()
                    .map(|c| c.join("selfsup").join("data"))
                    .unwrap_or_else(|| PathBuf::from("selfsup-data")),
            ),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The folder of one dataset.
    pub fn dir_of(&self, dataset: &Dataset) -> PathBuf {
        self.0.join(&dataset.name)
    }
}

/// A relative path with no `..`, root or prefix component.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The path a template value stands for (`.` or `./…`), if it is one.
fn template_path(value: &str) -> Option<&str> {
    if value == "." {
        Some(".")
    } else {
        value.strip_prefix("./")
    }
}

#[cfg(test)]
mod tests;
