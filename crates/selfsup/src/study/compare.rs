//! `selfsup compare`: several image/table recipes (one per method) at an equal, stated budget,
//! each pretrained once per seed and scored by kNN and the linear probe on the test split, with
//! the effective rank of its test representations, beside two controls measured by the same
//! code: the raw inputs and a randomly initialised (untrained) encoder.
//!
//! A table of many methods and seeds can take hours, so it is resumable: the report so far is
//! handed out after every seed (the CLI writes it to `--out`), and a later invocation given that
//! report reuses the seeds it holds — refusing any whose recipe settings changed — and continues
//! an interrupted pretraining from its run folder's last checkpoint (bit-identical on the CPU, so
//! resuming changes no figure).
use crate::error::BadInputPolicy;
use crate::recipe::Recipe;
use crate::run::commands;
use crate::run::folder::RunFolder;
use crate::run::pipeline::{self, EvalRecord, Protocol};
use crate::run::RunOptions;
use crate::stats::mean_std;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tch::Device;

pub struct CompareArgs {
    pub recipes: Vec<PathBuf>,
    pub overrides: Vec<String>,
    pub seeds: Vec<u64>,
    /// Run folders go to `<runs>/<recipe name>-seed<N>`.
    pub runs: PathBuf,
    pub device: Device,
    pub threads: usize,
    pub stop: Arc<AtomicBool>,
    /// Continue a run folder left by an interrupted pretraining (from its last checkpoint)
    /// instead of refusing it.
    pub resume: bool,
    /// Pretrainings run at once, each with `threads / jobs` libtorch threads (at least one).
    pub jobs: usize,
}

/// One pretraining run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedScore {
    pub seed: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub knn: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub linear: f64,
    /// RankMe of the test-set representations (Garrido et al. 2023).
    #[serde(deserialize_with = "nan_if_null")]
    pub rankme: f64,
    pub dim: i64,
    /// Pretraining wall time (of the last invocation only when `resumed`).
    pub train_seconds: f64,
    pub run_dir: PathBuf,
    /// [`Recipe::results_fingerprint`] of the recipe this seed was run with.
    #[serde(default)]
    pub recipe_fingerprint: String,
    /// The pretraining was continued from a checkpoint of an interrupted invocation.
    #[serde(default)]
    pub resumed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `method` for a pretrained encoder, or `control: raw inputs` / `control: random init`.
    pub name: String,
    pub recipe: Option<PathBuf>,
    pub scores: Vec<SeedScore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    pub budget: String,
    pub protocols: Vec<String>,
    pub rows: Vec<Row>,
}

/// JSON has no NaN: serde_json writes a missing figure (e.g. the raw row's RankMe) as `null`,
/// read back here as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The part of a recipe that must be equal for the comparison to be fair.
fn budget(r: &Recipe) -> String {
    format!(
        "{} epoch(s), batch {}, encoder {}, training samples {}",
        r.train.epochs,
        r.train.batch_size,
        toml::to_string(&r.encoder)
            .unwrap_or_default()
            .replace('\n', " ")
            .trim(),
        r.train
            .max_samples
            .map_or("all".to_string(), |n| n.to_string()),
    )
}

fn accuracy(records: &[EvalRecord], features: &str, protocol: Protocol) -> f64 {
    let prefix = protocol.prefix();
    records
        .iter()
        .find(|r| r.features == features && r.protocol.starts_with(prefix))
        .map_or(f64::NAN, |r| r.accuracy)
}

