//! Limited-memory BFGS with a strong-Wolfe line search, on one flat parameter vector.
//!
//! Written from Nocedal & Wright, *Numerical Optimization* (2nd ed., 2006):
//! - search direction: the L-BFGS two-loop recursion, Algorithm 7.4, with the initial inverse
//!   Hessian H₀ = γ I, γ = sᵀy / yᵀy (eq. 7.20); a curvature pair (s, y) is stored only when
//!   sᵀy > 1e-10, which keeps H positive definite;
//! - step length: the strong-Wolfe line search, Algorithm 3.5 (bracketing) and Algorithm 3.6
//!   (zoom), trial steps chosen by minimising the cubic interpolant of eq. (3.59); c₁ = 1e-4 and
//!   c₂ = 0.9, the values N&W recommend for quasi-Newton methods.
//!
//! The surrounding *behaviour* follows `torch.optim.LBFGS(line_search_fn="strong_wolfe")`, because
//! the linear-probe protocol is calibrated against it (`shared/bench/torch_e2e_reference.py`):
//! - first iteration: d = −g and initial trial step min(1, 1/‖g‖₁)·lr; later iterations: trial
//!   step lr;
//! - stop when max|g| ≤ `tolerance_grad` (also checked before the first iteration), when the
//!   directional derivative gᵀd > −`tolerance_change`, when max|t·d| ≤ `tolerance_change`, when
//!   |Δloss| < `tolerance_change`, after `max_iter` iterations, or once the function evaluations
//!   reach `max_eval` (default ⌊5·max_iter/4⌋, checked after each iteration, so the last line search
//!   may overshoot it);
//! - the line search: extrapolation with the cubic minimiser clamped to
//!   [t + 0.01(t − t_prev), 10t]; in zoom, a step closer than 10 % of the bracket width to an end
//!   is moved to 10 % inside the bracket if the previous step also made insufficient progress (or
//!   the interpolant left the bracket); zoom stops when the bracket is narrower than
//!   `tolerance_change` in max-norm of the step; at most 25 further function evaluations after the
//!   first trial of a line search, after which the better end of the bracket is taken.
//!
//! All vectors stay tensors on the parameter's device and dtype; only scalars (losses, dot
//! products) are brought to the host, as f64.
use std::collections::VecDeque;

use tch::Tensor;

/// Sufficient-decrease constant of the (strong) Wolfe conditions, N&W eq. (3.7a).
const C1: f64 = 1e-4;
/// Curvature constant of the strong Wolfe conditions, N&W eq. (3.7b).
const C2: f64 = 0.9;
/// Most function evaluations in one line search after the first trial step.
const MAX_LINE_SEARCH_EVALS: usize = 25;
/// Curvature pairs with sᵀy at or below this are not stored (they would break positive
/// definiteness of the implicit inverse Hessian).
const MIN_CURVATURE: f64 = 1e-10;

/// Settings of [`minimise`]. The defaults are those of `torch.optim.LBFGS`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LbfgsConfig {
    /// Step-length scale: the line search starts from `lr` (from `min(1, 1/‖g‖₁)·lr` on the first
    /// iteration). Default 1.
    pub lr: f64,
    /// Most iterations (line searches). Default 20.
    pub max_iter: usize,
    /// Most function evaluations; `None` means ⌊5·max_iter/4⌋.
    pub max_eval: Option<usize>,
    /// Stop when max|gradient| is at most this. Default 1e-7.
    pub tolerance_grad: f64,
    /// Stop when a step (max-norm) or a loss change is below this. Default 1e-9.
    pub tolerance_change: f64,
    /// Curvature pairs kept (the "m" of L-BFGS). Default 100; 0 keeps none (scaled steepest
    /// descent).
    pub history_size: usize,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
        }
    }
}

impl LbfgsConfig {
    /// The evaluation budget in effect: `max_eval`, or ⌊5·max_iter/4⌋ when unset.
    pub fn effective_max_eval(&self) -> usize {
        self.max_eval.unwrap_or(self.max_iter.saturating_mul(5) / 4)
    }
}

