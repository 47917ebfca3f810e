//! A graph recipe's table, as the graph papers report it: one fresh pretraining per seed (each
//! an ordinary run folder, resumable), scored with the recipe's protocol; mean ± std over the
//! seeds beside the raw-feature baseline and the paper's figure. The table is rewritten after
//! every seed and resumes from its saved seeds.
use crate::eval::graph::protocol::GraphEvalConfig;
use crate::recipe::{PaperFigure, Recipe};
use crate::run::commands::{self, RunOptions};
use crate::run::graph::{load_data, protocol, raw_features, score};
use crate::stats::{mean, std_population};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

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
    /// The loss of the last applied step (none when a finished run was only re-evaluated).
    #[serde(default)]
    pub final_loss: Option<f64>,
}

/// A whole recipe's outcome (or, while it runs, the seeds finished so far).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphRunResult {
    pub recipe: String,
    /// [`Recipe::results_fingerprint`] of the recipe that produced these seeds.
    pub recipe_fingerprint: String,
    pub method: String,
    pub dataset: String,
    pub protocol: String,
    pub seeds: Vec<SeedResult>,
    /// Mean and population std (GraphMAE's `np.std`) of the seeds' accuracies, in %.
    pub mean: f64,
    pub std: f64,
    /// The same protocol on the raw input features (node rows, or sum-pooled for graphs); under
    /// the joint protocol, which trains an encoder, the public-split logistic regression.
    pub raw_features: f64,
    /// Under the joint protocol: mean and population std (%) of the same network trained
    /// without the task from the same initial weights (the supervised control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised: Option<(f64, f64)>,
    pub paper: Option<PaperFigure>,
    pub mean_pretrain_seconds: f64,
    pub total_seconds: f64,
}

/// Where the table's runs go and what to keep.
pub struct TableOptions {
    /// Run folders `<runs>/<recipe name>-seed<k>`.
    pub runs: PathBuf,
    /// Write each seed's embeddings and labels there as `<recipe>-seed<k>.npy`.
    pub save_embeddings: Option<PathBuf>,
    /// How each run is made (`run_dir` is set per seed; `resume` continues interrupted ones).
    pub run: RunOptions,
}

/// The seeds a table runs: the recipe's `seeds`, else its `seed` alone.
pub fn seeds_of(recipe: &Recipe) -> Vec<u64> {
    recipe.seeds.clone().unwrap_or_else(|| vec![recipe.seed])
}

/// Runs every seed of `recipe`. `log` receives progress lines; `on_seed` the result so far after
/// each seed (to save it, so an interrupted table loses at most the seed it was running). Seeds
/// already in `previous` (an earlier run of the same recipe: same fingerprint, checked) are taken
/// from it instead of being run again — each seed is an independent run, so this changes no
/// figure.
pub fn run_table(
    recipe: &Recipe,
    opts: &TableOptions,
    previous: Option<&GraphRunResult>,
    mut on_seed: impl FnMut(&GraphRunResult) -> Result<()>,
    mut log: impl FnMut(&str),
) -> Result<GraphRunResult> {
    let fingerprint = recipe.results_fingerprint();
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
    let protocol = protocol(recipe)?.clone();
    // Read once: the raw-feature row and every seed's run use it.
    let data = load_data(recipe)?;
    // The joint protocol trains an encoder, so raw features get the frozen-feature protocol of
    // the same split.
    let raw_protocol = match protocol {
        GraphEvalConfig::Joint(_) => GraphEvalConfig::PublicSplit {
            lr: 0.01,
            weight_decay: 1e-4,
            epochs: 300,
        },
        ref p => p.clone(),
    };
    let (raw, _) = score(&raw_features(&data), &data, &raw_protocol, 0)?;
    log(&format!(
        "{}: {} on {} — raw features: {raw:.2} % ({})",
        recipe.name,
        recipe.method.name(),
        data.name(),
        raw_protocol.describe()
    ));
    let dataset = data.name().to_string();
    let summary = |seeds: &[SeedResult]| {
        let accs: Vec<f64> = seeds.iter().map(|s| s.accuracy).collect();
        let secs: Vec<f64> = seeds.iter().map(|s| s.pretrain_seconds).collect();
        let supervised: Vec<f64> = seeds
            .iter()
            .filter_map(|s| s.details.get("supervised").and_then(|v| v.as_f64()))
            .collect();
        GraphRunResult {
            recipe: recipe.name.clone(),
            recipe_fingerprint: fingerprint.clone(),
            method: recipe.method.name().to_string(),
            dataset: dataset.clone(),
            protocol: protocol.describe(),
            mean: mean(&accs),
            std: std_population(&accs),
            raw_features: raw,
            supervised: (!supervised.is_empty() && supervised.len() == seeds.len())
                .then(|| (mean(&supervised), std_population(&supervised))),
            paper: recipe.paper.clone(),
            mean_pretrain_seconds: mean(&secs),
            total_seconds: start.elapsed().as_secs_f64(),
            seeds: seeds.to_vec(),
        }
    };
    let mut seeds: Vec<SeedResult> = Vec::new();
    for seed in seeds_of(recipe) {
        if let Some(done) = previous.and_then(|p| p.seeds.iter().find(|s| s.seed == seed)) {
            log(&format!(
                "  seed {seed}: {:.2} %  (saved by an earlier run of this recipe; not run again{})",
                done.accuracy,
                if opts.save_embeddings.is_some() {
                    ", no embeddings written"
                } else {
                    ""
                }
            ));
            seeds.push(done.clone());
            continue;
        }
        let mut r = recipe.clone();
        r.seed = seed;
        r.seeds = None;
        // The raw row is the table's, measured once above.
        r.eval.raw_baseline = false;
        let run_dir = opts.runs.join(format!("{}-seed{seed}", recipe.name));
        let resume = opts.run.resume && crate::run::folder::RunFolder::exists(&run_dir);
        anyhow::ensure!(
            resume || !crate::run::folder::RunFolder::exists(&run_dir),
            "{}: an earlier table's run of seed {seed} is there; continue the table with \
             --resume --out FILE, or choose another --runs folder (nothing was overwritten)",
            run_dir.display()
        );
        let mut run = opts.run.clone();
        run.run_dir = Some(run_dir.clone());
        run.resume = resume;
        run.evaluate = true;
        commands::absolutise(&mut r.data);
        let report = crate::run::graph::pretrain_on(r, &data, &run)?;
        let learned = report
            .eval
            .iter()
            .find(|e| e.features == "learned")
            .ok_or_else(|| anyhow::anyhow!("{}: no evaluation record", run_dir.display()))?;
        if let Some(dir) = &opts.save_embeddings {
            let path = dir.join(format!("{}-seed{seed}.npy", recipe.name));
            commands::embed_run(
                &run_dir,
                &path,
                commands::Split::Test,
                run.device,
                run.threads,
            )?;
        }
        let s = &report.summary;
        let accuracy = 100.0 * learned.accuracy;
        log(&format!(
            "  seed {seed}: {accuracy:.2} %  (pretraining {:.1} s, {} epochs{})",
            s.seconds,
            s.epochs_completed,
            if resume { ", resumed" } else { "" }
        ));
        seeds.push(SeedResult {
            seed,
            accuracy,
            details: learned.details.clone(),
            pretrain_seconds: s.seconds,
            epochs_run: (s.epochs_completed + u64::from(s.stopped_early)) as usize,
            final_loss: s.final_loss,
        });
        on_seed(&summary(&seeds))?;
    }
    Ok(summary(&seeds))
}

