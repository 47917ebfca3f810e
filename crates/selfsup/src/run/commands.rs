//! The subcommands (`pretrain`, `eval`, `embed`) as library functions over a run folder.
use super::{finish_training, open_run, write_eval, write_start_manifest};
pub use super::{PretrainReport, RunOptions};
use crate::backend;
use crate::distributed::{ProcessGroup, WorldEnv};
use crate::error::{BadInputPolicy, DataError};
use crate::recipe::{DataConfig, Recipe};
use crate::run::folder::{self as run_folder, RunFolder};
use crate::run::pipeline::{self, EvalRecord, Protocol};
use crate::train::checkpoint;
use crate::train::learner::ViewLearner;
use crate::train::trainer::{self, TrainContext};
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

impl PretrainArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            run_dir: self.run_dir.clone(),
            resume: self.resume,
            device: self.device,
            threads: self.threads,
            on_bad_input: self.on_bad_input,
            evaluate: self.evaluate,
            progress: self.progress,
            stop: self.stop.clone(),
        }
    }
}

/// Makes the data paths absolute, so the run folder's recipe works from any directory.
pub fn absolutise(data: &mut DataConfig) {
    for p in data.paths_mut() {
        if let Ok(a) = std::fs::canonicalize(&*p) {
            *p = a;
        }
    }
}

/// Reads the recipe file with its overrides and runs [`pretrain_recipe`]; under a launcher
/// (`selfsup launch`, torchrun, srun: more than one process in the environment's world) this
/// process joins the others and trains its share of every batch (`docs/distributed.md`).
pub fn pretrain(args: PretrainArgs) -> Result<PretrainReport> {
    let recipe = Recipe::load(&args.recipe, &args.overrides)?;
    let world = WorldEnv::from_process()?.filter(|e| e.world_size > 1);
    let Some(env) = world else {
        return pretrain_recipe(recipe, &args.options());
    };
    if args.device != Device::Cpu {
        anyhow::bail!(
            "data-parallel training runs on CPUs over Gloo in this build; NCCL for {} is not \
             built yet",
            backend::device_name(args.device)
        );
    }
    let group = ProcessGroup::gloo(&env, distributed_timeout()?)?;
    pretrain_recipe_ranks(recipe, &args.options(), Some(&group))
}

