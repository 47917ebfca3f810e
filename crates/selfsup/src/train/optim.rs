//! Optimisers written on tensors, so that their whole state is ours to checkpoint and restore
//! (libtorch's C++ optimisers do not expose their state through tch).
//!
//! Update rules follow the papers / PyTorch's documented formulas:
//! * SGD with momentum (and Nesterov), L2 weight decay added to the gradient;
//! * Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov & Hutter 2019) with
//!   decoupled weight decay, optionally not applied to biases and normalisation parameters (what
//!   MAE, DINO and I-JEPA do: their parameter groups put every 1-D tensor at weight decay 0);
//! * LARS (You et al. 2017) as used by SimCLR/BYOL/Barlow Twins: per-layer trust ratio
//!   η‖w‖/‖g + wd·w‖, biases and normalisation parameters excluded from decay and adaptation.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn::VarStore, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        #[serde(default = "momentum")]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        nesterov: bool,
    },
    Adam {
        lr: f64,
        #[serde(default = "betas")]
        betas: [f64; 2],
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Adamw {
        lr: f64,
        #[serde(default = "betas")]
        betas: [f64; 2],
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
        /// Leave 1-D parameters (biases, norm scales) out of the decay. Off by default, so
        /// existing recipes keep their figures; MAE/DINO/I-JEPA's code turns it on.
        #[serde(default)]
        exclude_bias_and_norm: bool,
    },
    Lars {
        lr: f64,
        #[serde(default = "momentum")]
        momentum: f64,
        #[serde(default = "lars_decay")]
        weight_decay: f64,
        /// η of the LARS paper (0.001).
        #[serde(default = "trust")]
        trust_coefficient: f64,
        /// Leave 1-D parameters (biases, norm scales) out of decay and adaptation (SimCLR §B.1).
        #[serde(default = "yes")]
        exclude_bias_and_norm: bool,
    },
}

fn momentum() -> f64 {
    0.9
}
fn betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn adam_eps() -> f64 {
    1e-8
}
fn adamw_decay() -> f64 {
    1e-2
}
fn lars_decay() -> f64 {
    1e-6
}
fn trust() -> f64 {
    1e-3
}
fn yes() -> bool {
    true
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Lars { lr, .. } => *lr,
        }
    }
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::Adamw { weight_decay, .. }
            | OptimizerConfig::Lars { weight_decay, .. } => *weight_decay,
        }
    }
}

/// An optimiser over the trainable variables of a [`VarStore`], in name order.
pub struct Optimizer {
    cfg: OptimizerConfig,
    params: Vec<(String, Tensor)>,
    /// Per-parameter buffers, keyed `"<param>/<buffer>"`.
    state: BTreeMap<String, Tensor>,
    /// Number of updates applied (Adam's bias correction needs it).
    pub steps: u64,
}

