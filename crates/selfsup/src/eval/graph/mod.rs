//! Evaluation protocols of graph self-supervised learning: pure functions of frozen embeddings
//! (`[N, D]` floating point), integer labels and index sets.
//!
//! Node level (one graph, transductive):
//! - [`node_probe_adam`]: GraphMAE's linear probe (public split, Adam, validation-selected epoch);
//! - [`node_probe_dgi`]: DGI's repeated logistic regression (public split, 50 runs);
//! - [`random_split_probe`]: GRACE's random 10 %/90 % split with a cross-validated C.
//!
//! Graph level (many graphs, one label each):
//! - [`stratified_kfold`] and [`graph_cv_accuracy`]: GraphMAE's 10-fold protocol, with a linear
//!   classifier in place of its RBF-SVM.
//!
//! Labels are `i64`; a negative label (the loaders use -1) marks an unlabelled node. Accuracies are
//! fractions in [0, 1], not percentages.
//!
//! Randomness: every draw comes from [`crate::rng::keyed`] with [`Stream::Eval`], the epoch
//! coordinate set to a protocol tag (`TAG_*` below) and the index coordinate to the run / repeat /
//! fold, so each result is a pure function of its `seed` and does not depend on torch's global
//! generator (which tests running in parallel threads would share).

mod classifiers;
pub mod joint;
pub mod protocol;
use crate::stats::{mean, std_population, std_sample};
use anyhow::{bail, ensure, Result};
use classifiers::*;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::data::graph::NodeSplit;
use crate::eval::lbfgs::{minimise, LbfgsConfig};
use crate::eval::linear_probe::{fit_linear_probe, LinearProbeConfig};
use crate::rng::{keyed, Stream};

/// Key tags (the `epoch` coordinate of [`keyed`]) that keep the protocols' streams apart. Large
/// values so they cannot collide with real epoch numbers used by other evaluation code.
const TAG_ADAM_PROBE: u64 = 0x6772_6576_0001;
const TAG_DGI_PROBE: u64 = 0x6772_6576_0002;
const TAG_RANDOM_SPLIT: u64 = 0x6772_6576_0003;
const TAG_KFOLD: u64 = 0x6772_6576_0004;
const TAG_GRAPH_CV: u64 = 0x6772_6576_0005;

/// Adam's constants: torch.optim.Adam's defaults, which every reference uses.
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// GRACE's grid of inverse regularisation strengths, C ∈ 2^{−10..9} (GRACE, Zhu et al. 2020,
/// `eval.py::label_classification`).
const GRACE_LOG2_C: std::ops::RangeInclusive<i32> = -10..=9;
/// Inner cross-validation folds of the grid searches (sklearn GridSearchCV's `cv=5`).
const INNER_FOLDS: usize = 5;
/// L-BFGS budget of the GRACE classifier (the crate's linear-probe default).
const GRACE_LBFGS_ITERS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Results and settings

/// Settings of GraphMAE's linear probe (GraphMAE, Hou et al. 2022, `configs.yml`: `lr_f`,
/// `weight_decay_f`, `max_epoch_f`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamProbeConfig {
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight decay, torch's coupled form (wd·θ added to the gradient of weight *and* bias).
    pub weight_decay: f64,
    /// Full-batch Adam steps; validation and test accuracy are measured after each.
    pub epochs: usize,
}

impl AdamProbeConfig {
    /// GraphMAE's Cora setting: lr 0.01, weight decay 1e-4, 300 epochs.
    pub fn graphmae_cora() -> Self {
        AdamProbeConfig {
            lr: 0.01,
            weight_decay: 1e-4,
            epochs: 300,
        }
    }

    /// GraphMAE's CiteSeer setting: lr 0.01, weight decay 0.01, 300 epochs.
    pub fn graphmae_citeseer() -> Self {
        AdamProbeConfig {
            lr: 0.01,
            weight_decay: 0.01,
            epochs: 300,
        }
    }

    /// Rejects a non-positive learning rate, a negative weight decay and zero epochs.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "linear probe: the learning rate must be a positive number, not {}",
            self.lr
        );
        ensure!(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "linear probe: the weight decay must be a non-negative number, not {}",
            self.weight_decay
        );
        ensure!(self.epochs >= 1, "linear probe: epochs must be at least 1");
        Ok(())
    }
}

impl Default for AdamProbeConfig {
    /// [`AdamProbeConfig::graphmae_cora`].
    fn default() -> Self {
        Self::graphmae_cora()
    }
}

/// Outcome of [`node_probe_adam`]; GraphMAE reports both `final_test` (its `final_acc`) and
/// `early_stop_test` (its `estp_acc`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeProbeResult {
    /// Test accuracy after the last epoch.
    pub final_test: f64,
    /// Highest validation accuracy over the epochs.
    pub best_val: f64,
    /// Test accuracy at the selected epoch (the last one reaching `best_val`).
    pub early_stop_test: f64,
    /// The selected epoch, 0-based (epoch e = after e + 1 Adam steps).
    pub best_epoch: usize,
}

/// Accuracies of repeated runs of one protocol, with their mean and standard deviation. Which
/// standard deviation (population or sample) is stated by the function that returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RepeatedResult {
    pub mean: f64,
    pub std: f64,
    /// One accuracy per run, in run order.
    pub values: Vec<f64>,
}

