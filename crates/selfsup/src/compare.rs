//! `selfsup compare`: several image/table recipes (one per method) at an equal, stated budget,
//! each pretrained once per seed and scored by kNN and the linear probe on the test split, with
//! the effective rank of its test representations, beside two controls measured by the same
//! code: the raw inputs and a randomly initialised (untrained) encoder.
use crate::commands::{self, PretrainArgs};
use crate::error::BadInputPolicy;
use crate::pipeline::{self, EvalRecord, Protocol};
use crate::recipe::Recipe;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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
}

/// One pretraining run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SeedScore {
    pub seed: u64,
    pub knn: f64,
    pub linear: f64,
    /// RankMe of the test-set representations (Garrido et al. 2023).
    pub rankme: f64,
    pub dim: i64,
    /// Pretraining wall time.
    pub train_seconds: f64,
    pub run_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `method` for a pretrained encoder, or `control: raw inputs` / `control: random init`.
    pub name: String,
    pub recipe: Option<PathBuf>,
    pub scores: Vec<SeedScore>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub budget: String,
    pub protocols: Vec<String>,
    pub rows: Vec<Row>,
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
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
    let prefix = match protocol {
        Protocol::Knn => "knn",
        Protocol::Linear => "linear-probe",
    };
    records
        .iter()
        .find(|r| r.features == features && r.protocol.starts_with(prefix))
        .map_or(f64::NAN, |r| r.accuracy)
}

pub fn compare(args: CompareArgs, log: impl Fn(&str)) -> Result<CompareReport> {
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
    crate::backend::set_threads(args.threads);
    let mut rows = Vec::new();
    let mut protocols = Vec::new();
    for (recipe, path) in recipes.iter().zip(&args.recipes) {
        let mut row = Row {
            name: recipe.method.name().to_string(),
            recipe: Some(path.clone()),
            scores: Vec::new(),
        };
        for &seed in &args.seeds {
            let run_dir = args.runs.join(format!("{}-seed{seed}", recipe.name));
            let mut overrides = args.overrides.clone();
            overrides.push(format!("seed={seed}"));
            overrides.push("eval.raw_baseline=false".into());
            log(&format!(
                "{} seed {seed}: pretraining into {}",
                row.name,
                run_dir.display()
            ));
            let report = commands::pretrain(PretrainArgs {
                recipe: path.clone(),
                overrides: overrides.clone(),
                run_dir: Some(run_dir.clone()),
                resume: false,
                device: args.device,
                threads: args.threads,
                on_bad_input: BadInputPolicy::Fail,
                evaluate: true,
                progress: false,
                stop: args.stop.clone(),
            })?;
            if report.eval.is_empty() {
                bail!(
                    "{}: the recipe has no labelled test split to score",
                    path.display()
                );
            }
            if protocols.is_empty() {
                protocols = report.eval.iter().map(|r| r.protocol.clone()).collect();
            }
            let rank = report
                .test_collapse
                .as_ref()
                .map_or((f64::NAN, 0), |c| (c.rankme, c.dim));
            let s = SeedScore {
                seed,
                knn: accuracy(&report.eval, "learned", Protocol::Knn),
                linear: accuracy(&report.eval, "learned", Protocol::Linear),
                rankme: rank.0,
                dim: rank.1,
                train_seconds: report.summary.seconds,
                run_dir,
            };
            log(&format!(
                "{} seed {seed}: kNN {:.2}%, linear {:.2}%, RankMe {:.1} of {}, {:.0}s",
                row.name,
                s.knn * 100.0,
                s.linear * 100.0,
                s.rankme,
                s.dim,
                s.train_seconds
            ));
            row.scores.push(s);
        }
        rows.push(row);
    }
    rows.extend(controls(&recipes[0], &args, &log)?);
    Ok(CompareReport {
        budget: b,
        protocols,
        rows,
    })
}

/// The raw-input baseline (seed-independent) and an untrained encoder per seed, scored by the
/// same protocols.
fn controls(recipe: &Recipe, args: &CompareArgs, log: &impl Fn(&str)) -> Result<Vec<Row>> {
    let mut eval = recipe.eval.clone();
    eval.raw_baseline = true;
    let prepared = pipeline::prepare_data(
        recipe,
        BadInputPolicy::Fail,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    let mut random = Row {
        name: "control: random-init encoder".into(),
        recipe: None,
        scores: Vec::new(),
    };
    let mut raw = Row {
        name: "control: raw inputs".into(),
        recipe: None,
        scores: Vec::new(),
    };
    for &seed in &args.seeds {
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
            &prepared,
            &eval,
            &[Protocol::Knn, Protocol::Linear],
            args.device,
        )?;
        let rank = (collapse.rankme, collapse.dim);
        let score = |features: &str, rank: (f64, i64)| SeedScore {
            seed,
            knn: accuracy(&records, features, Protocol::Knn),
            linear: accuracy(&records, features, Protocol::Linear),
            rankme: rank.0,
            dim: rank.1,
            train_seconds: 0.0,
            run_dir: PathBuf::new(),
        };
        random.scores.push(score("learned", rank));
        if raw.scores.is_empty() {
            // The raw inputs do not depend on the seed: measured once.
            let dim = records
                .iter()
                .find(|r| r.features == "raw")
                .map_or(0, |r| r.dim);
            raw.scores.push(score("raw", (f64::NAN, dim)));
        }
        log(&format!(
            "controls seed {seed}: {:.1}s",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(vec![random, raw])
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
        let (secs, _) = mean_std(&sc.iter().map(|x| x.train_seconds).collect::<Vec<_>>());
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
            if secs > 0.0 {
                format!("{secs:.0}")
            } else {
                "–".into()
            }
        ));
    }
    s
}

/// Writes the report as JSON.
pub fn write_json(path: &Path, r: &CompareReport) -> Result<()> {
    crate::run_folder::atomic_write(path, serde_json::to_string_pretty(r)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // Σ(x−m)² = 2.25+0.25+0.25+2.25 = 5; /3 → 1.6667; √ → 1.29099
        assert!((s - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
    }
}
