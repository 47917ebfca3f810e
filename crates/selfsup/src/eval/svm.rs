//! The RBF support-vector-machine protocol of TS2Vec (Yue et al. 2022, §4.1, and the authors'
//! `fit_svm`), which scikit-learn runs there:
//! - kernel exp(−γ‖x − y‖²) with γ = 1 / (D · Var(X)), `gamma = 'scale'` over every value of
//!   the training features;
//! - C = ∞ (hard margin) without search when the training set is small: fewer than 50 samples,
//!   or ⌊n / classes⌋ < 5;
//! - otherwise C from {10⁻⁴, …, 10⁴, ∞} by 5-fold stratified cross-validation (scikit-learn's
//!   `StratifiedKFold` without shuffling: the same folds), best mean accuracy, the first C on a
//!   tie; then a refit on the whole training set;
//! - several classes by one-vs-one voting, ties to the lowest class (libsvm's rule).
//!
//! The binary machines are linfa-svm's (a port of libsvm's SMO with its working-set selection),
//! with libsvm's stopping tolerance 10⁻³.
use anyhow::{ensure, Context, Result};
use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::Serialize;
use tch::{Kind, Tensor};

/// TS2Vec's C grid: powers of ten from 10⁻⁴ to 10⁴, then ∞.
pub const C_GRID: [f64; 10] = [
    1e-4,
    1e-3,
    1e-2,
    1e-1,
    1.0,
    10.0,
    100.0,
    1e3,
    1e4,
    f64::INFINITY,
];
/// Folds of the cross-validation.
pub const FOLDS: usize = 5;
/// Stopping tolerance of the SMO solver (libsvm's and scikit-learn's default).
const TOLERANCE: f64 = 1e-3;

/// What the protocol found and scored.
#[derive(Debug, Clone, Serialize)]
pub struct SvmResult {
    pub accuracy: f64,
    /// The C used for the final machine (`null` in JSON for ∞).
    #[serde(serialize_with = "finite_or_null")]
    pub c: f64,
    pub gamma: f64,
    /// Whether C was searched (false: the small-training-set rule gave ∞).
    pub searched: bool,
    /// Mean cross-validated accuracy per C of the grid, when searched.
    pub cv_accuracy: Vec<f64>,
}

fn finite_or_null<S: serde::Serializer>(c: &f64, s: S) -> Result<S::Ok, S::Error> {
    if c.is_finite() {
        s.serialize_f64(*c)
    } else {
        s.serialize_none()
    }
}

/// γ = 1 / (D · Var(X)) over every value of `x` (scikit-learn's `gamma = 'scale'`).
pub fn gamma_scale(x: ArrayView2<f64>) -> f64 {
    let var = x.var(0.0);
    let d = x.ncols() as f64;
    if var > 0.0 {
        1.0 / (d * var)
    } else {
        1.0
    }
}

/// Whether TS2Vec searches C for `n` training samples of `classes` classes.
pub fn searches_c(n: usize, classes: usize) -> bool {
    !(n < 50 || n / classes.max(1) < 5)
}

