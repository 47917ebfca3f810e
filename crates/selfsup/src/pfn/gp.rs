//! Gaussian-process regression with an RBF kernel: functions drawn from the prior (the data a
//! PFN is trained on) and the exact posterior predictive by Cholesky factorisation (what the PFN
//! is measured against; Rasmussen & Williams 2006, algorithm 2.1).
//!
//! k(x, x') = s² · exp(−‖x − x'‖² / (2ℓ²)),  y = f(x) + ε,  ε ~ N(0, σ²).
//!
//! The hyper-parameters (ℓ, s², σ²) are either fixed or drawn per function from a grid
//! ([`HyperGrid`]). A grid keeps the Bayes-optimal answer exact: the posterior predictive is
//! then the mixture over grid points of each point's GP predictive, weighted by the point's
//! posterior probability p(h | x, y) ∝ p(y | x, h) (the grid's points are equally likely a
//! priori). A continuous hyper-prior has no closed form (the PFN paper compares against MCMC).
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// One hyper-parameter's grid: `points` values spaced evenly in log from `low` to `high`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GridAxis {
    pub low: f64,
    pub high: f64,
    pub points: u32,
}

impl GridAxis {
    pub fn values(&self) -> Vec<f64> {
        if self.points <= 1 {
            return vec![self.low];
        }
        let (a, b) = (self.low.ln(), self.high.ln());
        let last = f64::from(self.points - 1);
        (0..self.points)
            .map(|i| (a + (b - a) * f64::from(i) / last).exp())
            .collect()
    }

    /// "LOW,HIGH,POINTS", as the command line takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let bad =
            || format!("{text:?}: expected LOW,HIGH,POINTS with 0 < LOW ≤ HIGH and POINTS ≥ 1");
        if parts.len() != 3 {
            return Err(bad());
        }
        let low: f64 = parts[0].parse().map_err(|_| bad())?;
        let high: f64 = parts[1].parse().map_err(|_| bad())?;
        let points: u32 = parts[2].parse().map_err(|_| bad())?;
        if !(low > 0.0 && high >= low && high.is_finite() && points >= 1) {
            return Err(bad());
        }
        Ok(GridAxis { low, high, points })
    }
}

/// Hyper-parameters drawn per function, each axis uniformly over its grid, independently.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HyperGrid {
    pub lengthscale: GridAxis,
    pub outputscale: GridAxis,
    pub noise: GridAxis,
}

impl Default for HyperGrid {
    /// Length scales 0.05–0.8 (6 points), signal variances 0.05–1 (4), noise variances
    /// 0.01–0.2 (4): 96 GPs, from nearly white noise to smooth trends, around the fixed prior's
    /// ℓ = s² = σ² = 0.1. Our choice; the paper's hyper-priors are continuous.
    fn default() -> Self {
        HyperGrid {
            lengthscale: GridAxis {
                low: 0.05,
                high: 0.8,
                points: 6,
            },
            outputscale: GridAxis {
                low: 0.05,
                high: 1.0,
                points: 4,
            },
            noise: GridAxis {
                low: 0.01,
                high: 0.2,
                points: 4,
            },
        }
    }
}

impl HyperGrid {
    /// Every grid point as (ℓ, s², σ²), the length scale varying slowest.
    pub fn points(&self) -> Vec<(f64, f64, f64)> {
        let mut all = Vec::new();
        for &l in &self.lengthscale.values() {
            for &s in &self.outputscale.values() {
                for &n in &self.noise.values() {
                    all.push((l, s, n));
                }
            }
        }
        all
    }
}

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
    /// When set, ℓ, s² and σ² are drawn per function from this grid and the three fixed values
    /// above are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper: Option<HyperGrid>,
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
            hyper: None,
        }
    }
}

/// s²·exp(−‖a − b‖²/(2ℓ²)) for `a: [.., n, d]`, `b: [.., m, d]` → `[.., n, m]`, with ℓ and s²
/// tensors that broadcast against the result (one value per function or per grid point).
fn rbf(a: &Tensor, b: &Tensor, lengthscale: &Tensor, outputscale: &Tensor) -> Tensor {
    let d2 = (a.unsqueeze(-2) - b.unsqueeze(-3))
        .square()
        .sum_dim_intlist([-1i64].as_slice(), false, a.kind());
    (d2 / (lengthscale.square() * -2.0)).exp() * outputscale
}

