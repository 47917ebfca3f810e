//! VICReg (Bardes, Ponce & LeCun 2022): variance-invariance-covariance regularisation of two views'
//! embeddings z1, z2 [N,D]:
//!   L = λ·s(z1, z2) + μ·[v(z1) + v(z2)]/2 + ν·[c(z1) + c(z2)],
//! following the authors' released code (facebookresearch/vicreg) term by term:
//! * invariance s = mean over all N·D elements of (z1 − z2)²;
//! * variance v(z) = (1/D) Σ_j max(0, 1 − sqrt(Var(z_·j) + 1e-4)), with the unbiased (N−1)
//!   variance of each dimension over the batch;
//! * covariance c(z) = (1/D) Σ_{i≠j} C(z)_ij², C(z) = (z − z̄)ᵀ(z − z̄)/(N − 1).
//!
//! The variance term is the AVERAGE of the two views' hinges (the released code divides each by
//! 2), whereas the paper's eq. writes a sum and some re-implementations (solo-learn) sum them;
//! with the same μ = 25 this one is half as strong. The covariance terms are summed, as in both.
use crate::distributed::Collective;
use anyhow::Result;
use tch::{Kind, Tensor};

const VARIANCE_EPS: f64 = 1e-4;

/// The three unweighted terms of the loss, each a scalar tensor.
pub struct VicregTerms {
    pub invariance: Tensor,
    pub variance: Tensor,
    pub covariance: Tensor,
}

/// λ, the invariance coefficient of the paper (25).
pub fn default_sim_coeff() -> f64 {
    25.0
}

/// μ, the variance coefficient of the paper (25).
pub fn default_std_coeff() -> f64 {
    25.0
}

/// ν, the covariance coefficient of the paper (1).
pub fn default_cov_coeff() -> f64 {
    1.0
}

/// One view's hinge on the per-dimension standard deviation, averaged over dimensions.
fn variance_hinge(z: &Tensor) -> Tensor {
    let std = (z.var_correction([0i64].as_slice(), 1, false) + VARIANCE_EPS).sqrt();
    (-std + 1.0).relu().mean(None::<Kind>)
}

/// One view's sum of squared off-diagonal covariances, divided by D.
fn covariance_penalty(z: &Tensor) -> Tensor {
    let (n, d) = (z.size()[0], z.size()[1]);
    let kind = z.kind();
    let centred = z - z.mean_dim([0i64].as_slice(), true, kind);
    let cov = centred.tr().matmul(&centred) / (n - 1) as f64;
    let off_diagonal = cov.square().sum(kind) - cov.diagonal(0, 0, 1).square().sum(kind);
    off_diagonal / d as f64
}

pub fn vicreg_terms(z1: &Tensor, z2: &Tensor) -> VicregTerms {
    VicregTerms {
        invariance: (z1 - z2).square().mean(None::<Kind>),
        // Averaged over the two views, as in the released code (see the module doc).
        variance: (variance_hinge(z1) + variance_hinge(z2)) / 2.0,
        covariance: covariance_penalty(z1) + covariance_penalty(z2),
    }
}

pub fn vicreg(z1: &Tensor, z2: &Tensor, sim_coeff: f64, std_coeff: f64, cov_coeff: f64) -> Tensor {
    let t = vicreg_terms(z1, z2);
    t.invariance * sim_coeff + t.variance * std_coeff + t.covariance * cov_coeff
}

