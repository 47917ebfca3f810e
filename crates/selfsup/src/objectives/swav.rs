//! SwAV (Caron et al. 2020): swapped prediction of online cluster assignments.
//!
//! Codes are computed from the prototype scores of some crops with the Sinkhorn-Knopp algorithm
//! ([`sinkhorn`], the paper's eq. 3 solved approximately, Alg. 1 of its appendix); every other
//! crop's scores must predict them (eq. 1–2, [`swav_loss`]).
use crate::distributed::{Alone, Collective};
use anyhow::Result;
use tch::{Kind, Tensor};

/// ε of the entropic regularisation, as in the paper's code (0.05).
pub fn default_epsilon() -> f64 {
    0.05
}

/// Number of Sinkhorn iterations, as in the paper (3).
pub fn default_iters() -> usize {
    3
}

/// Softmax temperature τ of the swapped prediction (0.1).
pub fn default_temperature() -> f64 {
    0.1
}

/// Soft codes Q [N,K] for the prototype scores [N,K] (N samples, K prototypes), without gradient.
///
/// Starting from Q = exp(scores/ε)ᵀ [K,N] divided by its total, each iteration rescales the rows
/// (prototypes) to sum 1/K and then the columns (samples) to sum 1/N, so the codes tend to an
/// equipartition of the batch over the prototypes. The result is N·Q transposed: for
/// `iters` ≥ 1 each sample's codes sum to 1 exactly, and each prototype's column of the result
/// sums to N/K once the iteration has converged.
///
/// The global maximum score is subtracted before the exponential. That multiplies every entry of
/// exp(scores/ε) by the same factor, which the first normalisation removes exactly, so the
/// result is unchanged; without it exp overflows as soon as a score exceeds ≈ 88.7·ε in f32
/// (≈ 4.4 for ε = 0.05). (A per-sample shift would not cancel exactly after finitely many
/// iterations, hence the single global one.) Entries more than ≈ 87·ε below the maximum still
/// underflow to 0 in f32; a sample all of whose scores do gives NaN codes, as in the paper's
/// code, which is not a concern for cosine scores in [−1, 1].
pub fn sinkhorn(scores: &Tensor, epsilon: f64, iters: usize) -> Tensor {
    sinkhorn_across(scores, epsilon, iters, &Alone).expect("one process reduces nothing")
}

/// [`sinkhorn`] over the batches of every rank of `comm` (this rank's `scores` [n,K]; N = W·n
/// samples in all): the maximum, the total and each prototype's row sum are taken over every
/// rank, as the paper's `distributed_sinkhorn` all-reduces them; each sample's column is its
/// own. Returns this rank's codes [n,K].
pub fn sinkhorn_across(
    scores: &Tensor,
    epsilon: f64,
    iters: usize,
    comm: &dyn Collective,
) -> Result<Tensor> {
    tch::no_grad(|| {
        let s = scores.detach();
        let kind = s.kind();
        let k = s.size()[1] as f64;
        let n = (s.size()[0] * comm.world_size() as i64) as f64;
        let max = comm.gather(&s.max().reshape([1]))?.max();
        let mut q = ((&s - max) / epsilon).exp().tr();
        q = &q / comm.sum(&q.sum(kind))?;
        for _ in 0..iters {
            let rows = comm.sum(&q.sum_dim_intlist([1i64].as_slice(), true, kind))?;
            q = &q / rows / k;
            q = &q / q.sum_dim_intlist([0i64].as_slice(), true, kind) / n;
        }
        Ok((q * n).tr().contiguous())
    })
}

/// `scores[v]`: prototype scores [N,K] of crop v; codes are computed for the first
/// `n_code_crops` crops (the paper's code uses the two global crops). With
/// q_c = sinkhorn(scores[c]) (detached: no gradient flows through the codes) and
/// log p_v = log_softmax(scores[v]/τ),
///   L = (1/C) Σ_{c<C} (1/(V−1)) Σ_{v≠c} (1/N) Σ_n −Σ_k q_c[n,k] · log p_v[n,k].
pub fn swav_loss(
    scores: &[Tensor],
    n_code_crops: usize,
    temperature: f64,
    epsilon: f64,
    iters: usize,
) -> Tensor {
    swav_loss_across(scores, n_code_crops, (temperature, epsilon, iters), &Alone)
        .expect("one process reduces nothing")
}

