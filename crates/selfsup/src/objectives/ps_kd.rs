//! Progressive self-knowledge distillation (PS-KD; Kim, Ji, Yoon & Hwang, ICCV 2021): the
//! model's own predictions from the previous epoch soften its targets,
//! `target_t = (1 − α_t)·onehot(y) + α_t·p_{t−1}(x)`, with α growing linearly over training,
//! `α_t = α_T · t / T` for epochs t = 1..T (α_T = 0.8 is the paper's choice for CIFAR-100).
use tch::{Kind, Tensor};

/// The paper's α_T.
pub const ALPHA_T: f64 = 0.8;

/// α for epoch `epoch` (0-based) of `epochs`: α_T·(epoch + 1)/T, so the last epoch uses α_T.
pub fn alpha(epoch: u64, epochs: u64, alpha_t: f64) -> f64 {
    alpha_t * (epoch + 1) as f64 / epochs.max(1) as f64
}

/// `(1 − α)·onehot + α·past`; both `[B, N]`.
pub fn soft_targets(onehot: &Tensor, past: &Tensor, alpha: f64) -> Tensor {
    onehot * (1.0 - alpha) + past * alpha
}

/// Cross-entropy of `logits` `[B, N]` against soft `targets` `[B, N]`, averaged over the batch.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    -(targets * logits.log_softmax(-1, Kind::Float))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Reduction};

    #[test]
    fn alpha_grows_linearly_to_alpha_t() {
        assert!((alpha(0, 4, 0.8) - 0.2).abs() < 1e-12);
        assert!((alpha(1, 4, 0.8) - 0.4).abs() < 1e-12);
        assert!((alpha(3, 4, 0.8) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn targets_mix_the_label_and_the_past_prediction() {
        let onehot = Tensor::from_slice(&[0f32, 1., 0.]).view([1, 3]);
        let past = Tensor::from_slice(&[0.2f32, 0.5, 0.3]).view([1, 3]);
        let t = Vec::<f32>::try_from(soft_targets(&onehot, &past, 0.4).flatten(0, -1)).unwrap();
        // 0.6·[0, 1, 0] + 0.4·[0.2, 0.5, 0.3] = [0.08, 0.8, 0.12]
        for (a, b) in t.iter().zip([0.08f32, 0.8, 0.12]) {
            assert!((a - b).abs() < 1e-6, "{t:?}");
        }
        let sum: f32 = t.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn soft_cross_entropy_of_one_hot_targets_is_cross_entropy() {
        tch::manual_seed(1);
        let logits = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 3, 1, 1, 2, 0]);
        let onehot = y.one_hot(4).to_kind(Kind::Float);
        let ours = soft_cross_entropy(&logits, &onehot).double_value(&[]);
        let theirs = logits
            .cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)
            .double_value(&[]);
        assert!((ours - theirs).abs() < 1e-6);
        // Against a hand value: logits [0, ln 3] and target [0.5, 0.5] give
        // −(0.5·ln(1/4) + 0.5·ln(3/4)).
        let l = Tensor::from_slice(&[0f32, 3f32.ln()]).view([1, 2]);
        let t = Tensor::from_slice(&[0.5f32, 0.5]).view([1, 2]);
        let want = -(0.5 * 0.25f64.ln() + 0.5 * 0.75f64.ln());
        assert!((soft_cross_entropy(&l, &t).double_value(&[]) - want).abs() < 1e-6);
    }
}
