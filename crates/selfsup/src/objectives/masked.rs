//! Losses of masked prediction: reconstruction of hidden patches in input space (MAE, SimMIM) and
//! regression of hidden-token representations (I-JEPA).
use tch::{Kind, Reduction, Tensor};

/// Per-patch normalisation of reconstruction targets (MAE's "normalized pixels", He et al. 2022
/// §3 and Table 1c): each patch's values minus their mean, over √(unbiased variance + 1e-6).
pub fn normalise_patches(patches: &Tensor) -> Tensor {
    let mean = patches.mean_dim(-1, true, Kind::Float);
    let var = patches.var_dim(-1, true, true);
    (patches - mean) / (var + 1e-6).sqrt()
}

/// How one patch's error is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchError {
    /// Mean squared error over the patch's values (MAE).
    Squared,
    /// Mean absolute error over the patch's values (SimMIM's ℓ1, Xie et al. 2022 §3.4).
    Absolute,
}

/// Error per patch `[N, L]` averaged over the hidden patches only: `hidden` is `[N, L]` with 1 for
/// hidden and 0 for visible patches; predictions of visible patches get no gradient.
pub fn masked_patch_loss(pred: &Tensor, target: &Tensor, hidden: &Tensor, e: PatchError) -> Tensor {
    let d = pred - target;
    let per_patch = match e {
        PatchError::Squared => d.square(),
        PatchError::Absolute => d.abs(),
    }
    .mean_dim(-1, false, Kind::Float);
    (per_patch * hidden).sum(Kind::Float) / hidden.sum(Kind::Float)
}

/// `[N, L]` float mask with 1 at the tokens listed in `hidden_idx` (`[N, M]` int64).
pub fn hidden_mask(n_tokens: i64, hidden_idx: &Tensor) -> Tensor {
    let n = hidden_idx.size()[0];
    Tensor::zeros([n, n_tokens], (Kind::Float, hidden_idx.device()))
        .scatter_value(1, hidden_idx, 1.0)
}

/// I-JEPA's latent regression (Assran et al. 2023, eq. 2 with the reference code's smooth-ℓ1):
/// the predictions against the target encoder's outputs, layer-normalised over channels without
/// affine parameters; mean over every element.
pub fn latent_regression(pred: &Tensor, target: &Tensor) -> Tensor {
    let d = target.size()[target.dim() - 1];
    let t = target.layer_norm([d], None::<Tensor>, None::<Tensor>, 1e-6, false);
    pred.smooth_l1_loss(&t.detach(), Reduction::Mean, 1.0)
}

/// SSAST's discriminative patch loss (Gong et al. 2022, eq. 1): each hidden patch's prediction
/// `pred[n, i]` must pick its own patch `target[n, i]` among the clip's hidden patches, scored by
/// the dot product: `−mean_{n,i} log softmax_j(pred[n,i]·target[n,j])[i]`. Both are `[N, K, P]`.
pub fn patch_info_nce(pred: &Tensor, target: &Tensor) -> Tensor {
    let (n, k, _) = pred.size3().expect("predictions are [N, K, P]");
    let logits = pred.bmm(&target.transpose(1, 2));
    let own = Tensor::arange(k, (Kind::Int64, pred.device()))
        .unsqueeze(0)
        .expand([n, k], false);
    logits
        .reshape([n * k, k])
        .cross_entropy_for_logits(&own.reshape([n * k]))
}