/// This rank's part of [`swav_loss`]: codes from [`sinkhorn_across`], then per-sample
/// cross-entropies, so the mean over ranks is the one-process loss.
pub fn swav_loss_across(
    scores: &[Tensor],
    n_code_crops: usize,
    (temperature, epsilon, iters): (f64, f64, usize),
    comm: &dyn Collective,
) -> Result<Tensor> {
    assert!(
        scores.len() >= 2 && (1..=scores.len()).contains(&n_code_crops),
        "SwAV needs at least two crops and 1..=crops code crops (got {} crops, {n_code_crops} \
         code crops)",
        scores.len()
    );
    let log_p: Vec<Tensor> = scores
        .iter()
        .map(|s| (s / temperature).log_softmax(1, None::<Kind>))
        .collect();
    let mean = |terms: Vec<Tensor>| {
        let count = terms.len() as f64;
        terms.into_iter().reduce(|a, b| a + b).unwrap() / count
    };
    let per_code_crop = (0..n_code_crops)
        .map(|c| {
            let q = sinkhorn_across(&scores[c].detach(), epsilon, iters, comm)?;
            let terms = log_p
                .iter()
                .enumerate()
                .filter(|&(v, _)| v != c)
                .map(|(_, lp)| {
                    -(&q * lp)
                        .sum_dim_intlist([1i64].as_slice(), false, lp.kind())
                        .mean(None::<Kind>)
                })
                .collect();
            Ok(mean(terms))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(mean(per_code_crop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::tensor;
    use tch::Device;

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        let n = t.size()[0] as usize;
        let flat = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        flat.chunks(flat.len() / n).map(|r| r.to_vec()).collect()
    }

    /// Sinkhorn-Knopp as written in the paper's appendix, on nested Vecs in f64, without any
    /// shift: q[k][n] = exp(s[n][k]/ε), divided by its total, then `iters` alternations.
    fn reference_sinkhorn(s: &[Vec<f64>], eps: f64, iters: usize) -> Vec<Vec<f64>> {
        let (n, k) = (s.len(), s[0].len());
        let mut q: Vec<Vec<f64>> = (0..k)
            .map(|p| (0..n).map(|i| (s[i][p] / eps).exp()).collect())
            .collect();
        let total: f64 = q.iter().flatten().sum();
        q.iter_mut().flatten().for_each(|x| *x /= total);
        for _ in 0..iters {
            for row in q.iter_mut() {
                let r: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| *x /= r * k as f64);
            }
            for i in 0..n {
                let c: f64 = q.iter().map(|row| row[i]).sum();
                q.iter_mut().for_each(|row| row[i] /= c * n as f64);
            }
        }
        (0..n)
            .map(|i| (0..k).map(|p| q[p][i] * n as f64).collect())
            .collect()
    }

    fn scores() -> Vec<Vec<f64>> {
        vec![
            vec![0.9, 0.1, -0.3],
            vec![0.2, 0.8, 0.1],
            vec![-0.5, 0.3, 0.7],
            vec![0.6, 0.5, -0.2],
            vec![0.0, -0.1, 0.4],
        ]
    }

    #[test]
    fn sinkhorn_matches_a_plain_loop() {
        let s = scores();
        for (eps, iters) in [(0.05, 3), (0.5, 1), (0.05, 0), (0.1, 10)] {
            let want = reference_sinkhorn(&s, eps, iters);
            for kind in [Kind::Float, Kind::Double] {
                let got = rows(&sinkhorn(&tensor(&s, kind), eps, iters));
                for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                    assert!(
                        (g - w).abs() < 1e-5 * w.max(1.0),
                        "eps={eps}, iters={iters}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    /// Scores large enough that exp(score/ε) overflows f32 (5/0.05 = 100 > 88.7): the shifted
    /// computation in f32 still agrees with the unshifted one in f64.
    #[test]
    fn sinkhorn_is_stable_for_large_scores() {
        let s: Vec<Vec<f64>> = scores()
            .iter()
            .map(|r| r.iter().map(|x| 3.0 + 2.0 * x).collect())
            .collect();
        let want = reference_sinkhorn(&s, 0.05, 3);
        let got = rows(&sinkhorn(&tensor(&s, Kind::Float), 0.05, 3));
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!(g.is_finite() && (g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn sinkhorn_marginals() {
        tch::manual_seed(11);
        let (n, k) = (6i64, 4i64);
        let s = Tensor::randn([n, k], (Kind::Double, Device::Cpu)) * 0.2;
        let q = sinkhorn(&s, 0.05, 200);
        assert_eq!(q.size(), vec![n, k]);
        let r = rows(&q);
        for row in &r {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{row:?}");
            assert!(row.iter().all(|&x| x >= 0.0));
        }
        for p in 0..k as usize {
            let col: f64 = r.iter().map(|row| row[p]).sum();
            assert!(
                (col - n as f64 / k as f64).abs() < 1e-6,
                "prototype {p}: {col}"
            );
        }
        // Even after a few iterations each sample's codes sum to 1 (columns are normalised last).
        for row in rows(&sinkhorn(&s.to_kind(Kind::Float), 0.05, 3)) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn sinkhorn_has_no_gradient() {
        let s = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        assert!(!sinkhorn(&s, 0.05, 3).requires_grad());
    }

    /// The loss from its definition with the plain-loop codes and log-softmax.
    fn reference_loss(
        crops: &[Vec<Vec<f64>>],
        code_crops: usize,
        t: f64,
        eps: f64,
        it: usize,
    ) -> f64 {
        let log_softmax = |r: &Vec<f64>| -> Vec<f64> {
            let lse = r.iter().map(|x| (x / t).exp()).sum::<f64>().ln();
            r.iter().map(|x| x / t - lse).collect()
        };
        let mut total = 0.0;
        for c in 0..code_crops {
            let q = reference_sinkhorn(&crops[c], eps, it);
            let mut sub = 0.0;
            for (v, crop) in crops.iter().enumerate() {
                if v == c {
                    continue;
                }
                let mut ce = 0.0;
                for (qrow, srow) in q.iter().zip(crop) {
                    ce -= qrow
                        .iter()
                        .zip(log_softmax(srow))
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
                }
                sub += ce / crop.len() as f64;
            }
            total += sub / (crops.len() - 1) as f64;
        }
        total / code_crops as f64
    }

    #[test]
    fn loss_matches_an_independent_computation() {
        let a = scores();
        let b: Vec<Vec<f64>> = a
            .iter()
            .rev()
            .map(|r| r.iter().map(|x| 0.5 - x).collect())
            .collect();
        let c: Vec<Vec<f64>> = a.iter().map(|r| vec![r[2], r[0] * 0.5, -r[1]]).collect();
        let crops = vec![a, b, c];
        for code_crops in [1, 2, 3] {
            let want = reference_loss(&crops, code_crops, 0.1, 0.05, 3);
            for kind in [Kind::Float, Kind::Double] {
                let t: Vec<Tensor> = crops.iter().map(|x| tensor(x, kind)).collect();
                let got = f64::try_from(swav_loss(&t, code_crops, 0.1, 0.05, 3)).unwrap();
                assert!(
                    (got - want).abs() < 1e-4 * want.max(1.0),
                    "{code_crops}: {got} vs {want}"
                );
            }
        }
    }

    /// A crop used only to compute codes receives no gradient (the codes are detached).
    #[test]
    fn codes_are_detached() {
        let a = Tensor::randn([4, 3], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::randn([4, 3], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        swav_loss(&[a.shallow_clone(), b.shallow_clone()], 1, 0.1, 0.05, 3).backward();
        assert!(
            !a.grad().defined() || f64::try_from(a.grad().abs().sum(Kind::Double)).unwrap() == 0.0
        );
        assert!(f64::try_from(b.grad().abs().sum(Kind::Double)).unwrap() > 0.0);
    }

    #[test]
    fn defaults_are_the_papers() {
        assert_eq!(default_epsilon(), 0.05);
        assert_eq!(default_iters(), 3);
        assert_eq!(default_temperature(), 0.1);
    }
}
