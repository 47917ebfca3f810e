//! Gaussian-process regression with an RBF kernel: functions drawn from the prior (the data a
//! PFN is trained on) and the exact posterior predictive by Cholesky factorisation (what the PFN
//! is measured against; Rasmussen & Williams 2006, algorithm 2.1).
//!
//! k(x, x') = s² · exp(−‖x − x'‖² / (2ℓ²)),  y = f(x) + ε,  ε ~ N(0, σ²).
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The prior's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpPrior {
    /// Input dimensions; inputs are uniform on [0, 1]^d.
    pub dims: i64,
    /// ℓ, the RBF length scale.
    pub lengthscale: f64,
    /// s², the signal variance.
    pub outputscale: f64,
    /// σ², the observation noise variance.
    pub noise: f64,
}

impl Default for GpPrior {
    /// One input on [0, 1] and ℓ = 0.1, s² = 0.1, σ² = 0.1: the GP prior of the PFN authors'
    /// code (`priors/fast_gp.py` of Müller et al. 2022, its default hyper-parameters).
    fn default() -> Self {
        GpPrior {
            dims: 1,
            lengthscale: 0.1,
            outputscale: 0.1,
            noise: 0.1,
        }
    }
}

impl GpPrior {
    /// k(a, b) for `a: [.., n, d]`, `b: [.., m, d]` → `[.., n, m]`.
    pub fn kernel(&self, a: &Tensor, b: &Tensor) -> Tensor {
        let d2 = (a.unsqueeze(-2) - b.unsqueeze(-3))
            .square()
            .sum_dim_intlist([-1i64].as_slice(), false, a.kind());
        (d2 / (-2.0 * self.lengthscale * self.lengthscale)).exp() * self.outputscale
    }

    /// `batch` functions, each observed at `points` inputs: `x: [B, n, d]`, noisy `y: [B, n]`,
    /// drawn in double precision from `rng`.
    pub fn sample(&self, batch: i64, points: i64, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
        let opts = (Kind::Double, tch::Device::Cpu);
        let xs: Vec<f64> = (0..batch * points * self.dims)
            .map(|_| rng.gen::<f64>())
            .collect();
        let x = Tensor::from_slice(&xs).view([batch, points, self.dims]);
        let eye = Tensor::eye(points, opts);
        // The noise variance on the diagonal keeps the factorisation stable as well.
        let cov = self.kernel(&x, &x) + &eye * self.noise;
        let l = cov.linalg_cholesky(false);
        let zs: Vec<f64> = (0..batch * points).map(|_| standard_normal(rng)).collect();
        let z = Tensor::from_slice(&zs).view([batch, points, 1]);
        let y = l.matmul(&z).squeeze_dim(-1);
        (x, y)
    }

    /// The exact posterior predictive at `xq: [B, m, d]` given `(x: [B, n, d], y: [B, n])`:
    /// mean and variance `[B, m]` of a new noisy observation.
    pub fn posterior(&self, x: &Tensor, y: &Tensor, xq: &Tensor) -> (Tensor, Tensor) {
        let n = x.size()[1];
        let eye = Tensor::eye(n, (x.kind(), x.device()));
        let l = (self.kernel(x, x) + eye * self.noise).linalg_cholesky(false);
        let kq = self.kernel(x, xq); // [B, n, m]
                                     // α = K⁻¹y and V = L⁻¹K_q, both by triangular solves.
        let alpha = y.unsqueeze(-1).cholesky_solve(&l, false); // [B, n, 1]
        let mean = kq.transpose(-2, -1).matmul(&alpha).squeeze_dim(-1);
        let v = l.linalg_solve_triangular(&kq, false, true, false);
        let var = -v
            .square()
            .sum_dim_intlist([-2i64].as_slice(), false, x.kind())
            + self.outputscale
            + self.noise;
        (mean, var)
    }

