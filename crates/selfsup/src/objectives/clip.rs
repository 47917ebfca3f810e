//! CLIP's symmetric contrastive loss (Radford et al. 2021, Fig. 3): for a batch of N pairs with
//! row-normalised embeddings â, b̂ of the two modalities and a scale s = exp(t) (t learned),
//!   logits = s · â b̂ᵀ,
//!   L = ½ [ CE(logits, i ↦ i) + CE(logitsᵀ, i ↦ i) ],
//! the mean cross-entropy of finding each sample's partner among the other modality's batch, in
//! both directions.
use super::info_nce::l2_normalize_rows;
use tch::{Kind, Tensor};

/// The loss for one pair of modalities; `scale` is a scalar tensor (gradients flow into it).
pub fn clip_loss(a: &Tensor, b: &Tensor, scale: &Tensor) -> Tensor {
    let n = a.size()[0];
    let logits = l2_normalize_rows(a).matmul(&l2_normalize_rows(b).tr()) * scale;
    let targets = Tensor::arange(n, (Kind::Int64, a.device())).unsqueeze(1);
    let ce = |l: &Tensor| {
        -l.log_softmax(1, None::<Kind>)
            .gather(1, &targets, false)
            .mean(None::<Kind>)
    };
    (ce(&logits) + ce(&logits.tr())) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};

    fn unit(v: &[f64]) -> Vec<f64> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// The loss summed term by term: −log of each row's and each column's softmax at the diagonal.
    fn direct(a: &[Vec<f64>], b: &[Vec<f64>], s: f64) -> f64 {
        let n = a.len();
        let (a, b): (Vec<_>, Vec<_>) = (
            a.iter().map(|r| unit(r)).collect(),
            b.iter().map(|r| unit(r)).collect(),
        );
        let sim = |i: usize, j: usize| s * a[i].iter().zip(&b[j]).map(|(x, y)| x * y).sum::<f64>();
        let mut rows = 0.0;
        let mut cols = 0.0;
        for i in 0..n {
            let r: f64 = (0..n).map(|j| sim(i, j).exp()).sum();
            let c: f64 = (0..n).map(|j| sim(j, i).exp()).sum();
            rows -= (sim(i, i).exp() / r).ln();
            cols -= (sim(i, i).exp() / c).ln();
        }
        (rows + cols) / (2.0 * n as f64)
    }

    #[test]
    fn matches_a_direct_computation_in_both_directions() {
        let a = vec![
            vec![1.0, 2.0, -0.5],
            vec![0.3, -1.0, 0.8],
            vec![-2.0, 0.1, 0.4],
            vec![0.5, 0.5, 0.5],
        ];
        let b = vec![
            vec![0.9, 1.5, 0.0],
            vec![-0.2, -1.0, 1.0],
            vec![-1.0, 0.3, 0.1],
            vec![2.0, -0.5, 0.5],
        ];
        for s in [1.0, 14.285714, 100.0] {
            let got = scalar(&clip_loss(
                &tensor(&a, Kind::Double),
                &tensor(&b, Kind::Double),
                &Tensor::from(s),
            ));
            let want = direct(&a, &b, s);
            assert!(
                (got - want).abs() < 1e-12 * want.max(1.0),
                "s = {s}: {got} vs {want}"
            );
        }
        // Asymmetric in general: the column term differs from the row term.
        let swapped = {
            let t = clip_loss(
                &tensor(&a, Kind::Double),
                &tensor(&b, Kind::Double),
                &Tensor::from(5.0),
            );
            let u = clip_loss(
                &tensor(&b, Kind::Double),
                &tensor(&a, Kind::Double),
                &Tensor::from(5.0),
            );
            (scalar(&t) - scalar(&u)).abs()
        };
        assert!(
            swapped < 1e-12,
            "swapping the modalities leaves the symmetric loss"
        );
    }

    #[test]
    fn perfectly_aligned_pairs_at_a_large_scale_cost_nearly_nothing() {
        let a = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![-1.0, 0.0],
            vec![0.0, -1.0],
        ];
        let l = scalar(&clip_loss(
            &tensor(&a, Kind::Double),
            &tensor(&a, Kind::Double),
            &Tensor::from(100.0),
        ));
        // Each row: −log(1 / (1 + 2e^{-100} + e^{-200})) ≈ 2e^{-100}.
        assert!(l < 1e-40, "{l}");
        // At scale 0 every partner is as likely as any other: log N.
        let l0 = scalar(&clip_loss(
            &tensor(&a, Kind::Double),
            &tensor(&a, Kind::Double),
            &Tensor::from(0.0),
        ));
        assert!((l0 - 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn the_scale_gradient_matches_finite_differences() {
        tch::manual_seed(4);
        let a = Tensor::randn([6, 3], (Kind::Double, tch::Device::Cpu));
        let b = Tensor::randn([6, 3], (Kind::Double, tch::Device::Cpu));
        let t = Tensor::from(2.3f64).set_requires_grad(true);
        clip_loss(&a, &b, &t.exp()).backward();
        let g = scalar(&t.grad());
        let h = 1e-6;
        let f = |x: f64| scalar(&clip_loss(&a, &b, &Tensor::from(x.exp())));
        let numeric = (f(2.3 + h) - f(2.3 - h)) / (2.0 * h);
        assert!(
            (g - numeric).abs() < 1e-7 * (1.0 + g.abs()),
            "{g} vs {numeric}"
        );
    }
}