impl Optimizer {
    pub fn new(cfg: OptimizerConfig, vs: &VarStore) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers: &[&str] = match cfg {
            OptimizerConfig::Adam { .. } | OptimizerConfig::Adamw { .. } => {
                &["exp_avg", "exp_avg_sq"]
            }
            OptimizerConfig::Sgd { momentum, .. } | OptimizerConfig::Lars { momentum, .. }
                if momentum > 0.0 =>
            {
                &["momentum"]
            }
            _ => &[],
        };
        let mut state = BTreeMap::new();
        for (name, p) in &params {
            for b in buffers {
                state.insert(format!("{name}/{b}"), p.zeros_like());
            }
        }
        Optimizer {
            cfg,
            params,
            state,
            steps: 0,
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// Global L2 norm of all gradients (a 0-d tensor; no host sync).
    pub fn grad_norm(&self) -> Tensor {
        let norms: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .map(|g| g.square().sum(Kind::Float))
            .collect();
        if norms.is_empty() {
            return Tensor::from(0f32);
        }
        Tensor::stack(&norms, 0).sum(Kind::Float).sqrt()
    }

    /// Scales gradients so that their global norm is at most `max_norm` (no host sync).
    pub fn clip_grad_norm(&mut self, norm: &Tensor, max_norm: f64) {
        let _guard = tch::no_grad_guard();
        let coef = (norm + 1e-6)
            .reciprocal()
            .g_mul_scalar(max_norm)
            .clamp_max(1.0);
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.g_mul_(&coef);
            }
        }
    }

    /// Applies one update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.steps += 1;
        let t = self.steps as i32;
        for (name, p) in &mut self.params {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            match self.cfg {
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                    ..
                } => {
                    let g = if weight_decay != 0.0 {
                        &g + &*p * weight_decay
                    } else {
                        g
                    };
                    let d = momentum_direction(&mut self.state, name, g, momentum, nesterov);
                    let _ = p.g_sub_(&(d * lr));
                }
                OptimizerConfig::Adam {
                    betas,
                    eps,
                    weight_decay,
                    ..
                }
                | OptimizerConfig::Adamw {
                    betas,
                    eps,
                    weight_decay,
                    ..
                } => {
                    let (decoupled, exclude_1d) = match self.cfg {
                        OptimizerConfig::Adamw {
                            exclude_bias_and_norm,
                            ..
                        } => (true, exclude_bias_and_norm),
                        _ => (false, false),
                    };
                    let weight_decay = if exclude_1d && p.dim() <= 1 {
                        0.0
                    } else {
                        weight_decay
                    };
                    let g = if weight_decay != 0.0 && !decoupled {
                        &g + &*p * weight_decay
                    } else {
                        g
                    };
                    if decoupled && weight_decay != 0.0 {
                        let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                    }
                    let [b1, b2] = betas;
                    let m = &mut self
                        .state
                        .get_mut(&format!("{name}/exp_avg"))
                        .expect("state made in new()");
                    let _ = m.lerp_(&g, 1.0 - b1);
                    let m = m.shallow_clone();
                    let v = self
                        .state
                        .get_mut(&format!("{name}/exp_avg_sq"))
                        .expect("state made in new()");
                    let _ = v.g_mul_scalar_(b2);
                    let _ = v.g_add_(&(g.square() * (1.0 - b2)));
                    let bc1 = 1.0 - b1.powi(t);
                    let bc2 = 1.0 - b2.powi(t);
                    let denom = v.sqrt() / bc2.sqrt() + eps;
                    let _ = p.g_sub_(&(m / denom * (lr / bc1)));
                }
                OptimizerConfig::Lars {
                    momentum,
                    weight_decay,
                    trust_coefficient,
                    exclude_bias_and_norm,
                    ..
                } => {
                    let adapt = !(exclude_bias_and_norm && p.dim() <= 1);
                    let mut g = g;
                    if adapt {
                        if weight_decay != 0.0 {
                            g = &g + &*p * weight_decay;
                        }
                        // trust = η‖w‖/‖g‖, or 1 where either norm is zero (LARS paper, eq. 6).
                        let wn = p.norm();
                        let gn = g.norm();
                        let ratio = (&wn * trust_coefficient / &gn).where_self(
                            &(wn.gt(0.0).logical_and(&gn.gt(0.0))),
                            &Tensor::ones_like(&wn),
                        );
                        g = g * ratio;
                    }
                    let d = momentum_direction(&mut self.state, name, g, momentum, false);
                    let _ = p.g_sub_(&(d * lr));
                }
            }
        }
    }

    /// Everything needed to continue exactly: the buffers, named, and the step count.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.state
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    }

    /// Restores buffers saved by [`Optimizer::state_tensors`]; names and shapes must match.
    pub fn load_state(&mut self, tensors: Vec<(String, Tensor)>, steps: u64) -> Result<()> {
        let mut given: BTreeMap<String, Tensor> = tensors.into_iter().collect();
        let _guard = tch::no_grad_guard();
        for (k, v) in self.state.iter_mut() {
            match given.remove(k) {
                Some(t) if t.size() == v.size() => {
                    let _ = v.copy_(&t);
                }
                Some(t) => bail!(
                    "optimizer state {k}: shape {:?} in the checkpoint, {:?} in the model",
                    t.size(),
                    v.size()
                ),
                None => bail!("optimizer state {k} missing from the checkpoint"),
            }
        }
        if let Some(k) = given.keys().next() {
            bail!("the checkpoint has optimizer state {k} that this model does not have");
        }
        self.steps = steps;
        Ok(())
    }
}

