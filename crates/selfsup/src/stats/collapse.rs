//! Collapse diagnostics for a batch of embeddings `[N, D]`, computable during training without
//! labels.
//!
//! - [`rankme`]: the smooth effective rank of Garrido et al. 2023, "RankMe: Assessing the
//!   Downstream Performance of Pretrained Self-Supervised Representations by Their Rank" (eq. 1,
//!   after Roy & Vetterli 2007). Dimensional collapse shows up as a rank well below D.
//! - [`normalised_std`]: the indicator of Chen & He 2021, "Exploring Simple Siamese Representation
//!   Learning" (SimSiam), §4.1: the per-dimension standard deviation of the L2-normalised outputs,
//!   averaged over dimensions. For outputs spread like an isotropic Gaussian it is ≈ 1/√D; complete
//!   collapse (every output the same direction) gives 0.
use tch::{Kind, Tensor};

use super::assert_features;

/// The ε added to each normalised singular value in RankMe, the paper's value.
pub const RANKME_EPS: f64 = 1e-7;

/// RankMe(Z) = exp(−Σₖ pₖ ln pₖ) with pₖ = σₖ / Σⱼ σⱼ + ε over the min(N, D) singular values σ
/// of `z` (computed in double precision). It lies between ≈ 1 (rank one) and min(N, D) (all
/// singular values equal). The all-zero matrix, whose normalisation is 0/0, is given 0 — its
/// rank. Non-finite entries give NaN.
///
/// # Panics
/// If `z` is not `[N, D]` floating point.
pub fn rankme(z: &Tensor) -> f64 {
    assert_features("RankMe", z);
    let sigma = tch::no_grad(|| z.to_kind(Kind::Double).svd(true, false).1);
    let sigma = Vec::<f64>::try_from(&sigma.to_device(tch::Device::Cpu)).expect("1-D");
    let total: f64 = sigma.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    let entropy: f64 = sigma
        .iter()
        .map(|s| {
            let p = s / total + RANKME_EPS;
            -p * p.ln()
        })
        .sum();
    entropy.exp()
}

/// Mean over the D dimensions of the standard deviation, across the N rows, of the L2-normalised
/// rows z / ‖z‖₂. The standard deviation is the sample one (divisor N − 1, `torch.std`'s default,
/// as the indicator is usually computed); NaN for fewer than 2 rows, where it is undefined. A zero
/// row stays zero (norm clamped at 1e-12, as `F.normalize`).
///
/// # Panics
/// If `z` is not `[N, D]` floating point.
pub fn normalised_std(z: &Tensor) -> f64 {
    assert_features("normalised std", z);
    if z.size()[0] < 2 {
        return f64::NAN;
    }
    tch::no_grad(|| {
        let z = z.to_kind(Kind::Double);
        let unit = &z
            / z.norm_scalaropt_dim(2, [1i64].as_slice(), true)
                .clamp_min(1e-12);
        unit.std_dim(0, true, false)
            .mean(Kind::Double)
            .double_value(&[])
    })
}

/// Both diagnostics of one batch, and its width.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollapseStats {
    /// [`rankme`]; compare with min(N, D).
    pub rankme: f64,
    /// [`normalised_std`]; compare with 1/√D.
    pub normalised_std: f64,
    /// D, the embedding width.
    pub dim: i64,
}