/// Why [`minimise`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbfgsStop {
    /// max|g| ≤ `tolerance_grad`.
    GradientTolerance,
    /// The search direction is not a descent direction by more than `tolerance_change`
    /// (gᵀd > −`tolerance_change`): no further decrease is available along it.
    NoDescent,
    /// The last step moved no coordinate by more than `tolerance_change`.
    StepTolerance,
    /// The loss changed by less than `tolerance_change` in the last iteration.
    LossTolerance,
    /// `max_iter` iterations were done.
    MaxIterations,
    /// `max_eval` function evaluations were reached.
    MaxEvaluations,
    /// The loss or the gradient at the current point is NaN or infinite.
    NonFinite,
}

impl LbfgsStop {
    /// True for the tolerance-based stops, false for budget exhaustion and non-finite values.
    pub fn is_converged(self) -> bool {
        matches!(
            self,
            LbfgsStop::GradientTolerance
                | LbfgsStop::NoDescent
                | LbfgsStop::StepTolerance
                | LbfgsStop::LossTolerance
        )
    }
}

/// What [`minimise`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LbfgsReport {
    /// Iterations started, torch's `state["n_iter"]` after one `step`; the last may stop before its
    /// line search (no descent direction left) and so evaluate nothing.
    pub iterations: usize,
    /// Function (loss and gradient) evaluations, including the initial one; torch's
    /// `state["func_evals"]`.
    pub function_evals: usize,
    /// The loss at the returned point.
    pub final_loss: f64,
    /// Whether a tolerance criterion stopped the run (see [`LbfgsStop::is_converged`]).
    pub converged: bool,
    /// The criterion that stopped the run.
    pub stop: LbfgsStop,
}

