//! The subcommands (`pretrain`, `eval`, `embed`) as library functions over a run folder.
use crate::backend;
use crate::error::BadInputPolicy;
use crate::pipeline::{self, EvalRecord, Protocol};
use crate::recipe::{DataConfig, Recipe};
use crate::run_folder::{self, RunFolder};
use crate::train::checkpoint;
use crate::train::trainer::{self, TrainContext, TrainSummary};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

pub struct PretrainArgs {
    pub recipe: PathBuf,
    pub overrides: Vec<String>,
    pub run_dir: Option<PathBuf>,
    pub resume: bool,
    pub device: Device,
    pub threads: usize,
    pub on_bad_input: BadInputPolicy,
    pub evaluate: bool,
    pub progress: bool,
    pub stop: Arc<AtomicBool>,
}

pub struct PretrainReport {
    pub run_dir: PathBuf,
    pub summary: TrainSummary,
    pub eval: Vec<EvalRecord>,
}

/// Makes the data paths absolute, so the run folder's recipe works from any directory.
fn absolutise(data: &mut DataConfig) {
    for p in data.paths_mut() {
        if let Ok(a) = std::fs::canonicalize(&*p) {
            *p = a;
        }
    }
}

pub fn pretrain(args: PretrainArgs) -> Result<PretrainReport> {
    let mut recipe = Recipe::load(&args.recipe, &args.overrides)?;
    absolutise(&mut recipe.data);
    let threads = backend::set_threads(args.threads);
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    let prepared = pipeline::prepare_data(
        &recipe,
        args.on_bad_input,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    let run = RunFolder::create(&run_dir, &recipe, args.resume)?;
    let resume = if args.resume {
        checkpoint::load_latest(&run.checkpoints())?
    } else {
        None
    };
    if args.resume && resume.is_none() {
        tracing::warn!(
            "{}: no checkpoint yet; starting from the beginning",
            run.dir.display()
        );
    }
    let model = pipeline::build_model(&recipe, &prepared.train.sample_shape(), args.device)?;
    let mut env = run_folder::environment();
    if let Some(e) = env.as_object_mut() {
        e.insert("seed".into(), json!(recipe.seed));
        e.insert("device".into(), json!(backend::device_name(args.device)));
        e.insert("threads".into(), json!(threads));
        e.insert("data_fingerprint".into(), json!(prepared.fingerprint));
        e.insert("recipe_hash".into(), json!(recipe.training_hash()));
        e.insert("method".into(), json!(recipe.method.name()));
        e.insert("encoder".into(), json!(recipe.encoder.kind()));
        e.insert("train_samples".into(), json!(prepared.train.len()));
        e.insert("skipped_inputs".into(), json!(prepared.skipped));
        e.insert(
            if resume.is_some() {
                "resumed"
            } else {
                "started"
            }
            .into(),
            json!(run_folder::unix_time()),
        );
        e.insert(
            "command".into(),
            json!(std::env::args().collect::<Vec<_>>()),
        );
    }
    run.update_manifest(env)?;
    eprintln!(
        "selfsup: {} with {} on {} training samples ({} threads, {}), run folder {}",
        recipe.method.name(),
        recipe.encoder.kind(),
        prepared.train.len(),
        threads,
        backend::device_name(args.device),
        run.dir.display()
    );

    let mut monitor = |m: &dyn crate::methods::Method, _epoch: u64| {
        pipeline::monitor_knn(m, &prepared, &recipe.eval, args.device)
    };
    let ctx = TrainContext {
        recipe: &recipe,
        vs: &model.vs,
        method: model.method.as_ref(),
        source: prepared.train.clone(),
        device: args.device,
        checkpoints: run.checkpoints(),
        metrics_path: run.metrics(),
        data_fingerprint: prepared.fingerprint.clone(),
        progress: args.progress,
        stop: args.stop.clone(),
        monitor: if prepared.test.is_some() {
            Some(&mut monitor)
        } else {
            None
        },
    };
    let summary = trainer::train(ctx, resume)?;
    eprintln!(
        "selfsup: trained {} steps ({} epochs) in {:.1}s, {:.0} samples/s, final loss {}",
        summary.steps,
        summary.epochs_completed,
        summary.seconds,
        summary.samples_per_s,
        summary
            .final_loss
            .map_or("n/a".into(), |l| format!("{l:.4}"))
    );
    run.update_manifest(json!({"finished": run_folder::unix_time(), "train": summary}))?;

    let eval = if args.evaluate && prepared.test.is_some() {
        let records = pipeline::evaluate(
            model.method.as_ref(),
            &prepared,
            &recipe.eval,
            &[Protocol::Knn, Protocol::Linear],
            args.device,
        )?;
        write_eval(&run, &records, summary.steps)?;
        records
    } else {
        Vec::new()
    };
    Ok(PretrainReport {
        run_dir: run.dir,
        summary,
        eval,
    })
}

fn write_eval(run: &RunFolder, records: &[EvalRecord], step: u64) -> Result<()> {
    let v = json!({"checkpoint_step": step, "time": run_folder::unix_time(), "records": records});
    run_folder::atomic_write(
        &run.eval_path(),
        serde_json::to_string_pretty(&v)?.as_bytes(),
    )
}

/// A run's recipe with its trained weights loaded, and its data.
pub struct LoadedRun {
    pub run: RunFolder,
    pub recipe: Recipe,
    pub prepared: pipeline::Prepared,
    pub model: pipeline::Model,
    pub step: u64,
}

pub fn load_run(
    dir: &Path,
    overrides: &[String],
    device: Device,
    on_bad_input: BadInputPolicy,
) -> Result<LoadedRun> {
    let run = RunFolder::open(dir)?;
    let recipe = Recipe::load(&run.recipe_path(), overrides)?;
    let prepared = pipeline::prepare_data(
        &recipe,
        on_bad_input,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    let model = pipeline::build_model(&recipe, &prepared.train.sample_shape(), device)?;
    let c = checkpoint::load_latest(&run.checkpoints())?
        .with_context(|| format!("{}: no checkpoint to evaluate", run.dir.display()))?;
    checkpoint::restore_model(&model.vs, &c.model, &c.path)?;
    Ok(LoadedRun {
        run,
        recipe,
        prepared,
        model,
        step: c.state.step,
    })
}

pub fn eval_run(
    dir: &Path,
    overrides: &[String],
    protocols: &[Protocol],
    device: Device,
    threads: usize,
) -> Result<Vec<EvalRecord>> {
    backend::set_threads(threads);
    let r = load_run(dir, overrides, device, BadInputPolicy::Fail)?;
    let records = pipeline::evaluate(
        r.model.method.as_ref(),
        &r.prepared,
        &r.recipe.eval,
        protocols,
        device,
    )?;
    write_eval(&r.run, &records, r.step)?;
    Ok(records)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

pub fn embed_run(
    dir: &Path,
    out: &Path,
    split: Split,
    device: Device,
    threads: usize,
) -> Result<(i64, i64)> {
    backend::set_threads(threads);
    let r = load_run(dir, &[], device, BadInputPolicy::Fail)?;
    let source = match split {
        Split::Train => r.prepared.train.clone(),
        Split::Test => r
            .prepared
            .test
            .clone()
            .context("the run's recipe has no test split")?,
    };
    let n = source.len();
    let e = pipeline::embed(
        r.model.method.as_ref(),
        source.as_ref(),
        n,
        r.recipe.eval.batch,
        device,
    );
    let labels = pipeline::labels(source.as_ref(), n).ok();
    crate::export::write_embeddings(out, &e, labels.as_ref())?;
    let s = e.size();
    Ok((s[0], s[1]))
}
