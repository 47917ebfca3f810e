//! InfoNCE with the positive key for each query, in two forms.
//!
//! * [`info_nce_in_batch`]: the keys of the other samples in the batch are the negatives
//!   (MoCo v3, Chen, Xie & He 2021, Alg. 1; also NNCLR's loss with nearest-neighbour queries).
//! * [`moco_queue_loss`]: the negatives come from a queue of earlier keys (MoCo, He et al. 2020,
//!   Alg. 1).
use crate::distributed::{Alone, Collective};
use anyhow::Result;
use tch::{Kind, Tensor};

/// Rows divided by their L2 norm; the norm is clamped so that a zero row stays zero, not NaN
/// (the same convention as `torch.nn.functional.normalize`).
pub(crate) fn l2_normalize_rows(x: &Tensor) -> Tensor {
    x / x
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12)
}

/// In-batch InfoNCE: with q̂, k̂ the row-normalised queries and keys [N,D],
///   L = −(1/N) Σ_i log( exp(q̂_i·k̂_i/τ) / Σ_j exp(q̂_i·k̂_j/τ) ),
/// i.e. cross-entropy of the logits q̂k̂ᵀ/τ with target i for row i.
///
/// MoCo v3 multiplies this by 2τ and symmetrises it over the two views; both are the method's
/// business, not this function's. Keys are not detached here.
pub fn info_nce_in_batch(q: &Tensor, k: &Tensor, temperature: f64) -> Tensor {
    info_nce_in_batch_across(q, k, temperature, &Alone).expect("one process gathers nothing")
}

/// This rank's part of the in-batch InfoNCE over the batches of every rank of `comm`: its own
/// queries against the keys of every rank (gathered with their gradients), the positive of
/// query i at its global index r·n + i; the mean over ranks is the one-process loss.
pub fn info_nce_in_batch_across(
    q: &Tensor,
    k: &Tensor,
    temperature: f64,
    comm: &dyn Collective,
) -> Result<Tensor> {
    let n = q.size()[0];
    let keys = comm.gather(&l2_normalize_rows(k))?;
    let logits = l2_normalize_rows(q).matmul(&keys.tr()) / temperature;
    // Cross-entropy written out so that the input's dtype is kept.
    let first = comm.rank() as i64 * n;
    let targets = Tensor::arange_start(first, first + n, (Kind::Int64, q.device())).unsqueeze(1);
    Ok(-logits
        .log_softmax(1, None::<Kind>)
        .gather(1, &targets, false)
        .mean(None::<Kind>))
}

