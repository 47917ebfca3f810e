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

/// Whether cell (`row`, `seed`) of the table in `state` is done: `saved` is the fingerprint the
/// table holds for it, if any. A cell made under another fingerprint is an error: the recipe
/// changed, and a table must not mix settings.
pub fn cell_done(
    saved: Option<&str>,
    state: &Path,
    row: &str,
    seed: u64,
    fingerprint: &str,
) -> Result<bool> {
    match saved {
        Some(f) if f == fingerprint => Ok(true),
        Some(_) => Err(anyhow!(
            "{}: {row} / seed {seed} was made with other settings than now; choose another \
             --runs folder (nothing was changed)",
            state.display()
        )),
        None => Ok(false),
    }
}
