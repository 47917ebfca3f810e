//! Barlow Twins (Zbontar et al. 2021, eq. 1): the cross-correlation matrix C of the two views'
//! batch-standardised projections should be the identity:
//!   L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij².
//! Standardisation follows the paper's code (BatchNorm1d without affine: batch mean, biased
//! variance, eps 1e-5); C is divided by the batch size.
//!
//! Across ranks (`barlow_twins_across`) the batch statistics and C are sums over every rank's
//! rows, all-reduced with their gradient (the raw all-reduce without backward of lightly #1977
//! scales the gradient by 1/world size); every rank then holds the one-process loss.
use crate::distributed::{Alone, Collective};
use anyhow::Result;
use tch::Tensor;

const EPS: f64 = 1e-5;

/// Standardised over the `total` rows of every rank.
fn standardise(z: &Tensor, total: f64, comm: &dyn Collective) -> Result<Tensor> {
    let kind = z.kind();
    let dim0 = [0i64];
    let mean = comm.sum(&z.sum_dim_intlist(dim0.as_slice(), true, kind))? / total;
    let centred = z - mean;
    let var = comm.sum(
        &centred
            .square()
            .sum_dim_intlist(dim0.as_slice(), true, kind),
    )? / total;
    Ok(centred / (var + EPS).sqrt())
}

pub fn barlow_twins(z1: &Tensor, z2: &Tensor, lambda: f64) -> Tensor {
    barlow_twins_across(z1, z2, lambda, &Alone).expect("one process reduces nothing")
}

/// The loss of the whole batch, every rank holding an equal share of its rows.
pub fn barlow_twins_across(
    z1: &Tensor,
    z2: &Tensor,
    lambda: f64,
    comm: &dyn Collective,
) -> Result<Tensor> {
    let total = (z1.size()[0] * comm.world_size() as i64) as f64;
    let s1 = standardise(z1, total, comm)?;
    let s2 = standardise(z2, total, comm)?;
    let c = comm.sum(&s1.tr().matmul(&s2))? / total;
    let diag = c.diagonal(0, 0, 1);
    // Sums keep the input's dtype (f32 in training, f64 in the gradient checks).
    let kind = c.kind();
    let on_diag = (&diag - 1.0).square().sum(kind);
    let off_diag = c.square().sum(kind) - diag.square().sum(kind);
    Ok(on_diag + off_diag * lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::scalar;
    use tch::Device;

    /// Element-by-element f64 computation of the definition.
    fn reference(z1: &[Vec<f64>], z2: &[Vec<f64>], lambda: f64) -> f64 {
        let n = z1.len();
        let d = z1[0].len();
        let std = |z: &[Vec<f64>]| -> Vec<Vec<f64>> {
            let mut out = vec![vec![0.0; d]; n];
            for j in 0..d {
                let m = z.iter().map(|r| r[j]).sum::<f64>() / n as f64;
                let v = z.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n as f64;
                for i in 0..n {
                    out[i][j] = (z[i][j] - m) / (v + 1e-5).sqrt();
                }
            }
            out
        };
        let (a, b) = (std(z1), std(z2));
        let mut loss = 0.0;
        for i in 0..d {
            for j in 0..d {
                let c: f64 = (0..n).map(|k| a[k][i] * b[k][j]).sum::<f64>() / n as f64;
                loss += if i == j {
                    (1.0 - c).powi(2)
                } else {
                    lambda * c * c
                };
            }
        }
        loss
    }

    #[test]
    fn matches_an_independent_computation() {
        let z1 = vec![
            vec![1.0, 2.0, 0.5],
            vec![0.3, -1.0, 0.8],
            vec![-2.0, 0.1, 0.4],
            vec![0.7, 0.7, -1.2],
        ];
        let z2 = vec![
            vec![0.9, 1.0, 0.1],
            vec![0.2, -1.5, 1.0],
            vec![-1.0, -0.3, 0.9],
            vec![1.1, 0.2, -0.7],
        ];
        let t = |v: &Vec<Vec<f64>>| {
            Tensor::from_slice(&v.concat().iter().map(|&x| x as f32).collect::<Vec<_>>())
                .view([4, 3])
        };
        for lambda in [5e-3, 1.0] {
            let got = scalar(&barlow_twins(&t(&z1), &t(&z2), lambda));
            let want = reference(&z1, &z2, lambda);
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }

    /// Closed form: identical views whose dimensions are exactly uncorrelated (orthogonal ±1 columns
    /// of a Hadamard matrix) give C = I·v/(v+eps), so L = d·(1 − v/(v+eps))² with v = 1.
    #[test]
    fn identical_decorrelated_views_give_near_zero() {
        let h = [
            1., 1., 1., 1., 1., -1., 1., -1., 1., 1., -1., -1., 1., -1., -1., 1.,
        ];
        // Drop the constant first column: the other three are zero-mean, unit-variance, orthogonal.
        let z = Tensor::from_slice(&h.map(|x: f64| x as f32))
            .view([4, 4])
            .narrow(1, 1, 3);
        let got = scalar(&barlow_twins(&z, &z, 5e-3));
        let c = 1.0 / (1.0 + EPS);
        let want = 3.0 * (1.0 - c).powi(2);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // Anti-correlated views: C = −I, so L = d·(1 − (−c))² ≈ 4d.
        let got = scalar(&barlow_twins(&z, &(-&z), 5e-3));
        assert!((got - 3.0 * (1.0 + c).powi(2)).abs() < 1e-4, "{got}");
        let _ = Device::Cpu;
    }
}
