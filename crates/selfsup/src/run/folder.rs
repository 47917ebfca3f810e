//! A run folder is self-describing (DESIGN.md §4):
//! `recipe.toml` (resolved, exactly as run), `manifest.json` (versions, backend, seed, data
//! fingerprint, host, start/end), `metrics.jsonl`, `checkpoints/`, `eval.json`, `embeddings/`.
use crate::recipe::Recipe;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct RunFolder {
    pub dir: PathBuf,
}

pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RunFolder {
    /// Whether `dir` holds a run (started, finished or interrupted).
    pub fn exists(dir: &Path) -> bool {
        RunFolder {
            dir: dir.to_path_buf(),
        }
        .recipe_path()
        .exists()
    }

    /// The folder at `dir` without checking it (the ranks other than 0 of a data-parallel run,
    /// which only read what rank 0 writes there).
    pub fn at(dir: &Path) -> Self {
        RunFolder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn open(dir: &Path) -> Result<Self> {
        if !Self::exists(dir) {
            bail!("{}: not a run folder (no recipe.toml)", dir.display());
        }
        Ok(RunFolder {
            dir: dir.to_path_buf(),
        })
    }

    /// Creates the folder for a new run, or reopens it with `resume`. A new run never writes into
    /// a folder that already holds a run: nothing a previous run produced is overwritten.
    pub fn create(dir: &Path, recipe: &Recipe, resume: bool) -> Result<Self> {
        let f = RunFolder {
            dir: dir.to_path_buf(),
        };
        let existing = Self::exists(dir);
        if existing && !resume {
            bail!("{}: a run folder already exists there; pass --resume to continue it, or --run-dir for a new run", dir.display());
        }
        if existing {
            let old = Recipe::load(&f.recipe_path(), &[])
                .with_context(|| format!("reading the recipe of {}", dir.display()))?;
            if old.training_hash() != recipe.training_hash() {
                bail!(
                    "{}: the recipe differs from the one this run was started with in what shapes training; \
                     refusing to resume (compare with {})",
                    dir.display(),
                    f.recipe_path().display()
                );
            }
        }
        std::fs::create_dir_all(f.checkpoints())
            .with_context(|| format!("creating {}", dir.display()))?;
        atomic_write(&f.recipe_path(), recipe.to_toml().as_bytes())?;
        Ok(f)
    }

    pub fn recipe_path(&self) -> PathBuf {
        self.dir.join("recipe.toml")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn eval_path(&self) -> PathBuf {
        self.dir.join("eval.json")
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    pub fn read_manifest(&self) -> Value {
        std::fs::read(self.manifest_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| json!({}))
    }

    /// Merges `fields` into manifest.json.
    pub fn update_manifest(&self, fields: Value) -> Result<()> {
        let mut m = self.read_manifest();
        if let (Some(m), Some(f)) = (m.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                m.insert(k.clone(), v.clone());
            }
        }
        atomic_write(
            &self.manifest_path(),
            serde_json::to_string_pretty(&m)?.as_bytes(),
        )
    }
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Versions and machine facts recorded in every run's manifest.
pub fn environment() -> Value {
    json!({
        "selfsup_version": env!("CARGO_PKG_VERSION"),
        "libtorch_version": crate::backend::LIBTORCH_VERSION,
        "host": std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}