/// Minimises `f` from `x0` (1-D floating-point tensor, any device) and returns the final point and
/// a report. `f(x)` returns the loss and its gradient (same shape as `x`).
///
/// The optimiser's own arithmetic builds no autograd graph (`x0` and every returned gradient are
/// detached), so `f` may compute its gradient analytically or with autograd
/// (`tch::with_grad` + `backward`), as it prefers.
///
/// # Panics
/// If `x0` is not a non-empty 1-D floating-point tensor, or `f` returns a gradient of another
/// shape (programmer errors).
pub fn minimise(
    x0: &Tensor,
    cfg: &LbfgsConfig,
    f: impl FnMut(&Tensor) -> (f64, Tensor),
) -> (Tensor, LbfgsReport) {
    assert_eq!(
        x0.dim(),
        1,
        "L-BFGS: the parameter must be a flat (1-D) tensor, got shape {:?}",
        x0.size()
    );
    assert!(x0.numel() > 0, "L-BFGS: the parameter is empty");
    assert!(
        x0.is_floating_point(),
        "L-BFGS: the parameter must be floating point, got {:?}",
        x0.kind()
    );

    let max_eval = cfg.effective_max_eval();
    let mut obj = Counted { f, evals: 0 };
    let mut x = x0.detach().copy();
    let (mut loss, mut g) = obj.eval(&x);

    let report = |iterations: usize, evals: usize, loss: f64, stop: LbfgsStop| LbfgsReport {
        iterations,
        function_evals: evals,
        final_loss: loss,
        converged: stop.is_converged(),
        stop,
    };
    if !loss.is_finite() || !max_abs(&g).is_finite() {
        return (x, report(0, obj.evals, loss, LbfgsStop::NonFinite));
    }
    if max_abs(&g) <= cfg.tolerance_grad {
        return (x, report(0, obj.evals, loss, LbfgsStop::GradientTolerance));
    }

    let mut memory: VecDeque<CurvaturePair> = VecDeque::with_capacity(cfg.history_size.min(1024));
    let mut h_diag = 1.0;
    // The previous iteration's direction, accepted step length and gradient, for the next (s, y).
    let mut previous: Option<(Tensor, f64, Tensor)> = None;
    let mut iterations = 0;

    let stop = loop {
        if iterations >= cfg.max_iter {
            break LbfgsStop::MaxIterations; // only reached with max_iter = 0
        }
        iterations += 1;

        let d = match previous.take() {
            None => -&g,
            Some((d_prev, t_prev, g_prev)) => {
                let y = &g - &g_prev;
                let s = d_prev * t_prev;
                let ys = dot(&y, &s);
                if ys > MIN_CURVATURE {
                    if cfg.history_size > 0 {
                        if memory.len() == cfg.history_size {
                            memory.pop_front();
                        }
                        let rho = 1.0 / ys;
                        memory.push_back(CurvaturePair {
                            s,
                            y: y.shallow_clone(),
                            rho,
                        });
                    }
                    // γ = sᵀy / yᵀy (N&W eq. 7.20) scales H₀ to the most recent curvature.
                    h_diag = ys / dot(&y, &y);
                }
                two_loop_direction(&g, &memory, h_diag)
            }
        };

        let gtd = dot(&g, &d);
        if !gtd.is_finite() {
            break LbfgsStop::NonFinite;
        }
        if gtd > -cfg.tolerance_change {
            break LbfgsStop::NoDescent;
        }
        // Without curvature information the first step is scaled so that it moves the parameter
        // by at most lr in ℓ1 norm (torch's choice).
        let t_init = if iterations == 1 {
            (1.0 / l1_norm(&g)).min(1.0) * cfg.lr
        } else {
            cfg.lr
        };

        let prev_loss = loss;
        let accepted = strong_wolfe(
            &mut obj,
            &x,
            &d,
            t_init,
            loss,
            &g,
            gtd,
            cfg.tolerance_change,
        );
        x = &x + &d * accepted.t;
        let g_old = std::mem::replace(&mut g, accepted.g);
        loss = accepted.f;
        let step_max = accepted.t.abs() * max_abs(&d);
        previous = Some((d, accepted.t, g_old));

        let g_max = max_abs(&g);
        if !loss.is_finite() || !g_max.is_finite() {
            break LbfgsStop::NonFinite;
        }
        // The stopping point is the same in any order of these tests; gradient first so that a
        // run that met the tolerance on its last allowed iteration reports convergence.
        if g_max <= cfg.tolerance_grad {
            break LbfgsStop::GradientTolerance;
        }
        if iterations == cfg.max_iter {
            break LbfgsStop::MaxIterations;
        }
        if obj.evals >= max_eval {
            break LbfgsStop::MaxEvaluations;
        }
        if step_max <= cfg.tolerance_change {
            break LbfgsStop::StepTolerance;
        }
        if (loss - prev_loss).abs() < cfg.tolerance_change {
            break LbfgsStop::LossTolerance;
        }
    };
    (x, report(iterations, obj.evals, loss, stop))
}

/// One stored curvature pair of L-BFGS: s = x_{k+1} − x_k, y = g_{k+1} − g_k, ρ = 1 / yᵀs.
struct CurvaturePair {
    s: Tensor,
    y: Tensor,
    rho: f64,
}

/// d = −H g by the two-loop recursion (N&W Algorithm 7.4), oldest pair first in `memory`.
/// The αᵢ stay 0-d tensors so that no host synchronisation happens inside the loops.
fn two_loop_direction(g: &Tensor, memory: &VecDeque<CurvaturePair>, h_diag: f64) -> Tensor {
    let mut q = -g;
    let mut alphas = Vec::with_capacity(memory.len());
    for p in memory.iter().rev() {
        let alpha = p.s.dot(&q) * p.rho;
        q = q - &p.y * &alpha;
        alphas.push(alpha);
    }
    let mut r = q * h_diag;
    for (p, alpha) in memory.iter().zip(alphas.iter().rev()) {
        let beta = p.y.dot(&r) * p.rho;
        r = r + &p.s * (alpha - beta);
    }
    r
}

/// The objective with an evaluation counter.
struct Counted<F> {
    f: F,
    evals: usize,
}

/// φ(t) = f(x + t·d) with φ'(t) = ∇f(x + t·d)ᵀd.
struct Trial {
    t: f64,
    f: f64,
    g: Tensor,
    gtd: f64,
}

