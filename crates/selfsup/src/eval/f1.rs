//! Macro-averaged F1: the unweighted mean over classes of 2·precision·recall / (precision +
//! recall), the measure for imbalanced classes (SMS spam: 13 % spam). A class never predicted
//! and never present is left out of the mean; one with no true positives scores 0.

/// Macro-F1 of `pred` against `truth` over classes `0..n_classes`.
pub fn macro_f1(pred: &[i64], truth: &[i64], n_classes: usize) -> f64 {
    assert_eq!(
        pred.len(),
        truth.len(),
        "macro-F1: predictions and labels differ in length"
    );
    let mut scores = Vec::new();
    for c in 0..n_classes as i64 {
        let tp = pred
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == c && **t == c)
            .count() as f64;
        let predicted = pred.iter().filter(|&&p| p == c).count() as f64;
        let actual = truth.iter().filter(|&&t| t == c).count() as f64;
        if predicted + actual == 0.0 {
            continue;
        }
        // F1 = 2TP / (predicted + actual): the harmonic mean of precision and recall.
        scores.push(2.0 * tp / (predicted + actual));
    }
    if scores.is_empty() {
        f64::NAN
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_against_hand_computed_precision_and_recall() {
        // Class 1: TP 2, FP 1, FN 1 → P = R = 2/3, F1 = 2/3. Class 0: TP 3, FP 1, FN 1 → 3/4.
        let truth = [0, 0, 0, 0, 1, 1, 1];
        let pred = [0, 0, 0, 1, 0, 1, 1];
        let f = macro_f1(&pred, &truth, 2);
        assert!((f - (2.0 / 3.0 + 0.75) / 2.0).abs() < 1e-12, "{f}");
        // Predicting the majority class only: spam F1 is 0, so macro-F1 halves ham's.
        let f = macro_f1(&[0; 7], &truth, 2);
        assert!((f - (2.0 * 4.0 / 11.0) / 2.0).abs() < 1e-12, "{f}");
        assert_eq!(macro_f1(&[0, 1], &[0, 1], 3), 1.0);
    }
}
