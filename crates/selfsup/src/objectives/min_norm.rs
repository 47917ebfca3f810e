//! The minimum-norm point of the convex hull of task gradients: the weights of multiple-gradient
//! descent (MGDA; Désidéri 2012, as made practical by Sener & Koltun, NeurIPS 2018, Algorithm 2).
//!
//! Given gradients `g_1 … g_T` of the shared parameters, find `α` on the simplex minimising
//! `‖Σ_t α_t g_t‖²`. The combined direction `Σ α_t g_t` is then a descent direction for every task
//! at once (or zero at a Pareto-stationary point). Only the Gram matrix `G_ij = g_iᵀ g_j` is
//! needed, so the solver works on `[T, T]` numbers, not on the gradients.

/// `α` on the simplex minimising `αᵀ G α` for a symmetric positive semi-definite Gram matrix
/// `gram` (`T × T`, row-major). Frank–Wolfe with exact line search, started from the best pair
/// (solved in closed form), as Sener & Koltun's Algorithm 2; stops when a step moves `α` by less
/// than `1e-12` or after 10,000 iterations (their code stops after 250; a step costs `T²`
/// multiplications, so running on to near-exactness is free next to one backward pass).
pub fn min_norm_weights(gram: &[f64], t: usize) -> Vec<f64> {
    assert_eq!(gram.len(), t * t, "the Gram matrix must be T × T");
    assert!(t >= 1, "at least one task");
    if t == 1 {
        return vec![1.0];
    }
    let g = |i: usize, j: usize| gram[i * t + j];
    // Best pair: the two-point problem `min_γ ‖γ g_i + (1−γ) g_j‖²` in closed form.
    let mut best = (f64::INFINITY, 0, 1, 0.5);
    for i in 0..t {
        for j in i + 1..t {
            let (gamma, cost) = two_point(g(i, i), g(i, j), g(j, j));
            if cost < best.0 {
                best = (cost, i, j, gamma);
            }
        }
    }
    let mut alpha = vec![0.0; t];
    alpha[best.1] = best.3;
    alpha[best.2] = 1.0 - best.3;
    for _ in 0..10_000 {
        // Gradient of αᵀGα (up to the factor 2) is Gα; Frank–Wolfe moves towards the vertex
        // with the smallest component.
        let ga: Vec<f64> = (0..t)
            .map(|i| (0..t).map(|j| g(i, j) * alpha[j]).sum())
            .collect();
        let k = (0..t)
            .min_by(|&a, &b| ga[a].total_cmp(&ga[b]))
            .expect("t ≥ 1");
        // Line search between the current point v = Σ α g (‖v‖² = αᵀGα, vᵀg_k = (Gα)_k) and g_k.
        let vv: f64 = (0..t).map(|i| alpha[i] * ga[i]).sum();
        let (gamma, _) = two_point(vv, ga[k], g(k, k));
        // `gamma` weighs the current point; 1 − gamma moves towards vertex k.
        let mut moved = 0.0;
        for (i, a) in alpha.iter_mut().enumerate() {
            let next = gamma * *a + if i == k { 1.0 - gamma } else { 0.0 };
            moved += (next - *a).abs();
            *a = next;
        }
        if moved < 1e-12 {
            break;
        }
    }
    alpha
}

/// `min_γ∈[0,1] ‖γ a + (1−γ) b‖²` from `aa = aᵀa`, `ab = aᵀb`, `bb = bᵀb`: `(γ, cost)`.
fn two_point(aa: f64, ab: f64, bb: f64) -> (f64, f64) {
    let cost = |gamma: f64| {
        gamma * gamma * aa + 2.0 * gamma * (1.0 - gamma) * ab + (1.0 - gamma) * (1.0 - gamma) * bb
    };
    let gamma = if ab >= aa {
        1.0
    } else if ab >= bb {
        0.0
    } else {
        // Stationary point of the quadratic: (bb − ab) / (aa + bb − 2ab), inside (0, 1) here.
        ((bb - ab) / (aa + bb - 2.0 * ab)).clamp(0.0, 1.0)
    };
    (gamma, cost(gamma))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(vs: &[Vec<f64>]) -> Vec<f64> {
        let t = vs.len();
        let mut g = vec![0.0; t * t];
        for i in 0..t {
            for j in 0..t {
                g[i * t + j] = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
            }
        }
        g
    }

    fn norm2(vs: &[Vec<f64>], alpha: &[f64]) -> f64 {
        let d = vs[0].len();
        (0..d)
            .map(|k| {
                let s: f64 = vs.iter().zip(alpha).map(|(v, a)| a * v[k]).sum();
                s * s
            })
            .sum()
    }

    #[test]
    fn orthogonal_gradients_are_weighed_by_inverse_squared_norm() {
        // ‖α1 g1 + α2 g2‖² = α1² 4 + α2² 1 is smallest at α ∝ (1/4, 1): α = (0.2, 0.8).
        let vs = vec![vec![2.0, 0.0], vec![0.0, 1.0]];
        let a = min_norm_weights(&gram(&vs), 2);
        assert!(
            (a[0] - 0.2).abs() < 1e-12 && (a[1] - 0.8).abs() < 1e-12,
            "{a:?}"
        );
    }

    #[test]
    fn a_gradient_inside_the_hull_of_another_takes_all_the_weight() {
        // g2 = 0.5 g1: the shorter one is the minimum-norm point.
        let vs = vec![vec![2.0, 2.0], vec![1.0, 1.0]];
        let a = min_norm_weights(&gram(&vs), 2);
        assert_eq!(a, vec![0.0, 1.0]);
    }

    #[test]
    fn opposed_gradients_cancel() {
        let vs = vec![vec![1.0, 0.0, 3.0], vec![-2.0, 0.0, -6.0]];
        let a = min_norm_weights(&gram(&vs), 2);
        assert!(norm2(&vs, &a) < 1e-20, "{a:?}");
        assert!((a[0] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn matches_a_fine_grid_over_the_simplex_for_several_tasks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let vs: Vec<Vec<f64>> = (0..3)
                .map(|_| (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect())
                .collect();
            let a = min_norm_weights(&gram(&vs), 3);
            assert!(a.iter().all(|&x| x >= -1e-12) && (a.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let ours = norm2(&vs, &a);
            // Exhaustive grid at step 1/400: the solver must not be worse than any grid point.
            let n = 400;
            let mut grid_best = f64::INFINITY;
            for i in 0..=n {
                for j in 0..=n - i {
                    let w = [
                        i as f64 / n as f64,
                        j as f64 / n as f64,
                        (n - i - j) as f64 / n as f64,
                    ];
                    grid_best = grid_best.min(norm2(&vs, &w));
                }
            }
            assert!(
                ours <= grid_best + 1e-6,
                "solver {ours} vs grid {grid_best}"
            );
        }
    }
}