impl Clone for Trial {
    fn clone(&self) -> Self {
        // Gradients are never modified in place, so sharing the storage is safe.
        Trial {
            t: self.t,
            f: self.f,
            g: self.g.shallow_clone(),
            gtd: self.gtd,
        }
    }
}

impl<F: FnMut(&Tensor) -> (f64, Tensor)> Counted<F> {
    fn eval(&mut self, x: &Tensor) -> (f64, Tensor) {
        self.evals += 1;
        let (loss, g) = (self.f)(x);
        assert_eq!(
            g.size(),
            x.size(),
            "L-BFGS: the objective returned a gradient of shape {:?} for a parameter of shape {:?}",
            g.size(),
            x.size()
        );
        (loss, g.detach().to_device(x.device()).to_kind(x.kind()))
    }

    fn trial(&mut self, x: &Tensor, d: &Tensor, t: f64) -> Trial {
        let (f, g) = self.eval(&(x + d * t));
        // A NaN loss (overflow far along d) must read as "too large", so that the line search
        // backtracks instead of comparing against NaN, which is false either way.
        let f = if f.is_nan() { f64::INFINITY } else { f };
        let gtd = dot(&g, d);
        Trial { t, f, g, gtd }
    }
}

/// Line search for a step satisfying the strong Wolfe conditions along the descent direction `d`
/// from `x` (loss `f0`, gradient `g0`, directional derivative `gtd0` < 0), starting at `t_init`.
/// Returns the accepted trial (step, loss and gradient there).
#[allow(clippy::too_many_arguments)]
fn strong_wolfe<F: FnMut(&Tensor) -> (f64, Tensor)>(
    obj: &mut Counted<F>,
    x: &Tensor,
    d: &Tensor,
    t_init: f64,
    f0: f64,
    g0: &Tensor,
    gtd0: f64,
    tolerance_change: f64,
) -> Trial {
    let d_max = max_abs(d);
    let origin = Trial {
        t: 0.0,
        f: f0,
        g: g0.shallow_clone(),
        gtd: gtd0,
    };
    let armijo = |tr: &Trial| tr.f <= f0 + C1 * tr.t * gtd0; // sufficient decrease (3.7a)
    let curvature = |tr: &Trial| tr.gtd.abs() <= -C2 * gtd0; // strong curvature (3.7b)

    // Algorithm 3.5: increase the step until an interval containing a strong-Wolfe point is
    // bracketed (or such a point is hit).
    let mut prev = origin.clone();
    let mut cur = obj.trial(x, d, t_init);
    // Trials evaluated after the first; the search may evaluate MAX_LINE_SEARCH_EVALS + 1 points
    // in all (torch's `ls_iter` / `max_ls` accounting).
    let mut ls_iter = 0;
    let mut bracket = loop {
        if ls_iter >= MAX_LINE_SEARCH_EVALS {
            // Budget spent while still extrapolating: choose between the origin and the last
            // trial below.
            break [origin.clone(), cur];
        }
        if !armijo(&cur) || (ls_iter > 1 && cur.f >= prev.f) {
            break [prev, cur];
        }
        if curvature(&cur) {
            return cur;
        }
        if cur.gtd >= 0.0 {
            break [prev, cur];
        }
        // Extrapolate: cubic minimiser, kept in [t + 0.01(t − t_prev), 10 t].
        let lo = cur.t + 0.01 * (cur.t - prev.t);
        let hi = cur.t * 10.0;
        let t_next = cubic_minimiser(&prev, &cur, Some((lo, hi)));
        prev = cur;
        cur = obj.trial(x, d, t_next);
        ls_iter += 1;
    };

    // Algorithm 3.6 (zoom): shrink the bracket; `low` is the end with the lower loss (the best
    // point satisfying sufficient decrease so far), `high` the other.
    let order = |b: &[Trial; 2]| if b[0].f <= b[1].f { (0, 1) } else { (1, 0) };
    let (mut low, mut high) = order(&bracket);
    let mut insufficient_progress = false;
    while ls_iter < MAX_LINE_SEARCH_EVALS {
        if (bracket[1].t - bracket[0].t).abs() * d_max < tolerance_change {
            break; // the bracket no longer moves the parameter measurably
        }
        let mut t = cubic_minimiser(&bracket[0], &bracket[1], None);

        // Safeguard: a step hugging an end of the bracket shrinks it too slowly. Accept it once;
        // if it happens again (or the interpolant left the bracket), move it 10 % inside.
        let (b_min, b_max) = (
            bracket[0].t.min(bracket[1].t),
            bracket[0].t.max(bracket[1].t),
        );
        let eps = 0.1 * (b_max - b_min);
        if (b_max - t).min(t - b_min) < eps {
            if insufficient_progress || t >= b_max || t <= b_min {
                t = if (t - b_max).abs() < (t - b_min).abs() {
                    b_max - eps
                } else {
                    b_min + eps
                };
                insufficient_progress = false;
            } else {
                insufficient_progress = true;
            }
        } else {
            insufficient_progress = false;
        }

        let trial = obj.trial(x, d, t);
        ls_iter += 1;
        if !armijo(&trial) || trial.f >= bracket[low].f {
            bracket[high] = trial;
            (low, high) = order(&bracket);
        } else {
            if curvature(&trial) {
                return trial;
            }
            if trial.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                // The minimiser lies on the other side of the new point: old low becomes high.
                bracket[high] = bracket[low].clone();
            }
            bracket[low] = trial;
        }
    }
    let [b0, b1] = bracket;
    if low == 0 {
        b0
    } else {
        b1
    }
}

