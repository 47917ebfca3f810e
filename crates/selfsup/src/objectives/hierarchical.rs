//! TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, §3.3, Algorithm 1).
//!
//! `z1` and `z2` are per-step representations `[B, T, C]` of the same time steps seen in two
//! contexts. At every scale the loss adds an instance-wise term (at each step, a series' other
//! view is the positive among the 2B − 1 other representations of that step) weighted α, and a
//! temporal term (for each series, the same step of the other view is the positive among the
//! 2T − 1 other steps of both views) weighted 1 − α; then both views are max-pooled over time by
//! 2 (an odd last step is dropped) and the next scale follows, until one step is left, where only
//! the instance term is defined. The sum is divided by the number of scales. Similarities are
//! plain dot products, without normalisation or temperature, as in the paper.
use tch::{Kind, Tensor};

/// Mean over rows of −log softmax at each row's positive, where `sim` is `[G, M, M]` (G groups of
/// M items), the diagonal is excluded, and item `i`'s positive is item `(i + M/2) mod M`.
fn paired_cross_entropy(sim: &Tensor) -> Tensor {
    let m = sim.size()[1];
    let device = sim.device();
    let eye = Tensor::eye(m, (Kind::Bool, device));
    let log_p = sim
        .masked_fill(&eye, f64::NEG_INFINITY)
        .log_softmax(-1, sim.kind());
    let half = m / 2;
    let positive = (Tensor::arange(m, (Kind::Int64, device)) + half).remainder(m);
    let idx = positive
        .view([1, m, 1])
        .expand([sim.size()[0], m, 1], false);
    -log_p.gather(2, &idx, false).mean(sim.kind())
}

/// The instance-wise term: at each step, the 2B representations against each other.
pub fn instance_contrastive(z1: &Tensor, z2: &Tensor) -> Tensor {
    if z1.size()[0] == 1 {
        return z1.zeros_like().sum(z1.kind());
    }
    let z = Tensor::cat(&[z1, z2], 0).transpose(0, 1); // [T, 2B, C]
    paired_cross_entropy(&z.matmul(&z.transpose(1, 2)))
}

/// The temporal term: for each series, the 2T steps of both views against each other.
pub fn temporal_contrastive(z1: &Tensor, z2: &Tensor) -> Tensor {
    if z1.size()[1] == 1 {
        return z1.zeros_like().sum(z1.kind());
    }
    let z = Tensor::cat(&[z1, z2], 1); // [B, 2T, C]
    paired_cross_entropy(&z.matmul(&z.transpose(1, 2)))
}

/// Max-pools `[B, T, C]` over time by 2 (floor).
fn pool_time(z: &Tensor) -> Tensor {
    z.transpose(1, 2)
        .max_pool1d(
            [2i64].as_slice(),
            [2i64].as_slice(),
            [0i64].as_slice(),
            [1i64].as_slice(),
            false,
        )
        .transpose(1, 2)
}

