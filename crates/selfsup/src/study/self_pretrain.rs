//! Self-pretraining (Amos et al. 2024, "Never Train from Scratch"): pretrain with the recipe's
//! objective (typically a masked one) on the downstream task's own training inputs — no other
//! data, labels unused — then fine-tune on the task, reported beside two from-scratch controls:
//! the same fine-tuning budget, and fine-tuning for as many epochs as pretraining and fine-tuning
//! together (equal passes over the data, so the gain cannot come from training longer).
//!
//! Per seed: `pretrain` into `<runs>/<name>-seed<k>` with `seed = k`, then the recipe's
//! `eval.finetune_*` protocol three times (pretrained; scratch; scratch with more epochs), each
//! fine-tune drawing its order and head from the same seed.
use crate::error::BadInputPolicy;
use crate::recipe::Recipe;
use crate::run::commands;
use crate::run::RunOptions;
use crate::stats::mean_std;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

pub struct SelfPretrainArgs {
    pub recipe: PathBuf,
    pub overrides: Vec<String>,
    pub seeds: u64,
    pub runs: PathBuf,
    pub device: Device,
    pub threads: usize,
}

/// One arm of the comparison: test accuracy per seed.
#[derive(Debug, Clone, Serialize)]
pub struct Arm {
    pub name: String,
    /// Pretraining epochs + fine-tuning epochs.
    pub epochs: String,
    pub per_seed: Vec<f64>,
    pub mean: f64,
    pub std: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelfPretrainReport {
    pub recipe: String,
    pub method: String,
    pub protocol: String,
    pub arms: Vec<Arm>,
}

fn arm(name: &str, epochs: String, per_seed: Vec<f64>, seconds: f64) -> Arm {
    let (mean, std) = mean_std(&per_seed);
    Arm {
        name: name.into(),
        epochs,
        per_seed,
        mean,
        std,
        seconds,
    }
}

/// The accuracy record of one fine-tune (a single seed).
fn fine_tune_once(
    dir: &Path,
    overrides: &[String],
    seed: u64,
    from_scratch: bool,
    args: &SelfPretrainArgs,
) -> Result<(f64, String, f64)> {
    let started = std::time::Instant::now();
    let records = commands::fine_tune_run(
        dir,
        overrides,
        &[seed],
        from_scratch,
        false,
        args.device,
        args.threads,
    )?;
    let r = records
        .into_iter()
        .find(|r| r.metric == "accuracy")
        .context("fine-tuning reported no accuracy")?;
    Ok((r.value, r.protocol, started.elapsed().as_secs_f64()))
}

pub fn self_pretrain(args: &SelfPretrainArgs, log: impl Fn(&str)) -> Result<SelfPretrainReport> {
    let recipe = Recipe::load(&args.recipe, &args.overrides)?;
    let (pre_epochs, ft_epochs) = (recipe.train.epochs, recipe.eval.finetune_epochs);
    let long = vec![format!("eval.finetune_epochs={}", pre_epochs + ft_epochs)];
    let (mut pre, mut scratch, mut scratch_long) = (Vec::new(), Vec::new(), Vec::new());
    let mut secs = [0.0f64; 3];
    let mut protocol = String::new();
    for seed in 0..args.seeds.max(1) {
        let dir = args.runs.join(format!("{}-seed{seed}", recipe.name));
        anyhow::ensure!(
            !dir.exists(),
            "{} exists already; choose another folder with --runs (nothing was overwritten)",
            dir.display()
        );
        let mut at_seed = recipe.clone();
        at_seed.seed = seed;
        let report = commands::pretrain_recipe(
            at_seed,
            &RunOptions {
                run_dir: Some(dir.clone()),
                resume: false,
                device: args.device,
                threads: args.threads,
                on_bad_input: BadInputPolicy::Fail,
                evaluate: false,
                progress: false,
                stop: Arc::new(AtomicBool::new(false)),
            },
        )?;
        let (a, p, t) = fine_tune_once(&dir, &[], seed, false, args)?;
        protocol = p;
        secs[0] += report.summary.seconds + t;
        pre.push(a);
        let (b, _, t) = fine_tune_once(&dir, &[], seed, true, args)?;
        secs[1] += t;
        scratch.push(b);
        let (c, _, t) = fine_tune_once(&dir, &long, seed, true, args)?;
        secs[2] += t;
        scratch_long.push(c);
        log(&format!(
            "seed {seed}: self-pretrained {:.2} %, scratch {:.2} %, scratch ({} epochs) {:.2} %",
            100.0 * a,
            100.0 * b,
            pre_epochs + ft_epochs,
            100.0 * c
        ));
    }
    Ok(SelfPretrainReport {
        recipe: recipe.name.clone(),
        method: recipe.method.name().into(),
        protocol,
        arms: vec![
            arm(
                &format!("self-pretrained ({}) + fine-tune", recipe.method.name()),
                format!("{pre_epochs} + {ft_epochs}"),
                pre,
                secs[0],
            ),
            arm(
                "from scratch, same fine-tune",
                format!("0 + {ft_epochs}"),
                scratch,
                secs[1],
            ),
            arm(
                "from scratch, equal epochs",
                format!("0 + {}", pre_epochs + ft_epochs),
                scratch_long,
                secs[2],
            ),
        ],
    })
}

pub fn format_report(r: &SelfPretrainReport) -> String {
    let mut s = format!(
        "{} — {} seed(s); protocol: {}\n{:<40} {:>10} {:>18} {:>10}\n",
        r.recipe,
        r.arms.first().map_or(0, |a| a.per_seed.len()),
        r.protocol,
        "arm",
        "epochs",
        "test accuracy %",
        "seconds"
    );
    for a in &r.arms {
        s.push_str(&format!(
            "{:<40} {:>10} {:>18} {:>10.0}\n",
            a.name,
            a.epochs,
            format!("{:.2} ± {:.2}", 100.0 * a.mean, 100.0 * a.std),
            a.seconds
        ));
    }
    s
}
