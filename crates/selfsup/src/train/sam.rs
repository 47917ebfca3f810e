//! Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021) and its adaptive form (ASAM;
//! Kwon et al., ICML 2021), as a wrapper around any optimiser: after the first backward pass the
//! weights climb to the worst point of a ρ-ball, `ε̂ = ρ · T²g / ‖Tg‖₂` (SAM: T = 1; ASAM:
//! T = |w| + η, elementwise), the loss is taken again there, the weights come back, and the
//! optimiser steps with the gradient from the perturbed point. The norm is over all parameters
//! together, as in both papers. Each step costs two forward and backward passes.
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamConfig {
    /// Radius of the neighbourhood (SAM's 0.05 for CIFAR with SGD; ASAM uses about ten times
    /// that, 0.5, because T shrinks the ball along small weights).
    pub rho: f64,
    /// ASAM: scale the ball by |w| + η elementwise.
    #[serde(default)]
    pub adaptive: bool,
    /// ASAM's η (0.01 in the paper), keeping zero weights perturbable.
    #[serde(default = "default_eta")]
    pub eta: f64,
}

fn default_eta() -> f64 {
    0.01
}

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig {
            rho: 0.05,
            adaptive: false,
            eta: default_eta(),
        }
    }
}

/// The perturbation a [`SamConfig::ascend`] applied, to be taken back by [`Perturbation::restore`].
#[must_use = "the weights stay perturbed until restore() is called"]
pub struct Perturbation {
    moved: Vec<(Tensor, Tensor)>,
}

impl SamConfig {
    /// After the first backward pass: moves each parameter of `params` that has a gradient to
    /// w + ε̂ and returns the move.
    pub fn ascend(&self, params: &[Tensor]) -> Perturbation {
        let _guard = tch::no_grad_guard();
        let with_grad: Vec<(&Tensor, Tensor)> = params
            .iter()
            .filter_map(|p| {
                let g = p.grad();
                g.defined().then_some((p, g))
            })
            .collect();
        let scale = |p: &Tensor| -> Option<Tensor> { self.adaptive.then(|| p.abs() + self.eta) };
        let mut sq = 0.0;
        for (p, g) in &with_grad {
            let tg = match scale(p) {
                Some(t) => &t * g,
                None => g.shallow_clone(),
            };
            sq += tg.square().sum(tch::Kind::Double).double_value(&[]);
        }
        let norm = sq.sqrt();
        let mut moved = Vec::new();
        if norm > 0.0 && norm.is_finite() {
            for (p, g) in with_grad {
                let eps = match scale(p) {
                    Some(t) => t.square() * &g * (self.rho / norm),
                    None => &g * (self.rho / norm),
                };
                let mut w = p.shallow_clone();
                let _ = w.f_add_(&eps);
                moved.push((p.shallow_clone(), eps));
            }
        }
        Perturbation { moved }
    }
}

impl Perturbation {
    /// After the second backward pass: puts the weights back where they were (the gradients,
    /// taken at the perturbed point, stay for the optimiser's step).
    pub fn restore(self) {
        let _guard = tch::no_grad_guard();
        for (p, eps) in self.moved {
            let mut w = p;
            let _ = w.f_sub_(&eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};
    use tch::{Device, Kind};

    /// One SAM step with plain SGD on L(w) = ½(w₁² + 4w₂²) from w = (3, 1), by hand:
    /// g = (3, 4), ‖g‖ = 5, ε̂ = ρ·g/5 = (0.3, 0.4) for ρ = 0.5, so the gradient is taken at
    /// (3.3, 1.4): (3.3, 5.6), and with lr 0.1 the step lands on (3 − 0.33, 1 − 0.56).
    #[test]
    fn sam_step_matches_the_hand_computed_example() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[3f64, 1.]));
        let mut opt = nn::Sgd::default().build(&vs, 0.1).unwrap();
        let loss = |w: &Tensor| {
            let c = Tensor::from_slice(&[1f64, 4.]);
            (w.square() * c).sum(Kind::Double) * 0.5
        };
        let sam = SamConfig {
            rho: 0.5,
            ..Default::default()
        };
        opt.zero_grad();
        loss(&w).backward();
        let p = sam.ascend(&vs.trainable_variables());
        let at = Vec::<f64>::try_from(w.detach()).unwrap();
        assert!(
            (at[0] - 3.3).abs() < 1e-5 && (at[1] - 1.4).abs() < 1e-5,
            "{at:?}"
        );
        opt.zero_grad();
        loss(&w).backward();
        p.restore();
        opt.step();
        let after = Vec::<f64>::try_from(w.detach()).unwrap();
        assert!((after[0] - 2.67).abs() < 1e-5, "{after:?}");
        assert!((after[1] - 0.44).abs() < 1e-5, "{after:?}");
    }

    /// ASAM on the same function from w = (3, 1) with η = 0: T = (3, 1), Tg = (9, 4),
    /// ‖Tg‖ = √97, ε̂ = ρ·T²g/‖Tg‖ = ρ·(27, 4)/√97.
    #[test]
    fn asam_scales_the_ball_by_the_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[3f64, 1.]));
        let loss = (w.square() * Tensor::from_slice(&[1f64, 4.])).sum(Kind::Double) * 0.5;
        loss.backward();
        let sam = SamConfig {
            rho: 0.5,
            adaptive: true,
            eta: 0.0,
        };
        let p = sam.ascend(&vs.trainable_variables());
        let at = Vec::<f64>::try_from(w.detach()).unwrap();
        let n = 97f64.sqrt();
        assert!((at[0] - (3.0 + 0.5 * 27.0 / n)).abs() < 1e-5, "{at:?}");
        assert!((at[1] - (1.0 + 0.5 * 4.0 / n)).abs() < 1e-5, "{at:?}");
        p.restore();
        let back = Vec::<f64>::try_from(w.detach()).unwrap();
        assert!((back[0] - 3.0).abs() < 1e-5 && (back[1] - 1.0).abs() < 1e-5);
    }

    /// Parameters without a gradient (frozen, or unused this step) are not moved, and a zero
    /// gradient moves nothing.
    #[test]
    fn parameters_without_gradient_stay() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[1f64]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[2f64]));
        (&a * 0.0).sum(Kind::Double).backward();
        let p = SamConfig::default().ascend(&vs.trainable_variables());
        assert_eq!(Vec::<f64>::try_from(a.detach()).unwrap(), vec![1.0]);
        assert_eq!(Vec::<f64>::try_from(b.detach()).unwrap(), vec![2.0]);
        p.restore();
    }
}