/// The fold of each sample under scikit-learn's `StratifiedKFold(k)` without shuffling: classes
/// numbered by first appearance, the sorted labels dealt round-robin to count each fold's share
/// of a class, and each class's samples given to folds 0, 1, … in data order by those counts.
pub fn stratified_folds(y: &[usize], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    for &c in y {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    let encoded: Vec<usize> = y
        .iter()
        .map(|c| order.iter().position(|o| o == c).unwrap())
        .collect();
    let mut sorted = encoded.clone();
    sorted.sort_unstable();
    let classes = order.len();
    let mut share = vec![vec![0usize; classes]; k];
    for (j, &c) in sorted.iter().enumerate() {
        share[j % k][c] += 1;
    }
    let mut next = vec![(0usize, 0usize); classes]; // (fold, taken from it)
    encoded
        .iter()
        .map(|&c| {
            let (fold, taken) = &mut next[c];
            while *taken >= share[*fold][c] {
                *fold += 1;
                *taken = 0;
            }
            *taken += 1;
            *fold
        })
        .collect()
}

/// One-vs-one machines: `pairs[p] = (i, j, machine)`, the machine's positive class `i`.
pub struct OneVsOne {
    classes: usize,
    pairs: Vec<(usize, usize, Svm<f64, bool>)>,
}

impl OneVsOne {
    pub fn fit(
        x: ArrayView2<f64>,
        y: &[usize],
        classes: usize,
        c: f64,
        gamma: f64,
    ) -> Result<Self> {
        let mut pairs = Vec::new();
        for i in 0..classes {
            for j in i + 1..classes {
                let rows: Vec<usize> = (0..y.len()).filter(|&r| y[r] == i || y[r] == j).collect();
                if !rows.iter().any(|&r| y[r] == i) || !rows.iter().any(|&r| y[r] == j) {
                    continue; // a class absent from this training set never gets a vote
                }
                let records = x.select(Axis(0), &rows);
                let targets: Array1<bool> = rows.iter().map(|&r| y[r] == i).collect();
                let machine = Svm::<f64, bool>::params()
                    .pos_neg_weights(c, c)
                    .gaussian_kernel(1.0 / gamma)
                    .eps(TOLERANCE)
                    .fit(&Dataset::new(records, targets))
                    .with_context(|| format!("fitting the SVM of classes {i} and {j}"))?;
                pairs.push((i, j, machine));
            }
        }
        Ok(OneVsOne { classes, pairs })
    }

    /// The class with the most pairwise votes (the lowest on a tie).
    pub fn predict(&self, x: ArrayView2<f64>) -> Vec<usize> {
        x.outer_iter()
            .map(|row| {
                let mut votes = vec![0usize; self.classes];
                for (i, j, m) in &self.pairs {
                    let value = m.weighted_sum(&row) - m.rho;
                    votes[if value > 0.0 { *i } else { *j }] += 1;
                }
                let best = votes.iter().max().copied().unwrap_or(0);
                votes.iter().position(|&v| v == best).unwrap_or(0)
            })
            .collect()
    }
}

fn accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    let right = predicted.iter().zip(truth).filter(|(a, b)| a == b).count();
    right as f64 / truth.len().max(1) as f64
}

/// Mean accuracy of each C over the stratified folds.
pub fn cross_validate(
    x: ArrayView2<f64>,
    y: &[usize],
    classes: usize,
    gamma: f64,
    grid: &[f64],
) -> Result<Vec<f64>> {
    let folds = stratified_folds(y, FOLDS);
    let mut scores = vec![0.0; grid.len()];
    for f in 0..FOLDS {
        let (fit, held): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&r| folds[r] != f);
        ensure!(
            !held.is_empty(),
            "fold {f} of the cross-validation is empty"
        );
        let (xf, yf) = (
            x.select(Axis(0), &fit),
            fit.iter().map(|&r| y[r]).collect::<Vec<_>>(),
        );
        let (xh, yh) = (
            x.select(Axis(0), &held),
            held.iter().map(|&r| y[r]).collect::<Vec<_>>(),
        );
        for (s, &c) in scores.iter_mut().zip(grid) {
            let m = OneVsOne::fit(xf.view(), &yf, classes, c, gamma)?;
            *s += accuracy(&m.predict(xh.view()), &yh) / FOLDS as f64;
        }
    }
    Ok(scores)
}

fn to_array(x: &Tensor) -> Result<Array2<f64>> {
    let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
    let v = Vec::<f64>::try_from(x.to_kind(Kind::Double).contiguous().view([-1]))?;
    Ok(Array2::from_shape_vec((n, d), v)?)
}