/// Heavy-ball momentum buffer update `buf = μ·buf + g` (first step: `buf = g`, as PyTorch);
/// returns the step direction.
fn momentum_direction(
    state: &mut BTreeMap<String, Tensor>,
    name: &str,
    g: Tensor,
    momentum: f64,
    nesterov: bool,
) -> Tensor {
    if momentum == 0.0 {
        return g;
    }
    let buf = state
        .get_mut(&format!("{name}/momentum"))
        .expect("state made in new()");
    let _ = buf.g_mul_scalar_(momentum);
    let _ = buf.g_add_(&g);
    if nesterov {
        g + &*buf * momentum
    } else {
        buf.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    fn one_param(values: &[f32]) -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let p = vs.root().var_copy("w", &Tensor::from_slice(values));
        (vs, p)
    }

    fn set_grad(p: &Tensor, g: &[f32]) {
        let mut grad = p.grad();
        if !grad.defined() {
            (p * Tensor::from_slice(g)).sum(Kind::Float).backward();
        } else {
            let _ = grad.copy_(&Tensor::from_slice(g));
        }
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let (vs, p) = one_param(&[1.0, -2.0]);
        let mut o = Optimizer::new(
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            },
            &vs,
        );
        set_grad(&p, &[1.0, 2.0]);
        o.step(0.1); // buf = g; p = p - 0.1 g
        close(&values(&p), &[0.9, -2.2]);
        set_grad(&p, &[1.0, 2.0]);
        o.step(0.1); // buf = 0.9 g + g = 1.9 g
        close(&values(&p), &[0.9 - 0.19, -2.2 - 0.38]);
    }

    #[test]
    fn adam_first_step_moves_by_lr_and_adamw_decays() {
        // Adam's first step is lr·g/|g| (bias-corrected moments are g and g²), up to eps.
        let (vs, p) = one_param(&[1.0, -2.0]);
        let mut o = Optimizer::new(
            OptimizerConfig::Adam {
                lr: 0.01,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0,
            },
            &vs,
        );
        set_grad(&p, &[0.5, -3.0]);
        o.step(0.01);
        close(&values(&p), &[0.99, -1.99]);
        // Second step with the same gradient: m̂ = g, v̂ = g² again, so another lr·sign(g).
        set_grad(&p, &[0.5, -3.0]);
        o.step(0.01);
        close(&values(&p), &[0.98, -1.98]);

        let (vs, p) = one_param(&[1.0]);
        let mut o = Optimizer::new(
            OptimizerConfig::Adamw {
                lr: 0.1,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.5,
                exclude_bias_and_norm: false,
            },
            &vs,
        );
        set_grad(&p, &[2.0]);
        o.step(0.1); // p·(1 − 0.1·0.5) − 0.1·sign(g)
        close(&values(&p), &[0.95 - 0.1]);
    }

    #[test]
    fn adamw_can_leave_biases_and_norm_scales_undecayed() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, 1.0]).view([1, 2]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[1.0f32]));
        let mut o = Optimizer::new(
            OptimizerConfig::Adamw {
                lr: 0.1,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.5,
                exclude_bias_and_norm: true,
            },
            &vs,
        );
        ((&w * 2.0).sum(Kind::Float) + (&b * 2.0).sum(Kind::Float)).backward();
        o.step(0.1);
        // The matrix is decayed, p·(1 − 0.05) − 0.1; the bias only takes the Adam step, 1 − 0.1.
        close(&values(&w.view([-1])), &[0.85, 0.85]);
        close(&values(&b), &[0.9]);
    }

    #[test]
    fn lars_scales_by_trust_ratio_and_skips_biases() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[3.0f32, 4.0]).view([1, 2])); // ‖w‖ = 5
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[1.0f32]));
        let mut o = Optimizer::new(
            OptimizerConfig::Lars {
                lr: 1.0,
                momentum: 0.0,
                weight_decay: 0.0,
                trust_coefficient: 0.01,
                exclude_bias_and_norm: true,
            },
            &vs,
        );
        ((&w * Tensor::from_slice(&[0.0f32, 2.0]).view([1, 2])).sum(Kind::Float)
            + (&b * 2.0).sum(Kind::Float))
        .backward(); // ‖g‖ = 2
        o.step(1.0);
        // w: g·(0.01·5/2) = [0, 0.05]; b: unadapted, −2.
        close(&values(&w.view([-1])), &[3.0, 3.95]);
        close(&values(&b), &[-1.0]);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let (vs, p) = one_param(&[0.0, 0.0]);
        let mut o = Optimizer::new(
            OptimizerConfig::Sgd {
                lr: 1.0,
                momentum: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
            &vs,
        );
        set_grad(&p, &[3.0, 4.0]);
        let n = o.grad_norm();
        assert!((f64::try_from(&n).unwrap() - 5.0).abs() < 1e-6);
        o.clip_grad_norm(&n, 1.0);
        assert!((f64::try_from(&o.grad_norm()).unwrap() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn state_round_trips_and_mismatches_are_refused() {
        let (vs, p) = one_param(&[1.0, 2.0]);
        let cfg = OptimizerConfig::Adamw {
            lr: 0.1,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            exclude_bias_and_norm: false,
        };
        let mut o = Optimizer::new(cfg.clone(), &vs);
        set_grad(&p, &[1.0, 1.0]);
        o.step(0.1);
        let saved = o.state_tensors();
        let (vs2, _) = one_param(&[0.0, 0.0]);
        let mut o2 = Optimizer::new(cfg.clone(), &vs2);
        o2.load_state(
            saved.iter().map(|(k, v)| (k.clone(), v.copy())).collect(),
            o.steps,
        )
        .unwrap();
        for ((k1, a), (k2, b)) in o.state_tensors().iter().zip(o2.state_tensors().iter()) {
            assert_eq!(k1, k2);
            assert!(a.equal(b));
        }
        let bad = vec![(
            "w/exp_avg".to_string(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        )];
        assert!(o2.load_state(bad, 1).is_err());
        let _ = nn::VarStore::new(Device::Cpu);
    }
}
