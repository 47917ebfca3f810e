//! OBoW's targets and loss (Gidaris et al., "OBoW: Online Bag-of-Visual-Words Generation for
//! Self-Supervised Learning", CVPR 2021, §3).
//!
//! Target: every location u of the teacher's feature map (border locations dropped) is softly
//! assigned to the K words of a vocabulary V by its squared distances,
//!   code_k(u) = softmax_k(−d_k(u) · inv_delta / δ),  d_k(u) = ‖f(u) − v_k‖²,
//! with δ a running mean of the batch's mean smallest distance; the bag of words is the maximum
//! of the codes over the locations, L1-normalised.
//! Prediction: from the student's pooled feature z and per-word weights w_k (unit vectors made
//! from the words by a small network), p = softmax(κ · z wᵀ); the loss is the cross-entropy
//! −Σ_k bow_k log p_k, averaged over the batch.
use tch::{Kind, Tensor};

/// Squared distances `[B, L, K]` of the `L` inner locations of `features` `[B, C, H, W]` (the
/// one-location border dropped, as the authors' code does) to the words `vocab` `[K, C]`.
pub fn word_distances(features: &Tensor, vocab: &Tensor) -> Tensor {
    let (h, w) = (features.size()[2], features.size()[3]);
    let inner = features.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
    let f = inner.flatten(2, 3).transpose(1, 2); // [B, L, C]
    let f2 = f
        .pow_tensor_scalar(2)
        .sum_dim_intlist([2i64].as_slice(), true, None::<Kind>);
    let v2 = vocab
        .pow_tensor_scalar(2)
        .sum_dim_intlist([1i64].as_slice(), false, None::<Kind>);
    (f2 + v2.view([1, 1, -1]) - f.matmul(&vocab.tr()) * 2.0).clamp_min(0.0)
}

/// The mean over the batch's locations of the smallest distance to any word (δ's update).
pub fn mean_min_distance(dist: &Tensor) -> f64 {
    f64::try_from(dist.amin([2i64].as_slice(), false).mean(Kind::Double)).unwrap_or(f64::NAN)
}

/// Bags of words `[B, K]` from distances `[B, L, K]`: softmax of −dist·`scale` over the words at
/// each location, maximum over the locations, L1 normalisation.
pub fn bag_of_words(dist: &Tensor, scale: f64) -> Tensor {
    let codes = (dist * -scale).softmax(2, None::<Kind>);
    let bow = codes.amax([1i64].as_slice(), false);
    &bow / bow
        .sum_dim_intlist([1i64].as_slice(), true, None::<Kind>)
        .clamp_min(1e-12)
}