/// The GP conditioned on `(x: [.., n, d], y: [.., n])` with hyper-parameters broadcast as
/// `[.., 1, 1]`: the predictive mean and variance of a new noisy observation at `xq: [.., m, d]`
/// (`[.., m]` each) and the log evidence log p(y | x) (`[..]`).
fn condition(
    x: &Tensor,
    y: &Tensor,
    xq: &Tensor,
    (lengthscale, outputscale, noise): (&Tensor, &Tensor, &Tensor),
) -> (Tensor, Tensor, Tensor) {
    let n = x.size()[x.dim() - 2];
    let eye = Tensor::eye(n, (x.kind(), x.device()));
    let k = rbf(x, x, lengthscale, outputscale) + eye * noise;
    let l = k.linalg_cholesky(false);
    let kq = rbf(x, xq, lengthscale, outputscale); // [.., n, m]
    let batch = l.size()[..l.dim() - 2].to_vec();
    let y = y
        .unsqueeze(-1)
        .expand([batch.as_slice(), &[n, 1]].concat(), false);
    // α = K⁻¹y and V = L⁻¹K_q, both by triangular solves.
    let alpha = y.cholesky_solve(&l, false); // [.., n, 1]
    let mean = kq.transpose(-2, -1).matmul(&alpha).squeeze_dim(-1);
    let v = l.linalg_solve_triangular(&kq, false, true, false);
    let var = -v
        .square()
        .sum_dim_intlist([-2i64].as_slice(), false, x.kind())
        + (outputscale + noise).squeeze_dim(-1);
    // log p(y) = −½ yᵀα − Σ log L_ii − (n/2) log 2π.
    let fit = (&y * &alpha).sum_dim_intlist([-2i64, -1].as_slice(), false, x.kind());
    let log_det = l
        .diagonal(0, -2, -1)
        .log()
        .sum_dim_intlist([-1i64].as_slice(), false, x.kind());
    let evidence = fit * -0.5 - log_det - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    (mean, var, evidence)
}

impl GpPrior {
    /// The fixed hyper-parameters as `[1, 1, 1]` tensors.
    fn fixed(&self) -> (Tensor, Tensor, Tensor) {
        let t = |v: f64| Tensor::from_slice(&[v]).view([1, 1, 1]);
        (t(self.lengthscale), t(self.outputscale), t(self.noise))
    }

    /// k(a, b) with the fixed hyper-parameters, for `a: [.., n, d]`, `b: [.., m, d]` → `[.., n, m]`.
    pub fn kernel(&self, a: &Tensor, b: &Tensor) -> Tensor {
        let d2 = (a.unsqueeze(-2) - b.unsqueeze(-3))
            .square()
            .sum_dim_intlist([-1i64].as_slice(), false, a.kind());
        (d2 / (-2.0 * self.lengthscale * self.lengthscale)).exp() * self.outputscale
    }

    /// `batch` functions, each observed at `points` inputs: `x: [B, n, d]`, noisy `y: [B, n]`,
    /// drawn in double precision from `rng` (with a grid, each function's hyper-parameters
    /// first).
    pub fn sample(&self, batch: i64, points: i64, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
        let xs: Vec<f64> = (0..batch * points * self.dims)
            .map(|_| rng.gen::<f64>())
            .collect();
        let x = Tensor::from_slice(&xs).view([batch, points, self.dims]);
        let (ls, os, noise) = match &self.hyper {
            None => self.fixed(),
            Some(grid) => {
                let axis = |a: &GridAxis, rng: &mut ChaCha8Rng| -> Tensor {
                    let values = a.values();
                    let drawn: Vec<f64> = (0..batch)
                        .map(|_| values[rng.gen_range(0..values.len())])
                        .collect();
                    Tensor::from_slice(&drawn).view([batch, 1, 1])
                };
                let ls = axis(&grid.lengthscale, rng);
                let os = axis(&grid.outputscale, rng);
                (ls, os, axis(&grid.noise, rng))
            }
        };
        let eye = Tensor::eye(points, (Kind::Double, tch::Device::Cpu));
        // The noise variance on the diagonal keeps the factorisation stable as well.
        let cov = rbf(&x, &x, &ls, &os) + eye * noise;
        let l = cov.linalg_cholesky(false);
        let zs: Vec<f64> = (0..batch * points).map(|_| standard_normal(rng)).collect();
        let z = Tensor::from_slice(&zs).view([batch, points, 1]);
        let y = l.matmul(&z).squeeze_dim(-1);
        (x, y)
    }