/// Pretrains every recipe once per seed and scores it, then the controls. `on_seed` receives the
/// report so far after every seed (to save it). Seeds found in `previous` (an earlier, interrupted
/// comparison; matched by run folder and checked by recipe fingerprint) are taken from it; with
/// `args.resume`, a run folder left by an interrupted pretraining is continued from its last
/// checkpoint instead of refused. With `args.jobs` > 1 that many pretrainings run at once, each
/// with its share of the threads; every run is the same as in a sequential comparison at that
/// thread count (initialisation is seeded under a lock and every later draw is keyed), so the
/// figures do not depend on the number of jobs.
pub fn compare(
    args: CompareArgs,
    previous: Option<&CompareReport>,
    on_seed: impl FnMut(&CompareReport) -> Result<()> + Send,
    log: impl Fn(&str) + Sync,
) -> Result<CompareReport> {
    if args.recipes.is_empty() || args.seeds.is_empty() {
        bail!("nothing to compare: give at least one recipe and one seed");
    }
    // Check every recipe (and the equal budget) before spending time on the first.
    let mut recipes = Vec::new();
    for p in &args.recipes {
        recipes.push(Recipe::load(p, &args.overrides)?);
    }
    let b = budget(&recipes[0]);
    for (r, p) in recipes.iter().zip(&args.recipes).skip(1) {
        let other = budget(r);
        if other != b {
            bail!(
                "{}: budget differs from {}:\n  {other}\n  {b}\nuse --set to make them equal",
                p.display(),
                args.recipes[0].display()
            );
        }
    }
    if let Some(p) = previous {
        if p.budget != b {
            bail!(
                "the saved comparison was run at another budget:\n  {}\nnow:\n  {b}\n\
                 remove it or write to another file",
                p.budget
            );
        }
    }
    let saved = |run_dir: &Path| {
        previous
            .into_iter()
            .flat_map(|p| p.rows.iter())
            .flat_map(|row| row.scores.iter())
            .find(|s| s.run_dir == run_dir)
            .cloned()
    };
    let jobs = args.jobs.max(1);
    let threads = threads_per_job(args.threads, jobs);
    crate::backend::set_threads(threads);
    let mut report = CompareReport {
        budget: b,
        protocols: previous.map_or(Vec::new(), |p| p.protocols.clone()),
        rows: Vec::new(),
    };
    let mut tasks = Vec::new();
    for (row, (recipe, path)) in recipes.iter().zip(&args.recipes).enumerate() {
        let fingerprint = recipe.results_fingerprint();
        report.rows.push(Row {
            name: recipe.method.name().to_string(),
            recipe: Some(path.clone()),
            scores: Vec::new(),
        });
        let name = recipe.method.name();
        for &seed in &args.seeds {
            let run_dir = args.runs.join(format!("{}-seed{seed}", recipe.name));
            if let Some(s) = saved(&run_dir) {
                if s.recipe_fingerprint != fingerprint {
                    bail!(
                        "{}: the saved result of {} was made with other settings than the \
                         recipe's now; remove it from the saved comparison or write to another file",
                        path.display(),
                        run_dir.display()
                    );
                }
                log(&format!(
                    "{name} seed {seed}: taken from the saved comparison (kNN {:.2}%, linear {:.2}%)",
                    s.knn * 100.0,
                    s.linear * 100.0
                ));
                report.rows[row].scores.push(s);
                continue;
            }
            tasks.push(Task {
                row,
                seed,
                run_dir,
                fingerprint: fingerprint.clone(),
            });
        }
    }
    let (mut report, mut on_seed) =
        run_tasks(&args, &recipes, tasks, jobs, threads, report, on_seed, &log)?;
    controls(
        &recipes[0],
        &args,
        previous,
        &mut report,
        &mut on_seed,
        &log,
    )?;
    Ok(report)
}

/// libtorch threads for each of `jobs` concurrent pretrainings (`threads` 0: all cores).
fn threads_per_job(threads: usize, jobs: usize) -> usize {
    let total = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    (total / jobs.max(1)).max(1)
}

/// One pretraining still to run: recipe `row`, `seed`.
struct Task {
    row: usize,
    seed: u64,
    run_dir: PathBuf,
    fingerprint: String,
}