/// Reads graph recipes for a table: each with its `seeds` replaced by `seeds` when given.
pub fn load_recipes(
    paths: &[PathBuf],
    overrides: &[String],
    seeds: Option<Vec<u64>>,
) -> Result<Vec<Recipe>> {
    let mut out = Vec::new();
    for path in paths {
        let mut r = Recipe::load(path, overrides)?;
        anyhow::ensure!(
            r.data.is_graph(),
            "{}: not a graph recipe (its data.format is not planetoid, planetoid_npz or tu)",
            path.display()
        );
        if let Some(s) = &seeds {
            r.seeds = Some(s.clone());
        }
        out.push(r);
    }
    Ok(out)
}

/// A Markdown table of results, one row per recipe.
pub fn format_results(results: &[GraphRunResult]) -> String {
    let mut s = String::from(
        "| dataset | recipe (method) | protocol | seeds | ours (mean ± std) | paper | raw features | pretrain s/seed |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let paper = r
            .paper
            .as_ref()
            .map(|p| format!("{:.2} ± {:.2}", p.mean, p.std))
            .unwrap_or_else(|| "—".into());
        let control = r
            .supervised
            .map(|(m, sd)| format!(" (without the task: {m:.2} ± {sd:.2})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {:.2} ± {:.2}{} | {} | {:.2} | {:.1} |\n",
            r.dataset,
            r.recipe,
            r.method,
            r.protocol,
            r.seeds.len(),
            r.mean,
            r.std,
            control,
            paper,
            r.raw_features,
            r.mean_pretrain_seconds
        ));
    }
    s
}

/// Runs graph recipes in order, one run folder per recipe and seed under `opts.runs`. With
/// `out`, the results so far are written there after every seed; with `opts.run.resume`, seeds
/// already in `out` are reused (same recipe settings only) and interrupted runs continue.
pub fn run_tables(
    recipes: &[Recipe],
    opts: &TableOptions,
    out: Option<&std::path::Path>,
) -> Result<Vec<GraphRunResult>> {
    use super::table_file;
    let previous: Vec<GraphRunResult> =
        table_file::saved(out, opts.run.resume, "selfsup graph --out")?.unwrap_or_default();
    let mut results: Vec<GraphRunResult> = Vec::new();
    for r in recipes {
        let before = previous.iter().find(|p| p.recipe == r.name);
        let done = &results;
        let result = run_table(
            r,
            opts,
            before,
            |so_far| {
                let all: Vec<&GraphRunResult> =
                    done.iter().chain(std::iter::once(so_far)).collect();
                table_file::save(out, &all)
            },
            |line| eprintln!("{line}"),
        )?;
        results.push(result);
    }
    Ok(results)
}