/// The full loss: α-weighted instance and (1 − α)-weighted temporal terms over the scales
/// T, ⌊T/2⌋, …, 1; the temporal term only from scale index `temporal_unit` on.
pub fn hierarchical_contrastive(
    z1: &Tensor,
    z2: &Tensor,
    alpha: f64,
    temporal_unit: usize,
) -> Tensor {
    let mut loss = z1.zeros_like().sum(z1.kind());
    let (mut a, mut b) = (z1.shallow_clone(), z2.shallow_clone());
    let mut scales = 0usize;
    while a.size()[1] > 1 {
        if alpha != 0.0 {
            loss = loss + alpha * instance_contrastive(&a, &b);
        }
        if scales >= temporal_unit && alpha != 1.0 {
            loss = loss + (1.0 - alpha) * temporal_contrastive(&a, &b);
        }
        scales += 1;
        a = pool_time(&a);
        b = pool_time(&b);
    }
    if a.size()[1] == 1 {
        if alpha != 0.0 {
            loss = loss + alpha * instance_contrastive(&a, &b);
        }
        scales += 1;
    }
    loss / scales.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// `[B][T][C]` as nested vectors.
    type Series = Vec<Vec<Vec<f64>>>;

    fn to_vec(z: &Tensor) -> Series {
        let s = z.size();
        (0..s[0])
            .map(|b| {
                (0..s[1])
                    .map(|t| (0..s[2]).map(|c| z.double_value(&[b, t, c])).collect())
                    .collect()
            })
            .collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// −log(exp(s_pos) / Σ_{j≠i} exp(s_ij)) for item `i` among `items`.
    fn nll(items: &[&Vec<f64>], i: usize, pos: usize) -> f64 {
        let sims: Vec<f64> = items.iter().map(|x| dot(items[i], x)).collect();
        let lse = sims
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.exp())
            .sum::<f64>()
            .ln();
        lse - sims[pos]
    }

    fn instance(a: &Series, b: &Series) -> f64 {
        let (bn, tn) = (a.len(), a[0].len());
        if bn == 1 {
            return 0.0;
        }
        let mut total = 0.0;
        for t in 0..tn {
            let items: Vec<&Vec<f64>> = a.iter().chain(b.iter()).map(|s| &s[t]).collect();
            for i in 0..bn {
                total += nll(&items, i, bn + i) + nll(&items, bn + i, i);
            }
        }
        total / (2 * bn * tn) as f64
    }

    fn temporal(a: &Series, b: &Series) -> f64 {
        let (bn, tn) = (a.len(), a[0].len());
        if tn == 1 {
            return 0.0;
        }
        let mut total = 0.0;
        for s in 0..bn {
            let items: Vec<&Vec<f64>> = a[s].iter().chain(b[s].iter()).collect();
            for t in 0..tn {
                total += nll(&items, t, tn + t) + nll(&items, tn + t, t);
            }
        }
        total / (2 * bn * tn) as f64
    }

    fn pool(a: &Series) -> Series {
        a.iter()
            .map(|s| {
                (0..s.len() / 2)
                    .map(|t| {
                        s[2 * t]
                            .iter()
                            .zip(&s[2 * t + 1])
                            .map(|(x, y)| x.max(*y))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    /// Algorithm 1 of the paper, written out with loops.
    fn direct(a: &Series, b: &Series, alpha: f64, unit: usize) -> f64 {
        let (mut a, mut b) = (a.clone(), b.clone());
        let (mut loss, mut d) = (0.0, 0);
        while a[0].len() > 1 {
            loss += alpha * instance(&a, &b);
            if d >= unit {
                loss += (1.0 - alpha) * temporal(&a, &b);
            }
            d += 1;
            a = pool(&a);
            b = pool(&b);
        }
        loss += alpha * instance(&a, &b);
        d += 1;
        loss / d as f64
    }

    #[test]
    fn matches_a_direct_computation_of_the_formula_with_pooling() {
        tch::manual_seed(3);
        // T = 7 pools to 3, then 1 (the odd last step dropped each time).
        for (bn, tn, unit, alpha) in [
            (3, 7, 0, 0.5),
            (2, 6, 1, 0.3),
            (1, 5, 0, 0.5),
            (4, 1, 0, 0.5),
        ] {
            let z1 = Tensor::randn([bn, tn, 4], (Kind::Double, Device::Cpu));
            let z2 = Tensor::randn([bn, tn, 4], (Kind::Double, Device::Cpu));
            let got = hierarchical_contrastive(&z1, &z2, alpha, unit).double_value(&[]);
            let want = direct(&to_vec(&z1), &to_vec(&z2), alpha, unit);
            assert!(
                (got - want).abs() < 1e-9 * want.abs().max(1.0),
                "B={bn} T={tn}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn identical_distant_views_score_lower_than_unrelated_ones() {
        tch::manual_seed(4);
        let z = Tensor::randn([4, 8, 16], (Kind::Float, Device::Cpu)) * 3.0;
        let other = Tensor::randn([4, 8, 16], (Kind::Float, Device::Cpu)) * 3.0;
        let same = hierarchical_contrastive(&z, &z, 0.5, 0).double_value(&[]);
        let unrelated = hierarchical_contrastive(&z, &other, 0.5, 0).double_value(&[]);
        assert!(same < unrelated, "{same} vs {unrelated}");
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        tch::manual_seed(5);
        let z1 = Tensor::randn([2, 5, 3], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let z2 = Tensor::randn([2, 5, 3], (Kind::Double, Device::Cpu));
        let loss = hierarchical_contrastive(&z1, &z2, 0.5, 0);
        let g = tch::Tensor::run_backward(&[loss], &[&z1], false, false).remove(0);
        let eps = 1e-6;
        for flat in [0i64, 7, 13, 29] {
            let f = |d: f64| {
                let z = z1.detach().copy();
                let _ = z.view([-1]).get(flat).g_add_scalar_(d);
                hierarchical_contrastive(&z, &z2, 0.5, 0).double_value(&[])
            };
            let numeric = (f(eps) - f(-eps)) / (2.0 * eps);
            let analytic = g.view([-1]).double_value(&[flat]);
            assert!(
                (numeric - analytic).abs() < 1e-6,
                "{flat}: {numeric} vs {analytic}"
            );
        }
    }
}