    /// The exact posterior predictive under the fixed hyper-parameters at `xq: [B, m, d]` given
    /// `(x: [B, n, d], y: [B, n])`: mean and variance `[B, m]` of a new noisy observation.
    pub fn posterior(&self, x: &Tensor, y: &Tensor, xq: &Tensor) -> (Tensor, Tensor) {
        let (ls, os, noise) = self.fixed();
        let (mean, var, _) = condition(x, y, xq, (&ls, &os, &noise));
        (mean, var)
    }

    /// −log p(y_q | x, y, x_q) of each held-out point, `[B, m]`, under the exact posterior
    /// predictive: a Gaussian with fixed hyper-parameters, the posterior-weighted mixture over
    /// the grid's GPs with a grid.
    pub fn predictive_nll(&self, x: &Tensor, y: &Tensor, xq: &Tensor, yq: &Tensor) -> Tensor {
        let Some(grid) = &self.hyper else {
            let (mean, var) = self.posterior(x, y, xq);
            return gaussian_nll(yq, &mean, &var);
        };
        let points = grid.points();
        let h = points.len() as i64;
        let axis = |f: fn(&(f64, f64, f64)) -> f64| {
            Tensor::from_slice(&points.iter().map(f).collect::<Vec<_>>()).view([1, h, 1, 1])
        };
        let (ls, os, noise) = (axis(|p| p.0), axis(|p| p.1), axis(|p| p.2));
        // One copy of every function per grid point: [B, H, ..].
        let (mean, var, evidence) = condition(
            &x.unsqueeze(1),
            &y.unsqueeze(1),
            &xq.unsqueeze(1),
            (&ls, &os, &noise),
        );
        let log_weight = evidence.log_softmax(1, Kind::Double).unsqueeze(-1); // [B, H, 1]
        let log_density = log_weight - gaussian_nll(&yq.unsqueeze(1), &mean, &var);
        -log_density.logsumexp([1i64].as_slice(), false)
    }

