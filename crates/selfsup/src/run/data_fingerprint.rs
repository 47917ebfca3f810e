//! The data fingerprint a run records, so that a resumed run can tell it reads the same data.
use crate::recipe::DataConfig;
use anyhow::{Context, Result};
use std::path::Path;

/// blake3 over the bytes of every data file (for folders: names and sizes of their files), so a
/// resumed run can tell that it is reading the same data.
/// A UCR folder counts only the files of the named set, so that adding other sets to the
/// folder leaves its runs resumable.
pub fn fingerprint(data: &DataConfig) -> Result<String> {
    let prefix = match data {
        DataConfig::Ucr { name, .. } => Some(format!("{name}_")),
        _ => None,
    };
    let counts = |file: &str| {
        prefix.as_ref().map_or(true, |pre| {
            Path::new(file)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(pre.as_str()))
        })
    };
    let mut h = blake3::Hasher::new();
    for p in data.paths() {
        if p.is_dir() {
            let mut entries: Vec<(String, u64)> =
                walk(p)?.into_iter().filter(|(n, _)| counts(n)).collect();
            entries.sort();
            for (name, size) in entries {
                h.update(name.as_bytes());
                h.update(&size.to_le_bytes());
            }
        } else {
            let f = std::fs::File::open(p).with_context(|| format!("{}", p.display()))?;
            h.update_reader(f)
                .with_context(|| format!("{}", p.display()))?;
        }
    }
    Ok(h.finalize().to_hex()[..16].to_string())
}

fn walk(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let e = e?;
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push((p.display().to_string(), e.metadata()?.len()));
        }
    }
    Ok(out)
}
