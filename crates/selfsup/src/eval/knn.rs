//! Weighted k-nearest-neighbour classification of frozen embeddings.
//!
//! The protocol of Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
//! Discrimination" (InstDisc), §3.4, as used by most self-supervised papers since, and as defined by
//! the calibration anchor `knn_accuracy` in `shared/bench/torch_e2e_reference.py`:
//!
//! 1. L2-normalise training and test embeddings (`F.normalize`, eps 1e-12), so that the dot product
//!    is the cosine similarity s_i;
//! 2. take the k most similar training samples of each test sample;
//! 3. each neighbour votes for its label with weight exp(s_i / T);
//! 4. predict the class with the largest summed vote (ties → the smaller class index, as argmax).
//!
//! Test rows are processed `chunk` at a time, so memory is bounded by `chunk × N_train` similarities
//! instead of `M × N_train`; chunking does not change any prediction.
use tch::{Kind, Tensor};

use super::standardise::assert_features;

/// Configuration of the weighted kNN protocol.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnnConfig {
    /// Number of neighbours; clamped to the training-set size.
    pub k: usize,
    /// Temperature T of the vote weight exp(similarity / T).
    pub temperature: f64,
    /// Test rows per similarity block (memory bound only; does not affect results).
    pub chunk: usize,
}

impl Default for KnnConfig {
    /// k = 200, T = 0.1: the InstDisc values, also the reference's defaults.
    fn default() -> Self {
        KnnConfig {
            k: 200,
            temperature: 0.1,
            chunk: 1000,
        }
    }
}

impl KnnConfig {
    /// Checks a configuration that came from a user (command line, recipe) before it reaches
    /// [`knn_predict`], which panics on these.
    pub fn validate(&self) -> Result<(), String> {
        if self.k == 0 {
            return Err("kNN: k must be at least 1".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "kNN: temperature must be a positive number, not {}",
                self.temperature
            ));
        }
        if self.chunk == 0 {
            return Err("kNN: chunk must be at least 1".into());
        }
        Ok(())
    }
}

/// Summed vote weights per class, `[M, n_classes]` (dtype of the features, device of the inputs):
/// entry (i, c) is Σ exp(s_ij / T) over the k nearest training samples j of test row i with label c.
///
/// # Panics
/// On programmer error: features not 2-D floating point or of different widths, labels not of
/// length N, an empty training set, labels outside `0..n_classes`, or an invalid `cfg`
/// (see [`KnnConfig::validate`]).
pub fn knn_scores(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    n_classes: i64,
    cfg: &KnnConfig,
) -> Tensor {
    if let Err(e) = cfg.validate() {
        panic!("{e}");
    }
    assert_features("kNN train", train);
    assert_features("kNN test", test);
    let (n, d) = (train.size()[0], train.size()[1]);
    assert_eq!(
        test.size()[1],
        d,
        "kNN: test features have {} columns, train {d}",
        test.size()[1]
    );
    assert!(n > 0, "kNN: the training set is empty");
    let labels = checked_labels("kNN train labels", train_labels, n, n_classes);
    let m = test.size()[0];
    // k larger than the training set would make topk fail; using every training sample is the
    // natural meaning of "the k nearest" then.
    let k = (cfg.k as i64).min(n);
    let chunk = cfg.chunk as i64;

    tch::no_grad(|| {
        let train_t = l2_normalise(train).tr(); // [D, N], shared by every chunk
        let test = l2_normalise(test);
        let labels = labels.to_device(train.device());
        let mut blocks = Vec::with_capacity(((m + chunk - 1) / chunk).max(0) as usize);
        let mut start = 0;
        while start < m {
            let len = chunk.min(m - start);
            let sim = test.narrow(0, start, len).matmul(&train_t); // [len, N] cosine similarities
            let (w, idx) = sim.topk(k, 1, true, true); // [len, k]
            let neighbour_labels = labels.index_select(0, &idx.reshape([-1])).reshape([len, k]);
            let votes = (w / cfg.temperature).exp();
            let scores = Tensor::zeros([len, n_classes], (votes.kind(), votes.device()))
                .scatter_add(1, &neighbour_labels, &votes);
            blocks.push(scores);
            start += len;
        }
        if blocks.is_empty() {
            Tensor::zeros([0, n_classes], (train.kind(), train.device()))
        } else {
            Tensor::cat(&blocks, 0)
        }
    })
}