    /// Mean negative log-likelihood (nats) of `yq: [B, m]` under the exact posterior predictive.
    pub fn nll(&self, x: &Tensor, y: &Tensor, xq: &Tensor, yq: &Tensor) -> f64 {
        self.predictive_nll(x, y, xq, yq)
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
            hyper: None,
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
            hyper: None,
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

    fn small_grid() -> HyperGrid {
        HyperGrid {
            lengthscale: GridAxis {
                low: 0.1,
                high: 0.4,
                points: 2,
            },
            outputscale: GridAxis {
                low: 0.5,
                high: 2.0,
                points: 2,
            },
            noise: GridAxis {
                low: 0.05,
                high: 0.05,
                points: 1,
            },
        }
    }

    #[test]
    fn grid_axes_are_log_spaced_and_parsed_with_clear_errors() {
        let a = GridAxis::parse("0.01, 1, 3").unwrap();
        let v = a.values();
        assert_eq!(v.len(), 3);
        assert!(
            (v[1] - 0.1).abs() < 1e-12 && (v[2] - 1.0).abs() < 1e-12,
            "{v:?}"
        );
        assert_eq!(GridAxis::parse("0.2,0.2,1").unwrap().values(), vec![0.2]);
        for bad in ["0,1,3", "1,0.5,2", "0.1,1", "0.1,1,0", "a,1,2"] {
            let e = GridAxis::parse(bad).unwrap_err();
            assert!(e.contains("LOW,HIGH,POINTS"), "{bad}: {e}");
        }
        assert_eq!(HyperGrid::default().points().len(), 96);
    }

    #[test]
    fn a_one_point_grid_gives_the_fixed_posterior() {
        let fixed = GpPrior::default();
        let one = |v: f64| GridAxis {
            low: v,
            high: v,
            points: 1,
        };
        let grid = GpPrior {
            hyper: Some(HyperGrid {
                lengthscale: one(0.1),
                outputscale: one(0.1),
                noise: one(0.1),
            }),
            ..fixed
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (x, y) = fixed.sample(5, 9, &mut rng);
        let (xc, yc, xq, yq) = (
            x.narrow(1, 0, 6),
            y.narrow(1, 0, 6),
            x.narrow(1, 6, 3),
            y.narrow(1, 6, 3),
        );
        let a = fixed.predictive_nll(&xc, &yc, &xq, &yq);
        let b = grid.predictive_nll(&xc, &yc, &xq, &yq);
        assert!(a.allclose(&b, 1e-10, 1e-12, false), "{a} {b}");
    }

    #[test]
    fn the_grid_posterior_is_the_evidence_weighted_mixture_computed_directly() {
        let prior = GpPrior {
            hyper: Some(small_grid()),
            ..GpPrior::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (x, y) = prior.sample(2, 7, &mut rng);
        let (xc, yc, xq, yq) = (
            x.narrow(1, 0, 4),
            y.narrow(1, 0, 4),
            x.narrow(1, 4, 3),
            y.narrow(1, 4, 3),
        );
        let got = prior.predictive_nll(&xc, &yc, &xq, &yq);
        let pi2 = 2.0 * std::f64::consts::PI;
        for b in 0..2 {
            // Per grid point: the evidence N(y; 0, K) by inverse and determinant, and the
            // predictive Gaussian at each held-out point by the direct formulas.
            let mut evidence = Vec::new();
            let mut densities = Vec::new();
            for (l, s, n) in small_grid().points() {
                let p = GpPrior {
                    lengthscale: l,
                    outputscale: s,
                    noise: n,
                    hyper: None,
                    ..GpPrior::default()
                };
                let (xb, yb, qb) = (xc.get(b), yc.get(b), xq.get(b));
                let k = p.kernel(&xb, &xb) + Tensor::eye(4, (Kind::Double, tch::Device::Cpu)) * n;
                let kinv = k.inverse();
                let quad = yb.dot(&kinv.mv(&yb)).double_value(&[]);
                let det = k.det().double_value(&[]);
                evidence.push((-0.5 * quad).exp() / ((pi2.powi(4) * det).sqrt()));
                let kq = p.kernel(&xb, &qb);
                let mut d = Vec::new();
                for j in 0..3 {
                    let kj = kq.select(1, j);
                    let mean = kj.dot(&kinv.mv(&yb)).double_value(&[]);
                    let var = s + n - kj.dot(&kinv.mv(&kj)).double_value(&[]);
                    let yj = yq.double_value(&[b, j]);
                    d.push((-(yj - mean).powi(2) / (2.0 * var)).exp() / (pi2 * var).sqrt());
                }
                densities.push(d);
            }
            let total: f64 = evidence.iter().sum();
            for j in 0..3 {
                let mix: f64 = evidence
                    .iter()
                    .zip(&densities)
                    .map(|(e, d)| e / total * d[j as usize])
                    .sum();
                let ours = got.double_value(&[b, j]);
                assert!((ours + mix.ln()).abs() < 1e-9, "{ours} vs {}", -mix.ln());
            }
        }
    }

    #[test]
    fn grid_draws_have_the_grid_average_variance() {
        // One point per function: Var y = E[s²] + E[σ²] over the uniformly drawn grid points.
        let prior = GpPrior {
            hyper: Some(small_grid()),
            ..GpPrior::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (_, y) = prior.sample(40_000, 1, &mut rng);
        let var = y.square().mean(Kind::Double).double_value(&[]);
        let expected = (0.5 + 2.0) / 2.0 + 0.05;
        assert!((var - expected).abs() < 0.04, "{var} vs {expected}");
    }
}
