//! One cell of a table that pretrains: the recipe at one seed in `<runs>/<name>/seed<k>`,
//! continued from its checkpoint when the folder is there, without the run's own evaluation
//! (the table scores it), then loaded back for the table's protocols.
use crate::error::BadInputPolicy;
use crate::recipe::Recipe;
use crate::run::commands::{self, LoadedRun};
use crate::run::folder::RunFolder;
use crate::run::{PretrainReport, RunOptions};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Pretrains `recipe` (already at `seed`) and loads the run; returns its folder too.
pub fn pretrain_and_load(
    recipe: &Recipe,
    name: &str,
    seed: u64,
    runs: &Path,
    options: &RunOptions,
) -> Result<(PretrainReport, LoadedRun, PathBuf)> {
    let run_dir = runs.join(name).join(format!("seed{seed}"));
    let mut run = options.clone();
    run.run_dir = Some(run_dir.clone());
    run.resume = RunFolder::exists(&run_dir);
    run.evaluate = false;
    let report = commands::pretrain_recipe(recipe.clone(), &run)
        .with_context(|| format!("{name}, seed {seed} ({})", run_dir.display()))?;
    let loaded = commands::load_run(&run_dir, &[], options.device, BadInputPolicy::Fail)?;
    Ok((report, loaded, run_dir))
}