/// [`rankme`] and [`normalised_std`] of `z` `[N, D]`.
///
/// # Panics
/// If `z` is not `[N, D]` floating point.
pub fn collapse_stats(z: &Tensor) -> CollapseStats {
    CollapseStats {
        rankme: rankme(z),
        normalised_std: normalised_std(z),
        dim: z.size()[1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const CPU: Device = Device::Cpu;

    /// A random `[n, n]` orthogonal matrix (Q of a QR decomposition).
    fn orthogonal(n: i64) -> Tensor {
        Tensor::linalg_qr(&Tensor::randn([n, n], (Kind::Double, CPU)), "reduced").0
    }

    #[test]
    fn orthonormal_embeddings_of_rank_r() {
        tch::manual_seed(20);
        // 10 rows in 8 dimensions: r orthonormal rows (rotated by a random orthogonal matrix) and
        // 10 − r zero rows. Singular values: r ones, 8 − r zeros, so p = 1/r + ε (r times) and ε.
        // exp(−Σ p ln p) = exp(ln r) = r up to the ε terms, of which the largest is the zero
        // singular values' (8 − r)·ε·ln(1/ε) ≤ 7 · 1.6e-6 in the entropy.
        for r in 1..=6 {
            let basis = Tensor::eye(8, (Kind::Double, CPU)).narrow(0, 0, r);
            let z = Tensor::cat(&[basis, Tensor::zeros([10 - r, 8], (Kind::Double, CPU))], 0)
                .matmul(&orthogonal(8));
            let got = rankme(&z.to_kind(Kind::Float));
            assert!((got - r as f64).abs() < 1e-4 * r as f64, "rank {r}: {got}");
        }
    }

    #[test]
    fn rank_one_is_about_one() {
        tch::manual_seed(21);
        let u = Tensor::randn([64, 1], (Kind::Double, CPU));
        let v = Tensor::randn([1, 16], (Kind::Double, CPU));
        let got = rankme(&u.matmul(&v));
        assert!((got - 1.0).abs() < 1e-4, "{got}");
        // Every row identical: the classic complete collapse.
        let same = Tensor::ones([32, 16], (Kind::Float, CPU)) * 0.3;
        assert!((rankme(&same) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn two_by_two_diagonal_by_hand() {
        // diag(3, 1): σ = (3, 1), p = (3/4, 1/4) (+ε). exp(−Σ p ln p) = Π p^(−p)
        // = (4/3)^(3/4) · 4^(1/4) ≈ 1.240806 · 1.414214 ≈ 1.754765.
        let z = Tensor::from_slice2(&[[3.0f32, 0.0], [0.0, 1.0]]);
        let want = (4.0f64 / 3.0).powf(0.75) * 4f64.powf(0.25);
        assert!((want - 1.754765).abs() < 1e-6);
        // The ε terms change the entropy by −ε·Σ(ln pₖ + 1) ≈ 0.3·ε, far below the tolerance.
        assert!((rankme(&z) - want).abs() < 1e-5, "{}", rankme(&z));
        // Equal singular values: exactly full rank 2 up to ε.
        let z = Tensor::from_slice2(&[[2.0f32, 0.0], [0.0, -2.0]]);
        assert!((rankme(&z) - 2.0).abs() < 1e-5);
    }

    #[test]
    fn zero_matrix_has_rank_zero() {
        assert_eq!(rankme(&Tensor::zeros([4, 3], (Kind::Float, CPU))), 0.0);
    }

    #[test]
    fn normalised_std_of_collapsed_rows_is_zero() {
        // The same direction at different norms: identical after normalisation.
        let z = Tensor::from_slice2(&[[1.0f32, 2.0, 2.0], [2.0, 4.0, 4.0], [0.5, 1.0, 1.0]]);
        assert!(normalised_std(&z).abs() < 1e-7);
    }

    #[test]
    fn normalised_std_by_hand() {
        // Rows (1,0), (0,2), (−3,0) normalise to (1,0), (0,1), (−1,0).
        // Dimension 0: {1, 0, −1}, mean 0, Σ(x − x̄)² = 2, sample variance 2/2 = 1, std 1.
        // Dimension 1: {0, 1, 0}, mean 1/3, Σ(x − x̄)² = 1/9 + 4/9 + 1/9 = 2/3, variance 1/3,
        // std 1/√3. Mean over dimensions: (1 + 1/√3)/2 ≈ 0.788675.
        let z = Tensor::from_slice2(&[[1.0f32, 0.0], [0.0, 2.0], [-3.0, 0.0]]);
        let want = (1.0 + 1.0 / 3f64.sqrt()) / 2.0;
        assert!(
            (normalised_std(&z) - want).abs() < 1e-7,
            "{}",
            normalised_std(&z)
        );
        assert!(normalised_std(&Tensor::ones([1, 4], (Kind::Float, CPU))).is_nan());
    }

    #[test]
    fn normalised_std_of_isotropic_gaussian_is_about_inverse_sqrt_dim() {
        tch::manual_seed(22);
        // A normalised isotropic Gaussian is uniform on the sphere: each coordinate has mean 0
        // and variance 1/D (the D squared coordinates sum to 1), so std ≈ 1/√64 = 0.125.
        let z = Tensor::randn([4000, 64], (Kind::Float, CPU));
        let got = normalised_std(&z);
        assert!((got - 0.125).abs() < 0.125 * 0.03, "{got}");
    }

    #[test]
    fn stats_bundle() {
        let z = Tensor::from_slice2(&[[1.0f32, 0.0], [0.0, 2.0], [-3.0, 0.0]]);
        let s = collapse_stats(&z);
        assert_eq!(s.dim, 2);
        assert_eq!(s.rankme, rankme(&z));
        assert_eq!(s.normalised_std, normalised_std(&z));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"dim\":2"), "{json}");
    }
}
