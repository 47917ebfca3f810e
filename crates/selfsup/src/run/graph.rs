//! One graph run, as every run is: a run folder, the trunk's training loop (resumable, with
//! checkpoints and metrics), and the recipe's graph protocol on the learned embeddings beside
//! the raw node features.
use super::{PretrainReport, RunOptions};
use crate::backend;
use crate::data::planetoid::{load_planetoid, load_planetoid_npz};
use crate::data::tu::load_tu;
use crate::error::BadInputPolicy;
use crate::eval::graph::protocol::GraphEvalConfig;
use crate::eval::graph::{
    graph_cv_accuracy, node_probe_adam, node_probe_dgi, random_split_probe, AdamProbeConfig,
    GraphCvConfig,
};
use crate::methods;
use crate::recipe::{DataConfig, Recipe};
use crate::run::pipeline::EvalRecord;
use crate::train::graph_learner::{embed_data, GraphData, GraphLearner};
use crate::train::trainer::{self, TrainContext};
use crate::views::graph::batch::dense_rows;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Reads the graph data a recipe names.
pub fn load_data(recipe: &Recipe) -> Result<GraphData> {
    if let Some(d) = &recipe.dataset {
        d.require()?;
    }
    Ok(match &recipe.data {
        DataConfig::Planetoid {
            path,
            name,
            row_normalise,
        } => {
            let mut g = load_planetoid(path, name)?;
            if *row_normalise {
                g.features.row_normalise();
            }
            GraphData::Nodes(g)
        }
        DataConfig::PlanetoidNpz {
            path,
            row_normalise,
        } => {
            let mut g = load_planetoid_npz(path)?;
            if *row_normalise {
                g.features.row_normalise();
            }
            GraphData::Nodes(g)
        }
        DataConfig::Tu {
            path,
            name,
            with_attributes,
        } => GraphData::Graphs(load_tu(path, name, *with_attributes)?),
        other => bail!(
            "data.format: {:?} is not graph data",
            other.paths().first().map(|p| p.display().to_string())
        ),
    })
}

/// A graph method with its parameters (under the store's root).
pub struct GraphModel {
    pub vs: VarStore,
    pub method: Box<dyn methods::GraphMethod>,
}

/// Builds the recipe's graph method for `data`, initialised from the recipe's seed. The caller
/// holds [`crate::torch_rng::lock`].
pub fn build_model(recipe: &Recipe, data: &GraphData, device: Device) -> Result<GraphModel> {
    tch::manual_seed(recipe.seed as i64);
    let vs = VarStore::new(device);
    let method = methods::build_graph(
        &recipe.method,
        &recipe.encoder,
        &vs,
        data.num_features() as i64,
    )?;
    Ok(GraphModel { vs, method })
}

/// The recipe's graph protocol (validated: graph recipes have one).
pub fn protocol(recipe: &Recipe) -> Result<&GraphEvalConfig> {
    recipe
        .eval
        .graph
        .as_ref()
        .context("graph data needs [eval.graph] with a protocol")
}

/// The pooling of graph-level protocols (node-level ones score nodes as they are).
fn pooling(recipe: &Recipe) -> crate::encoders::graph::Pooling {
    match recipe.eval.graph {
        Some(GraphEvalConfig::GraphCv { pooling, .. }) => pooling,
        _ => Default::default(),
    }
}

/// A graph run's embeddings on the CPU — every node of its graph, or every graph of its set —
/// with their labels (`-1` where a node has none).
pub fn run_embeddings(dir: &Path, recipe: Recipe, device: Device) -> Result<(Tensor, Vec<i64>)> {
    let g = load_run(dir, recipe, device)?;
    let e = embed(&g.model, &g.recipe, &g.data, device).to_device(Device::Cpu);
    Ok((e, g.data.labels().to_vec()))
}

/// The embeddings the protocol scores, in evaluation mode.
pub fn embed(model: &GraphModel, recipe: &Recipe, data: &GraphData, device: Device) -> Tensor {
    let _g = tch::no_grad_guard();
    embed_data(
        model.method.as_ref(),
        data,
        pooling(recipe),
        recipe.train.batch_size,
        device,
    )
}

/// Pretrains the recipe's graph method in a run folder (resumable), then scores it with the
/// recipe's protocol — and the raw node features beside it when `eval.raw_baseline` is on.
pub fn pretrain(recipe: Recipe, args: &RunOptions) -> Result<PretrainReport> {
    let data = load_data(&recipe)?;
    pretrain_on(recipe, &data, args)
}