    /// Mean negative log-likelihood (nats) of `yq: [B, m]` under the exact posterior predictive.
    pub fn nll(&self, x: &Tensor, y: &Tensor, xq: &Tensor, yq: &Tensor) -> f64 {
        let (mean, var) = self.posterior(x, y, xq);
        gaussian_nll(yq, &mean, &var)
            .mean(Kind::Double)
            .double_value(&[])
    }
}

/// −log N(y; μ, v) elementwise.
pub fn gaussian_nll(y: &Tensor, mean: &Tensor, var: &Tensor) -> Tensor {
    ((y - mean).square() / var + var.log() + (2.0 * std::f64::consts::PI).ln()) * 0.5
}

/// One draw from N(0, 1) (Box–Muller).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn one_observation_gives_the_closed_form_posterior() {
        let p = GpPrior {
            dims: 1,
            lengthscale: 0.5,
            outputscale: 2.0,
            noise: 0.1,
        };
        let (x, y, xq) = (
            t(&[0.2], &[1, 1, 1]),
            t(&[1.5], &[1, 1]),
            t(&[0.6], &[1, 1, 1]),
        );
        let (mean, var) = p.posterior(&x, &y, &xq);
        // k = s²·exp(−0.4²/(2·0.25)); mean = k·y/(s² + σ²); var = s² + σ² − k²/(s² + σ²).
        let k = 2.0 * (-0.16f64 / 0.5).exp();
        let m = k * 1.5 / 2.1;
        let v = 2.0 + 0.1 - k * k / 2.1;
        assert!((mean.double_value(&[0, 0]) - m).abs() < 1e-12);
        assert!((var.double_value(&[0, 0]) - v).abs() < 1e-12);
        let nll = p.nll(&x, &y, &xq, &t(&[0.3], &[1, 1]));
        let direct = 0.5 * ((0.3 - m) * (0.3 - m) / v + v.ln() + (2.0 * std::f64::consts::PI).ln());
        assert!((nll - direct).abs() < 1e-12);
    }

    #[test]
    fn the_posterior_equals_the_direct_inverse_formula() {
        let p = GpPrior::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (x, y) = p.sample(3, 12, &mut rng);
        let (xc, yc) = (x.narrow(1, 0, 9), y.narrow(1, 0, 9));
        let xq = x.narrow(1, 9, 3);
        let (mean, var) = p.posterior(&xc, &yc, &xq);
        let k = p.kernel(&xc, &xc) + Tensor::eye(9, (Kind::Double, tch::Device::Cpu)) * p.noise;
        let kinv = k.inverse();
        let kq = p.kernel(&xc, &xq);
        let m2 = kq
            .transpose(-2, -1)
            .matmul(&kinv)
            .matmul(&yc.unsqueeze(-1))
            .squeeze_dim(-1);
        let v2 = (kq.transpose(-2, -1).matmul(&kinv).matmul(&kq))
            .diagonal(0, -2, -1)
            .neg()
            + p.outputscale
            + p.noise;
        assert!(mean.allclose(&m2, 1e-6, 1e-8, false), "{mean} {m2}");
        assert!(var.allclose(&v2, 1e-6, 1e-8, false), "{var} {v2}");
    }

    #[test]
    fn samples_have_the_kernel_as_covariance() {
        // Over many draws of two points: the variance is s² + σ², the covariance the kernel.
        let p = GpPrior {
            dims: 1,
            lengthscale: 0.3,
            outputscale: 1.5,
            noise: 0.01,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (x, y) = p.sample(20_000, 2, &mut rng);
        let var = y.square().mean(Kind::Double).double_value(&[]);
        assert!((var - 1.51).abs() < 0.05, "{var}");
        // E[y1·y2] = E[k(x1, x2)] over the inputs (the noise is independent).
        let k = p.kernel(&x, &x).select(-1, 1).select(-1, 0);
        let cross = (y.select(1, 0) * y.select(1, 1))
            .mean(Kind::Double)
            .double_value(&[]);
        let expected = k.mean(Kind::Double).double_value(&[]);
        assert!((cross - expected).abs() < 0.05, "{cross} vs {expected}");
    }
}
