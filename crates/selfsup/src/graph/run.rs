//! Runs a graph recipe: for every seed, pretrain a fresh model, embed, score with the recipe's
//! protocol; then mean ± std over seeds beside the raw-feature baseline and the paper's figure.
use super::batch::{dense_rows, GraphBatch};
use super::eval::{
    graph_cv_accuracy, node_probe_adam, node_probe_dgi, random_split_probe, AdamProbeConfig,
    GraphCvConfig,
};
use super::methods;
use super::recipe::{GraphDataConfig, GraphEvalConfig, GraphRecipe, PaperFigure};
use super::train::{embed_graphs, pretrain_graph_level, pretrain_node_level};
use crate::data::graph::{Graph, GraphSet};
use crate::data::planetoid::{load_planetoid, load_planetoid_npz};
use crate::data::tu::load_tu;
use crate::stats::{mean, std_population};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Model initialisation and dropout draw from libtorch's global generator: one seed's run holds
/// this lock so concurrent runs (tests) cannot interleave draws.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The data of a graph recipe.
pub enum GraphData {
    Nodes(Graph),
    Graphs(GraphSet),
}

pub fn load_data(cfg: &GraphDataConfig) -> Result<GraphData> {
    Ok(match cfg {
        GraphDataConfig::Planetoid {
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
        GraphDataConfig::PlanetoidNpz {
            path,
            row_normalise,
        } => {
            let mut g = load_planetoid_npz(path)?;
            if *row_normalise {
                g.features.row_normalise();
            }
            GraphData::Nodes(g)
        }
        GraphDataConfig::Tu {
            path,
            name,
            with_attributes,
        } => GraphData::Graphs(load_tu(path, name, *with_attributes)?),
    })
}

/// One seed's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    /// The protocol's headline accuracy (%), e.g. test accuracy at the best validation epoch.
    pub accuracy: f64,
    /// Protocol-specific companions (final-epoch accuracy, per-fold figures, …).
    pub details: serde_json::Value,
    pub pretrain_seconds: f64,
    pub epochs_run: usize,
    pub final_loss: f64,
}

/// A whole recipe's outcome (or, while it runs, the seeds finished so far).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphRunResult {
    pub recipe: String,
    /// [`recipe_fingerprint`] of the recipe that produced these seeds.
    pub recipe_fingerprint: String,
    pub method: String,
    pub dataset: String,
    pub protocol: String,
    pub seeds: Vec<SeedResult>,
    /// Mean and population std (GraphMAE's `np.std`) of the seeds' accuracies, in %.
    pub mean: f64,
    pub std: f64,
    /// The same protocol on the raw input features (node rows, or sum-pooled for graphs).
    pub raw_features: f64,
    pub paper: Option<PaperFigure>,
    pub mean_pretrain_seconds: f64,
    pub total_seconds: f64,
}

/// Scores embeddings with the recipe's protocol: (headline accuracy in %, details).
fn score(
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
        _ => anyhow::bail!("the evaluation protocol does not fit the data (node vs graph level)"),
    }
}