/// [`pretrain`] on graph data already read from the recipe's `data` (a table reads it once for
/// all its seeds).
pub fn pretrain_on(recipe: Recipe, data: &GraphData, args: &RunOptions) -> Result<PretrainReport> {
    if args.on_bad_input == BadInputPolicy::Skip {
        bail!(
            "--on-bad-input=skip: the graph readers read a graph (or a TU set) whole and cannot \
             skip parts of it; fix the input, or leave the policy at fail"
        );
    }
    let threads = backend::set_threads(args.threads);
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    let fingerprint = data.fingerprint();
    let (run, resume) = super::open_run(&run_dir, &recipe, args.resume)?;
    let protocol = protocol(&recipe)?.clone();
    // Dropout draws from libtorch's generator during training: hold it from seeding to the
    // last embedding, so that nothing else draws in between.
    let generator = crate::torch_rng::lock();
    let model = build_model(&recipe, data, args.device)?;
    super::write_start_manifest(
        &run,
        &recipe,
        args,
        threads,
        &fingerprint,
        resume.is_some(),
        json!({"dataset": data.name(), "protocol": protocol.describe()}),
    )?;
    eprintln!(
        "selfsup: {} with {} on {} ({} threads, {}), run folder {}",
        recipe.method.name(),
        recipe.encoder.kind(),
        data.name(),
        threads,
        backend::device_name(args.device),
        run.dir.display()
    );
    if let GraphEvalConfig::Joint(cfg) = &protocol {
        let report = super::graph_joint::joint_run(run, &recipe, data, model, cfg, args);
        drop(generator);
        return report;
    }
    let mut learner = GraphLearner::new(
        model.method.as_ref(),
        recipe.method.name(),
        data,
        recipe.train.batch_size,
        args.device,
    )
    .with_precision(recipe.train.precision);
    let summary = trainer::train(
        TrainContext {
            train: &recipe.train,
            seed: recipe.seed,
            training_hash: recipe.training_hash(),
            monitor_every: 0,
            vs: &model.vs,
            learner: &mut learner,
            device: args.device,
            checkpoints: run.checkpoints(),
            metrics_path: run.metrics(),
            data_fingerprint: fingerprint,
            progress: args.progress,
            stop: args.stop.clone(),
            monitor: None,
            ranks: None,
            holds_generator_lock: true,
        },
        resume,
    )?;
    super::finish_training(&run, &summary)?;
    let emb = args
        .evaluate
        .then(|| embed(&model, &recipe, data, args.device));
    drop(generator);
    let eval = match emb {
        Some(emb) => {
            let mut records = vec![record("learned", &emb, data, &protocol, recipe.seed)?];
            if recipe.eval.raw_baseline {
                records.push(record(
                    "raw",
                    &raw_features(data),
                    data,
                    &protocol,
                    recipe.seed,
                )?);
            }
            super::write_eval(&run, &records, None, summary.steps)?;
            records
        }
        None => Vec::new(),
    };
    Ok(PretrainReport {
        run_dir: run.dir,
        summary,
        eval,
        test_collapse: None,
    })
}

/// A trained graph run loaded from its folder: recipe, data and the latest checkpoint's model.
pub struct LoadedGraphRun {
    pub recipe: Recipe,
    pub data: GraphData,
    pub model: GraphModel,
}

pub fn load_run(dir: &Path, recipe: Recipe, device: Device) -> Result<LoadedGraphRun> {
    let data = load_data(&recipe)?;
    let model = {
        let _generator = crate::torch_rng::lock();
        build_model(&recipe, &data, device)?
    };
    let c =
        crate::train::checkpoint::load_latest(&super::folder::RunFolder::open(dir)?.checkpoints())?
            .with_context(|| format!("{}: no checkpoint", dir.display()))?;
    crate::train::checkpoint::restore_model(&model.vs, &c.model, &c.path)?;
    Ok(LoadedGraphRun {
        recipe,
        data,
        model,
    })
}

/// Sizes of the protocol's fitting and scored parts, for the record.
fn split_sizes(data: &GraphData, protocol: &GraphEvalConfig) -> (i64, i64) {
    let n = data.labels().iter().filter(|&&y| y >= 0).count() as i64;
    match (protocol, data) {
        (
            GraphEvalConfig::PublicSplit { .. }
            | GraphEvalConfig::DgiLogreg { .. }
            | GraphEvalConfig::Joint(_),
            GraphData::Nodes(g),
        ) => g
            .split
            .as_ref()
            .map_or((n, n), |s| (s.train.len() as i64, s.test.len() as i64)),
        (GraphEvalConfig::RandomSplit { train_fraction, .. }, _) => {
            let tr = (n as f64 * train_fraction).round() as i64;
            (tr, n - tr)
        }
        (GraphEvalConfig::GraphCv { folds, .. }, _) => {
            let te = n / (*folds as i64).max(1);
            (n - te, te)
        }
        _ => (n, n),
    }
}

