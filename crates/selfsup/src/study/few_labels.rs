//! `selfsup few-labels`: what the few-label methods add on top of self-supervised pretraining.
//! Per seed, the recipe is pretrained once (its own `train` settings, no labels); then, at each
//! label fraction, the pretrained encoder is fine-tuned on a stratified subset of the training
//! labels in five ways, each from the same pretrained weights and with the same subset:
//!
//! * baseline — cross-entropy with AdamW, the recipe's fine-tuning settings;
//! * self-training — the baseline as teacher, hard pseudo-labels at ≥ the recipe's threshold on
//!   the unlabelled rest, a student from the pretrained weights on both (`eval/self_training.rs`);
//! * SLA — joint class × rotation labels, aggregated inference (`objectives/sla.rs`);
//! * PS-KD — targets softened by last epoch's predictions (`objectives/ps_kd.rs`);
//! * SAM — the baseline inside SAM (`train/sam.rs`), ρ from the options.
//!
//! Each arm's change is measured against the baseline of the same seed and fraction. The length
//! of fine-tuning is a number of optimiser steps, the same for every arm at every fraction
//! (epochs = steps ÷ batches per epoch, rounded up); SLA's steps see four rotated copies of each
//! batch and SAM's take two passes, so their cost per step is about 4× and 2×; self-training's
//! student runs its own epochs over the labelled and pseudo-labelled samples on top.
//!
//! The table is `--out` (default `<runs>/few-labels.json`), rewritten after every cell; running
//! the command again continues it.
use super::seed_run::pretrain_and_load;
use super::table_file;
use crate::eval::fine_tune::{fine_tune, FineTuneConfig};
use crate::eval::self_training::{restore, self_train, snapshot};
use crate::eval::supervised::SupervisedObjective;
use crate::recipe::Recipe;
use crate::run::fine_tune::fine_tune_config;
use crate::run::RunOptions;
use crate::stats::mean_std;
use crate::train::sam::SamConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The arms, in table order.
pub const ARMS: [&str; 5] = ["baseline", "self-training", "sla", "ps-kd", "sam"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub seed: u64,
    pub fraction: f64,
    pub arm: String,
    pub accuracy: f64,
    pub ece: f64,
    pub labelled: usize,
    pub epochs: u64,
    pub steps: u64,
    pub seconds: f64,
    /// Self-training: pseudo-labelled samples and the fraction of them right.
    pub pseudo_labelled: Option<usize>,
    pub pseudo_label_accuracy: Option<f64>,
    /// The teacher's accuracy (self-training; the baseline retrained inside the arm).
    pub teacher_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FewLabelsTable {
    pub recipe: String,
    pub seeds: Vec<u64>,
    pub fractions: Vec<f64>,
    pub steps: u64,
    pub batch: usize,
    pub sam_rho: f64,
    pub self_training: String,
    pub pretrain_seconds: Vec<(u64, f64)>,
    pub cells: Vec<Cell>,
}

pub struct FewLabelsOptions {
    pub seeds: Vec<u64>,
    pub fractions: Vec<f64>,
    /// Fine-tuning steps of every arm (the student's are its own).
    pub steps: u64,
    /// Fine-tuning batch, halved until a fraction's labelled set holds at least four batches.
    pub batch: usize,
    pub sam_rho: f64,
    pub runs: PathBuf,
    pub out: Option<PathBuf>,
    pub run: RunOptions,
}

/// Self-training needs an unlabelled rest.
fn wanted(fraction: f64, arm: &str) -> bool {
    !(arm == "self-training" && fraction >= 1.0)
}

/// Batch and epochs of a fine-tuning over `n` labelled samples for `steps` steps.
pub fn schedule(n: usize, batch: usize, steps: u64) -> (usize, u64) {
    let mut b = batch.max(1);
    while b > 8 && n < 4 * b {
        b /= 2;
    }
    let per_epoch = (n / b).max(1) as u64;
    (b, steps.div_ceil(per_epoch).max(1))
}

pub fn run_few_labels(
    recipe: &Recipe,
    opts: &FewLabelsOptions,
    log: impl Fn(&str),
) -> Result<FewLabelsTable> {
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.runs.join("few-labels.json"));
    let mut table: FewLabelsTable =
        table_file::saved(Some(&out), true, "few-labels")?.unwrap_or_default();
    table.recipe = recipe.name.clone();
    table.seeds = opts.seeds.clone();
    table.fractions = opts.fractions.clone();
    table.steps = opts.steps;
    table.batch = opts.batch;
    table.sam_rho = opts.sam_rho;
    let st = &recipe.eval.self_training;
    table.self_training = format!(
        "{} round(s), threshold {}, student epochs {}",
        st.rounds, st.threshold, st.student_epochs
    );
    for &seed in &opts.seeds {
        let done = |t: &FewLabelsTable, f: f64, arm: &str| {
            t.cells
                .iter()
                .any(|c| c.seed == seed && c.fraction == f && c.arm == arm)
        };
        if opts
            .fractions
            .iter()
            .all(|&f| ARMS.iter().all(|a| !wanted(f, a) || done(&table, f, a)))
        {
            continue;
        }
        let mut r = recipe.clone();
        r.seed = seed;
        let t0 = std::time::Instant::now();
        let (_, loaded, _) = pretrain_and_load(&r, &recipe.name, seed, &opts.runs, &opts.run)?;
        if !table.pretrain_seconds.iter().any(|(s, _)| *s == seed) {
            table
                .pretrain_seconds
                .push((seed, t0.elapsed().as_secs_f64()));
        }
        let test = loaded
            .prepared
            .test
            .clone()
            .context("few-labels needs a labelled test split")?;
        let train = loaded.prepared.train.clone();
        let n_test = test.len();
        let n_classes = train.n_classes().max(test.n_classes()) as i64;
        let encoder = loaded.model.method.encoder();
        let vs = &loaded.model.vs;
        let pretrained = snapshot(vs);
        let device = opts.run.device;
        for &fraction in &opts.fractions {
            let mut base = fine_tune_config(&loaded.recipe.eval, seed);
            base.label_fraction = fraction;
            let labelled =
                ((fraction * train.len() as f64).round() as usize).max(n_classes as usize);
            let (batch, epochs) = schedule(labelled, opts.batch, opts.steps);
            base.batch = batch;
            base.epochs = epochs;
            for arm in ARMS {
                if !wanted(fraction, arm) || done(&table, fraction, arm) {
                    continue;
                }
                restore(vs, &pretrained);
                let mut cfg: FineTuneConfig = base.clone();
                match arm {
                    "sla" => {
                        cfg.objective = SupervisedObjective::Sla {
                            rotations: 4,
                            aggregate: true,
                        }
                    }
                    "ps-kd" => {
                        cfg.objective = SupervisedObjective::PsKd {
                            alpha_t: crate::objectives::ps_kd::ALPHA_T,
                        }
                    }
                    "sam" => {
                        cfg.sam = Some(SamConfig {
                            rho: opts.sam_rho,
                            ..Default::default()
                        })
                    }
                    _ => {}
                }
                let t = std::time::Instant::now();
                let cell = if arm == "self-training" {
                    let res = self_train(
                        encoder,
                        vs,
                        train.clone(),
                        test.as_ref(),
                        n_test,
                        n_classes,
                        &cfg,
                        st,
                        device,
                    )?;
                    let last = res.rounds.last();
                    Cell {
                        seed,
                        fraction,
                        arm: arm.into(),
                        accuracy: res.last().test_accuracy,
                        ece: res.last().test_ece,
                        labelled: res.teacher.train_samples,
                        epochs: cfg.epochs,
                        steps: res.teacher.steps
                            + res.rounds.iter().map(|r| r.student.steps).sum::<u64>(),
                        seconds: t.elapsed().as_secs_f64(),
                        pseudo_labelled: last.map(|r| r.pseudo_labelled),
                        pseudo_label_accuracy: last.and_then(|r| r.pseudo_label_accuracy),
                        teacher_accuracy: Some(res.teacher.test_accuracy),
                    }
                } else {
                    let res = fine_tune(
                        encoder,
                        vs,
                        train.clone(),
                        test.as_ref(),
                        n_test,
                        n_classes,
                        &cfg,
                        device,
                    )?;
                    Cell {
                        seed,
                        fraction,
                        arm: arm.into(),
                        accuracy: res.test_accuracy,
                        ece: res.test_ece,
                        labelled: res.train_samples,
                        epochs: cfg.epochs,
                        steps: res.steps,
                        seconds: t.elapsed().as_secs_f64(),
                        pseudo_labelled: None,
                        pseudo_label_accuracy: None,
                        teacher_accuracy: None,
                    }
                };
                log(&format!(
                    "seed {seed}, {}% labels, {arm}: {:.2}% ({:.0} s)",
                    fraction * 100.0,
                    cell.accuracy * 100.0,
                    cell.seconds
                ));
                table.cells.push(cell);
                table_file::save(Some(&out), &table)?;
            }
        }
    }
    Ok(table)
}