/// Predicted labels (`[M]`, i64) of the weighted kNN classifier; see the module documentation.
///
/// # Panics
/// As [`knn_scores`].
pub fn knn_predict(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    n_classes: i64,
    cfg: &KnnConfig,
) -> Tensor {
    tch::no_grad(|| knn_scores(train, train_labels, test, n_classes, cfg).argmax(1, false))
}

/// The kNN protocol's inputs for one feature set: raw inputs are standardised per feature with
/// the training statistics first (their scales differ), learned representations are used as they
/// are — as in the reference protocol (`shared/bench/torch_e2e_reference.py`, "raw pixels are
/// standardised per pixel before the cosine"). Every command that prints a raw kNN figure goes
/// through here, so one protocol name means one computation.
pub fn knn_inputs(features: &str, train: &Tensor, test: &Tensor) -> (Tensor, Tensor) {
    if features == "raw" {
        super::standardise::standardise(train, test)
    } else {
        (train.shallow_clone(), test.shallow_clone())
    }
}

/// Fraction of test rows whose weighted-kNN prediction equals `test_labels`. NaN for an empty test
/// set (there is no accuracy to report).
///
/// # Panics
/// As [`knn_scores`], and if `test_labels` is not of length M.
pub fn knn_accuracy(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    n_classes: i64,
    cfg: &KnnConfig,
) -> f64 {
    let m = test.size().first().copied().unwrap_or(0);
    let test_labels = checked_labels("kNN test labels", test_labels, m, n_classes);
    let pred = knn_predict(train, train_labels, test, n_classes, cfg);
    accuracy(&pred, &test_labels)
}

/// Fraction of equal entries of two label vectors of the same length; NaN when empty.
pub(crate) fn accuracy(pred: &Tensor, labels: &Tensor) -> f64 {
    let m = pred.size()[0];
    if m == 0 {
        return f64::NAN;
    }
    let correct = tch::no_grad(|| {
        pred.eq_tensor(&labels.to_device(pred.device()))
            .sum(Kind::Int64)
            .int64_value(&[])
    });
    correct as f64 / m as f64
}

/// `x / max(‖x‖₂, 1e-12)` row-wise, as `torch.nn.functional.normalize(x, dim=1)`.
pub(crate) fn l2_normalise(x: &Tensor) -> Tensor {
    x / x
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12)
}

