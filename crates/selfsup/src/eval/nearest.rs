//! 1-nearest-neighbour classification of series under the Euclidean distance or dynamic time
//! warping (DTW) — the baselines the UCR archive publishes with every data set (its
//! `DataSummary.csv`: "ED (w=0)", "DTW (w=100)", the latter a full warping window) and that
//! TS2Vec's table compares with.
use tch::Tensor;

/// How two series are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesDistance {
    /// Squared Euclidean distance of equal-length series.
    Euclidean,
    /// DTW with squared point costs; `window` bounds |i − j| (Sakoe–Chiba), `None` is the full
    /// window.
    Dtw { window: Option<usize> },
}

/// The DTW cost (sum of squared differences along the best warping path) of `a` and `b`.
pub fn dtw(a: &[f32], b: &[f32], window: Option<usize>) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return if n == m { 0.0 } else { f64::INFINITY };
    }
    // The window must reach the corner (n−1, m−1).
    let w = window.unwrap_or(n.max(m)).max(n.abs_diff(m));
    let mut prev = vec![f64::INFINITY; m + 1];
    let mut cur = vec![f64::INFINITY; m + 1];
    prev[0] = 0.0;
    for i in 1..=n {
        cur.fill(f64::INFINITY);
        let lo = i.saturating_sub(w).max(1);
        let hi = (i + w).min(m);
        for j in lo..=hi {
            let d = (a[i - 1] - b[j - 1]) as f64;
            let best = prev[j - 1].min(prev[j]).min(cur[j - 1]);
            cur[j] = d * d + best;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

fn squared_euclidean(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y) as f64;
            d * d
        })
        .sum()
}

fn rows(x: &Tensor) -> Vec<Vec<f32>> {
    let x = x
        .to_kind(tch::Kind::Float)
        .to_device(tch::Device::Cpu)
        .flatten(1, -1);
    let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
    let flat = Vec::<f32>::try_from(&x.contiguous().view([-1])).unwrap_or_default();
    (0..n).map(|i| flat[i * d..(i + 1) * d].to_vec()).collect()
}

/// Accuracy of labelling each test series with the label of its nearest training series (the
/// first one on ties, as the published baselines do). Inputs are `[N, T]` (or `[N, 1, T]`)
/// tensors and int64 labels.
pub fn one_nn_accuracy(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    distance: SeriesDistance,
) -> f64 {
    let (tr, te) = (rows(train), rows(test));
    let ytr = Vec::<i64>::try_from(train_labels).unwrap_or_default();
    let yte = Vec::<i64>::try_from(test_labels).unwrap_or_default();
    if te.is_empty() || tr.is_empty() {
        return f64::NAN;
    }
    let correct = te
        .iter()
        .zip(&yte)
        .filter(|(x, y)| {
            let mut best = (f64::INFINITY, 0usize);
            for (k, t) in tr.iter().enumerate() {
                let d = match distance {
                    SeriesDistance::Euclidean => squared_euclidean(x, t),
                    SeriesDistance::Dtw { window } => dtw(x, t, window),
                };
                if d < best.0 {
                    best = (d, k);
                }
            }
            ytr[best.1] == **y
        })
        .count();
    correct as f64 / te.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_matches_a_hand_computed_alignment() {
        // a = [0, 1, 2], b = [0, 0, 1, 2]: b's two zeros both align with a's first value, every
        // other point matches exactly — cost 0, where the Euclidean comparison is not defined.
        assert_eq!(dtw(&[0.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 2.0], None), 0.0);
        // a = [1, 3], b = [2, 2]: the diagonal costs 1 + 1 = 2; every other path costs more.
        assert_eq!(dtw(&[1.0, 3.0], &[2.0, 2.0], None), 2.0);
        // Window 0 on equal lengths is the squared Euclidean distance.
        let (x, y) = ([0.5f32, -1.0, 2.0, 0.0], [1.0f32, 0.0, 1.5, -0.5]);
        assert_eq!(dtw(&x, &y, Some(0)), squared_euclidean(&x, &y));
        // A shift: DTW follows it, the Euclidean distance does not.
        let a = [0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0];
        let b = [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0];
        assert_eq!(dtw(&a, &b, None), 0.0);
        assert_eq!(squared_euclidean(&a, &b), 2.0);
        assert_eq!(dtw(&a, &b, Some(0)), 2.0);
    }

    #[test]
    fn one_nn_takes_the_nearest_and_the_first_on_ties() {
        let train = Tensor::from_slice(&[0.0f32, 0.0, 10.0, 10.0, 0.0, 0.0]).view([3, 2]);
        let ytr = Tensor::from_slice(&[0i64, 1, 2]);
        let test = Tensor::from_slice(&[1.0f32, 1.0, 9.0, 9.0]).view([2, 2]);
        let yte = Tensor::from_slice(&[0i64, 1]);
        // The first test series is as near to train 0 as to train 2: train 0 (label 0) wins.
        assert_eq!(
            one_nn_accuracy(&train, &ytr, &test, &yte, SeriesDistance::Euclidean),
            1.0
        );
        let wrong = Tensor::from_slice(&[2i64, 1]);
        assert_eq!(
            one_nn_accuracy(
                &train,
                &ytr,
                &test,
                &wrong,
                SeriesDistance::Dtw { window: None }
            ),
            0.5
        );
    }

    /// The UCR archive's published 1-NN baselines (`DataSummary.csv`, as copied into
    /// `shared/bench/ucr_reference_accuracy.tsv`), reproduced on the shared sets.
    #[test]
    fn one_nn_dtw_reproduces_the_published_ucr_baseline() {
        use crate::data::ucr::{load_ucr, UcrOptions};
        let Some(ucr) = crate::data::shared_data("ucr") else {
            return;
        };
        let reference = ucr.join("../../bench/ucr_reference_accuracy.tsv");
        let table = std::fs::read_to_string(&reference).unwrap();
        let archive = ucr.join("ucr2018_subset.tar.xz");
        for name in ["GunPoint", "ECG200", "SyntheticControl"] {
            let published: f64 = table
                .lines()
                .find(|l| l.split('\t').next() == Some(name))
                .and_then(|l| l.split('\t').nth(5))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {}", reference.display()));
            let (tr, te, _) = load_ucr(
                &archive,
                name,
                &UcrOptions::default(),
                crate::error::BadInputPolicy::Fail,
            )
            .unwrap();
            let t = |s: &crate::data::ucr::SeriesSet| {
                (
                    Tensor::from_slice(&s.values).view([s.len as i64, s.length as i64]),
                    Tensor::from_slice(&s.labels),
                )
            };
            let ((a, ya), (b, yb)) = (t(&tr), t(&te));
            let ours = one_nn_accuracy(&a, &ya, &b, &yb, SeriesDistance::Dtw { window: None });
            assert!(
                (ours - published).abs() < 1e-3,
                "{name}: 1-NN DTW {ours:.4}, published {published:.4}"
            );
        }
    }
}