/// Settings of [`graph_cv_accuracy`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GraphCvConfig {
    /// Candidate L2 strengths wd (loss term ½·wd·‖W‖² on standardised features), searched in this
    /// order; ties go to the earlier one.
    pub weight_decays: Vec<f64>,
    /// Folds of the inner, model-selection cross-validation (GridSearchCV's `cv=5`).
    pub inner_folds: usize,
    /// L-BFGS iterations per fit.
    pub max_iters: usize,
}

impl Default for GraphCvConfig {
    /// wd ∈ {1e-4, 1e-3, 1e-2, 1e-1, 1}, 5 inner folds, 500 L-BFGS iterations.
    fn default() -> Self {
        GraphCvConfig {
            weight_decays: vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            inner_folds: 5,
            max_iters: 500,
        }
    }
}

impl GraphCvConfig {
    /// Rejects an empty grid, negative or non-finite strengths and fewer than 2 inner folds.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.weight_decays.is_empty(),
            "graph CV: the weight-decay grid is empty"
        );
        for &wd in &self.weight_decays {
            ensure!(
                wd.is_finite() && wd >= 0.0,
                "graph CV: weight decays must be non-negative numbers, not {wd}"
            );
        }
        ensure!(
            self.inner_folds >= 2,
            "graph CV: at least 2 inner folds are needed, not {}",
            self.inner_folds
        );
        Ok(())
    }
}

/// Outcome of [`graph_cv_accuracy`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CvResult {
    /// Test accuracy of each outer fold, in fold order.
    pub fold_accuracies: Vec<f64>,
    /// Mean of `fold_accuracies`.
    pub mean: f64,
    /// Population standard deviation (ddof 0, numpy's default) of `fold_accuracies`.
    pub std: f64,
    /// The weight decay the inner cross-validation chose in each outer fold.
    pub selected_weight_decays: Vec<f64>,
}

// ---------------------------------------------------------------------------------------------
// Node level: GraphMAE

/// GraphMAE's linear probe (GraphMAE, Hou et al. 2022, `graphmae/evaluation.py`,
/// `linear_probing_for_transductive_node_classiifcation`).
///
/// A `Linear(D, C)` with PyTorch's default initialisation (weight and bias ~ U(−1/√D, 1/√D)) is
/// trained on the raw embeddings (no normalisation, as in the reference) by full-batch Adam
/// (torch semantics, coupled L2 weight decay) on the mean cross-entropy of the `split.train`
/// nodes, for `cfg.epochs` steps. After every step the validation and test accuracies are
/// measured; the reported early-stopping accuracy is the test accuracy at the last epoch whose
/// validation accuracy is ≥ every earlier one ([`select_best`]). C is the largest label + 1.
///
/// # Errors
/// If `emb` is not a finite 2-D floating-point tensor with one row per label, if a split part is
/// empty, names a node out of range or an unlabelled node (negative label), or if `cfg` is
/// invalid.
pub fn node_probe_adam(
    emb: &Tensor,
    labels: &[i64],
    split: &NodeSplit,
    cfg: &AdamProbeConfig,
    seed: u64,
) -> Result<NodeProbeResult> {
    cfg.validate()?;
    let (n, d) = check_embeddings(emb, labels.len())?;
    let c = num_classes(labels)?;
    let emb = emb.detach();
    let train = SplitPart::gather("train", &split.train, labels, n, &emb)?;
    let val = SplitPart::gather("validation", &split.val, labels, n, &emb)?;
    let test = SplitPart::gather("test", &split.test, labels, n, &emb)?;

    let mut rng = keyed(seed, Stream::Eval, TAG_ADAM_PROBE, 0, 0);
    let mut model = Linear::torch_default(d, c, &emb, &mut rng);
    let mut val_accs = Vec::with_capacity(cfg.epochs);
    let mut test_accs = Vec::with_capacity(cfg.epochs);
    train_adam(&mut model, &train, cfg, |m| {
        val_accs.push(m.accuracy(&val));
        test_accs.push(m.accuracy(&test));
    });
    let best = select_best(&val_accs, &test_accs)
        .ok_or_else(|| anyhow::anyhow!("linear probe: no epoch had a comparable accuracy"))?;
    Ok(NodeProbeResult {
        final_test: test_accs.last().copied().unwrap_or(f64::NAN),
        best_val: best.val,
        early_stop_test: best.test,
        best_epoch: best.epoch,
    })
}

/// The epoch GraphMAE's probe keeps: its `best_val_acc` starts at 0 and is replaced whenever
/// `val_acc >= best_val_acc` (GraphMAE, Hou et al. 2022, `evaluation.py`), i.e. the **last**
/// epoch with the highest validation accuracy. NaN accuracies never qualify.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestEpoch {
    pub epoch: usize,
    pub val: f64,
    pub test: f64,
}