/// Runs the tasks, `jobs` at a time, adding each score to its row (kept in seed order) and handing
/// the report to `on_seed` after each. The first failure stops the rest: running pretrainings
/// checkpoint and stop as on Ctrl-C (so `--resume` continues them), queued ones do not start,
/// and that failure is returned.
#[allow(clippy::too_many_arguments)]
fn run_tasks<F: FnMut(&CompareReport) -> Result<()> + Send>(
    args: &CompareArgs,
    recipes: &[Recipe],
    tasks: Vec<Task>,
    jobs: usize,
    threads: usize,
    report: CompareReport,
    on_seed: F,
    log: &(impl Fn(&str) + Sync),
) -> Result<(CompareReport, F)> {
    let queue = Mutex::new(tasks.into_iter());
    let state = Mutex::new((report, on_seed, None::<anyhow::Error>));
    let worker = || loop {
        if state.lock().unwrap_or_else(|e| e.into_inner()).2.is_some() {
            return;
        }
        let Some(task) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
            return;
        };
        let result = run_task(args, &recipes[task.row], &task, threads, log);
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let (report, on_seed, failure) = &mut *guard;
        let outcome = result.and_then(|(score, protocols)| {
            if report.protocols.is_empty() {
                report.protocols = protocols;
            }
            let row = &mut report.rows[task.row];
            row.scores.push(score);
            row.scores.sort_by_key(|s| s.seed);
            on_seed(report)
        });
        if let Err(e) = outcome {
            if failure.is_none() {
                *failure = Some(e);
                args.stop.store(true, Ordering::SeqCst);
            }
            return;
        }
    };
    if jobs == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for i in 0..jobs {
                std::thread::Builder::new()
                    .name(format!("compare-job-{i}"))
                    // Each job runs a whole pretraining, as the main thread does with
                    // `--jobs 1`; Rust's 2 MiB default for spawned threads is far below the
                    // main thread's 8 MiB, so jobs get more than either.
                    .stack_size(16 << 20)
                    .spawn_scoped(s, worker)
                    .expect("spawning a comparison job thread");
            }
        });
    }
    let (report, on_seed, failure) = state.into_inner().unwrap_or_else(|e| e.into_inner());
    match failure {
        Some(e) => Err(e),
        None => Ok((report, on_seed)),
    }
}

/// Pretrains and scores one recipe at one seed; returns the score and the protocols' names.
fn run_task(
    args: &CompareArgs,
    recipe: &Recipe,
    task: &Task,
    threads: usize,
    log: &impl Fn(&str),
) -> Result<(SeedScore, Vec<String>)> {
    let (name, seed, run_dir) = (recipe.method.name(), task.seed, &task.run_dir);
    let path = &args.recipes[task.row];
    let resume = args.resume && RunFolder::exists(run_dir);
    // The recipe as parsed (with --set applied once), at this seed; the raw-input control is
    // the table's, measured once.
    let mut at_seed = recipe.clone();
    at_seed.seed = seed;
    at_seed.eval.raw_baseline = false;
    log(&format!(
        "{name} seed {seed}: {} into {}",
        if resume {
            "continuing the pretraining"
        } else {
            "pretraining"
        },
        run_dir.display()
    ));
    let out = commands::pretrain_recipe(
        at_seed,
        &RunOptions {
            run_dir: Some(run_dir.clone()),
            resume,
            device: args.device,
            threads,
            on_bad_input: BadInputPolicy::Fail,
            evaluate: true,
            progress: false,
            stop: args.stop.clone(),
        },
    )?;
    if out.eval.is_empty() {
        bail!(
            "{}: the recipe has no labelled test split to score",
            path.display()
        );
    }
    let rank = out
        .test_collapse
        .as_ref()
        .map_or((f64::NAN, 0), |c| (c.rankme, c.dim));
    let s = SeedScore {
        seed,
        knn: accuracy(&out.eval, "learned", Protocol::Knn),
        linear: accuracy(&out.eval, "learned", Protocol::Linear),
        rankme: rank.0,
        dim: rank.1,
        train_seconds: out.summary.seconds,
        run_dir: run_dir.clone(),
        recipe_fingerprint: task.fingerprint.clone(),
        resumed: resume,
    };
    log(&format!(
        "{name} seed {seed}: kNN {:.2}%, linear {:.2}%, RankMe {:.1} of {}, {:.0}s",
        s.knn * 100.0,
        s.linear * 100.0,
        s.rankme,
        s.dim,
        s.train_seconds
    ));
    let protocols = out.eval.iter().map(|r| r.protocol.clone()).collect();
    Ok((s, protocols))
}

const RANDOM_CONTROL: &str = "control: random-init encoder";
const RAW_CONTROL: &str = "control: raw inputs";