/// MoCo's queue loss: q, k [N,D] are row-normalised here; `queue` [K,D] holds earlier keys and is
/// used as given, so its rows must already be unit vectors (MoCo stores normalised keys). With
///   logits_i = [q̂_i·k̂_i, q̂_i·queue_1, …, q̂_i·queue_K] / τ,
/// the loss is the mean over i of the cross-entropy with target 0 (the positive key).
/// Neither the keys nor the queue are detached here.
pub fn moco_queue_loss(q: &Tensor, k: &Tensor, queue: &Tensor, temperature: f64) -> Tensor {
    let q = l2_normalize_rows(q);
    let k = l2_normalize_rows(k);
    let positive = (&q * &k).sum_dim_intlist([1i64].as_slice(), true, q.kind());
    let negatives = q.matmul(&queue.tr());
    let logits = Tensor::cat(&[positive, negatives], 1) / temperature;
    -logits
        .log_softmax(1, None::<Kind>)
        .select(1, 0)
        .mean(None::<Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};
    use tch::Device;

    fn unit(v: &[f64]) -> Vec<f64> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// −log softmax(logits)[target], evaluated term by term.
    fn nll(logits: &[f64], target: usize) -> f64 {
        let denom: f64 = logits.iter().map(|l| l.exp()).sum();
        -(logits[target].exp() / denom).ln()
    }

    fn queries() -> Vec<Vec<f64>> {
        vec![
            vec![1.0, 2.0, -0.5],
            vec![0.3, -1.0, 0.8],
            vec![-2.0, 0.1, 0.4],
            vec![0.5, 0.5, 0.5],
        ]
    }

    fn keys() -> Vec<Vec<f64>> {
        vec![
            vec![0.9, 2.2, -0.1],
            vec![0.0, -1.5, 1.0],
            vec![-1.0, -0.3, 0.9],
            vec![2.0, -0.2, 0.3],
        ]
    }

    #[test]
    fn in_batch_matches_an_independent_computation() {
        let (q, k) = (queries(), keys());
        for t in [0.1, 0.2, 1.0] {
            let mut want = 0.0;
            for (i, qi) in q.iter().enumerate() {
                let logits: Vec<f64> = k.iter().map(|kj| dot(&unit(qi), &unit(kj)) / t).collect();
                want += nll(&logits, i);
            }
            want /= q.len() as f64;
            for kind in [Kind::Float, Kind::Double] {
                let got = scalar(&info_nce_in_batch(&tensor(&q, kind), &tensor(&k, kind), t));
                assert!(
                    (got - want).abs() < 1e-5 * want.max(1.0),
                    "t={t}: {got} vs {want}"
                );
            }
        }
    }

    /// Closed form: queries equal to their keys, all mutually orthogonal: the positive logit is
    /// 1/τ and the N−1 others are 0, so L = −log(e^{1/τ} / (e^{1/τ} + N − 1)).
    #[test]
    fn in_batch_orthogonal_aligned_closed_form() {
        let n = 5i64;
        let z = Tensor::eye(n, (Kind::Float, Device::Cpu)) * 2.5; // scale must not matter
        for t in [0.2, 1.0] {
            let got = scalar(&info_nce_in_batch(&z, &z, t));
            let e = (1.0 / t).exp();
            let want = -(e / (e + (n - 1) as f64)).ln();
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn moco_queue_matches_an_independent_computation() {
        let (q, k) = (queries(), keys());
        let queue: Vec<Vec<f64>> = [
            vec![1.0, 0.0, 1.0],
            vec![-0.3, 0.8, 0.1],
            vec![0.2, -0.2, -1.0],
            vec![0.0, 1.0, 0.0],
            vec![0.6, 0.6, -0.6],
        ]
        .iter()
        .map(|v| unit(v))
        .collect();
        for t in [0.07, 0.2, 1.0] {
            let mut want = 0.0;
            for (qi, ki) in q.iter().zip(&k) {
                let qi = unit(qi);
                let mut logits = vec![dot(&qi, &unit(ki)) / t];
                logits.extend(queue.iter().map(|m| dot(&qi, m) / t));
                want += nll(&logits, 0);
            }
            want /= q.len() as f64;
            for kind in [Kind::Float, Kind::Double] {
                let got = scalar(&moco_queue_loss(
                    &tensor(&q, kind),
                    &tensor(&k, kind),
                    &tensor(&queue, kind),
                    t,
                ));
                assert!(
                    (got - want).abs() < 1e-5 * want.max(1.0),
                    "t={t}: {got} vs {want}"
                );
            }
        }
    }

    /// Closed form: q = k and a queue of K unit vectors orthogonal to every query: the positive
    /// logit is 1/τ and the K negatives are 0, so L = −log(e^{1/τ} / (e^{1/τ} + K)).
    #[test]
    fn moco_queue_orthogonal_closed_form() {
        let q = Tensor::eye(6, (Kind::Double, Device::Cpu)).narrow(0, 0, 2) * 3.0;
        let queue = Tensor::eye(6, (Kind::Double, Device::Cpu)).narrow(0, 2, 4);
        for t in [0.07, 0.5] {
            let got = scalar(&moco_queue_loss(&q, &q, &queue, t));
            let e = (1.0 / t).exp();
            let want = -(e / (e + 4.0)).ln();
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn zero_rows_give_finite_losses() {
        let zero = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let queue = Tensor::eye(4, (Kind::Float, Device::Cpu));
        assert!(scalar(&info_nce_in_batch(&zero, &zero, 0.2)).is_finite());
        assert!(scalar(&moco_queue_loss(&zero, &zero, &queue, 0.2)).is_finite());
    }
}
