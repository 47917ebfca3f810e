//! Gradient-boosted trees on raw table features — the baseline tabular SSL papers compare with
//! (XGBoost in T-JEPA's tables) — from the `forust-ml` crate (histogram-based, XGBoost's
//! second-order objective). Binary classification (log-loss; more classes one booster per class
//! against the rest) and regression (squared loss), with
//! early stopping on a validation split, XGBoost-style defaults: learning rate 0.05, depth 6, up
//! to 1000 trees, 50 rounds of patience.
//!
//! Inputs are the encoded features (standardised numbers, one-hot categories), which trees split
//! on like any other column.
use super::downstream::Task;
use anyhow::{anyhow, ensure, Result};
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub struct GbdtConfig {
    pub trees: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    /// Rounds without improvement on the validation rows before stopping.
    pub patience: usize,
    pub seed: u64,
}

impl Default for GbdtConfig {
    fn default() -> Self {
        GbdtConfig {
            trees: 1000,
            learning_rate: 0.05,
            max_depth: 6,
            patience: 50,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GbdtResult {
    /// Accuracy in [0, 1], or RMSE.
    pub test_metric: f64,
    pub seconds: f64,
}

/// Row-major `rows × d` f32 → column-major f64 (forust's layout).
fn column_major(x: &[f32], d: usize) -> Vec<f64> {
    let rows = x.len() / d.max(1);
    let mut out = vec![0f64; x.len()];
    for r in 0..rows {
        for c in 0..d {
            out[c * rows + r] = x[r * d + c] as f64;
        }
    }
    out
}

/// Fits on (x_train, y_train) with early stopping on (x_val, y_val) and scores (x_test, y_test);
/// every `x_*` row-major with `d` columns.
#[allow(clippy::too_many_arguments)]
pub fn fit_gbdt(
    task: Task,
    (x_train, y_train): (&[f32], &[f64]),
    (x_val, y_val): (&[f32], &[f64]),
    (x_test, y_test): (&[f32], &[f64]),
    d: usize,
    cfg: &GbdtConfig,
) -> Result<GbdtResult> {
    let started = Instant::now();
    ensure!(d > 0, "no feature columns");
    let (n, nv, nt) = (x_train.len() / d, x_val.len() / d, x_test.len() / d);
    ensure!(
        n * d == x_train.len() && nv * d == x_val.len() && nt * d == x_test.len(),
        "feature arrays are not a whole number of {d}-wide rows"
    );
    ensure!(
        n == y_train.len() && nv == y_val.len() && nt == y_test.len(),
        "row and target counts differ"
    );
    ensure!(
        n > 0 && nv > 0 && nt > 0,
        "empty train, validation or test set"
    );
    let (xtr, xva, xte) = (
        column_major(x_train, d),
        column_major(x_val, d),
        column_major(x_test, d),
    );
    let fit = |objective, metric, y_train: &[f64], y_val: &[f64]| -> Result<Vec<f64>> {
        // Early stopping watches the objective's own metric on the validation rows.
        let mut booster = GradientBooster::default()
            .set_objective_type(objective)
            .set_iterations(cfg.trees)
            .set_learning_rate(cfg.learning_rate)
            .set_max_depth(cfg.max_depth)
            .set_evaluation_metric(Some(metric))
            .set_initialize_base_score(true)
            .set_early_stopping_rounds(Some(cfg.patience))
            .set_seed(cfg.seed);
        let w_val = vec![1.0; nv];
        booster
            .fit_unweighted(
                &Matrix::new(&xtr, n, d),
                y_train,
                Some(vec![(Matrix::new(&xva, nv, d), y_val, &w_val)]),
            )
            .map_err(|e| anyhow!("forust: {e}"))?;
        Ok(booster.predict(&Matrix::new(&xte, nt, d), true))
    };
    let accuracy = |predicted: &[f64]| {
        predicted
            .iter()
            .zip(y_test)
            .filter(|(p, y)| **p == **y)
            .count() as f64
            / nt as f64
    };
    let metric = match task {
        // predict() gives log-odds: class 1 when positive.
        Task::Classification { n_classes: 2 } => {
            let odds = fit(ObjectiveType::LogLoss, Metric::LogLoss, y_train, y_val)?;
            accuracy(&odds.iter().map(|&o| f64::from(o > 0.0)).collect::<Vec<_>>())
        }
        // More classes: one booster per class against the rest (forust has no softmax
        // objective), the class of the highest log-odds.
        Task::Classification { n_classes } => {
            let mut best = vec![(f64::NEG_INFINITY, 0.0); nt];
            for c in 0..n_classes {
                let one = |y: &[f64]| -> Vec<f64> {
                    y.iter().map(|&v| f64::from(v == c as f64)).collect()
                };
                let odds = fit(
                    ObjectiveType::LogLoss,
                    Metric::LogLoss,
                    &one(y_train),
                    &one(y_val),
                )?;
                for (b, o) in best.iter_mut().zip(odds) {
                    if o > b.0 {
                        *b = (o, c as f64);
                    }
                }
            }
            accuracy(&best.iter().map(|b| b.1).collect::<Vec<_>>())
        }
        Task::Regression => {
            let pred = fit(
                ObjectiveType::SquaredLoss,
                Metric::RootMeanSquaredError,
                y_train,
                y_val,
            )?;
            (pred
                .iter()
                .zip(y_test)
                .map(|(p, y)| (p - y).powi(2))
                .sum::<f64>()
                / nt as f64)
                .sqrt()
        }
    };
    Ok(GbdtResult {
        test_metric: metric,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::new();
        let (mut xor, mut step) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b, c): (f32, f32, f32) = (
                rng.gen_range(-1.0..1.0),
                rng.gen_range(-1.0..1.0),
                rng.gen(),
            );
            x.extend([a, b, c]);
            xor.push(if (a > 0.0) != (b > 0.0) { 1.0 } else { 0.0 });
            step.push(if a > 0.2 { 2.0 } else { -1.0 });
        }
        (x, xor, step)
    }

    /// XOR of two signs: no linear model beats chance, trees should.
    #[test]
    fn trees_learn_an_interaction_and_a_step() {
        let (x, xor, step) = data(2000, 1);
        let (xt, xor_t, step_t) = data(500, 2);
        let task = Task::Classification { n_classes: 2 };
        let (xv, xor_v, step_v) = data(500, 3);
        let cfg = GbdtConfig::default();
        let r = fit_gbdt(task, (&x, &xor), (&xv, &xor_v), (&xt, &xor_t), 3, &cfg).unwrap();
        assert!(r.test_metric >= 0.9, "accuracy {}", r.test_metric);
        let r = fit_gbdt(
            Task::Regression,
            (&x, &step),
            (&xv, &step_v),
            (&xt, &step_t),
            3,
            &cfg,
        )
        .unwrap();
        assert!(r.test_metric < 0.2, "rmse {}", r.test_metric);
    }

    #[test]
    fn column_major_transposes() {
        assert_eq!(
            column_major(&[1., 2., 3., 4., 5., 6.], 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }

    /// Three classes by quadrant interactions: one-vs-rest boosters find them.
    #[test]
    fn one_booster_per_class_learns_three_classes() {
        let label = |x: &[f32]| -> Vec<f64> {
            x.chunks(3)
                .map(|r| match ((r[0] > 0.0), (r[1] > 0.0)) {
                    (true, true) => 0.0,
                    (false, false) => 1.0,
                    _ => 2.0,
                })
                .collect()
        };
        let (x, _, _) = data(2000, 4);
        let (xv, _, _) = data(500, 5);
        let (xt, _, _) = data(500, 6);
        let r = fit_gbdt(
            Task::Classification { n_classes: 3 },
            (&x, &label(&x)),
            (&xv, &label(&xv)),
            (&xt, &label(&xt)),
            3,
            &GbdtConfig::default(),
        )
        .unwrap();
        assert!(r.test_metric >= 0.9, "accuracy {}", r.test_metric);
    }
}