/// Minimiser of the cubic interpolating φ and φ' at two points, N&W eq. (3.59), clamped to
/// `bounds` (default: the interval between the points). Falls back to the midpoint of the bounds
/// when the cubic has no minimiser (negative discriminant) or the formula breaks down (NaN).
fn cubic_minimiser(a: &Trial, b: &Trial, bounds: Option<(f64, f64)>) -> f64 {
    let (x1, f1, g1) = (a.t, a.f, a.gtd);
    let (x2, f2, g2) = (b.t, b.f, b.gtd);
    let (lo, hi) = bounds.unwrap_or((x1.min(x2), x1.max(x2)));
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_sq = d1 * d1 - g1 * g2;
    if d2_sq >= 0.0 {
        let d2 = d2_sq.sqrt();
        // (3.59) with d2 taking the sign of (x2 − x1), written from the right-hand point.
        let m = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        if m.is_nan() {
            (lo + hi) / 2.0
        } else {
            m.max(lo).min(hi)
        }
    } else {
        (lo + hi) / 2.0
    }
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[])
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs().max().double_value(&[])
}

fn l1_norm(a: &Tensor) -> f64 {
    a.abs().sum(None::<tch::Kind>).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn to_vec(t: &Tensor) -> Vec<f64> {
        let t = t.to_kind(Kind::Double);
        (0..t.size()[0]).map(|i| t.double_value(&[i])).collect()
    }

    /// Extended Rosenbrock: Σ over pairs (1 − x₂ᵢ)² + 100 (x₂ᵢ₊₁ − x₂ᵢ²)², minimum 0 at all ones.
    fn rosenbrock(x: &Tensor) -> (f64, Tensor) {
        let v = to_vec(x);
        let mut loss = 0.0;
        let mut g = vec![0.0; v.len()];
        for i in (0..v.len()).step_by(2) {
            let (a, b) = (v[i], v[i + 1]);
            loss += (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            g[i] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[i + 1] = 200.0 * (b - a * a);
        }
        (loss, Tensor::from_slice(&g).to_kind(x.kind()))
    }

    fn rosenbrock_start(pairs: usize, kind: Kind) -> Tensor {
        Tensor::from_slice(&[-1.2f64, 1.0].repeat(pairs)).to_kind(kind)
    }

    #[test]
    fn quadratic_reaches_known_minimiser() {
        tch::manual_seed(0);
        let n = 12;
        let m = Tensor::randn([n, n], (Kind::Double, Device::Cpu));
        let a = m.matmul(&m.tr()) / n as f64 + Tensor::eye(n, (Kind::Double, Device::Cpu)) * 0.5;
        let x_star = Tensor::randn([n], (Kind::Double, Device::Cpu));
        let b = a.matmul(&x_star);
        // f(x) = ½ xᵀAx − bᵀx, ∇f = Ax − b, minimiser A⁻¹b = x*. Evaluated in f64, optimised in f32.
        let f = |x: &Tensor| {
            let x = x.to_kind(Kind::Double);
            let ax = a.matmul(&x);
            let loss = (x.dot(&ax) * 0.5 - b.dot(&x)).double_value(&[]);
            (loss, (ax - &b).to_kind(Kind::Float))
        };
        let cfg = LbfgsConfig {
            max_iter: 200,
            ..LbfgsConfig::default()
        };
        let (x, rep) = minimise(&Tensor::zeros([n], (Kind::Float, Device::Cpu)), &cfg, f);
        assert_eq!(x.kind(), Kind::Float);
        let err = max_abs(&(x.to_kind(Kind::Double) - &x_star));
        assert!(err < 1e-4, "error {err}, report {rep:?}");
        assert!(rep.converged, "{rep:?}");
        assert!(rep.iterations >= 1 && rep.iterations < 200, "{rep:?}");
        // One evaluation at the start and at least one per line search; an iteration that stops
        // before its line search (no descent direction left) evaluates nothing, as in torch.
        let searched = rep.iterations - usize::from(rep.stop == LbfgsStop::NoDescent);
        assert!(rep.function_evals > searched, "{rep:?}");
    }

    #[test]
    fn rosenbrock_f64() {
        let cfg = LbfgsConfig {
            max_iter: 1000,
            ..LbfgsConfig::default()
        };
        for pairs in [1, 3] {
            let (x, rep) = minimise(&rosenbrock_start(pairs, Kind::Double), &cfg, rosenbrock);
            let err = to_vec(&x)
                .iter()
                .map(|v| (v - 1.0).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-4,
                "pairs {pairs}: error {err}, x {x}, report {rep:?}"
            );
            assert!(rep.final_loss < 1e-8, "{rep:?}");
            assert!(rep.converged, "{rep:?}");
            assert_eq!(rep.final_loss, rosenbrock(&x).0);
        }
    }

    #[test]
    fn rosenbrock_f32() {
        let cfg = LbfgsConfig {
            max_iter: 1000,
            ..LbfgsConfig::default()
        };
        let (x, rep) = minimise(&rosenbrock_start(1, Kind::Float), &cfg, rosenbrock);
        let err = to_vec(&x)
            .iter()
            .map(|v| (v - 1.0).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "error {err}, x {x}, report {rep:?}");
    }

    #[test]
    fn starting_at_the_optimum_does_nothing() {
        let (x, rep) = minimise(
            &Tensor::from_slice(&[1.0f32, 1.0]),
            &LbfgsConfig::default(),
            rosenbrock,
        );
        assert_eq!(to_vec(&x), vec![1.0, 1.0]);
        assert_eq!(
            (rep.iterations, rep.function_evals, rep.stop),
            (0, 1, LbfgsStop::GradientTolerance)
        );
        assert!(rep.converged);
    }

    #[test]
    fn budgets_are_respected() {
        let cfg = LbfgsConfig {
            max_iter: 5,
            ..LbfgsConfig::default()
        };
        assert_eq!(cfg.effective_max_eval(), 6);
        let (_, rep) = minimise(&rosenbrock_start(1, Kind::Double), &cfg, rosenbrock);
        assert!(rep.iterations <= 5, "{rep:?}");
        assert!(!rep.converged, "{rep:?}");
        assert!(
            matches!(
                rep.stop,
                LbfgsStop::MaxIterations | LbfgsStop::MaxEvaluations
            ),
            "{rep:?}"
        );

        let cfg = LbfgsConfig {
            max_iter: 1000,
            max_eval: Some(10),
            ..LbfgsConfig::default()
        };
        let (_, rep) = minimise(&rosenbrock_start(1, Kind::Double), &cfg, rosenbrock);
        assert_eq!(rep.stop, LbfgsStop::MaxEvaluations, "{rep:?}");
        // The check runs after each line search, which may take up to 25 evaluations.
        assert!(
            rep.function_evals >= 10 && rep.function_evals <= 10 + MAX_LINE_SEARCH_EVALS,
            "{rep:?}"
        );

        let cfg = LbfgsConfig {
            max_iter: 0,
            ..LbfgsConfig::default()
        };
        let (_, rep) = minimise(&rosenbrock_start(1, Kind::Double), &cfg, rosenbrock);
        assert_eq!(
            (rep.iterations, rep.function_evals, rep.stop),
            (0, 1, LbfgsStop::MaxIterations)
        );
    }

    #[test]
    fn first_trial_step_is_scaled_by_the_gradient_l1_norm() {
        // f = ½‖x‖², g = x; from x0 = (4, −6): ‖g‖₁ = 10, so the first trial is x0 − 0.1·lr·g.
        for lr in [1.0, 0.5] {
            let mut visited = Vec::new();
            let f = |x: &Tensor| {
                visited.push(to_vec(x));
                ((x.dot(x) * 0.5).double_value(&[]), x.copy())
            };
            let cfg = LbfgsConfig {
                lr,
                ..LbfgsConfig::default()
            };
            let (x, rep) = minimise(&Tensor::from_slice(&[4.0f64, -6.0]), &cfg, f);
            let s = 1.0 - 0.1 * lr;
            assert!(
                (visited[1][0] - 4.0 * s).abs() < 1e-12 && (visited[1][1] + 6.0 * s).abs() < 1e-12,
                "{visited:?}"
            );
            // With lr = 1 the second iteration already has the exact curvature of this quadratic
            // (H = I) and lands on the minimiser; with lr = 0.5 every accepted step halves x.
            if lr == 1.0 {
                assert!(
                    max_abs(&x) < 1e-12 && rep.converged && rep.iterations <= 3,
                    "{x} {rep:?}"
                );
            } else {
                assert!(max_abs(&x) < 1e-4 && rep.converged, "{x} {rep:?}");
            }
        }
    }

    #[test]
    fn works_with_an_autograd_objective() {
        let f = |x: &Tensor| {
            tch::with_grad(|| {
                let x = x.detach().set_requires_grad(true);
                let loss = ((&x - 3.0).pow_tensor_scalar(2)).sum(Kind::Double);
                loss.backward();
                (loss.double_value(&[]), x.grad())
            })
        };
        let (x, rep) = minimise(
            &Tensor::zeros([4], (Kind::Double, Device::Cpu)),
            &LbfgsConfig::default(),
            f,
        );
        assert!(!x.requires_grad());
        assert!(
            to_vec(&x).iter().all(|v| (v - 3.0).abs() < 1e-6),
            "{x} {rep:?}"
        );
    }

    #[test]
    fn non_finite_loss_stops_cleanly() {
        let f = |x: &Tensor| (f64::NAN, x.copy());
        let (_, rep) = minimise(
            &Tensor::ones([3], (Kind::Float, Device::Cpu)),
            &LbfgsConfig::default(),
            f,
        );
        assert_eq!(rep.stop, LbfgsStop::NonFinite);
        assert!(!rep.converged);
    }

    #[test]
    fn cubic_minimiser_is_exact_for_a_cubic() {
        // φ(t) = t³ − 3t: minimiser at t = 1, φ' = 3t² − 3.
        let p = |t: f64| Trial {
            t,
            f: t.powi(3) - 3.0 * t,
            g: Tensor::zeros([1], (Kind::Double, Device::Cpu)),
            gtd: 3.0 * t * t - 3.0,
        };
        for (a, b) in [(0.0, 2.0), (2.0, 0.0), (0.5, 1.7)] {
            let m = cubic_minimiser(&p(a), &p(b), None);
            assert!((m - 1.0).abs() < 1e-12, "{a} {b} → {m}");
        }
        // Clamped to the given bounds.
        assert_eq!(cubic_minimiser(&p(0.0), &p(2.0), Some((1.5, 3.0))), 1.5);
    }
}
