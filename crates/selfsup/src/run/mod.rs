//! One run, from a resolved recipe to its results: the run folder, the data prepared for the
//! modality, the model, the trunk's training loop, the evaluation, export. Sample runs (images,
//! tables) and graph runs differ only in how data, model and protocol are made.
pub mod charts;
pub mod commands;
pub mod data_fingerprint;
pub mod embedding_map;
pub mod export;
pub mod fine_tune;
pub mod folder;
pub mod graph;
pub mod graph_joint;
pub mod inspect;
pub mod neighbours;
pub mod paired_data;
pub mod pipeline;
pub mod report;
pub mod text_data;

use crate::recipe::Recipe;
use crate::run::folder::{self as run_folder, RunFolder};
use crate::run::pipeline::EvalRecord;
use crate::train::checkpoint;
use crate::train::trainer::TrainSummary;
use crate::{backend, error::BadInputPolicy};
use anyhow::Result;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

/// How one pretraining runs, apart from its recipe.
#[derive(Clone)]
pub struct RunOptions {
    /// The run folder (default `runs/<recipe name>`).
    pub run_dir: Option<PathBuf>,
    /// Continue the run in the folder from its newest valid checkpoint.
    pub resume: bool,
    pub device: Device,
    /// libtorch threads (0: all cores).
    pub threads: usize,
    pub on_bad_input: BadInputPolicy,
    /// Evaluate after pretraining (when the data has a labelled test split or a graph protocol).
    pub evaluate: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Set by a signal handler: stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
}

/// What one pretraining produced.
pub struct PretrainReport {
    pub run_dir: PathBuf,
    pub summary: TrainSummary,
    pub eval: Vec<EvalRecord>,
    /// Collapse diagnostics of the learned test representations, when evaluated.
    pub test_collapse: Option<crate::stats::collapse::CollapseStats>,
}

/// Creates (or, resuming, reopens) the run folder and loads its newest checkpoint.
pub fn open_run(
    run_dir: &Path,
    recipe: &Recipe,
    resume: bool,
) -> Result<(RunFolder, Option<checkpoint::Loaded>)> {
    let run = RunFolder::create(run_dir, recipe, resume)?;
    let loaded = if resume {
        checkpoint::load_latest(&run.checkpoints())?
    } else {
        None
    };
    if resume && loaded.is_none() {
        tracing::warn!(
            "{}: no checkpoint yet; starting from the beginning",
            run.dir.display()
        );
    }
    Ok((run, loaded))
}

/// The manifest's record of how the run started: environment, seed, device, threads, data
/// fingerprint, recipe hash, method and encoder, and `extra` (the modality's own counts).
pub fn write_start_manifest(
    run: &RunFolder,
    recipe: &Recipe,
    args: &RunOptions,
    threads: usize,
    data_fingerprint: &str,
    resumed: bool,
    extra: serde_json::Value,
) -> Result<()> {
    let mut env = run_folder::environment();
    if let Some(e) = env.as_object_mut() {
        e.insert("seed".into(), json!(recipe.seed));
        e.insert("device".into(), json!(backend::device_name(args.device)));
        e.insert("threads".into(), json!(threads));
        e.insert("data_fingerprint".into(), json!(data_fingerprint));
        e.insert("recipe_hash".into(), json!(recipe.training_hash()));
        e.insert("method".into(), json!(recipe.method.name()));
        e.insert("encoder".into(), json!(recipe.encoder.kind()));
        if let Some(x) = extra.as_object() {
            for (k, v) in x {
                e.insert(k.clone(), v.clone());
            }
        }
        e.insert(
            if resumed { "resumed" } else { "started" }.into(),
            json!(run_folder::unix_time()),
        );
        e.insert(
            "command".into(),
            json!(std::env::args().collect::<Vec<_>>()),
        );
    }
    run.update_manifest(env)
}

/// Prints and records the end of training.
pub fn finish_training(run: &RunFolder, summary: &TrainSummary) -> Result<()> {
    eprintln!(
        "selfsup: trained {} steps ({} epochs) in {:.1}s, {:.0} samples/s, final loss {}{}",
        summary.steps,
        summary.epochs_completed,
        summary.seconds,
        summary.samples_per_s,
        summary
            .final_loss
            .map_or("n/a".into(), |l| format!("{l:.4}")),
        match summary.kept_epoch {
            Some(e) if summary.stopped_early => format!("; stopped early, kept epoch {e}"),
            Some(e) => format!("; kept the best epoch, {e}"),
            None => String::new(),
        }
    );
    run.update_manifest(
        json!({"finished": run_folder::unix_time(), "train": summary,
        "peak_rss_mib_after_training": backend::peak_rss_mib()}),
    )
}

/// Writes `eval.json`: the records and, after a pretraining, the collapse diagnostics of the
/// test split's embeddings (the figures `selfsup compare` reports as RankMe).
pub fn write_eval(
    run: &RunFolder,
    records: &[EvalRecord],
    test_collapse: Option<&crate::stats::collapse::CollapseStats>,
    step: u64,
) -> Result<()> {
    let mut v =
        json!({"checkpoint_step": step, "time": run_folder::unix_time(), "records": records});
    if let Some(c) = test_collapse {
        v["test_collapse"] = json!(c);
    }
    run_folder::atomic_write(
        &run.eval_path(),
        serde_json::to_string_pretty(&v)?.as_bytes(),
    )
}