/// The raw-feature input of the protocol: node features, or sum-pooled node features per graph.
fn raw_features(data: &GraphData) -> Tensor {
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

/// blake3 of everything in a recipe that one seed's result depends on (all but its seed list):
/// results of a run can be reused for the same seed only under the same fingerprint.
pub fn recipe_fingerprint(recipe: &GraphRecipe) -> String {
    let mut r = recipe.clone();
    r.seeds.clear();
    let text = serde_json::to_string(&r).expect("a recipe serialises");
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Runs every seed of `recipe`. `log` receives progress lines; `on_seed` the result so far after
/// each seed (to save it, so an interrupted table loses at most the seed it was running). Seeds
/// already in `previous` (an earlier, interrupted run of the same recipe: same fingerprint,
/// checked) are taken from it instead of being run again — each seed is an independent run, so
/// this changes no figure. With `save_embeddings`, each seed's embeddings (and labels) are written
/// there as `<recipe>-seed<k>.npy`.
pub fn run(
    recipe: &GraphRecipe,
    device: Device,
    save_embeddings: Option<&std::path::Path>,
    previous: Option<&GraphRunResult>,
    mut on_seed: impl FnMut(&GraphRunResult) -> Result<()>,
    mut log: impl FnMut(&str),
) -> Result<GraphRunResult> {
    let fingerprint = recipe_fingerprint(recipe);
    if let Some(p) = previous {
        anyhow::ensure!(
            p.recipe == recipe.name && p.recipe_fingerprint == fingerprint,
            "the saved results of recipe {} were made with other settings than {}'s now \
             (fingerprint {} against {}); remove them or write to another file",
            p.recipe,
            recipe.name,
            &p.recipe_fingerprint[..p.recipe_fingerprint.len().min(12)],
            &fingerprint[..12]
        );
    }
    let start = Instant::now();
    let data = load_data(&recipe.data)?;
    let (dataset, in_dim) = match &data {
        GraphData::Nodes(g) => (g.name.clone(), g.num_features() as i64),
        GraphData::Graphs(s) => (s.name.clone(), s.num_features as i64),
    };
    let node_batch = match &data {
        GraphData::Nodes(g) => Some(GraphBatch::from_graph(g, device)),
        GraphData::Graphs(_) => None,
    };
    let (raw, _) = score(&raw_features(&data), &data, &recipe.eval, 0)?;
    log(&format!(
        "{}: {} on {dataset} — raw features: {raw:.2} % ({})",
        recipe.name,
        recipe.method.name(),
        recipe.eval.describe()
    ));
    let summary = |seeds: &[SeedResult]| {
        let accs: Vec<f64> = seeds.iter().map(|s| s.accuracy).collect();
        let secs: Vec<f64> = seeds.iter().map(|s| s.pretrain_seconds).collect();
        GraphRunResult {
            recipe: recipe.name.clone(),
            recipe_fingerprint: fingerprint.clone(),
            method: recipe.method.name().to_string(),
            dataset: dataset.clone(),
            protocol: recipe.eval.describe(),
            mean: mean(&accs),
            std: std_population(&accs),
            raw_features: raw,
            paper: recipe.paper.clone(),
            mean_pretrain_seconds: mean(&secs),
            total_seconds: start.elapsed().as_secs_f64(),
            seeds: seeds.to_vec(),
        }
    };
    let mut seeds: Vec<SeedResult> = Vec::new();
    for &seed in &recipe.seeds {
        if let Some(done) = previous.and_then(|p| p.seeds.iter().find(|s| s.seed == seed)) {
            log(&format!(
                "  seed {seed}: {:.2} %  (saved by an earlier run of this recipe; not run again{})",
                done.accuracy,
                if save_embeddings.is_some() {
                    ", no embeddings written"
                } else {
                    ""
                }
            ));
            seeds.push(done.clone());
            continue;
        }
        let (report, emb) = {
            let _lock = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
            tch::manual_seed(seed as i64);
            let vs = VarStore::new(device);
            let mut method = methods::build(&recipe.method, &recipe.encoder, &vs.root(), in_dim)?;
            let every = (recipe.train.epochs / 5).max(1);
            let mut progress = |e: usize, l: f64| {
                if (e + 1) % every == 0 {
                    log(&format!(
                        "  seed {seed} epoch {:>5}/{} loss {l:.4}",
                        e + 1,
                        recipe.train.epochs
                    ));
                }
            };
            match &data {
                GraphData::Nodes(_) => {
                    let b = node_batch.as_ref().expect("built above");
                    let r = pretrain_node_level(
                        method.as_mut(),
                        &vs,
                        b,
                        &recipe.train,
                        seed,
                        &mut progress,
                    )?;
                    (r, method.embed(b))
                }
                GraphData::Graphs(set) => {
                    let pooling = match &recipe.eval {
                        GraphEvalConfig::GraphCv { pooling, .. } => *pooling,
                        _ => unreachable!("validated: graph data goes with graph_cv"),
                    };
                    let r = pretrain_graph_level(
                        method.as_mut(),
                        &vs,
                        set,
                        &recipe.train,
                        seed,
                        device,
                        &mut progress,
                    )?;
                    let e = embed_graphs(
                        method.as_ref(),
                        set,
                        pooling,
                        recipe.train.batch_size,
                        device,
                    );
                    (r, e)
                }
            }
        };
        if let Some(dir) = save_embeddings {
            let labels = match &data {
                GraphData::Nodes(g) => Tensor::from_slice(&g.node_labels),
                GraphData::Graphs(set) => Tensor::from_slice(&set.labels),
            };
            let path = dir.join(format!("{}-seed{seed}.npy", recipe.name));
            crate::export::write_embeddings(&path, &emb.to_device(Device::Cpu), Some(&labels))?;
        }
        let (acc, details) = score(&emb, &data, &recipe.eval, seed)?;
        log(&format!(
            "  seed {seed}: {acc:.2} %  (pretraining {:.1} s, {} epochs)",
            report.seconds, report.epochs_run
        ));
        seeds.push(SeedResult {
            seed,
            accuracy: acc,
            details,
            pretrain_seconds: report.seconds,
            epochs_run: report.epochs_run,
            final_loss: report.losses.last().copied().unwrap_or(f64::NAN),
        });
        on_seed(&summary(&seeds))?;
    }
    Ok(summary(&seeds))
}

/// A Markdown table of results, one row per recipe.
pub fn format_results(results: &[GraphRunResult]) -> String {
    let mut s = String::from(
        "| dataset | method | protocol | seeds | ours (mean ± std) | paper | raw features | pretrain s/seed |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let paper = r
            .paper
            .as_ref()
            .map(|p| format!("{:.2} ± {:.2}", p.mean, p.std))
            .unwrap_or_else(|| "—".into());
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} ± {:.2} | {} | {:.2} | {:.1} |\n",
            r.dataset,
            r.method,
            r.protocol,
            r.seeds.len(),
            r.mean,
            r.std,
            paper,
            r.raw_features,
            r.mean_pretrain_seconds
        ));
    }
    s
}