/// Selects the early-stopping epoch from per-epoch validation and test accuracies (see
/// [`BestEpoch`]). `None` when no epoch has a validation accuracy ≥ 0 (empty or all NaN); extra
/// entries of the longer slice are ignored.
pub fn select_best(val_accs: &[f64], test_accs: &[f64]) -> Option<BestEpoch> {
    let mut best: Option<BestEpoch> = None;
    for (epoch, (&val, &test)) in val_accs.iter().zip(test_accs).enumerate() {
        if val >= best.map_or(0.0, |b| b.val) {
            best = Some(BestEpoch { epoch, val, test });
        }
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Node level: DGI

/// DGI's linear evaluation (DGI, Veličković et al. 2019, `execute.py`).
///
/// `runs` times (50 in the paper) on the same embeddings: a fresh logistic regression
/// (`Linear(D, C)`, Xavier-uniform weight, zero bias) is trained by full-batch Adam (`lr`, 0.01 in
/// the reference; no weight decay) for `epochs` (100) steps on the cross-entropy of the
/// `split.train` nodes, without any use of the validation nodes, and its accuracy on
/// `split.test` is recorded. Returns the mean and the **sample** standard deviation (divisor
/// runs − 1, torch.std's default as in the reference; NaN for a single run). Run r draws its
/// initialisation from its own keyed stream. C is the largest label + 1.
///
/// # Errors
/// As [`node_probe_adam`] (the validation part may be empty here), and if `runs` or `epochs` is
/// 0 or `lr` is not positive.
pub fn node_probe_dgi(
    emb: &Tensor,
    labels: &[i64],
    split: &NodeSplit,
    runs: usize,
    epochs: usize,
    lr: f64,
    seed: u64,
) -> Result<RepeatedResult> {
    ensure!(runs >= 1, "DGI probe: runs must be at least 1");
    let cfg = AdamProbeConfig {
        lr,
        weight_decay: 0.0,
        epochs,
    };
    cfg.validate()?;
    let (n, d) = check_embeddings(emb, labels.len())?;
    let c = num_classes(labels)?;
    let emb = emb.detach();
    let train = SplitPart::gather("train", &split.train, labels, n, &emb)?;
    let test = SplitPart::gather("test", &split.test, labels, n, &emb)?;
    // The validation nodes are unused, but an unlabelled or out-of-range one is still a malformed
    // split.
    if !split.val.is_empty() {
        SplitPart::gather("validation", &split.val, labels, n, &emb)?;
    }

    let values: Vec<f64> = (0..runs)
        .map(|run| {
            let mut rng = keyed(seed, Stream::Eval, TAG_DGI_PROBE, run as u64, 0);
            let mut model = Linear::xavier_zero(d, c, &emb, &mut rng);
            train_adam(&mut model, &train, &cfg, |_| {});
            model.accuracy(&test)
        })
        .collect();
    Ok(RepeatedResult {
        mean: mean(&values),
        std: std_sample(&values),
        values,
    })
}

// ---------------------------------------------------------------------------------------------
// Node level: GRACE

/// Random 10 %/90 % split, GRACE protocol (GRACE, Zhu et al. 2020, `eval.py::label_classification`),
/// with `train_fraction` = 0.1 and `repeats` = 3 (its `@repeat(3)`).
///
/// The embedding rows are L2-normalised (zero rows stay zero). Each repeat draws a random,
/// stratification-free split of the labelled nodes (label ≥ 0) — n_test = ⌈(1 − f)·n⌉, the rest
/// train, as sklearn's `train_test_split(test_size = 1 − f)` — chooses C ∈ {2^−10, …, 2^9} by
/// stratified 5-fold cross-validation on the training part (mean accuracy; ties go to the smaller
/// C, as GridSearchCV's first-best rule), refits on the whole training part and records the test
/// accuracy. Returns the mean and the **population** standard deviation (np.std, as the
/// reference) over the repeats.
///
/// Departures from the reference, each stated: the classifier is a multinomial (softmax)
/// logistic regression fitted by L-BFGS instead of one-vs-rest liblinear; C maps to the crate's
/// penalty as wd = 1/(C·n_fit) (liblinear minimises C·Σᵢ lossᵢ + ½‖w‖², which divided by C·n_fit
/// is mean loss + ½·wd·‖w‖²); like liblinear's intercept (a weight on a constant feature 1),
/// the bias is penalised with the weights; the inner folds are shuffled (keyed) rather than taken
/// in order. The features are used as L2-normalised, without standardisation, as in the
/// reference.
///
/// # Errors
/// If `emb` is malformed, `train_fraction` is not in (0, 1), `repeats` is 0, or the split leaves
/// fewer than 5 training nodes or no test node.
pub fn random_split_probe(
    emb: &Tensor,
    labels: &[i64],
    train_fraction: f64,
    repeats: usize,
    seed: u64,
) -> Result<RepeatedResult> {
    ensure!(
        train_fraction > 0.0 && train_fraction < 1.0,
        "random-split probe: the training fraction must lie strictly between 0 and 1, not {train_fraction}"
    );
    ensure!(
        repeats >= 1,
        "random-split probe: repeats must be at least 1"
    );
    let (_, d) = check_embeddings(emb, labels.len())?;
    let c = num_classes(labels)?;
    let labelled: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 0).collect();
    let n_test = ((1.0 - train_fraction) * labelled.len() as f64).ceil() as usize;
    let n_train = labelled.len().saturating_sub(n_test);
    ensure!(
        n_train >= INNER_FOLDS && n_test >= 1,
        "random-split probe: {} labelled nodes at fraction {train_fraction} give {n_train} training \
         and {n_test} test nodes; need at least {INNER_FOLDS} and 1",
        labelled.len()
    );
    let x = l2_normalise_rows(&emb.detach());
    let grid: Vec<f64> = GRACE_LOG2_C.map(|p| 2f64.powi(p)).collect();

    let mut values = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let mut rng = keyed(seed, Stream::Eval, TAG_RANDOM_SPLIT, r as u64, 0);
        let mut order = labelled.clone();
        order.shuffle(&mut rng);
        let (train, test) = order.split_at(n_train);
        let train_labels: Vec<i64> = train.iter().map(|&i| labels[i]).collect();
        let folds = stratified_kfold(&train_labels, INNER_FOLDS, rng.gen())?;

        let fit_score = |inv_c: f64, fit: &[usize], score: &[usize]| {
            let wd = 1.0 / (inv_c * fit.len() as f64);
            let (fx, fy) = rows(&x, labels, fit);
            let (sx, sy) = rows(&x, labels, score);
            let model = fit_softmax_lbfgs(&fx, &fy, c, d, wd, GRACE_LBFGS_ITERS);
            model.accuracy_on(&sx, &sy)
        };
        let local = |idx: &[usize]| idx.iter().map(|&i| train[i]).collect::<Vec<_>>();
        let best = choose_by_cv(&grid, &folds, |inv_c, fit, score| {
            fit_score(inv_c, &local(fit), &local(score))
        });
        values.push(fit_score(grid[best], train, test));
    }
    Ok(RepeatedResult {
        mean: mean(&values),
        std: std_population(&values),
        values,
    })
}

