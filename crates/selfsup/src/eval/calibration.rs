//! Expected calibration error (ECE) of a classifier's predicted probabilities.
//!
//! Definition of Guo et al. 2017, "On Calibration of Modern Neural Networks", §2 (after Naeini et
//! al. 2015): each sample's confidence is its largest predicted probability and its prediction the
//! class of that probability. The confidences are sorted into M equal-width bins
//! B_m = ((m − 1)/M, m/M], m = 1..M, and
//!
//! ```text
//! ECE = Σ_m |B_m| / n · |acc(B_m) − conf(B_m)|
//! ```
//!
//! with acc(B_m) the fraction of correct predictions in the bin and conf(B_m) its mean confidence.
//! Empty bins contribute nothing. A model is perfectly calibrated (ECE 0) when, within every bin,
//! it is right exactly as often as it claims to be.
use tch::{Device, Kind, Tensor};

use super::knn::checked_labels;
use super::standardise::assert_features;

/// ECE of the probabilities `probs` `[N, C]` (rows summing to 1) against integer `labels` `[N]` in
/// `0..C`, with `n_bins` equal-width confidence bins. The prediction is the first class of largest
/// probability (argmax). A confidence of exactly 0 — possible only for a row that is not a
/// distribution — is counted in the first bin. NaN for N = 0: there is nothing to be calibrated.
///
/// # Panics
/// If `probs` is not `[N, C]` floating point, `labels` is not an integer vector of length N with
/// values in `0..C`, or `n_bins` is 0.
pub fn expected_calibration_error(probs: &Tensor, labels: &Tensor, n_bins: usize) -> f64 {
    assert_features("ECE probabilities", probs);
    assert!(n_bins >= 1, "ECE: n_bins must be at least 1");
    let (n, c) = (probs.size()[0], probs.size()[1]);
    let labels = checked_labels("ECE labels", labels, n, c.max(1));
    if n == 0 {
        return f64::NAN;
    }
    let (confidence, correct) = tch::no_grad(|| {
        let (conf, pred) = probs.max_dim(1, false);
        let correct = pred.eq_tensor(&labels.to_device(pred.device()));
        let to_vec = |t: Tensor| {
            Vec::<f64>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Double)).expect("1-D")
        };
        (to_vec(conf), to_vec(correct))
    });

    // Per bin: sample count, number correct, summed confidence.
    let mut count = vec![0usize; n_bins];
    let mut hits = vec![0.0f64; n_bins];
    let mut conf_sum = vec![0.0f64; n_bins];
    let m = n_bins as f64;
    for (&p, &ok) in confidence.iter().zip(&correct) {
        // p ∈ ((b − 1)/M, b/M] ⇔ ⌈p·M⌉ = b; bin b is stored at index b − 1.
        let bin = ((p * m).ceil() as usize).clamp(1, n_bins) - 1;
        count[bin] += 1;
        hits[bin] += ok;
        conf_sum[bin] += p;
    }
    let n = n as f64;
    (0..n_bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let size = count[b] as f64;
            (size / n) * (hits[b] / size - conf_sum[b] / size).abs()
        })
        .sum()
}