/// How long a rank waits for the others (rendezvous, every collective): 30 minutes, as
/// PyTorch's default, or `SELFSUP_DIST_TIMEOUT` seconds.
fn distributed_timeout() -> Result<std::time::Duration> {
    let secs = match std::env::var("SELFSUP_DIST_TIMEOUT") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .with_context(|| format!("SELFSUP_DIST_TIMEOUT={v:?} is not a number of seconds"))?,
        Err(_) => 1800,
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// One pretraining of a resolved recipe, any modality: run folder, training (resumable), and
/// the recipe's evaluation.
pub fn pretrain_recipe(recipe: Recipe, args: &RunOptions) -> Result<PretrainReport> {
    pretrain_recipe_ranks(recipe, args, None)
}

fn pretrain_recipe_ranks(
    mut recipe: Recipe,
    args: &RunOptions,
    ranks: Option<&ProcessGroup>,
) -> Result<PretrainReport> {
    absolutise(&mut recipe.data);
    if recipe.data.is_graph() {
        if ranks.is_some() {
            anyhow::bail!(
                "graph methods train full-batch on one graph and do not split over processes; \
                 run {} in one process",
                recipe.name
            );
        }
        return crate::run::graph::pretrain(recipe, args);
    }
    backend::set_threads(args.threads);
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    if args.resume {
        // Training a tokenizer is not bit-reproducible (the tokenizers crate
        // iterates hash maps seeded at random): a resumed run reads the one it saved.
        pipeline::use_run_tokenizer(&mut recipe, &run_dir);
    }
    let prepared = pipeline::prepare_data(
        &recipe,
        args.on_bad_input,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    pretrain_prepared_ranks(recipe, prepared, &run_dir, args, ranks)
}

/// Pretrains `recipe` on data already prepared (a table that builds its own training set —
/// SimCore's target ∪ coreset — passes it here; `prepared.fingerprint` names it in the run's
/// manifest and checkpoints).
pub fn pretrain_prepared(
    recipe: Recipe,
    prepared: pipeline::Prepared,
    run_dir: &Path,
    args: &RunOptions,
) -> Result<PretrainReport> {
    pretrain_prepared_ranks(recipe, prepared, run_dir, args, None)
}

/// [`pretrain_prepared`] as one rank of `ranks` when given: rank 0 owns the run folder (it
/// creates it, writes checkpoints, metrics and the evaluation); the other ranks read its
/// checkpoint when resuming and write nothing.
fn pretrain_prepared_ranks(
    recipe: Recipe,
    prepared: pipeline::Prepared,
    run_dir: &Path,
    args: &RunOptions,
    ranks: Option<&ProcessGroup>,
) -> Result<PretrainReport> {
    let threads = backend::set_threads(args.threads);
    let leader = ranks.is_none_or(|g| g.rank() == 0);
    let model = pipeline::build_model_for(&recipe, prepared.train.as_ref(), args.device)?;
    let (run, resume) = if leader {
        let (run, resume) = open_run(run_dir, &recipe, args.resume)?;
        write_start_manifest(
            &run,
            &recipe,
            args,
            threads,
            &prepared.fingerprint,
            resume.is_some(),
            json!({"train_samples": prepared.train.len(), "skipped_inputs": prepared.skipped,
                   "processes": ranks.map_or(1, |g| g.world_size())}),
        )?;
        (run, resume)
    } else {
        (RunFolder::at(run_dir), None)
    };
    let resume = match ranks {
        Some(g) => {
            // The others wait for rank 0's folder, then read the checkpoint it resumes from.
            g.barrier()?;
            if leader || !args.resume {
                resume
            } else {
                checkpoint::load_latest(&run.checkpoints())?
            }
        }
        None => resume,
    };
    if leader {
        eprintln!(
            "selfsup: {} with {} on {} samples ({} threads, {}{}), run folder {}",
            recipe.method.name(),
            recipe.encoder.kind(),
            prepared.pretraining().len(),
            threads,
            backend::device_name(args.device),
            ranks.map_or(String::new(), |g| format!(
                ", {} processes, {} samples per process per step",
                g.world_size(),
                recipe.train.batch_size / g.world_size()
            )),
            run.dir.display()
        );
    }

    let method = model.method.as_ref();
    let mut monitor =
        |_epoch: u64| pipeline::monitor_knn(method, &prepared, &recipe.eval, args.device);
    let t = &recipe.train;
    if let Some(tok) = &prepared.tokenizer {
        tok.save(&run.dir.join("tokenizer.json"))?;
    }
    let mut learner = ViewLearner::new(
        method,
        prepared.pretraining(),
        args.device,
        t.precision,
        t.batch_size,
        recipe.views.local_crops,
        t.workers,
        t.prefetch,
    )?
    .with_channels_last(t.channels_last);
    if let Some(g) = ranks {
        learner = learner.across_ranks(g, t.sync_batch_norm)?;
    }
    if t.channels_last {
        let n = crate::train::memory_format::convert_conv_weights(&model.vs);
        tracing::info!("channels-last: {n} convolution kernels converted");
    }
    let ctx = TrainContext {
        train: t,
        seed: recipe.seed,
        training_hash: recipe.training_hash(),
        monitor_every: recipe.eval.monitor_every,
        vs: &model.vs,
        learner: &mut learner,
        device: args.device,
        checkpoints: run.checkpoints(),
        metrics_path: run.metrics(),
        data_fingerprint: prepared.fingerprint.clone(),
        progress: args.progress && leader,
        stop: args.stop.clone(),
        monitor: if prepared.test.is_some() && leader {
            Some(&mut monitor)
        } else {
            None
        },
        holds_generator_lock: false,
        ranks,
    };
    let summary = trainer::train(ctx, resume)?;
    if !leader {
        return Ok(PretrainReport {
            run_dir: run.dir,
            summary,
            eval: Vec::new(),
            test_collapse: None,
        });
    }
    if let Some(g) = ranks {
        // The node's other processes stop after training: the evaluation takes their threads.
        backend::set_threads(threads * g.local_world_size());
    }
    finish_training(&run, &summary)?;

    let (eval, test_collapse) = if args.evaluate && prepared.test.is_some() {
        let (records, collapse) = pipeline::evaluate_with_collapse(
            model.method.as_ref(),
            &prepared,
            &recipe.eval,
            &pipeline::recipe_protocols(&recipe.eval),
            args.device,
        )?;
        write_eval(&run, &records, Some(&collapse), summary.steps)?;
        run.update_manifest(json!({"peak_rss_mib_after_evaluation": backend::peak_rss_mib()}))?;
        (records, Some(collapse))
    } else {
        (Vec::new(), None)
    };
    Ok(PretrainReport {
        run_dir: run.dir,
        summary,
        eval,
        test_collapse,
    })
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
    load_run_weights(dir, overrides, device, on_bad_input, true)
}

/// [`load_run`], optionally leaving the model at its initialisation (`trained = false`: the
/// from-scratch control of fine-tuning).
pub fn load_run_weights(
    dir: &Path,
    overrides: &[String],
    device: Device,
    on_bad_input: BadInputPolicy,
    trained: bool,
) -> Result<LoadedRun> {
    let run = RunFolder::open(dir)?;
    let mut recipe = Recipe::load(&run.recipe_path(), overrides)?;
    pipeline::use_run_tokenizer(&mut recipe, &run.dir);
    anyhow::ensure!(
        !recipe.data.is_graph(),
        "{}: a graph run; its protocol ({}) scores it after pretraining (eval.json), and \
         `selfsup embed --run` exports its embeddings for other protocols",
        dir.display(),
        recipe
            .eval
            .graph
            .as_ref()
            .map_or_else(String::new, |p| p.describe())
    );
    let prepared = pipeline::prepare_data(
        &recipe,
        on_bad_input,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    let model = pipeline::build_model_for(&recipe, prepared.train.as_ref(), device)?;
    let mut step = 0;
    if trained {
        let c = checkpoint::load_latest(&run.checkpoints())?
            .with_context(|| format!("{}: no checkpoint to evaluate", run.dir.display()))?;
        checkpoint::restore_model(&model.vs, &c.model, &c.path)?;
        step = c.state.step;
    }
    Ok(LoadedRun {
        run,
        recipe,
        prepared,
        model,
        step,
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
    write_eval(&r.run, &records, None, r.step)?;
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
    let format = crate::run::export::EmbedFormat::from_path(out)?;
    embed_run_as(dir, out, format, split, device, threads)
}

/// [`embed_run`] in a format other than the file name's.
pub fn embed_run_as(
    dir: &Path,
    out: &Path,
    format: crate::run::export::EmbedFormat,
    split: Split,
    device: Device,
    threads: usize,
) -> Result<(i64, i64)> {
    backend::set_threads(threads);
    let recipe = Recipe::load(&RunFolder::open(dir)?.recipe_path(), &[])?;
    if recipe.data.is_graph() {
        // A graph run embeds what its protocol scores: every node of the graph, or every graph
        // of the set (labels −1 where a node has none); there is no separate split to pick.
        let (e, labels) = crate::run::graph::run_embeddings(dir, recipe, device)?;
        let labels = tch::Tensor::from_slice(&labels);
        crate::run::export::write_embeddings_as(out, format, &e, Some(&labels), &[])?;
        let s = e.size();
        return Ok((s[0], s[1]));
    }
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
    )?;
    let labels = pipeline::labels(source.as_ref(), n).ok();
    let sources: Vec<Option<String>> = (0..n).map(|i| source.source(i)).collect();
    let sources = if sources.iter().any(Option::is_some) {
        sources
    } else {
        Vec::new()
    };
    crate::run::export::write_embeddings_as(out, format, &e, labels.as_ref(), &sources)?;
    let s = e.size();
    Ok((s[0], s[1]))
}

/// Where `selfsup eval` takes its features from.
pub enum EvalSource {
    /// A run folder: its latest checkpoint embeds the recipe's train and test splits; the raw
    /// inputs are scored beside them when the recipe's `eval.raw_baseline` is on.
    Run(PathBuf),
    /// Exported embeddings (`.npy` with a `.labels.npy` beside it, or `.safetensors` with
    /// `embeddings` and `labels`): the probe/kNN training split and the test split.
    Files { train: PathBuf, test: PathBuf },
}

/// Reads embeddings and labels written by `selfsup embed` as .npy, .safetensors or .parquet (or
/// by any tool in the same layout).
/// A file that cannot be read or holds no usable embeddings is a [`DataError`] naming it.
pub fn read_embeddings(path: &Path) -> Result<(tch::Tensor, tch::Tensor)> {
    let bad = |message: String| DataError::format(path, message);
    let (e, l) = match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            let e = tch::Tensor::read_npy(path).map_err(|e| bad(e.to_string()))?;
            let lp = path.with_extension("labels.npy");
            let l = tch::Tensor::read_npy(&lp).map_err(|e| {
                DataError::format(&lp, format!("labels for {}: {e}", path.display()))
            })?;
            (e, l)
        }
        Some("safetensors") => {
            let named = tch::Tensor::read_safetensors(path).map_err(|e| bad(e.to_string()))?;
            let get = |n: &str| {
                named
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, t)| t.shallow_clone())
                    .ok_or_else(|| bad(format!("no tensor named {n}")))
            };
            (get("embeddings")?, get("labels")?)
        }
        Some("parquet") => {
            crate::run::export::read_parquet(path).map_err(|e| bad(format!("{e:#}")))?
        }
        _ => return Err(bad("use a .npy, .safetensors or .parquet file".into()).into()),
    };
    if e.dim() != 2 {
        return Err(bad(format!(
            "embeddings must be a matrix [N, D], found shape {:?}",
            e.size()
        ))
        .into());
    }
    if e.size()[0] == 0 || e.size()[1] == 0 {
        return Err(bad(format!("no embeddings to evaluate (shape {:?})", e.size())).into());
    }
    if l.dim() != 1 || l.size()[0] != e.size()[0] {
        return Err(bad(format!(
            "{} labels for {} embeddings",
            l.numel(),
            e.size()[0]
        ))
        .into());
    }
    let e = e.to_kind(tch::Kind::Float);
    if !bool::try_from(e.isfinite().all()).unwrap_or(false) {
        return Err(bad("the embeddings contain NaN or infinite values".into()).into());
    }
    let l = l.to_kind(tch::Kind::Int64);
    if i64::try_from(l.min()).unwrap_or(-1) < 0 {
        return Err(bad("labels must be non-negative class indices".into()).into());
    }
    Ok((e, l))
}