/// Mean absolute error over the elements where `mask` is 1 (TERA's ℓ1 on altered positions).
pub fn masked_l1(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    ((pred - target).abs() * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_loss_sees_only_hidden_patches() {
        // Two samples, three patches of two values; each hides patch 1 only.
        let pred =
            Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 0., 0., 1., 1., 2., 2.]).view([2, 3, 2]);
        let target = Tensor::zeros([2, 3, 2], (Kind::Float, Device::Cpu));
        let hidden = hidden_mask(3, &Tensor::from_slice(&[1i64, 1]).view([2, 1]));
        assert_eq!(
            Vec::<f32>::try_from(hidden.flatten(0, -1)).unwrap(),
            vec![0., 1., 0., 0., 1., 0.]
        );
        let l = masked_patch_loss(&pred, &target, &hidden, PatchError::Squared).double_value(&[]);
        // ((3² + 4²)/2 + (1² + 1²)/2) / 2 = (12.5 + 1) / 2
        assert!((l - 6.75).abs() < 1e-6, "{l}");
        let l1 = masked_patch_loss(&pred, &target, &hidden, PatchError::Absolute).double_value(&[]);
        assert!((l1 - (3.5 + 1.0) / 2.0).abs() < 1e-6, "{l1}");
    }

    #[test]
    fn visible_predictions_get_no_gradient() {
        let pred = Tensor::randn([1, 4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let target = Tensor::randn([1, 4, 3], (Kind::Float, Device::Cpu));
        let hidden = hidden_mask(4, &Tensor::from_slice(&[2i64]).view([1, 1]));
        masked_patch_loss(&pred, &target, &hidden, PatchError::Squared).backward();
        let g = pred.grad();
        for p in [0, 1, 3] {
            assert_eq!(
                g.get(0).get(p).abs().sum(Kind::Float).double_value(&[]),
                0.0
            );
        }
        // d/dpred of mean((pred - t)²) over the 3 values of the one hidden patch = 2(pred - t)/3.
        let want = (pred.get(0).get(2) - target.get(0).get(2)) * 2.0 / 3.0;
        assert!((g.get(0).get(2) - want).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn normalised_patches_have_zero_mean_and_unit_unbiased_variance() {
        let p = Tensor::from_slice(&[1f32, 2., 3., 6.]).view([1, 1, 4]);
        let n = Vec::<f32>::try_from(normalise_patches(&p).flatten(0, -1)).unwrap();
        // mean 3, unbiased variance (4+1+0+9)/3 = 14/3.
        let s = (14f64 / 3.0 + 1e-6).sqrt();
        for (g, x) in n.iter().zip([1., 2., 3., 6.]) {
            assert!((*g as f64 - (x - 3.0) / s).abs() < 1e-5);
        }
    }

    #[test]
    fn latent_regression_is_smooth_l1_to_layer_normalised_targets() {
        // Target [1, 3] per token: mean 2, biased variance 2/3 → normalised ±1.2247, 0.
        let target = Tensor::from_slice(&[1f32, 2., 3.]).view([1, 1, 3]);
        let pred = Tensor::from_slice(&[0f32, 0., 3.]).view([1, 1, 3]);
        let s = (2f64 / 3.0 + 1e-6).sqrt();
        let t = [-1.0 / s, 0.0, 1.0 / s];
        let huber = |d: f64| {
            if d.abs() < 1.0 {
                0.5 * d * d
            } else {
                d.abs() - 0.5
            }
        };
        let want = (huber(0.0 - t[0]) + huber(0.0 - t[1]) + huber(3.0 - t[2])) / 3.0;
        let got = latent_regression(&pred, &target).double_value(&[]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn patch_info_nce_against_a_direct_computation() {
        let pred = Tensor::from_slice(&[1f32, 0., 0., 2., 0.5, 0.5, 3., -1.]).view([2, 2, 2]);
        let target = Tensor::from_slice(&[0.2f32, 1., 1., -0.5, 2., 0., 0., 1.]).view([2, 2, 2]);
        let got = f64::try_from(patch_info_nce(&pred, &target)).unwrap();
        let p: Vec<f32> = Vec::try_from(pred.flatten(0, -1)).unwrap();
        let t: Vec<f32> = Vec::try_from(target.flatten(0, -1)).unwrap();
        let dot = |n: usize, i: usize, j: usize| {
            (0..2)
                .map(|d| (p[n * 4 + i * 2 + d] * t[n * 4 + j * 2 + d]) as f64)
                .sum::<f64>()
        };
        let mut want = 0.0;
        for n in 0..2 {
            for i in 0..2 {
                let z: f64 = (0..2).map(|j| dot(n, i, j).exp()).sum();
                want -= (dot(n, i, i).exp() / z).ln();
            }
        }
        want /= 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn masked_l1_averages_only_masked_elements() {
        let pred = Tensor::from_slice(&[1f32, 5., -2., 0.]);
        let target = Tensor::from_slice(&[0f32, 0., 0., 0.]);
        let mask = Tensor::from_slice(&[1f32, 0., 1., 0.]);
        let got = f64::try_from(masked_l1(&pred, &target, &mask)).unwrap();
        assert!((got - 1.5).abs() < 1e-6);
    }
}
