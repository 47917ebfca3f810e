//! The `--out` file of a table command: rewritten atomically after every seed (an interruption
//! leaves the previous version whole, never a truncated file) and read back by `--resume`.
use anyhow::{anyhow, Result};
use std::path::Path;

/// With `resume`, the results an earlier `--out` of the command `what` left (none if the file
/// does not exist yet), to continue from them.
pub fn saved<T: serde::de::DeserializeOwned>(
    out: Option<&Path>,
    resume: bool,
    what: &str,
) -> Result<Option<T>> {
    let Some(path) = out.filter(|p| resume && p.exists()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow!("{}: not a results file of `{what}` ({e})", path.display()))
}

/// Writes a table (so far) to `out`, atomically, when an `--out` was given.
pub fn save(out: Option<&Path>, table: &impl serde::Serialize) -> Result<()> {
    match out {
        Some(path) => {
            crate::run::folder::atomic_write(path, serde_json::to_string_pretty(table)?.as_bytes())
        }
        None => Ok(()),
    }
}