/// Checks that `labels` is an integer vector of length `n` with values in `0..n_classes`, and
/// returns it as i64. An out-of-range label would otherwise fail deep inside libtorch with an
/// opaque message on CPU, or as a device-side assert that poisons the whole CUDA context.
pub(crate) fn checked_labels(name: &str, labels: &Tensor, n: i64, n_classes: i64) -> Tensor {
    assert!(
        n_classes >= 1,
        "{name}: n_classes must be at least 1, not {n_classes}"
    );
    assert_eq!(
        labels.size(),
        [n],
        "{name}: expected shape [{n}], got {:?}",
        labels.size()
    );
    assert!(
        !labels.is_floating_point(),
        "{name}: labels must be integers, got {:?}",
        labels.kind()
    );
    let labels = labels.to_kind(Kind::Int64);
    if n > 0 {
        let (lo, hi) =
            tch::no_grad(|| (labels.min().int64_value(&[]), labels.max().int64_value(&[])));
        assert!(
            lo >= 0 && hi < n_classes,
            "{name}: labels must lie in 0..{n_classes}, found range {lo}..={hi}"
        );
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// `per_class` points per class around c-th scaled basis vector in `dim` dimensions: angularly
    /// well separated clusters.
    fn clusters(n_classes: i64, per_class: i64, dim: i64, noise: f64) -> (Tensor, Tensor) {
        let labels = Tensor::arange(n_classes, (Kind::Int64, Device::Cpu))
            .repeat_interleave_self_int(per_class, 0, None);
        let centres = Tensor::eye(dim, (Kind::Float, Device::Cpu)).narrow(0, 0, n_classes) * 5.0;
        let x = centres.index_select(0, &labels)
            + Tensor::randn([n_classes * per_class, dim], (Kind::Float, Device::Cpu)) * noise;
        (x, labels)
    }

    #[test]
    fn separated_clusters_are_classified_perfectly() {
        tch::manual_seed(0);
        // 4 classes in 8-D; 40 training points per class so that the default k = 200 is clamped to 160.
        let (train, train_y) = clusters(4, 40, 8, 0.5);
        let (test, test_y) = clusters(4, 50, 8, 0.5);
        let acc = knn_accuracy(&train, &train_y, &test, &test_y, 4, &KnnConfig::default());
        assert_eq!(acc, 1.0);
        let acc = knn_accuracy(
            &train,
            &train_y,
            &test,
            &test_y,
            4,
            &KnnConfig {
                k: 5,
                ..KnnConfig::default()
            },
        );
        assert_eq!(acc, 1.0);
    }

    /// Three training points on the unit circle at 0° (class 0), 60° and 90° (class 1); the query
    /// at 10° has cosine similarities cos 10°, cos 50°, cos 80°.
    fn three_points() -> (Tensor, Tensor, Tensor) {
        let deg = |a: f64| a.to_radians();
        let train = Tensor::from_slice2(&[
            [1.0f32, 0.0],
            [deg(60.0).cos() as f32, deg(60.0).sin() as f32],
            [0.0, 1.0],
        ]);
        let labels = Tensor::from_slice(&[0i64, 1, 1]);
        // Scaled by 3: the vote must not depend on the norm.
        let query =
            Tensor::from_slice2(&[[3.0 * deg(10.0).cos() as f32, 3.0 * deg(10.0).sin() as f32]]);
        (train, labels, query)
    }

    #[test]
    fn vote_weights_match_hand_computation() {
        let (train, labels, query) = three_points();
        let (s0, s1, s2) = (
            10f64.to_radians().cos(),
            50f64.to_radians().cos(),
            80f64.to_radians().cos(),
        );

        // k = 2: neighbours are the 0° point (class 0) and the 60° point (class 1), one vote each.
        let cfg = KnnConfig {
            k: 2,
            temperature: 0.1,
            chunk: 1000,
        };
        let scores = knn_scores(&train, &labels, &query, 2, &cfg).to_kind(Kind::Double);
        let (want0, want1) = ((s0 / 0.1).exp(), (s1 / 0.1).exp());
        assert!(
            (scores.double_value(&[0, 0]) / want0 - 1.0).abs() < 1e-5,
            "{scores}"
        );
        assert!(
            (scores.double_value(&[0, 1]) / want1 - 1.0).abs() < 1e-5,
            "{scores}"
        );
        assert_eq!(
            knn_predict(&train, &labels, &query, 2, &cfg).int64_value(&[0]),
            0
        );

        // k = 3: the majority (2 of 3) is class 1, but the weighted vote picks class 0 because
        // exp(cos10°/T) = e^9.85 outweighs e^6.43 + e^1.74.
        let cfg = KnnConfig { k: 3, ..cfg };
        let scores = knn_scores(&train, &labels, &query, 2, &cfg).to_kind(Kind::Double);
        let want1 = (s1 / 0.1).exp() + (s2 / 0.1).exp();
        assert!(
            (scores.double_value(&[0, 1]) / want1 - 1.0).abs() < 1e-5,
            "{scores}"
        );
        assert_eq!(
            knn_predict(&train, &labels, &query, 2, &cfg).int64_value(&[0]),
            0
        );

        // With a very high temperature every weight is ≈ 1 and the vote degenerates to the
        // majority: class 1.
        let cfg = KnnConfig {
            temperature: 1e3,
            ..cfg
        };
        assert_eq!(
            knn_predict(&train, &labels, &query, 2, &cfg).int64_value(&[0]),
            1
        );

        // k beyond the training set is clamped to all 3 points.
        let cfg = KnnConfig {
            k: 50,
            temperature: 0.1,
            chunk: 1000,
        };
        let scores = knn_scores(&train, &labels, &query, 2, &cfg).to_kind(Kind::Double);
        assert!(
            (scores.double_value(&[0, 1]) / want1 - 1.0).abs() < 1e-5,
            "{scores}"
        );
    }

    #[test]
    fn chunking_does_not_change_predictions() {
        tch::manual_seed(1);
        let train = Tensor::randn([300, 16], (Kind::Float, Device::Cpu));
        let train_y = Tensor::randint(5, [300], (Kind::Int64, Device::Cpu));
        let test = Tensor::randn([97, 16], (Kind::Float, Device::Cpu));
        let whole = KnnConfig {
            k: 20,
            temperature: 0.07,
            chunk: 10_000,
        };
        let chunked = KnnConfig {
            chunk: 8,
            ..whole.clone()
        };
        let a = knn_scores(&train, &train_y, &test, 5, &whole);
        let b = knn_scores(&train, &train_y, &test, 5, &chunked);
        assert_eq!(a.size(), [97, 5]);
        assert!(a.allclose(&b, 1e-5, 1e-6, false));
        let pa = knn_predict(&train, &train_y, &test, 5, &whole);
        let pb = knn_predict(&train, &train_y, &test, 5, &chunked);
        assert_eq!(pa.kind(), Kind::Int64);
        assert!(pa.equal(&pb));
    }

    #[test]
    fn empty_test_set() {
        let (train, labels, _) = three_points();
        let test = Tensor::zeros([0, 2], (Kind::Float, Device::Cpu));
        let pred = knn_predict(&train, &labels, &test, 2, &KnnConfig::default());
        assert_eq!(pred.size(), [0]);
        let acc = knn_accuracy(
            &train,
            &labels,
            &test,
            &Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
            2,
            &KnnConfig::default(),
        );
        assert!(acc.is_nan());
    }

    #[test]
    fn config_validation() {
        assert!(KnnConfig::default().validate().is_ok());
        assert!(KnnConfig {
            k: 0,
            ..KnnConfig::default()
        }
        .validate()
        .is_err());
        assert!(KnnConfig {
            temperature: 0.0,
            ..KnnConfig::default()
        }
        .validate()
        .is_err());
        assert!(KnnConfig {
            temperature: f64::NAN,
            ..KnnConfig::default()
        }
        .validate()
        .is_err());
        assert!(KnnConfig {
            chunk: 0,
            ..KnnConfig::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    #[should_panic(expected = "labels must lie in 0..2")]
    fn out_of_range_label_is_reported() {
        let (train, _, query) = three_points();
        let _ = knn_predict(
            &train,
            &Tensor::from_slice(&[0i64, 1, 2]),
            &query,
            2,
            &KnnConfig::default(),
        );
    }

    #[test]
    fn cuda_matches_cpu_when_available() {
        if !tch::Cuda::is_available() {
            return;
        }
        tch::manual_seed(2);
        let train = Tensor::randn([500, 32], (Kind::Float, Device::Cpu));
        let train_y = Tensor::randint(10, [500], (Kind::Int64, Device::Cpu));
        let test = Tensor::randn([120, 32], (Kind::Float, Device::Cpu));
        let cfg = KnnConfig {
            k: 30,
            chunk: 50,
            ..KnnConfig::default()
        };
        let cpu = knn_scores(&train, &train_y, &test, 10, &cfg);
        let gpu = knn_scores(
            &train.to(Device::Cuda(0)),
            &train_y.to(Device::Cuda(0)),
            &test.to(Device::Cuda(0)),
            10,
            &cfg,
        );
        assert!(gpu.device().is_cuda());
        assert!(cpu.allclose(&gpu.to(Device::Cpu), 1e-4, 1e-4, false));
    }
}