/// The raw-input baseline (seed-independent, measured once) and an untrained encoder per seed,
/// scored by the same protocols and appended to `report`. Saved control figures are reused when
/// made with the same first recipe.
fn controls(
    recipe: &Recipe,
    args: &CompareArgs,
    previous: Option<&CompareReport>,
    report: &mut CompareReport,
    on_seed: &mut impl FnMut(&CompareReport) -> Result<()>,
    log: &impl Fn(&str),
) -> Result<()> {
    let fingerprint = recipe.results_fingerprint();
    let saved = |row: &str, seed: Option<u64>| {
        previous
            .into_iter()
            .flat_map(|p| p.rows.iter())
            .filter(|r| r.name == row)
            .flat_map(|r| r.scores.iter())
            .find(|s| s.recipe_fingerprint == fingerprint && seed.is_none_or(|k| s.seed == k))
            .cloned()
    };
    let raw_saved = saved(RAW_CONTROL, None);
    let random = report.rows.len();
    for name in [RANDOM_CONTROL, RAW_CONTROL] {
        report.rows.push(Row {
            name: name.into(),
            recipe: None,
            scores: Vec::new(),
        });
    }
    if let Some(s) = raw_saved.clone() {
        report.rows[random + 1].scores.push(s);
    }
    let mut prepared = None;
    for &seed in &args.seeds {
        // Without a saved raw row, the first seed is measured again to get it.
        if let Some(s) = raw_saved.as_ref().and(saved(RANDOM_CONTROL, Some(seed))) {
            log(&format!(
                "controls seed {seed}: taken from the saved comparison"
            ));
            report.rows[random].scores.push(s);
            continue;
        }
        if prepared.is_none() {
            prepared = Some(pipeline::prepare_data(
                recipe,
                BadInputPolicy::Fail,
                recipe.train.max_samples,
                recipe.eval.max_test_samples,
            )?);
        }
        let prepared = prepared.as_ref().expect("prepared above");
        let mut eval = recipe.eval.clone();
        eval.raw_baseline = report.rows[random + 1].scores.is_empty();
        let mut r = recipe.clone();
        r.seed = seed;
        let model = pipeline::build_model(
            &r,
            &prepared.train.sample_shape(),
            prepared.train.feature_spans().as_deref(),
            args.device,
        )?;
        let t = Instant::now();
        let (records, collapse) = pipeline::evaluate_with_collapse(
            model.method.as_ref(),
            prepared,
            &eval,
            &[Protocol::Knn, Protocol::Linear],
            args.device,
        )?;
        let score = |features: &str, rank: (f64, i64)| SeedScore {
            seed,
            knn: accuracy(&records, features, Protocol::Knn),
            linear: accuracy(&records, features, Protocol::Linear),
            rankme: rank.0,
            dim: rank.1,
            train_seconds: 0.0,
            run_dir: PathBuf::new(),
            recipe_fingerprint: fingerprint.clone(),
            resumed: false,
        };
        report.rows[random]
            .scores
            .push(score("learned", (collapse.rankme, collapse.dim)));
        if eval.raw_baseline {
            let dim = records
                .iter()
                .find(|r| r.features == "raw")
                .map_or(0, |r| r.dim);
            report.rows[random + 1]
                .scores
                .push(score("raw", (f64::NAN, dim)));
        }
        log(&format!(
            "controls seed {seed}: {:.1}s",
            t.elapsed().as_secs_f64()
        ));
        on_seed(report)?;
    }
    Ok(())
}

/// The comparison as a plain-text table.
pub fn format_report(r: &CompareReport) -> String {
    let mut s = format!(
        "budget: {}\nprotocols: {}\n{:<30} {:>5} {:>15} {:>15} {:>13} {:>9}\n",
        r.budget,
        r.protocols.join(", "),
        "method",
        "seeds",
        "kNN %",
        "linear %",
        "RankMe (dim)",
        "s/seed"
    );
    let pm = |v: Vec<f64>| {
        let (m, sd) = mean_std(&v);
        format!("{:.2} ± {:.2}", m * 100.0, sd * 100.0)
    };
    for row in &r.rows {
        let sc = &row.scores;
        let (rank, _) = mean_std(&sc.iter().map(|x| x.rankme).collect::<Vec<_>>());
        let dim = sc.first().map_or(0, |x| x.dim);
        // A resumed seed's time covers its last invocation only: left out of the mean.
        let (secs, _) = mean_std(
            &sc.iter()
                .filter(|x| !x.resumed)
                .map(|x| x.train_seconds)
                .collect::<Vec<_>>(),
        );
        s.push_str(&format!(
            "{:<30} {:>5} {:>15} {:>15} {:>13} {:>9}\n",
            row.name,
            sc.len(),
            pm(sc.iter().map(|x| x.knn).collect()),
            pm(sc.iter().map(|x| x.linear).collect()),
            if rank.is_nan() {
                format!("– ({dim})")
            } else {
                format!("{rank:.1} ({dim})")
            },
            if secs > 0.0 && !secs.is_nan() {
                format!("{secs:.0}")
            } else {
                "–".into()
            }
        ));
    }
    s
}
