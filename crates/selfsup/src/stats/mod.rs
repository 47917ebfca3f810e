//! Summary statistics over seeds, folds and runs: the one mean and the two standard deviations
//! every table and protocol reports.

pub mod collapse;

use tch::Tensor;

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Population standard deviation (divisor n, numpy's `np.std` default, used by GraphMAE and
/// GRACE); NaN for an empty slice.
pub fn std_population(values: &[f64]) -> f64 {
    sum_sq_dev(values).map_or(f64::NAN, |s| (s / values.len() as f64).sqrt())
}

/// Sample standard deviation (divisor n − 1, `torch.std`'s default, used by DGI); NaN for fewer
/// than two values.
pub fn std_sample(values: &[f64]) -> f64 {
    match sum_sq_dev(values) {
        Some(s) if values.len() >= 2 => (s / (values.len() - 1) as f64).sqrt(),
        _ => f64::NAN,
    }
}

/// Mean and sample standard deviation, as the comparison tables print them: a single value has
/// a spread of 0, an empty slice gives NaN for both.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    match values.len() {
        0 => (f64::NAN, f64::NAN),
        1 => (values[0], 0.0),
        _ => (mean(values), std_sample(values)),
    }
}

fn sum_sq_dev(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let m = mean(values);
    Some(values.iter().map(|v| (v - m).powi(2)).sum())
}

pub(crate) fn assert_features(name: &str, x: &Tensor) {
    assert_eq!(
        x.dim(),
        2,
        "{name}: features must be [N, D], got shape {:?}",
        x.size()
    );
    assert!(
        x.is_floating_point(),
        "{name}: features must be floating point, got {:?}",
        x.kind()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_match_hand_computed_values() {
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        // Mean 5, squared deviations sum to 32: population std √(32/8) = 2, sample √(32/7).
        assert_eq!(mean(&v), 5.0);
        assert!((std_population(&v) - 2.0).abs() < 1e-12);
        assert!((std_sample(&v) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        // Two values 0.8, 0.9: deviations ±0.05, sample std √(0.005/1) ≈ 0.0707107.
        assert!((std_sample(&[0.8, 0.9]) - 0.005f64.sqrt()).abs() < 1e-12);
        assert_eq!(std_population(&[0.7]), 0.0);
        assert!(std_sample(&[0.7]).is_nan());
        assert!(mean(&[]).is_nan() && std_population(&[]).is_nan());
    }

    #[test]
    fn mean_std_is_the_sample_std_and_zero_for_one_value() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // Σ(x−m)² = 2.25+0.25+0.25+2.25 = 5; /3 → 1.6667; √ → 1.29099
        assert!((s - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
        let (m, s) = mean_std(&[]);
        assert!(m.is_nan() && s.is_nan());
    }
}
