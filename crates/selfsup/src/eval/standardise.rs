//! Per-feature standardisation with training-set statistics.
//!
//! Definition (calibration anchor: `standardise` in `shared/bench/torch_e2e_reference.py`):
//!
//! ```text
//! mean, std = train.mean(0), train.std(0)          # torch.std default: unbiased, divisor N - 1
//! std = where(std < 1e-8, 1, std)                  # zero-variance columns are centred but not scaled
//! return (train - mean) / std, (test - mean) / std
//! ```
//!
//! The test split is transformed with the *training* statistics only, so no information about the
//! test set leaks into the evaluation protocol.
use tch::{Kind, Tensor};

/// Columns whose training standard deviation is below this are left unscaled (divided by 1).
/// Same threshold as the reference.
pub const MIN_STD: f64 = 1e-8;

/// Training-set statistics of a standardisation: `x ↦ (x − mean) / std`.
#[derive(Debug)]
pub struct Standardiser {
    /// Per-column training mean, shape `[D]`.
    pub mean: Tensor,
    /// Per-column sample standard deviation (divisor N − 1), shape `[D]`, with columns below
    /// [`MIN_STD`] replaced by 1.
    pub std: Tensor,
}

impl Standardiser {
    /// Computes the statistics of `train` (`[N, D]`, floating point).
    ///
    /// With a single training row the sample standard deviation is undefined (0/0); such columns,
    /// like zero-variance ones, are left unscaled instead of turning every value into NaN.
    ///
    /// # Panics
    /// If `train` is not a 2-D floating-point tensor.
    pub fn fit(train: &Tensor) -> Standardiser {
        assert_features("train", train);
        tch::no_grad(|| {
            let mean = train.mean_dim(0, false, None::<Kind>);
            // `unbiased = true` is torch.std's default, i.e. the sample standard deviation the
            // reference uses (not the population one).
            let std = train.std_dim(0, true, false);
            // `!(std >= MIN_STD)` rather than `std < MIN_STD` so that a NaN std (N = 1) also
            // falls back to 1; for every finite std this is exactly the reference's rule.
            let unscaled = std.ge(MIN_STD).logical_not();
            let std = std.masked_fill(&unscaled, 1.0);
            Standardiser { mean, std }
        })
    }

    /// Applies the statistics to `x` (`[M, D]`, same D, dtype and device as the training data).
    ///
    /// # Panics
    /// If `x` is not 2-D or its width differs from the training data's.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        assert_features("x", x);
        let d = self.mean.size()[0];
        assert_eq!(
            x.size()[1],
            d,
            "standardise: x has {} columns, the training data {d}",
            x.size()[1]
        );
        tch::no_grad(|| (x - &self.mean) / &self.std)
    }
}

/// Standardises `train` and `test` (`[N, D]`, `[M, D]`) with the training mean and sample standard
/// deviation, leaving zero-variance columns unscaled. Returns `(train', test')`.
///
/// # Panics
/// If either tensor is not 2-D floating point, or their widths differ.
pub fn standardise(train: &Tensor, test: &Tensor) -> (Tensor, Tensor) {
    let s = Standardiser::fit(train);
    (s.apply(train), s.apply(test))
}
pub(crate) use crate::stats::assert_features;

#[cfg(test)]
mod tests {
    use super::*;

    fn to_vec2(t: &Tensor) -> Vec<Vec<f64>> {
        let t = t.to_kind(Kind::Double);
        let (n, d) = (t.size()[0], t.size()[1]);
        (0..n)
            .map(|i| (0..d).map(|j| t.double_value(&[i, j])).collect())
            .collect()
    }

    fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.len(), w.len());
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() <= tol, "got {got:?}, want {want:?}");
            }
        }
    }

    #[test]
    fn hand_computed_with_zero_variance_column() {
        // Column 0: mean 3, sample std sqrt(((-2)² + 0² + 2²) / 2) = 2 (population std would be
        // sqrt(8/3) ≈ 1.633, so this also pins the divisor). Column 1: constant 2 → std 0 → left
        // unscaled. Column 2: mean 7, sample std 2.
        let train = Tensor::from_slice2(&[[1.0f32, 2.0, 5.0], [3.0, 2.0, 7.0], [5.0, 2.0, 9.0]]);
        let test = Tensor::from_slice2(&[[0.0f32, 4.0, 7.0], [3.0, 2.0, 10.0]]);
        let (tr, te) = standardise(&train, &test);
        assert_close(
            &to_vec2(&tr),
            &[
                vec![-1.0, 0.0, -1.0],
                vec![0.0, 0.0, 0.0],
                vec![1.0, 0.0, 1.0],
            ],
            1e-6,
        );
        assert_close(
            &to_vec2(&te),
            &[vec![-1.5, 2.0, 0.0], vec![0.0, 0.0, 1.5]],
            1e-6,
        );

        let s = Standardiser::fit(&train);
        let std: Vec<f64> = (0..3).map(|j| s.std.double_value(&[j])).collect();
        assert_close(&[std], &[vec![2.0, 1.0, 2.0]], 1e-6);
        assert_eq!(tr.kind(), Kind::Float);
    }

    #[test]
    fn single_row_is_centred_not_nan() {
        let train = Tensor::from_slice2(&[[1.0f32, -2.0]]);
        let (tr, te) = standardise(&train, &Tensor::from_slice2(&[[2.0f32, 0.0]]));
        assert_close(&to_vec2(&tr), &[vec![0.0, 0.0]], 0.0);
        assert_close(&to_vec2(&te), &[vec![1.0, 2.0]], 0.0);
    }

    #[test]
    fn does_not_track_gradients() {
        let train = Tensor::from_slice2(&[[1.0f32, 2.0], [3.0, 5.0]]).set_requires_grad(true);
        let (tr, te) = standardise(&train, &train);
        assert!(!tr.requires_grad() && !te.requires_grad());
    }
}