// ---------------------------------------------------------------------------------------------
// Graph level

/// Stratified k-fold split of `labels` (GraphMAE, Hou et al. 2022, `evaluate_graph_embeddings_using_svm`
/// uses sklearn's `StratifiedKFold(10, shuffle=True)`; this is our own keyed version of it).
///
/// The indices of each class (classes in ascending label order) are shuffled with a keyed
/// generator and concatenated; position p of the concatenation goes to test fold p mod k. So
/// every class's count per fold differs by at most one across folds, fold sizes differ by at
/// most one, and every index lies in exactly one test fold. Returns `(train, test)` per fold,
/// each sorted ascending. Any label value (negative included) is just a class key here.
///
/// # Errors
/// If k < 2 or k exceeds the number of samples.
pub fn stratified_kfold(
    labels: &[i64],
    k: usize,
    seed: u64,
) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    ensure!(k >= 2, "stratified k-fold: k must be at least 2, not {k}");
    ensure!(
        k <= labels.len(),
        "stratified k-fold: {k} folds need at least {k} samples, got {}",
        labels.len()
    );
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = keyed(seed, Stream::Eval, TAG_KFOLD, 0, 0);
    let mut fold_of = vec![0usize; labels.len()];
    let mut position = 0usize;
    for class in classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for i in members {
            fold_of[i] = position % k;
            position += 1;
        }
    }
    Ok((0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&i| fold_of[i] == f);
            (train, test)
        })
        .collect())
}

/// Graph-classification accuracy by stratified `folds`-fold cross-validation (GraphMAE, Hou et
/// al. 2022, `main_graph.py::evaluate_graph_embeddings_using_svm`: 10 folds, C chosen per fold
/// by an inner 5-fold grid search).
///
/// **Classifier: multinomial logistic regression, not GraphMAE's RBF-SVM.** Per outer fold the
/// crate's L-BFGS linear probe ([`fit_linear_probe`]: features standardised with the training
/// fold's statistics, loss mean CE + ½·wd·‖W‖²) is fitted with the wd of `cfg.weight_decays` that
/// has the best mean accuracy in an inner stratified `cfg.inner_folds`-fold cross-validation of
/// the training fold (ties → the earlier grid value), then refitted on the whole training fold
/// and scored on the test fold. Returns the per-fold accuracies, their mean and population
/// standard deviation. GraphMAE itself reports, per seed, the mean over folds, and then mean ±
/// std of those means across pre-training seeds; that outer loop belongs to the caller.
///
/// # Errors
/// If `emb` is malformed or does not have one row per label, a label is negative, `cfg` is
/// invalid, or there are too few graphs for the folds.
pub fn graph_cv_accuracy(
    emb: &Tensor,
    labels: &[i64],
    folds: usize,
    seed: u64,
    cfg: &GraphCvConfig,
) -> Result<CvResult> {
    cfg.validate()?;
    check_embeddings(emb, labels.len())?;
    if let Some(i) = labels.iter().position(|&y| y < 0) {
        bail!(
            "graph CV: graph {i} has label {}; every graph needs a label ≥ 0",
            labels[i]
        );
    }
    let c = num_classes(labels)?;
    let emb = emb.detach();
    let outer = stratified_kfold(labels, folds, seed)?;

    let fit_score = |wd: f64, fit: &[usize], score: &[usize]| {
        let (fx, fy) = rows(&emb, labels, fit);
        let (sx, sy) = rows(&emb, labels, score);
        let probe_cfg = LinearProbeConfig {
            max_iters: cfg.max_iters,
            weight_decay: wd,
            ..LinearProbeConfig::default()
        };
        fit_linear_probe(&fx, &fy, c, &probe_cfg).accuracy(&sx, &sy)
    };
    let mut fold_accuracies = Vec::with_capacity(folds);
    let mut selected_weight_decays = Vec::with_capacity(folds);
    for (f, (train, test)) in outer.iter().enumerate() {
        let train_labels: Vec<i64> = train.iter().map(|&i| labels[i]).collect();
        let inner_seed = keyed(seed, Stream::Eval, TAG_GRAPH_CV, f as u64, 0).gen();
        let inner = stratified_kfold(&train_labels, cfg.inner_folds, inner_seed)?;
        let local = |idx: &[usize]| idx.iter().map(|&i| train[i]).collect::<Vec<_>>();
        let best = choose_by_cv(&cfg.weight_decays, &inner, |wd, fit, score| {
            fit_score(wd, &local(fit), &local(score))
        });
        selected_weight_decays.push(cfg.weight_decays[best]);
        fold_accuracies.push(fit_score(cfg.weight_decays[best], train, test));
    }
    Ok(CvResult {
        mean: mean(&fold_accuracies),
        std: std_population(&fold_accuracies),
        fold_accuracies,
        selected_weight_decays,
    })
}