/// −Σ_k target_k log softmax(κ · z wᵀ)_k, averaged over the rows; `words` `[K, D]` as given.
pub fn bow_prediction_loss(z: &Tensor, words: &Tensor, kappa: f64, target: &Tensor) -> Tensor {
    let logp = (z.matmul(&words.tr()) * kappa).log_softmax(1, None::<Kind>);
    -(target * logp)
        .sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)
        .mean(None::<Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape).to_kind(Kind::Double)
    }

    #[test]
    fn distances_skip_the_border_and_match_a_direct_computation() {
        tch::manual_seed(2);
        let f = Tensor::randn([2, 3, 4, 5], (Kind::Double, Device::Cpu));
        let v = Tensor::randn([6, 3], (Kind::Double, Device::Cpu));
        let d = word_distances(&f, &v);
        assert_eq!(d.size(), [2, 6, 6]); // (4−2)·(5−2) = 6 inner locations, 6 words
        let fv: Vec<f64> = Vec::try_from(f.flatten(0, -1)).unwrap();
        let vv: Vec<f64> = Vec::try_from(v.flatten(0, -1)).unwrap();
        let at = |b: usize, c: usize, y: usize, x: usize| fv[((b * 3 + c) * 4 + y) * 5 + x];
        for b in 0..2 {
            for (l, (y, x)) in (1..3).flat_map(|y| (1..4).map(move |x| (y, x))).enumerate() {
                for k in 0..6 {
                    let want: f64 = (0..3)
                        .map(|c| (at(b, c, y, x) - vv[k * 3 + c]).powi(2))
                        .sum();
                    let got = d.double_value(&[b as i64, l as i64, k as i64]);
                    assert!(
                        (got - want).abs() < 1e-10,
                        "b{b} l{l} k{k}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_bag_is_the_l1_normalised_maximum_of_the_soft_codes() {
        // One image, two locations, three words.
        let dist = t(&[0.0, 1.0, 4.0, 2.0, 0.5, 0.0], &[1, 2, 3]);
        let scale = 1.5;
        let code = |d: [f64; 3]| {
            let e: Vec<f64> = d.iter().map(|x| (-x * scale).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect::<Vec<_>>()
        };
        let (a, b) = (code([0.0, 1.0, 4.0]), code([2.0, 0.5, 0.0]));
        let m: Vec<f64> = (0..3).map(|k| a[k].max(b[k])).collect();
        let total: f64 = m.iter().sum();
        let bow = bag_of_words(&dist, scale);
        for k in 0..3 {
            let got = bow.double_value(&[0, k as i64]);
            assert!((got - m[k] / total).abs() < 1e-12, "word {k}");
        }
        // A hard assignment in the limit: the nearest word of each location.
        let hard = bag_of_words(&dist, 1e3);
        assert!((hard.double_value(&[0, 0]) - 0.5).abs() < 1e-9);
        assert!((hard.double_value(&[0, 2]) - 0.5).abs() < 1e-9);
        assert!((mean_min_distance(&dist) - 0.0).abs() < 1e-12);
    }

    #[test]
    fn the_loss_is_the_cross_entropy_of_the_target_bag() {
        let z = t(&[1.0, 0.5, -0.3, 0.2], &[2, 2]);
        let w = t(&[1.0, 0.0, 0.0, 1.0, -0.6, 0.8], &[3, 2]);
        let target = t(&[0.2, 0.5, 0.3, 1.0, 0.0, 0.0], &[2, 3]);
        let kappa = 5.0;
        let mut want = 0.0;
        let (zv, wv, tv): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            Vec::try_from(z.flatten(0, -1)).unwrap(),
            Vec::try_from(w.flatten(0, -1)).unwrap(),
            Vec::try_from(target.flatten(0, -1)).unwrap(),
        );
        for i in 0..2 {
            let logits: Vec<f64> = (0..3)
                .map(|k| kappa * (zv[i * 2] * wv[k * 2] + zv[i * 2 + 1] * wv[k * 2 + 1]))
                .collect();
            let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
            want -= (0..3)
                .map(|k| tv[i * 3 + k] * (logits[k] - lse))
                .sum::<f64>();
        }
        want /= 2.0;
        let got = f64::try_from(bow_prediction_loss(&z, &w, kappa, &target)).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        tch::manual_seed(5);
        let z = Tensor::randn([4, 3], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let w = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let target = Tensor::rand([4, 5], (Kind::Double, Device::Cpu));
        let target = &target / target.sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
        bow_prediction_loss(&z, &w, 3.0, &target).backward();
        let g: Vec<f64> = Vec::try_from(z.grad().flatten(0, -1)).unwrap();
        let base = z.detach();
        let h = 1e-6;
        for (i, gi) in g.iter().enumerate() {
            let e = Tensor::zeros([12], (Kind::Double, Device::Cpu))
                .index_fill(0, &Tensor::from_slice(&[i as i64]), h)
                .view([4, 3]);
            let f = |x: &Tensor| f64::try_from(bow_prediction_loss(x, &w, 3.0, &target)).unwrap();
            let numeric = (f(&(&base + &e)) - f(&(&base - &e))) / (2.0 * h);
            assert!(
                (numeric - gi).abs() < 1e-7 * (1.0 + gi.abs()),
                "{i}: {gi} vs {numeric}"
            );
        }
    }
}