/// Runs evaluation-suite protocols; with a run, the records also go to `<run>/eval-suite.json`.
pub fn eval_suite(
    source: &EvalSource,
    overrides: &[String],
    protocols: &[crate::eval::suite::SuiteProtocol],
    mut cfg: crate::eval::suite::SuiteConfig,
    device: Device,
    threads: usize,
) -> Result<Vec<crate::eval::suite::SuiteRecord>> {
    use crate::eval::suite::{run_protocol, Split as DataSplit};
    backend::set_threads(threads);
    let mut sets: Vec<(String, tch::Tensor, tch::Tensor, tch::Tensor, tch::Tensor)> = Vec::new();
    let mut written_to = None;
    match source {
        EvalSource::Files { train, test } => {
            let (a, ya) = read_embeddings(train)?;
            let (b, yb) = read_embeddings(test)?;
            if a.size()[1] != b.size()[1] {
                return Err(DataError::format(
                    test,
                    format!(
                        "{} dimensions, where the training embeddings {} have {}",
                        b.size()[1],
                        train.display(),
                        a.size()[1]
                    ),
                )
                .into());
            }
            sets.push(("file".into(), a, ya, b, yb));
        }
        EvalSource::Run(dir) => {
            let r = load_run(dir, overrides, device, BadInputPolicy::Fail)?;
            let ev = &r.recipe.eval;
            cfg.knn.k = ev.knn_k;
            cfg.knn.temperature = ev.knn_temperature;
            cfg.probe.max_iters = ev.probe_iters;
            cfg.probe.weight_decay = ev.probe_weight_decay;
            let test = r
                .prepared
                .test
                .as_ref()
                .context("the run's recipe names no test split to evaluate on")?;
            let train = r.prepared.train.as_ref();
            let ntr = ev.max_train_samples.unwrap_or(usize::MAX).min(train.len());
            let nte = ev.max_test_samples.unwrap_or(usize::MAX).min(test.len());
            let test = test.as_ref();
            let (ytr, yte) = (pipeline::labels(train, ntr)?, pipeline::labels(test, nte)?);
            let m = r.model.method.as_ref();
            sets.push((
                "learned".into(),
                pipeline::embed(m, train, ntr, ev.batch, device)?,
                ytr.shallow_clone(),
                pipeline::embed(m, test, nte, ev.batch, device)?,
                yte.shallow_clone(),
            ));
            if ev.raw_baseline && r.prepared.tokenizer.is_none() {
                sets.push((
                    "raw".into(),
                    pipeline::raw_features(train, ntr)?,
                    ytr,
                    pipeline::raw_features(test, nte)?,
                    yte,
                ));
            }
            written_to = Some((r.run, r.step));
        }
    }
    let mut out = Vec::new();
    for (name, a, ya, b, yb) in &sets {
        let n_classes = i64::try_from(ya.max().max_other(&yb.max()))? + 1;
        anyhow::ensure!(n_classes >= 2, "evaluation needs at least two classes");
        let split = DataSplit {
            train: a,
            train_labels: ya,
            test: b,
            test_labels: yb,
            n_classes,
        };
        for &p in protocols {
            out.extend(run_protocol(p, name, &split, &cfg)?);
        }
    }
    if let Some((run, step)) = written_to {
        let v = json!({"checkpoint_step": step, "time": run_folder::unix_time(), "records": out});
        run_folder::atomic_write(
            &run.dir.join("eval-suite.json"),
            serde_json::to_string_pretty(&v)?.as_bytes(),
        )?;
    }
    Ok(out)
}