// ---------------------------------------------------------------------------------------------
// Input checks and gathering

/// Checks that `emb` is a finite `[n, D]` floating-point tensor with D ≥ 1 and n = `n_labels`
/// ≥ 1; returns (n, D).
fn check_embeddings(emb: &Tensor, n_labels: usize) -> Result<(i64, i64)> {
    let size = emb.size();
    ensure!(
        size.len() == 2,
        "embeddings must be [N, D], got shape {size:?}"
    );
    ensure!(
        emb.is_floating_point(),
        "embeddings must be floating point, got {:?}",
        emb.kind()
    );
    let (n, d) = (size[0], size[1]);
    ensure!(
        n >= 1 && d >= 1,
        "embeddings must be non-empty, got shape {size:?}"
    );
    ensure!(
        n as usize == n_labels,
        "embeddings have {n} rows but there are {n_labels} labels"
    );
    let finite = tch::no_grad(|| emb.isfinite().all().int64_value(&[]) == 1);
    ensure!(finite, "embeddings contain NaN or infinite values");
    Ok((n, d))
}

/// Number of classes: the largest non-negative label + 1.
fn num_classes(labels: &[i64]) -> Result<i64> {
    match labels.iter().copied().filter(|&y| y >= 0).max() {
        Some(m) => Ok(m + 1),
        None => bail!("no labelled sample (every label is negative)"),
    }
}

/// The rows of `x` and the labels (i64 tensor) of the samples `idx`. Callers have checked
/// the indices and labels.
fn rows(x: &Tensor, labels: &[i64], idx: &[usize]) -> (Tensor, Tensor) {
    let index: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let y: Vec<i64> = idx.iter().map(|&i| labels[i]).collect();
    let index = Tensor::from_slice(&index).to_device(x.device());
    (
        x.index_select(0, &index),
        Tensor::from_slice(&y).to_device(x.device()),
    )
}

/// One part of a node split: its embedding rows, labels and one-hot labels.
struct SplitPart {
    x: Tensor,
    y: Tensor,
}

impl SplitPart {
    /// Checks `idx` (non-empty, in range, labelled) and gathers it.
    fn gather(name: &str, idx: &[usize], labels: &[i64], n: i64, emb: &Tensor) -> Result<Self> {
        ensure!(!idx.is_empty(), "node split: the {name} set is empty");
        for &i in idx {
            ensure!(
                (i as i64) < n,
                "node split: {name} node {i} is out of range (the graph has {n} nodes)"
            );
            ensure!(
                labels[i] >= 0,
                "node split: {name} node {i} is unlabelled (label {}); unlabelled nodes cannot be \
                 in a train, validation or test set",
                labels[i]
            );
        }
        let (x, y) = rows(emb, labels, idx);
        Ok(SplitPart { x, y })
    }
}

/// Rows scaled to unit L2 norm; zero rows stay zero (sklearn's `normalize`).
fn l2_normalise_rows(x: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let norm = x.square().sum_dim_intlist(1, true, None::<Kind>).sqrt();
        let norm = norm.masked_fill(&norm.eq(0.0), 1.0);
        x / norm
    })
}

