//! `selfsup tabular`: the downstream protocol of tabular SSL papers (T-JEPA, VIME, SCARF). Per
//! seed, each recipe's method is pretrained on the training rows without labels; the same small
//! MLP is then trained on its frozen representations, on the raw encoded features, and a
//! gradient-boosted-trees model on the raw features — all on one seeded train/validation split of
//! the training file (early stopping on validation), scored once on the test file. Classification
//! reports accuracy, regression RMSE in the target's units and, beside it, divided by the target's
//! standard deviation over all rows — the unit of T-JEPA's tables (its code fits a
//! `StandardScaler` on every row's target and reports RMSE on the scaled target).
//!
//! Like `selfsup compare`, a table is resumable: the report so far is handed out after every
//! seed, and a later invocation given it reuses its seeds (same settings only, checked by a
//! fingerprint) and continues an interrupted pretraining from its last checkpoint.
use crate::error::BadInputPolicy;
use crate::eval::downstream::{fit_mlp_probe, split_indices, MlpProbeConfig, Task};
use crate::eval::gbdt::{fit_gbdt, GbdtConfig};
use crate::recipe::Recipe;
use crate::run::commands;
use crate::run::folder::RunFolder;
use crate::run::pipeline;
use crate::run::RunOptions;
use crate::views::ViewSource;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub struct TabularArgs {
    /// One recipe per method, all on the same data.
    pub recipes: Vec<PathBuf>,
    pub overrides: Vec<String>,
    pub seeds: Vec<u64>,
    pub runs: PathBuf,
    /// Fraction of the training rows held out for early stopping.
    pub val_fraction: f64,
    /// Without a test file: fraction of the rows held out as the test set (re-drawn per seed).
    pub test_fraction: f64,
    pub probe: MlpProbeConfig,
    pub gbdt: bool,
    pub device: Device,
    pub threads: usize,
    pub stop: Arc<AtomicBool>,
    /// Continue a run folder left by an interrupted pretraining instead of refusing it.
    pub resume: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TabRow {
    pub name: String,
    /// Test metric per seed: accuracy in [0, 1] or RMSE.
    pub per_seed: Vec<f64>,
    pub seconds: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TabReport {
    /// "accuracy" or "rmse".
    pub metric: String,
    pub split: String,
    pub protocol: String,
    /// Regression: population standard deviation of the target over all rows (train and test),
    /// the scale of a standardised RMSE.
    pub target_std: Option<f64>,
    pub rows: Vec<TabRow>,
    /// The seeds every row holds a figure for, in the order of `per_seed`.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// blake3 of the settings every figure depends on (recipes, split fractions, MLP, GBDT):
    /// saved seeds are reused only under the same fingerprint.
    #[serde(default)]
    pub fingerprint: String,
}

fn task_of(source: &dyn ViewSource) -> Result<Task> {
    if source.target(0).is_some() {
        Ok(Task::Regression)
    } else if source.label(0).is_some() {
        Ok(Task::Classification {
            n_classes: source.n_classes(),
        })
    } else {
        bail!("the tabular protocol needs a label column (classification) or a numeric target")
    }
}

/// Labels `[N]` (i64) or targets `[N]` (f32) of a source's first `n` rows.
fn outputs(source: &dyn ViewSource, task: Task, n: usize) -> Result<Tensor> {
    Ok(match task {
        Task::Regression => {
            let t: Option<Vec<f32>> = (0..n).map(|i| source.target(i)).collect();
            Tensor::from_slice(&t.context("a row without a target")?)
        }
        Task::Classification { .. } => pipeline::labels(source, n)?,
    })
}

fn rows(t: &Tensor, idx: &[usize]) -> Tensor {
    let i: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    t.index_select(0, &Tensor::from_slice(&i))
}

/// Fits the MLP on the train rows of `x`, early-stops on the validation rows, scores the test rows.
fn mlp_score(
    task: Task,
    x: &Tensor,
    y: &Tensor,
    split: &(Vec<usize>, Vec<usize>, Vec<usize>),
    cfg: &MlpProbeConfig,
    device: Device,
) -> Result<f64> {
    let (tr, va, te) = split;
    let r = fit_mlp_probe(
        task,
        &rows(x, tr),
        &rows(y, tr),
        &rows(x, va),
        &rows(y, va),
        &rows(x, te),
        &rows(y, te),
        cfg,
        device,
    )?;
    Ok(r.test_metric)
}

/// The fingerprint of a table's settings, seeds aside.
fn settings_fingerprint(recipes: &[Recipe], args: &TabularArgs) -> String {
    let mut text = String::new();
    for r in recipes {
        text.push_str(&r.results_fingerprint());
        text.push('\n');
    }
    let probe = MlpProbeConfig {
        seed: 0,
        ..args.probe.clone()
    };
    text.push_str(&format!(
        "{} {} {probe:?} {}",
        args.val_fraction, args.test_fraction, args.gbdt
    ));
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Runs the table. `on_seed` receives the report so far after every seed (to save it); seeds in
/// `previous` (an interrupted or shorter table of the same settings) are taken from it.
pub fn tabular(
    args: TabularArgs,
    previous: Option<&TabReport>,
    mut on_seed: impl FnMut(&TabReport) -> Result<()>,
    log: impl Fn(&str),
) -> Result<TabReport> {
    if args.recipes.is_empty() || args.seeds.is_empty() {
        bail!("give at least one recipe and one seed");
    }
    let recipes: Vec<Recipe> = args
        .recipes
        .iter()
        .map(|p| Recipe::load(p, &args.overrides))
        .collect::<Result<_, _>>()?;
    let first = &recipes[0];
    for (r, p) in recipes.iter().zip(&args.recipes).skip(1) {
        if r.data != first.data {
            bail!(
                "{}: its [data] differs from {}'s; every method must see the same table",
                p.display(),
                args.recipes[0].display()
            );
        }
    }
    let fingerprint = settings_fingerprint(&recipes, &args);
    if let Some(p) = previous {
        if p.fingerprint != fingerprint {
            bail!(
                "the saved table was made with other settings (recipes, split fractions, MLP or \
                 GBDT) than now; remove it or write to another file"
            );
        }
    }
    crate::backend::set_threads(args.threads);
    let prepared = pipeline::prepare_data(first, BadInputPolicy::Fail, None, None)?;
    let train = prepared.train.clone();
    let test = prepared.test.clone();
    let task = task_of(train.as_ref())?;
    let (n, n_test) = (train.len(), test.as_ref().map_or(0, |t| t.len()));
    // Every row of both files in one matrix; splits are index sets into it.
    let mut y = outputs(train.as_ref(), task, n)?;
    let mut raw = pipeline::raw_features(train.as_ref(), n)?;
    if let Some(t) = &test {
        y = Tensor::cat(&[y, outputs(t.as_ref(), task, n_test)?], 0);
        raw = Tensor::cat(&[raw, pipeline::raw_features(t.as_ref(), n_test)?], 0);
    }
    let target_std = match task {
        Task::Regression => Some(f64::try_from(y.to_kind(Kind::Double).std(false))?),
        Task::Classification { .. } => None,
    };
    let labels: Option<Vec<i64>> = match task {
        Task::Classification { .. } => Some(Vec::<i64>::try_from(&y)?),
        Task::Regression => None,
    };
    // (train, validation, test) row indices for a seed.
    let splits = |seed: u64| -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let pick = |idx: &[usize]| -> Option<Vec<i64>> {
            labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect())
        };
        let (pool, test_idx): (Vec<usize>, Vec<usize>) = if test.is_some() {
            ((0..n).collect(), (n..n + n_test).collect())
        } else {
            let (a, b) = split_indices(
                n,
                pick(&(0..n).collect::<Vec<_>>()).as_deref(),
                args.test_fraction,
                seed ^ 0x7e57_5e7,
            );
            (a, b)
        };
        let (tr, va) = split_indices(pool.len(), pick(&pool).as_deref(), args.val_fraction, seed);
        (
            tr.iter().map(|&i| pool[i]).collect(),
            va.iter().map(|&i| pool[i]).collect(),
            test_idx,
        )
    };
    let table_rows: Vec<TabRow> = recipes
        .iter()
        .map(|r| format!("{} ({}) + MLP", r.name, r.method.name()))
        .chain(std::iter::once("raw features + MLP".to_string()))
        .chain(
            args.gbdt
                .then(|| "GBDT (forust, early-stopped) on raw features".to_string()),
        )
        .map(|name| TabRow {
            name,
            per_seed: Vec::new(),
            seconds: Vec::new(),
        })
        .collect();
    let (tr_n, va_n, te_n) = {
        let s = splits(args.seeds[0]);
        (s.0.len(), s.1.len(), s.2.len())
    };
    let mut report = TabReport {
        metric: match task {
            Task::Regression => "rmse".into(),
            Task::Classification { .. } => "accuracy".into(),
        },
        split: if test.is_some() {
            format!(
                "training file {n} rows → {tr_n} train / {va_n} validation ({}% held out, {}, re-drawn per seed); test file {te_n} rows",
                args.val_fraction * 100.0,
                if labels.is_some() { "stratified" } else { "random" }
            )
        } else {
            format!(
                "one file of {n} rows → {tr_n} train / {va_n} validation / {te_n} test ({}% test, then {}% of the rest for validation, {}, re-drawn per seed); pretraining sees every row's features, never a label",
                args.test_fraction * 100.0,
                args.val_fraction * 100.0,
                if labels.is_some() { "stratified" } else { "random" }
            )
        },
        protocol: format!(
            "MLP {:?} (ReLU, dropout {}), AdamW lr {} wd {}, batch {}, ≤{} epochs, early stopping patience {} on validation; inputs standardised on train",
            args.probe.hidden, args.probe.dropout, args.probe.lr, args.probe.weight_decay, args.probe.batch, args.probe.max_epochs, args.probe.patience
        ),
        target_std,
        rows: table_rows,
        seeds: Vec::new(),
        fingerprint,
    };
    for &seed in &args.seeds {
        if let Some(j) = previous.and_then(|p| p.seeds.iter().position(|&k| k == seed)) {
            let p = previous.expect("found in it");
            if p.rows.len() != report.rows.len() {
                bail!(
                    "the saved table has {} rows, not {}",
                    p.rows.len(),
                    report.rows.len()
                );
            }
            for (row, old) in report.rows.iter_mut().zip(&p.rows) {
                let (v, t) = old
                    .per_seed
                    .get(j)
                    .zip(old.seconds.get(j))
                    .with_context(|| {
                        format!("the saved table's row {} lacks seed {seed}", old.name)
                    })?;
                row.per_seed.push(*v);
                row.seconds.push(*t);
            }
            log(&format!("seed {seed}: taken from the saved table"));
            report.seeds.push(seed);
            continue;
        }
        let split = splits(seed);
        let probe = MlpProbeConfig {
            seed,
            ..args.probe.clone()
        };
        let n_methods = recipes.len();
        for (recipe, row) in recipes.iter().zip(&mut report.rows) {
            let t = Instant::now();
            let run_dir = args.runs.join(format!("{}-seed{seed}", recipe.name));
            let resume = args.resume && RunFolder::exists(&run_dir);
            let mut at_seed = recipe.clone();
            at_seed.seed = seed;
            log(&format!(
                "{} seed {seed}: {} into {}",
                row.name,
                if resume {
                    "continuing the pretraining"
                } else {
                    "pretraining"
                },
                run_dir.display()
            ));
            commands::pretrain_recipe(
                at_seed,
                &RunOptions {
                    run_dir: Some(run_dir.clone()),
                    resume,
                    device: args.device,
                    threads: args.threads,
                    on_bad_input: BadInputPolicy::Fail,
                    evaluate: false,
                    progress: false,
                    stop: args.stop.clone(),
                },
            )?;
            let loaded = commands::load_run(&run_dir, &[], args.device, BadInputPolicy::Fail)?;
            let m = loaded.model.method.as_ref();
            let batch = recipe.eval.batch;
            let mut emb = pipeline::embed(m, train.as_ref(), n, batch, args.device)?;
            if let Some(t) = &test {
                emb = Tensor::cat(
                    &[
                        emb,
                        pipeline::embed(m, t.as_ref(), n_test, batch, args.device)?,
                    ],
                    0,
                );
            }
            let v = mlp_score(task, &emb, &y, &split, &probe, args.device)?;
            row.per_seed.push(v);
            row.seconds.push(t.elapsed().as_secs_f64());
            log(&format!(
                "{} seed {seed}: {v:.4} ({:.0}s)",
                row.name,
                t.elapsed().as_secs_f64()
            ));
        }
        let (raw_row, gbdt_row) = {
            let (head, tail) = report.rows[n_methods..].split_at_mut(1);
            (&mut head[0], tail.first_mut())
        };
        let t = Instant::now();
        let v = mlp_score(task, &raw, &y, &split, &probe, args.device)?;
        raw_row.per_seed.push(v);
        raw_row.seconds.push(t.elapsed().as_secs_f64());
        log(&format!("{} seed {seed}: {v:.4}", raw_row.name));
        if let Some(gbdt_row) = gbdt_row {
            let t = Instant::now();
            let (tr, va, te) = &split;
            let part = |idx: &[usize]| -> Result<(Vec<f32>, Vec<f64>)> {
                Ok((
                    Vec::<f32>::try_from(rows(&raw, idx).flatten(0, -1))?,
                    Vec::<f64>::try_from(rows(&y, idx).to_kind(Kind::Double))?,
                ))
            };
            let ((xs, ys), (xv, yv), (xt, yt)) = (part(tr)?, part(va)?, part(te)?);
            let d = raw.size()[1] as usize;
            let cfg = GbdtConfig {
                seed,
                ..Default::default()
            };
            let r = fit_gbdt(task, (&xs, &ys), (&xv, &yv), (&xt, &yt), d, &cfg)?;
            gbdt_row.per_seed.push(r.test_metric);
            gbdt_row.seconds.push(t.elapsed().as_secs_f64());
            log(&format!(
                "{} seed {seed}: {:.4}",
                gbdt_row.name, r.test_metric
            ));
        }
        report.seeds.push(seed);
        on_seed(&report)?;
    }
    Ok(report)
}

/// The report as a plain-text table (mean ± sample std over seeds); regression adds the RMSE in
/// units of the target's standard deviation.
pub fn format_report(r: &TabReport) -> String {
    let scale = if r.metric == "accuracy" { 100.0 } else { 1.0 };
    let unit = if r.metric == "accuracy" {
        "accuracy %"
    } else {
        "RMSE"
    };
    let mut s = format!("split: {}\nprotocol: {}\n", r.split, r.protocol);
    if let Some(sd) = r.target_std {
        s.push_str(&format!(
            "RMSE / σ: RMSE divided by the target's standard deviation over all rows (σ = {sd:.4}), \
             the unit T-JEPA's tables use\n"
        ));
    }
    s.push_str(&format!("{:<40} {:>18}", "model", unit));
    if r.target_std.is_some() {
        s.push_str(&format!(" {:>16}", "RMSE / σ"));
    }
    s.push_str(&format!(" {:>8}  per seed\n", "s/seed"));
    for row in &r.rows {
        let v: Vec<f64> = row.per_seed.iter().map(|x| x * scale).collect();
        let (m, sd) = crate::stats::mean_std(&v);
        let secs = row.seconds.iter().sum::<f64>() / row.seconds.len().max(1) as f64;
        let per: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        s.push_str(&format!("{:<40} {:>10.3} ± {:<5.3}", row.name, m, sd));
        if let Some(t) = r.target_std {
            s.push_str(&format!(" {:>8.3} ± {:<5.3}", m / t, sd / t));
        }
        s.push_str(&format!(" {:>8.0}  {}\n", secs, per.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(metric: &str, target_std: Option<f64>) -> TabReport {
        TabReport {
            metric: metric.into(),
            split: "s".into(),
            protocol: "p".into(),
            target_std,
            rows: vec![TabRow {
                name: "m".into(),
                per_seed: vec![0.5, 0.7],
                seconds: vec![1.0, 3.0],
            }],
            seeds: vec![0, 1],
            fingerprint: String::new(),
        }
    }

    #[test]
    fn regression_reports_rmse_in_target_units_and_in_sigmas() {
        let text = format_report(&report("rmse", Some(2.0)));
        // mean 0.6, sample std 0.1414; divided by σ = 2: 0.3 and 0.0707.
        let line = text.lines().last().unwrap();
        assert!(line.contains("0.600 ± 0.141"), "{line}");
        assert!(line.contains("0.300 ± 0.071"), "{line}");
        assert!(text.contains("σ = 2.0000"));
    }

    #[test]
    fn classification_has_no_sigma_column() {
        let text = format_report(&report("accuracy", None));
        assert!(!text.contains("σ"));
        assert!(text.lines().last().unwrap().contains("60.000 ± 14.142"));
    }
}
