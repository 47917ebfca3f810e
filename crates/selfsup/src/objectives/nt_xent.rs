//! NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1).
//!
//! For N pairs (z1_i, z2_i): all 2N projections are L2-normalised; each of the 2N anchors has its
//! partner as the positive and the other 2N−2 projections as negatives; the loss is the mean over
//! the 2N anchors of −log softmax(sim/τ)[positive], self-similarity excluded.
//!
//! Across ranks (`nt_xent_across`), each rank's 2n anchors are its own rows and the candidates
//! are the 2N rows of every rank, gathered with their gradients: the anchor's positive and its
//! own row are located by global index, so the mean over ranks of the losses (and, after the
//! gradient all-reduce, of the gradients) is the one-process loss of the whole batch (the
//! positive-mask mistake of solo-learn #206 is what the global index avoids).
use crate::distributed::{Alone, Collective};
use anyhow::Result;
use tch::{Kind, Tensor};

pub fn nt_xent(z1: &Tensor, z2: &Tensor, temperature: f64) -> Tensor {
    nt_xent_across(z1, z2, temperature, &Alone).expect("one process gathers nothing")
}

/// This rank's part of NT-Xent over the batches of every rank of `comm` (rank r holding pairs
/// rN/W … (r+1)N/W − 1 of the global batch).
pub fn nt_xent_across(
    z1: &Tensor,
    z2: &Tensor,
    temperature: f64,
    comm: &dyn Collective,
) -> Result<Tensor> {
    let (n, d) = (z1.size()[0], z1.size()[1]);
    let (w, r) = (comm.world_size() as i64, comm.rank() as i64);
    let device = z1.device();
    let local = unit_rows(&Tensor::cat(&[z1, z2], 0));
    // Gathered as [rank][view][row]; reordered to the one-process order [view][rank][row].
    let all = comm
        .gather(&local)?
        .view([w, 2, n, d])
        .transpose(0, 1)
        .reshape([2 * w * n, d]);
    let sim = local.matmul(&all.tr()) / temperature;
    // Global indices of this rank's anchors (first view, then second) and of their positives.
    let first = Tensor::arange_start(r * n, (r + 1) * n, (Kind::Int64, device));
    let second = &first + w * n;
    let own = Tensor::cat(&[&first, &second], 0).unsqueeze(1);
    let positive = Tensor::cat(&[&second, &first], 0).unsqueeze(1);
    let self_mask =
        Tensor::zeros([2 * n, 2 * w * n], (Kind::Bool, device)).scatter_value(1, &own, 1);
    let sim = sim.masked_fill(&self_mask, f64::NEG_INFINITY);
    // Cross-entropy written out (tch's helper casts to f32; this keeps the input's dtype).
    Ok(-sim
        .log_softmax(1, None::<Kind>)
        .gather(1, &positive, false)
        .mean(None::<Kind>))
}

/// Rows scaled to unit length; the norm is clamped so that a zero vector gives zero
/// similarities, not NaN.
fn unit_rows(z: &Tensor) -> Tensor {
    z / z
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::scalar;
    use tch::Device;

    /// Loss computed element by element from the definition, in f64, for comparison.
    fn reference(z1: &[Vec<f64>], z2: &[Vec<f64>], t: f64) -> f64 {
        let z: Vec<Vec<f64>> = z1
            .iter()
            .chain(z2)
            .map(|v| {
                let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect();
        let m = z.len();
        let n = m / 2;
        let dot = |a: &Vec<f64>, b: &Vec<f64>| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut total = 0.0;
        for i in 0..m {
            let pos = if i < n { i + n } else { i - n };
            let denom: f64 = (0..m)
                .filter(|&k| k != i)
                .map(|k| (dot(&z[i], &z[k]) / t).exp())
                .sum();
            total += -((dot(&z[i], &z[pos]) / t).exp() / denom).ln();
        }
        total / m as f64
    }

    #[test]
    fn matches_an_independent_computation() {
        let a = vec![
            vec![1.0, 2.0, -0.5],
            vec![0.3, -1.0, 0.8],
            vec![-2.0, 0.1, 0.4],
        ];
        let b = vec![
            vec![0.9, 2.2, -0.1],
            vec![0.0, -1.5, 1.0],
            vec![-1.0, -0.3, 0.9],
        ];
        let to_t = |v: &Vec<Vec<f64>>| {
            Tensor::from_slice(&v.concat().iter().map(|&x| x as f32).collect::<Vec<_>>())
                .view([3, 3])
        };
        for t in [0.1, 0.5, 1.0] {
            let got = scalar(&nt_xent(&to_t(&a), &to_t(&b), t));
            let want = reference(&a, &b, t);
            assert!((got - want).abs() < 1e-5, "t={t}: {got} vs {want}");
        }
    }

    /// Closed form: N aligned pairs of mutually orthogonal unit vectors. Each anchor has similarity
    /// 1 with its positive and 0 with the 2N−2 negatives, so the loss is
    /// −log(e^{1/τ} / (e^{1/τ} + 2N − 2)).
    #[test]
    fn aligned_orthogonal_pairs_closed_form() {
        let n = 4i64;
        let z = Tensor::eye(n, (Kind::Float, Device::Cpu)) * 3.0; // scale must not matter
        for t in [0.2, 0.5] {
            let got = scalar(&nt_xent(&z, &z, t));
            let e = (1.0 / t).exp();
            let want = -(e / (e + (2 * n - 2) as f64)).ln();
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn symmetric_in_the_two_views_and_finite_for_zero_vectors() {
        let a = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        assert!((scalar(&nt_xent(&a, &b, 0.5)) - scalar(&nt_xent(&b, &a, 0.5))).abs() < 1e-6);
        let zero = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        assert!(scalar(&nt_xent(&zero, &zero, 0.5)).is_finite());
    }
}