/// Index of the candidate with the highest mean score over `folds` (each `(fit, score)` of
/// positions); ties go to the earliest candidate, as sklearn's GridSearchCV.
fn choose_by_cv(
    candidates: &[f64],
    folds: &[(Vec<usize>, Vec<usize>)],
    mut fit_score: impl FnMut(f64, &[usize], &[usize]) -> f64,
) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &cand) in candidates.iter().enumerate() {
        let scores: Vec<f64> = folds
            .iter()
            .map(|(fit, score)| fit_score(cand, fit, score))
            .collect();
        let m = mean(&scores);
        if m > best.1 {
            best = (i, m);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// `per_class` points per class around 4·e_c with Gaussian noise of std `noise` (drawn from a
    /// keyed generator so parallel tests do not share torch's global one); labels in class order.
    fn clusters(
        n_classes: usize,
        per_class: usize,
        dim: usize,
        noise: f64,
        seed: u64,
    ) -> (Tensor, Vec<i64>) {
        let mut rng = keyed(seed, Stream::Eval, 99, 0, 0);
        let mut data = Vec::with_capacity(n_classes * per_class * dim);
        let mut labels = Vec::new();
        for class in 0..n_classes {
            for _ in 0..per_class {
                for j in 0..dim {
                    let centre = if j == class { 4.0 } else { 0.0 };
                    data.push((centre + noise * std_normal(&mut rng)) as f32);
                }
                labels.push(class as i64);
            }
        }
        let x = Tensor::from_slice(&data).reshape([(n_classes * per_class) as i64, dim as i64]);
        (x, labels)
    }

    /// A standard normal draw (Box–Muller), to avoid a dependency on rand_distr.
    fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Interleaved split of `n` nodes: i mod 3 = 0 train, 1 val, 2 test.
    fn split_mod3(n: usize) -> NodeSplit {
        NodeSplit {
            train: (0..n).filter(|i| i % 3 == 0).collect(),
            val: (0..n).filter(|i| i % 3 == 1).collect(),
            test: (0..n).filter(|i| i % 3 == 2).collect(),
        }
    }

    #[test]
    fn select_best_takes_the_last_epoch_with_the_highest_validation_accuracy() {
        let b = select_best(&[0.5, 0.7, 0.6, 0.7, 0.65], &[0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
        assert_eq!((b.epoch, b.val, b.test), (3, 0.7, 0.4));
        // Strictly increasing then flat: the last of the plateau.
        let b = select_best(&[0.1, 0.2, 0.2, 0.2], &[0.9, 0.8, 0.7, 0.6]).unwrap();
        assert_eq!((b.epoch, b.test), (3, 0.6));
        // The reference starts from best = 0, so an all-zero run selects the last epoch.
        let b = select_best(&[0.0, 0.0, 0.0], &[0.3, 0.2, 0.1]).unwrap();
        assert_eq!((b.epoch, b.test), (2, 0.1));
        // A later lower value never replaces the best.
        let b = select_best(&[0.9, 0.1], &[0.5, 1.0]).unwrap();
        assert_eq!((b.epoch, b.test), (0, 0.5));
        assert_eq!(select_best(&[], &[]), None);
        assert_eq!(select_best(&[f64::NAN], &[0.5]), None);
    }

    #[test]
    fn stratified_kfold_keeps_exact_class_counts_on_a_small_fixture() {
        let labels: Vec<i64> = [vec![0; 10], vec![1; 5]].concat();
        for seed in 0..5 {
            let folds = stratified_kfold(&labels, 5, seed).unwrap();
            assert_eq!(folds.len(), 5);
            let mut seen = vec![0usize; labels.len()];
            for (train, test) in &folds {
                let zeros = test.iter().filter(|&&i| labels[i] == 0).count();
                let ones = test.iter().filter(|&&i| labels[i] == 1).count();
                assert_eq!((zeros, ones), (2, 1), "seed {seed}: {test:?}");
                // train is the complement of test, both sorted.
                let mut all: Vec<usize> = train.iter().chain(test).copied().collect();
                all.sort_unstable();
                assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
                assert!(train.windows(2).all(|w| w[0] < w[1]));
                assert!(test.windows(2).all(|w| w[0] < w[1]));
                for &i in test {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
        }
    }

    #[test]
    fn stratified_kfold_balances_uneven_classes_and_is_keyed() {
        // Classes of 7, 4 and 13 members (label values need not be contiguous), 3 folds.
        let labels: Vec<i64> = [vec![5; 7], vec![-2; 4], vec![1; 13]].concat();
        let folds = stratified_kfold(&labels, 3, 11).unwrap();
        for class in [5, -2, 1] {
            let counts: Vec<usize> = folds
                .iter()
                .map(|(_, test)| test.iter().filter(|&&i| labels[i] == class).count())
                .collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "class {class}: {counts:?}");
        }
        let sizes: Vec<usize> = folds.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(sizes, vec![8, 8, 8]);
        assert_eq!(folds, stratified_kfold(&labels, 3, 11).unwrap());
        assert_ne!(folds, stratified_kfold(&labels, 3, 12).unwrap());

        assert!(stratified_kfold(&labels, 1, 0).is_err());
        assert!(stratified_kfold(&labels, 0, 0).is_err());
        assert!(stratified_kfold(&[0, 1], 3, 0).is_err());
    }

    #[test]
    fn adam_matches_hand_computed_torch_steps() {
        // θ = 1, constant gradient 0.5, lr 0.01, wd 0.1 (so g = 0.5 + 0.1·θ):
        // step 1: g = 0.6, m = 0.06, v = 3.6e-4, θ = 1 − (0.01/0.1)·0.06/(0.6 + 1e-8) ≈ 0.99000000017;
        // step 2: g = 0.599, m = 0.1139, v = 7.18441e-4, θ ≈ 0.98000043860.
        let mut adam = Adam::new(0.01, 0.1, 1);
        let mut p = [Tensor::from_slice(&[1.0f64])];
        let g = [Tensor::from_slice(&[0.5f64])];
        adam.step(&mut p, &g);
        assert!((p[0].double_value(&[0]) - 0.990_000_000_166_666_7).abs() < 1e-12);
        adam.step(&mut p, &g);
        assert!((p[0].double_value(&[0]) - 0.980_000_438_601_57).abs() < 1e-10);
    }

    #[test]
    fn analytic_cross_entropy_gradient_matches_autograd() {
        let mut rng = keyed(1, Stream::Eval, 98, 0, 0);
        let like = Tensor::zeros([1], (Kind::Double, Device::Cpu));
        let x = uniform(&mut rng, &[6, 4], 2.0, &like);
        let y = Tensor::from_slice(&[0i64, 2, 1, 2, 0, 1]);
        let model = Linear::torch_default(4, 3, &like, &mut rng);
        let (gw, gb) = model.ce_grad(&x, &y.one_hot(3).to_kind(Kind::Double));

        let w = model.weight.detach().set_requires_grad(true);
        let b = model.bias.detach().set_requires_grad(true);
        // (tch's `cross_entropy_for_logits` computes in f32; stay in f64.)
        let log_p = (x.matmul(&w.tr()) + &b).log_softmax(1, Kind::Double);
        let loss = -log_p.gather(1, &y.unsqueeze(1), false).mean(Kind::Double);
        loss.backward();
        let diff = (&gw - w.grad()).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{diff}: {gw} vs {}", w.grad());
        assert!((gb - b.grad()).abs().max().double_value(&[]) < 1e-12);
    }

    #[test]
    fn softmax_lbfgs_gradient_matches_finite_differences() {
        let mut rng = keyed(2, Stream::Eval, 98, 0, 0);
        let like = Tensor::zeros([1], (Kind::Double, Device::Cpu));
        let (d, c) = (3, 4);
        let x = uniform(&mut rng, &[5, d], 1.5, &like);
        let y = Tensor::from_slice(&[3i64, 0, 1, 1, 2]);
        let theta = uniform(&mut rng, &[d * c + c], 1.0, &like);
        let (_, grad) = softmax_loss_grad(&x, &y, c, d, 0.3, &theta);
        let h = 1e-6;
        for i in 0..d * c + c {
            let e = Tensor::zeros([d * c + c], (Kind::Double, Device::Cpu)).index_fill(
                0,
                &Tensor::from_slice(&[i]),
                h,
            );
            let fd = (softmax_loss_grad(&x, &y, c, d, 0.3, &(&theta + &e)).0
                - softmax_loss_grad(&x, &y, c, d, 0.3, &(&theta - &e)).0)
                / (2.0 * h);
            let an = grad.double_value(&[i]);
            assert!(
                (fd - an).abs() < 1e-7 * (1.0 + an.abs()),
                "{i}: {an} vs {fd}"
            );
        }
    }

    #[test]
    fn initialisations_respect_their_bounds_and_are_keyed() {
        let like = Tensor::zeros([1], (Kind::Float, Device::Cpu));
        let (d, c) = (16, 3);
        let draw = |seed| {
            let mut rng = keyed(seed, Stream::Eval, TAG_ADAM_PROBE, 0, 0);
            Linear::torch_default(d, c, &like, &mut rng)
        };
        let a = draw(4);
        assert_eq!((a.weight.size(), a.bias.size()), (vec![c, d], vec![c]));
        let bound = 1.0 / (d as f64).sqrt();
        assert!(a.weight.abs().max().double_value(&[]) <= bound);
        assert!(a.bias.abs().max().double_value(&[]) <= bound);
        assert!(a.weight.abs().max().double_value(&[]) > 0.5 * bound);
        assert!(a.weight.equal(&draw(4).weight) && !a.weight.equal(&draw(5).weight));

        let mut rng = keyed(4, Stream::Eval, TAG_DGI_PROBE, 0, 0);
        let x = Linear::xavier_zero(d, c, &like, &mut rng);
        let bound = (6.0 / (d + c) as f64).sqrt();
        assert!(x.weight.abs().max().double_value(&[]) <= bound);
        assert_eq!(x.bias.abs().sum(Kind::Double).double_value(&[]), 0.0);
    }

    #[test]
    fn adam_probe_is_perfect_on_separable_clusters_and_deterministic() {
        let (x, labels) = clusters(3, 30, 8, 0.3, 1);
        let split = split_mod3(labels.len());
        let cfg = AdamProbeConfig::graphmae_cora();
        let r = node_probe_adam(&x, &labels, &split, &cfg, 0).unwrap();
        assert_eq!(
            (r.final_test, r.best_val, r.early_stop_test),
            (1.0, 1.0, 1.0),
            "{r:?}"
        );
        // Perfect validation accuracy is reached early and kept, so the last epoch wins the tie.
        assert_eq!(r.best_epoch, cfg.epochs - 1, "{r:?}");
        assert_eq!(r, node_probe_adam(&x, &labels, &split, &cfg, 0).unwrap());
    }

    #[test]
    fn dgi_probe_reports_one_value_per_run_and_is_perfect_on_clusters() {
        let (x, labels) = clusters(3, 30, 8, 0.3, 2);
        let split = split_mod3(labels.len());
        let r = node_probe_dgi(&x, &labels, &split, 7, 100, 0.01, 3).unwrap();
        assert_eq!(r.values.len(), 7);
        assert!(r.values.iter().all(|&v| v == 1.0), "{r:?}");
        assert_eq!((r.mean, r.std), (1.0, 0.0));
        assert!(node_probe_dgi(&x, &labels, &split, 0, 100, 0.01, 3).is_err());
    }

    #[test]
    fn random_split_probe_is_perfect_on_clusters_and_skips_unlabelled_nodes() {
        let (x, mut labels) = clusters(3, 100, 6, 0.3, 4);
        // Unlabelled nodes are left out of the random split rather than rejected.
        labels[0] = -1;
        labels[150] = -1;
        let r = random_split_probe(&x, &labels, 0.1, 3, 5).unwrap();
        assert_eq!(r.values, vec![1.0, 1.0, 1.0], "{r:?}");
        assert_eq!((r.mean, r.std), (1.0, 0.0));
        assert!(random_split_probe(&x, &labels, 0.0, 3, 5).is_err());
        assert!(random_split_probe(&x, &labels, 1.0, 3, 5).is_err());
        assert!(
            random_split_probe(&x, &labels, 0.01, 3, 5).is_err(),
            "2 training nodes"
        );
        assert!(random_split_probe(&x, &labels, 0.1, 0, 5).is_err());
    }

    #[test]
    fn graph_cv_is_perfect_on_clusters() {
        let (x, labels) = clusters(3, 20, 5, 0.3, 6);
        let r = graph_cv_accuracy(&x, &labels, 10, 7, &GraphCvConfig::default()).unwrap();
        assert_eq!(r.fold_accuracies.len(), 10);
        assert_eq!(r.selected_weight_decays.len(), 10);
        assert!(r.fold_accuracies.iter().all(|&a| a == 1.0), "{r:?}");
        assert_eq!((r.mean, r.std), (1.0, 0.0));

        let mut bad = labels.clone();
        bad[3] = -1;
        assert!(graph_cv_accuracy(&x, &bad, 10, 7, &GraphCvConfig::default()).is_err());
        assert!(graph_cv_accuracy(&x, &labels[..59], 10, 7, &GraphCvConfig::default()).is_err());
        let empty_grid = GraphCvConfig {
            weight_decays: vec![],
            ..GraphCvConfig::default()
        };
        assert!(graph_cv_accuracy(&x, &labels, 10, 7, &empty_grid).is_err());
    }

    #[test]
    fn unlabelled_or_out_of_range_split_nodes_are_errors() {
        let (x, mut labels) = clusters(2, 6, 3, 0.3, 8);
        labels[4] = -1;
        let cfg = AdamProbeConfig::default();
        for part in 0..3 {
            let mut split = split_mod3(12);
            match part {
                0 => split.train.push(4),
                1 => split.val.push(4),
                _ => split.test.push(4),
            }
            let err = node_probe_adam(&x, &labels, &split, &cfg, 0).unwrap_err();
            assert!(err.to_string().contains("unlabelled"), "{err}");
            assert!(node_probe_dgi(&x, &labels, &split, 2, 5, 0.01, 0).is_err());
        }
        let mut split = split_mod3(12);
        split.test.retain(|&i| i != 4);
        split.val.retain(|&i| i != 4);
        split.train.retain(|&i| i != 4);
        assert!(node_probe_adam(&x, &labels, &split, &cfg, 0).is_ok());

        split.test.push(12);
        assert!(node_probe_adam(&x, &labels, &split, &cfg, 0).is_err());
        let empty = NodeSplit {
            train: vec![0],
            val: vec![],
            test: vec![1],
        };
        assert!(node_probe_adam(&x, &labels, &empty, &cfg, 0).is_err());
    }

    #[test]
    fn malformed_embeddings_are_errors() {
        let labels = vec![0i64, 1, 0, 1];
        let split = NodeSplit {
            train: vec![0, 1],
            val: vec![2],
            test: vec![3],
        };
        let cfg = AdamProbeConfig::default();
        let cases = [
            Tensor::zeros([4], (Kind::Float, Device::Cpu)),
            Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
            Tensor::zeros([4, 2], (Kind::Int64, Device::Cpu)),
            Tensor::zeros([4, 0], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[0.0f32, 1.0, f32::NAN, 0.0, 1.0, 0.0, 1.0, 0.0]).reshape([4, 2]),
        ];
        for emb in &cases {
            assert!(
                node_probe_adam(emb, &labels, &split, &cfg, 0).is_err(),
                "{emb:?}"
            );
            assert!(random_split_probe(emb, &labels, 0.5, 1, 0).is_err());
        }
        let bad_cfg = AdamProbeConfig { epochs: 0, ..cfg };
        let ok = Tensor::ones([4, 2], (Kind::Float, Device::Cpu));
        assert!(node_probe_adam(&ok, &labels, &split, &bad_cfg, 0).is_err());
        assert!(node_probe_adam(&ok, &[-1; 4], &split, &cfg, 0).is_err());
    }
}