/// The loss of the whole batch on every rank: the two views' embeddings of every rank gathered
/// with their gradients, as the authors' code does (its `FullGatherLayer`).
pub fn vicreg_across(
    z1: &Tensor,
    z2: &Tensor,
    coefficients: (f64, f64, f64),
    comm: &dyn Collective,
) -> Result<Tensor> {
    let (sim, std, cov) = coefficients;
    Ok(vicreg(&comm.gather(z1)?, &comm.gather(z2)?, sim, std, cov))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};

    /// Per-dimension hinge of one view, element by element.
    fn ref_hinge(z: &[Vec<f64>]) -> f64 {
        let (n, d) = (z.len(), z[0].len());
        let mut total = 0.0;
        for j in 0..d {
            let m = z.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let var = z.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            total += (1.0 - (var + 1e-4).sqrt()).max(0.0);
        }
        total / d as f64
    }

    fn ref_cov(z: &[Vec<f64>]) -> f64 {
        let (n, d) = (z.len(), z[0].len());
        let means: Vec<f64> = (0..d)
            .map(|j| z.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let mut total = 0.0;
        for a in 0..d {
            for b in 0..d {
                if a != b {
                    let c = z
                        .iter()
                        .map(|r| (r[a] - means[a]) * (r[b] - means[b]))
                        .sum::<f64>()
                        / (n - 1) as f64;
                    total += c * c;
                }
            }
        }
        total / d as f64
    }

    fn ref_terms(z1: &[Vec<f64>], z2: &[Vec<f64>]) -> (f64, f64, f64) {
        let count = (z1.len() * z1[0].len()) as f64;
        let inv = z1
            .iter()
            .zip(z2)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)))
            .sum::<f64>()
            / count;
        (
            inv,
            (ref_hinge(z1) + ref_hinge(z2)) / 2.0,
            ref_cov(z1) + ref_cov(z2),
        )
    }

    fn views() -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        // Small spread in some dimensions so that the variance hinge is active there.
        let z1 = vec![
            vec![1.0, 0.2, 0.5, -0.1],
            vec![0.3, -0.1, 0.8, 0.0],
            vec![-2.0, 0.1, 0.4, 0.2],
            vec![0.7, 0.3, -1.2, 0.1],
            vec![1.5, -0.2, 2.0, -0.3],
        ];
        let z2 = vec![
            vec![0.9, 1.0, 0.1, 0.05],
            vec![0.2, -1.5, 1.0, 0.1],
            vec![-1.0, -0.3, 0.9, -0.2],
            vec![1.1, 0.2, -0.7, 0.0],
            vec![0.4, 2.5, 0.3, 0.3],
        ];
        (z1, z2)
    }

    #[test]
    fn terms_match_an_independent_computation() {
        let (z1, z2) = views();
        let (inv, var, cov) = ref_terms(&z1, &z2);
        assert!(
            var > 0.0,
            "the test data should activate the variance hinge"
        );
        for kind in [Kind::Float, Kind::Double] {
            let t = vicreg_terms(&tensor(&z1, kind), &tensor(&z2, kind));
            for (name, got, want) in [
                ("invariance", scalar(&t.invariance), inv),
                ("variance", scalar(&t.variance), var),
                ("covariance", scalar(&t.covariance), cov),
            ] {
                assert!(
                    (got - want).abs() < 1e-5 * want.abs().max(1.0),
                    "{name}: {got} vs {want}"
                );
            }
            let total = scalar(&vicreg(
                &tensor(&z1, kind),
                &tensor(&z2, kind),
                25.0,
                25.0,
                1.0,
            ));
            let want = 25.0 * inv + 25.0 * var + cov;
            assert!(
                (total - want).abs() < 1e-4 * want.max(1.0),
                "{total} vs {want}"
            );
        }
    }

    /// The variance term is averaged over the two views, as in the released code (solo-learn sums
    /// them): for identical views it equals ONE view's hinge, not twice it.
    #[test]
    fn variance_term_is_averaged_over_the_two_views() {
        let (z, _) = views();
        let single = ref_hinge(&z);
        assert!(single > 0.0);
        let t = tensor(&z, Kind::Double);
        let got = scalar(&vicreg_terms(&t, &t).variance);
        assert!(
            (got - single).abs() < 1e-12,
            "{got} vs single-view hinge {single}"
        );
        assert!((got - 2.0 * single).abs() > 0.5 * single);
    }

    /// Closed form: identical views whose columns are orthogonal ±1 patterns (three non-constant
    /// columns of a 4×4 Hadamard matrix): invariance 0, covariance 0, and every dimension has
    /// unbiased variance 4/3, so the hinge is 0. Shrinking them by s = 0.3 gives variance
    /// s²·4/3 and a hinge of 1 − sqrt(0.12 + 1e-4) in every dimension.
    #[test]
    fn decorrelated_views_closed_form() {
        let h = [
            1., 1., 1., 1., 1., -1., 1., -1., 1., 1., -1., -1., 1., -1., -1., 1.,
        ];
        let z = Tensor::from_slice(&h).view([4, 4]).narrow(1, 1, 3);
        let t = vicreg_terms(&z, &z);
        assert!(scalar(&t.invariance).abs() < 1e-12);
        assert!(scalar(&t.variance).abs() < 1e-12);
        assert!(scalar(&t.covariance).abs() < 1e-12);
        let small = &z * 0.3;
        let t = vicreg_terms(&small, &small);
        let want = 1.0 - (0.09f64 * 4.0 / 3.0 + 1e-4).sqrt();
        assert!((scalar(&t.variance) - want).abs() < 1e-12);
    }

    #[test]
    fn default_coefficients_are_the_papers() {
        assert_eq!(
            (
                default_sim_coeff(),
                default_std_coeff(),
                default_cov_coeff()
            ),
            (25.0, 25.0, 1.0)
        );
    }
}