/// The protocol's figure for one feature set as an evaluation record (accuracy in [0, 1]).
pub fn record(
    features: &str,
    emb: &Tensor,
    data: &GraphData,
    protocol: &GraphEvalConfig,
    seed: u64,
) -> Result<EvalRecord> {
    let t = Instant::now();
    let (acc, details) = score(emb, data, protocol, seed)?;
    let (train_size, test_size) = split_sizes(data, protocol);
    Ok(EvalRecord {
        protocol: protocol.describe(),
        features: features.into(),
        dim: emb.size().get(1).copied().unwrap_or(0),
        train_size,
        test_size,
        accuracy: acc / 100.0,
        seconds: t.elapsed().as_secs_f64(),
        details,
    })
}

/// Scores embeddings with the recipe's protocol: (headline accuracy in %, details).
pub fn score(
    emb: &Tensor,
    data: &GraphData,
    eval: &GraphEvalConfig,
    seed: u64,
) -> Result<(f64, serde_json::Value)> {
    let emb = emb.to_kind(Kind::Float).to_device(Device::Cpu);
    match (eval, data) {
        (
            GraphEvalConfig::PublicSplit {
                lr,
                weight_decay,
                epochs,
            },
            GraphData::Nodes(g),
        ) => {
            let split = g
                .split
                .as_ref()
                .context("the public-split protocol needs a split")?;
            let cfg = AdamProbeConfig {
                lr: *lr,
                weight_decay: *weight_decay,
                epochs: *epochs,
            };
            let r = node_probe_adam(&emb, &g.node_labels, split, &cfg, seed)?;
            Ok((
                100.0 * r.early_stop_test,
                serde_json::json!({
                    "final_epoch_test": 100.0 * r.final_test,
                    "best_val": 100.0 * r.best_val,
                    "best_epoch": r.best_epoch,
                }),
            ))
        }
        (GraphEvalConfig::DgiLogreg { runs, epochs, lr }, GraphData::Nodes(g)) => {
            let split = g.split.as_ref().context("the DGI protocol needs a split")?;
            let r = node_probe_dgi(&emb, &g.node_labels, split, *runs, *epochs, *lr, seed)?;
            Ok((
                100.0 * r.mean,
                serde_json::json!({ "std_over_runs": 100.0 * r.std }),
            ))
        }
        (
            GraphEvalConfig::RandomSplit {
                train_fraction,
                repeats,
            },
            GraphData::Nodes(g),
        ) => {
            let r = random_split_probe(&emb, &g.node_labels, *train_fraction, *repeats, seed)?;
            Ok((
                100.0 * r.mean,
                serde_json::json!({ "std_over_splits": 100.0 * r.std }),
            ))
        }
        (GraphEvalConfig::GraphCv { folds, cv, .. }, GraphData::Graphs(set)) => {
            let cfg = cv.clone().unwrap_or_else(GraphCvConfig::default);
            let r = graph_cv_accuracy(&emb, &set.labels, *folds, seed, &cfg)?;
            Ok((
                100.0 * r.mean,
                serde_json::json!({
                    "fold_accuracies": r.fold_accuracies.iter().map(|a| 100.0 * a).collect::<Vec<_>>(),
                    "std_over_folds": 100.0 * r.std,
                    "selected_weight_decays": r.selected_weight_decays,
                }),
            ))
        }
        (GraphEvalConfig::Joint(_), _) => anyhow::bail!(
            "the joint protocol trains the encoder with the labels inside the run (selfsup graph \
             or pretrain); it does not score saved embeddings"
        ),
        _ => anyhow::bail!("the evaluation protocol does not fit the data (node vs graph level)"),
    }
}

/// The raw-feature input of the protocol: node features, or sum-pooled node features per graph.
pub fn raw_features(data: &GraphData) -> Tensor {
    match data {
        GraphData::Nodes(g) => dense_rows(&g.features, None, Device::Cpu),
        GraphData::Graphs(set) => {
            let rows: Vec<Tensor> = set
                .graphs
                .iter()
                .map(|g| {
                    dense_rows(&g.features, None, Device::Cpu).sum_dim_intlist(
                        0,
                        false,
                        Kind::Float,
                    )
                })
                .collect();
            Tensor::stack(&rows, 0)
        }
    }
}