fn cell(table: &FewLabelsTable, seed: u64, fraction: f64, arm: &str) -> Option<f64> {
    table
        .cells
        .iter()
        .find(|c| c.seed == seed && c.fraction == fraction && c.arm == arm)
        .map(|c| c.accuracy * 100.0)
}

/// The table as Markdown: accuracy mean ± std over seeds, and each arm's change over the
/// baseline of the same seed (mean ± std of the per-seed differences).
pub fn format_table(table: &FewLabelsTable) -> String {
    let mut s = format!(
        "Few labels on top of `{}`: test accuracy %, mean ± std over seeds {:?}; Δ = arm − baseline of the same seed\n\n",
        table.recipe, table.seeds
    );
    s.push_str("| labels | arm | accuracy % | Δ vs baseline | seeds | s per run |\n|---|---|---|---|---|---|\n");
    for &f in &table.fractions {
        for arm in ARMS {
            let accs: Vec<f64> = table
                .seeds
                .iter()
                .filter_map(|&sd| cell(table, sd, f, arm))
                .collect();
            if accs.is_empty() {
                continue;
            }
            let deltas: Vec<f64> = table
                .seeds
                .iter()
                .filter_map(|&sd| Some(cell(table, sd, f, arm)? - cell(table, sd, f, "baseline")?))
                .collect();
            let (m, sd) = mean_std(&accs);
            let (dm, dsd) = mean_std(&deltas);
            let secs: Vec<f64> = table
                .cells
                .iter()
                .filter(|c| c.fraction == f && c.arm == arm)
                .map(|c| c.seconds)
                .collect();
            let delta = if arm == "baseline" || deltas.is_empty() {
                "–".to_string()
            } else {
                format!("{dm:+.2} ± {dsd:.2}")
            };
            s.push_str(&format!(
                "| {}% | {arm} | {m:.2} ± {sd:.2} | {delta} | {} | {:.0} |\n",
                f * 100.0,
                accs.len(),
                mean_std(&secs).0
            ));
        }
    }
    let st: Vec<&Cell> = table
        .cells
        .iter()
        .filter(|c| c.arm == "self-training")
        .collect();
    if !st.is_empty() {
        s.push_str("\nSelf-training (");
        s.push_str(&table.self_training);
        s.push_str("): pseudo-labelled samples and their accuracy per seed\n\n");
        for c in st {
            s.push_str(&format!(
                "- {}% labels, seed {}: teacher {:.2}%, {} pseudo-labels, {:.1}% right\n",
                c.fraction * 100.0,
                c.seed,
                c.teacher_accuracy.unwrap_or(f64::NAN) * 100.0,
                c.pseudo_labelled.unwrap_or(0),
                c.pseudo_label_accuracy.unwrap_or(f64::NAN) * 100.0
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_keep_the_step_budget_and_four_batches() {
        // 600 labels: batch 128 holds four batches; 4 steps an epoch → 150 epochs for 600 steps.
        assert_eq!(schedule(600, 128, 600), (128, 150));
        // 100 labels: the batch halves to 16 (6 batches), 6 steps an epoch → 100 epochs.
        assert_eq!(schedule(100, 128, 600), (16, 100));
        assert_eq!(schedule(60_000, 128, 600), (128, 2));
    }
}
