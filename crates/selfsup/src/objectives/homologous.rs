//! MixedAE's homologous contrast (Chen et al., CVPR 2023): in an image mixed from several
//! sources, each token's positives are the other tokens from its own source, its negatives the
//! tokens from the other sources of the same mixed image — a supervised contrastive loss (Khosla
//! et al. 2020, L_out) within each mixed sequence, on L2-normalised tokens.
use crate::objectives::info_nce::l2_normalize_rows;
use tch::{Kind, Tensor};

/// `tokens [S, L, D]` of `S` mixed sequences, `source [S, L]` (int64) the image each token came
/// from; the mean over every token with at least one positive of
/// `−(1/|P(i)|) Σ_{p∈P(i)} log(exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ))`, `a` over the tokens of
/// the same sequence.
pub fn homologous_contrast(tokens: &Tensor, source: &Tensor, temperature: f64) -> Tensor {
    let (s, l, d) = tokens.size3().expect("tokens are [S, L, D]");
    let z = l2_normalize_rows(&tokens.reshape([s * l, d])).reshape([s, l, d]);
    let (device, kind) = (z.device(), z.kind());
    let own = Tensor::eye(l, (Kind::Bool, device)).unsqueeze(0);
    let log_prob = (z.matmul(&z.transpose(1, 2)) / temperature)
        .masked_fill(&own, f64::NEG_INFINITY)
        .log_softmax(2, None::<Kind>)
        .masked_fill(&own, 0.0);
    let positive = source
        .unsqueeze(2)
        .eq_tensor(&source.unsqueeze(1))
        .logical_and(&own.logical_not())
        .to_kind(kind);
    let count = positive.sum_dim_intlist([2i64].as_slice(), false, kind);
    let mean_pos = (positive * log_prob).sum_dim_intlist([2i64].as_slice(), false, kind)
        / count.clamp_min(1.0);
    let anchors = count.gt(0.0).to_kind(kind);
    -(mean_pos * &anchors).sum(kind) / anchors.sum(kind).clamp_min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::supcon;
    use crate::objectives::test_util::scalar;
    use tch::Device;

    #[test]
    fn each_sequence_is_supcon_over_its_own_tokens() {
        tch::manual_seed(6);
        let tokens = Tensor::randn([3, 6, 4], (Kind::Double, Device::Cpu));
        let source = Tensor::from_slice(&[
            0i64, 1, 0, 2, 1, 2, //
            1, 1, 0, 0, 2, 2, //
            0, 0, 0, 1, 1, 1,
        ])
        .view([3, 6]);
        // Every token has a positive, so the mean over tokens is the mean of per-sequence SupCon
        // (its base temperature = τ, one view).
        let per_sequence: f64 = (0..3)
            .map(|i| scalar(&supcon(&[tokens.get(i)], &source.get(i), 0.2, 0.2)))
            .sum::<f64>()
            / 3.0;
        let ours = scalar(&homologous_contrast(&tokens, &source, 0.2));
        assert!(
            (ours - per_sequence).abs() < 1e-10,
            "{ours} vs {per_sequence}"
        );
    }

    #[test]
    fn a_token_without_a_positive_is_left_out() {
        tch::manual_seed(7);
        let tokens = Tensor::randn([1, 4, 3], (Kind::Double, Device::Cpu));
        let alone = Tensor::from_slice(&[0i64, 0, 0, 1]).view([1, 4]);
        let without = Tensor::from_slice(&[0i64, 0, 0]).view([1, 3]);
        // The lone token still counts as a negative of the others.
        let ours = scalar(&homologous_contrast(&tokens, &alone, 0.5));
        let mut manual = 0.0;
        let z = l2_normalize_rows(&tokens.get(0));
        let sim = z.matmul(&z.transpose(0, 1)) / 0.5;
        for i in 0..3i64 {
            let row: Vec<f64> = (0..4)
                .filter(|&a| a != i)
                .map(|a| sim.double_value(&[i, a]))
                .collect();
            let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
            let pos: f64 = (0..3)
                .filter(|&p| p != i)
                .map(|p| sim.double_value(&[i, p]) - lse)
                .sum();
            manual -= pos / 2.0;
        }
        assert!((ours - manual / 3.0).abs() < 1e-10);
        assert!(scalar(&homologous_contrast(&tokens.narrow(1, 0, 3), &without, 0.5)).is_finite());
    }
}