pub use super::fine_tune::fine_tune_run;

/// `selfsup eval`: the evaluation-suite protocols on `source` and, with `fine_tune`, the
/// fine-tuning protocol on the run's encoder (with `self_training`, followed by the recipe's
/// self-training rounds), each over `seeds` where it draws.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    source: &EvalSource,
    overrides: &[String],
    protocols: &[crate::eval::suite::SuiteProtocol],
    fine_tune: bool,
    self_training: bool,
    seeds: Vec<u64>,
    from_scratch: bool,
    device: Device,
    threads: usize,
) -> Result<Vec<crate::eval::suite::SuiteRecord>> {
    let cfg = crate::eval::suite::SuiteConfig {
        seeds: seeds.clone(),
        ..Default::default()
    };
    let mut records = if protocols.is_empty() {
        Vec::new()
    } else {
        eval_suite(source, overrides, protocols, cfg, device, threads)?
    };
    if fine_tune || self_training {
        let EvalSource::Run(dir) = source else {
            let what = if fine_tune { "fine-tune" } else { "self-train" };
            anyhow::bail!("{what} needs --run: it trains the run's encoder");
        };
        records.extend(fine_tune_run(
            dir,
            overrides,
            &seeds,
            from_scratch,
            self_training,
            device,
            threads,
        )?);
    }
    Ok(records)
}