/// [`expected_calibration_error`] of the softmax of `logits` `[N, C]`; the softmax is taken in
/// double precision so that confidences near 1 are not rounded into the wrong bin.
///
/// # Panics
/// As [`expected_calibration_error`].
pub fn softmax_ece_from_logits(logits: &Tensor, labels: &Tensor, n_bins: usize) -> f64 {
    assert_features("ECE logits", logits);
    let probs = tch::no_grad(|| logits.to_kind(Kind::Double).softmax(1, None::<Kind>));
    expected_calibration_error(&probs, labels, n_bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_fixture() {
        // 4 samples, 2 classes, M = 5 bins of width 0.2:
        //   [0.90, 0.10] label 0: confidence 0.90, correct → bin (0.8, 1.0]
        //   [0.85, 0.15] label 1: confidence 0.85, wrong   → bin (0.8, 1.0]
        //   [0.30, 0.70] label 1: confidence 0.70, correct → bin (0.6, 0.8]
        //   [0.45, 0.55] label 0: confidence 0.55, wrong   → bin (0.4, 0.6]
        // (0.8, 1.0]: 2/4 · |1/2 − 0.875| = 0.1875
        // (0.6, 0.8]: 1/4 · |1 − 0.70|    = 0.075
        // (0.4, 0.6]: 1/4 · |0 − 0.55|    = 0.1375
        // ECE = 0.4.
        let probs = Tensor::from_slice2(&[[0.9f32, 0.1], [0.85, 0.15], [0.3, 0.7], [0.45, 0.55]]);
        let labels = Tensor::from_slice(&[0i64, 1, 1, 0]);
        let ece = expected_calibration_error(&probs, &labels, 5);
        assert!((ece - 0.4).abs() < 1e-6, "{ece}");
        // One bin: accuracy 1/2 against mean confidence (0.9+0.85+0.7+0.55)/4 = 0.75 → 0.25.
        let ece = expected_calibration_error(&probs, &labels, 1);
        assert!((ece - 0.25).abs() < 1e-6, "{ece}");
    }

    #[test]
    fn bins_are_closed_on_the_right() {
        // M = 2 bins (0, 0.5] and (0.5, 1]. [0.5, 0.5] label 0: confidence exactly 0.5 (argmax
        // takes class 0, right) → first bin; [1, 0] label 1: confidence 1, wrong → second bin.
        // ECE = 1/2 · |1 − 0.5| + 1/2 · |0 − 1| = 0.25 + 0.5 = 0.75. (Half-open [lo, hi) bins
        // would put both in the second bin: |1/2 − 3/4| = 0.25.)
        let probs = Tensor::from_slice2(&[[0.5f32, 0.5], [1.0, 0.0]]);
        let labels = Tensor::from_slice(&[0i64, 1]);
        let ece = expected_calibration_error(&probs, &labels, 2);
        assert!((ece - 0.75).abs() < 1e-12, "{ece}");
    }

    #[test]
    fn perfectly_calibrated_is_zero() {
        // Ten samples at confidence 0.7 of which 7 are right, and four at confidence 1 all right.
        let mut rows = vec![[0.7f32, 0.3]; 10];
        rows.extend([[1.0f32, 0.0]; 4]);
        let probs = Tensor::from_slice2(&rows);
        let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]);
        let ece = expected_calibration_error(&probs, &labels, 10);
        assert!(ece.abs() < 1e-6, "{ece}");
        assert!(ece >= 0.0);
    }

    #[test]
    fn overconfident_model() {
        // Always 99 % sure, right half of the time: one bin, |0.5 − 0.99| = 0.49.
        let probs = Tensor::from_slice2(&[[0.99f64, 0.005, 0.005]; 4]);
        let labels = Tensor::from_slice(&[0i64, 1, 0, 2]);
        let ece = expected_calibration_error(&probs, &labels, 15);
        assert!((ece - 0.49).abs() < 1e-12, "{ece}");
    }

    #[test]
    fn from_logits() {
        // Logits (ln 3, 0) → softmax (3/4, 1/4).
        let logits = Tensor::from_slice2(&[[3f32.ln(), 0.0]; 4]);
        // Right 3 times of 4 at confidence 3/4: calibrated.
        let ece = softmax_ece_from_logits(&logits, &Tensor::from_slice(&[0i64, 0, 0, 1]), 10);
        assert!(ece.abs() < 1e-6, "{ece}");
        // Right 2 times of 4: |0.5 − 0.75| = 0.25.
        let ece = softmax_ece_from_logits(&logits, &Tensor::from_slice(&[0i64, 1, 0, 1]), 10);
        assert!((ece - 0.25).abs() < 1e-6, "{ece}");
    }

    #[test]
    fn empty_input_is_nan() {
        let probs = Tensor::zeros([0, 3], (Kind::Float, Device::Cpu));
        let labels = Tensor::zeros([0], (Kind::Int64, Device::Cpu));
        assert!(expected_calibration_error(&probs, &labels, 10).is_nan());
    }

    #[test]
    #[should_panic(expected = "labels must lie in 0..2")]
    fn out_of_range_label_is_reported() {
        let probs = Tensor::from_slice2(&[[0.5f32, 0.5]]);
        let _ = expected_calibration_error(&probs, &Tensor::from_slice(&[2i64]), 10);
    }
}