fn to_classes(y: &Tensor) -> Result<Vec<usize>> {
    Ok(Vec::<i64>::try_from(y.to_kind(Kind::Int64))?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// The protocol on (train, test) features `[N, D]` with class labels `[N]`.
pub fn svm_protocol(
    train: &Tensor,
    ytr: &Tensor,
    test: &Tensor,
    yte: &Tensor,
    classes: usize,
) -> Result<SvmResult> {
    let (xtr, xte) = (to_array(train)?, to_array(test)?);
    let (ytr, yte) = (to_classes(ytr)?, to_classes(yte)?);
    ensure!(
        xtr.iter().chain(xte.iter()).all(|v| v.is_finite()),
        "the SVM protocol got non-finite features"
    );
    let present = {
        let mut seen = vec![false; classes];
        ytr.iter().for_each(|&c| seen[c] = true);
        seen.iter().filter(|s| **s).count()
    };
    let gamma = gamma_scale(xtr.view());
    let (c, searched, cv_accuracy) = if searches_c(ytr.len(), present) {
        let scores = cross_validate(xtr.view(), &ytr, classes, gamma, &C_GRID)?;
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
            }
        }
        (C_GRID[best], true, scores)
    } else {
        (f64::INFINITY, false, Vec::new())
    };
    let m = OneVsOne::fit(xtr.view(), &ytr, classes, c, gamma)?;
    Ok(SvmResult {
        accuracy: accuracy(&m.predict(xte.view()), &yte),
        c,
        gamma,
        searched,
        cv_accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn folds_follow_scikit_learn_stratified_k_fold() {
        // scikit-learn 1.9.1, StratifiedKFold(5).split(zeros(12), y) with
        // y = [1,1,1,0,0,0,0,0,0,2,2,2] puts the samples in the test folds
        // [0,1,2, 0,1,2,3,3,4, 0,1,4].
        let y = [1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2];
        assert_eq!(
            stratified_folds(&y, 5),
            [0, 1, 2, 0, 1, 2, 3, 3, 4, 0, 1, 4]
        );
        // Every sample in one fold, and folds as even as the classes allow.
        let y: Vec<usize> = (0..53).map(|i| (i * 7) % 3).collect();
        let f = stratified_folds(&y, 5);
        let sizes: Vec<usize> = (0..5)
            .map(|k| f.iter().filter(|&&x| x == k).count())
            .collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
    }

    #[test]
    fn small_training_sets_take_infinite_c_without_search() {
        assert!(!searches_c(49, 2));
        assert!(!searches_c(60, 13)); // ⌊60/13⌋ = 4 < 5
        assert!(searches_c(50, 10));
        let x = Tensor::from_slice(&[0.0f32, 0.1, 1.0, 1.1, 0.05, 1.05]).view([6, 1]);
        let y = Tensor::from_slice(&[0i64, 0, 1, 1, 0, 1]);
        let r = svm_protocol(&x, &y, &x, &y, 2).unwrap();
        assert!(!r.searched && r.c.is_infinite() && r.cv_accuracy.is_empty());
        assert_eq!(r.accuracy, 1.0);
        assert!(
            (r.gamma - 1.0 / x.to_kind(Kind::Double).var(false).double_value(&[])).abs() < 1e-9
        );
    }

    /// Two noisy Gaussian classes: a tiny C gives every sample the majority class, so the
    /// search must move away from 10⁻⁴, and the chosen C is the first best of the grid.
    #[test]
    fn c_is_chosen_by_cross_validation_on_the_grid() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let n = 80;
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let class = (i % 4 == 0) as i64; // 25 % minority
            let centre = if class == 1 { 1.5 } else { -0.5 };
            xs.push(centre + rng.gen_range(-1.0..1.0f32));
            xs.push(rng.gen_range(-1.0..1.0f32));
            ys.push(class);
        }
        let x = Tensor::from_slice(&xs).view([n as i64, 2]);
        let y = Tensor::from_slice(&ys);
        let r = svm_protocol(&x, &y, &x, &y, 2).unwrap();
        assert!(r.searched);
        assert_eq!(r.cv_accuracy.len(), C_GRID.len());
        // At C = 1e-4 the machine predicts the majority class everywhere: 75 %.
        assert!(
            (r.cv_accuracy[0] - 0.75).abs() < 1e-9,
            "{:?}",
            r.cv_accuracy
        );
        let best = r.cv_accuracy.iter().cloned().fold(f64::MIN, f64::max);
        let first = r.cv_accuracy.iter().position(|&s| s == best).unwrap();
        assert_eq!(r.c, C_GRID[first]);
        assert!(best > 0.85, "{:?}", r.cv_accuracy);
        // The reported CV scores are those of an independent run of the folds.
        let xa = to_array(&x).unwrap();
        let ya = to_classes(&y).unwrap();
        let again = cross_validate(xa.view(), &ya, 2, r.gamma, &C_GRID).unwrap();
        assert_eq!(again, r.cv_accuracy);
    }

    /// The protocol against scikit-learn's own run of it (`testdata/svm_sklearn.py`, scikit-learn
    /// 1.9.1): the same γ, the same cross-validated accuracy per C up to the solvers' tolerance,
    /// the same C, and the same test predictions.
    #[test]
    fn agrees_with_scikit_learn_on_a_three_class_fixture() {
        let f: serde_json::Value =
            serde_json::from_str(include_str!("testdata/svm_sklearn.json")).unwrap();
        let matrix = |k: &str| {
            let rows: Vec<Vec<f64>> = serde_json::from_value(f[k].clone()).unwrap();
            let (n, d) = (rows.len(), rows[0].len());
            Array2::from_shape_vec((n, d), rows.concat()).unwrap()
        };
        let labels = |k: &str| -> Vec<usize> { serde_json::from_value(f[k].clone()).unwrap() };
        let (x, y, xt, yt) = (
            matrix("train"),
            labels("train_labels"),
            matrix("test"),
            labels("test_labels"),
        );
        let gamma = gamma_scale(x.view());
        assert!((gamma - f["gamma"].as_f64().unwrap()).abs() < 1e-9 * gamma);
        let theirs: Vec<f64> = serde_json::from_value(f["cv_accuracy"].clone()).unwrap();
        let ours = cross_validate(x.view(), &y, 3, gamma, &C_GRID).unwrap();
        for (c, (a, b)) in C_GRID.iter().zip(ours.iter().zip(&theirs)) {
            // One held-out sample of 13 or 14 is 0.015 of a fold's mean; allow one per fold.
            assert!(
                (a - b).abs() <= 0.016,
                "C = {c}: ours {a}, scikit-learn {b}"
            );
        }
        let to = |v: &[f64]| Tensor::from_slice(v);
        let r = svm_protocol(
            &to(x.as_slice().unwrap()).view([x.nrows() as i64, -1]),
            &Tensor::from_slice(&y.iter().map(|&v| v as i64).collect::<Vec<_>>()),
            &to(xt.as_slice().unwrap()).view([xt.nrows() as i64, -1]),
            &Tensor::from_slice(&yt.iter().map(|&v| v as i64).collect::<Vec<_>>()),
            3,
        )
        .unwrap();
        assert_eq!(r.c, C_GRID[f["best_c_index"].as_u64().unwrap() as usize]);
        let m = OneVsOne::fit(x.view(), &y, 3, r.c, gamma).unwrap();
        let want: Vec<usize> = serde_json::from_value(f["test_predictions"].clone()).unwrap();
        assert_eq!(m.predict(xt.view()), want);
        assert!((r.accuracy - f["test_accuracy"].as_f64().unwrap()).abs() < 1e-12);
    }

    #[test]
    fn one_vs_one_separates_three_classes_and_breaks_ties_low() {
        let pts = [
            (0.0, 0.0),
            (0.2, 0.1),
            (5.0, 0.0),
            (5.1, 0.2),
            (0.0, 5.0),
            (0.1, 5.2),
        ];
        let x = Array2::from_shape_fn((6, 2), |(i, j)| if j == 0 { pts[i].0 } else { pts[i].1 });
        let y = [0, 0, 1, 1, 2, 2];
        let m = OneVsOne::fit(x.view(), &y, 3, f64::INFINITY, 0.1).unwrap();
        assert_eq!(m.predict(x.view()), y);
        // With no machines every class has zero votes: the lowest wins.
        let empty = OneVsOne {
            classes: 3,
            pairs: Vec::new(),
        };
        assert_eq!(empty.predict(x.view()), [0; 6]);
    }
}
