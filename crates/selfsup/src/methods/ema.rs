//! Exponential-moving-average (momentum) targets: BYOL's target network, MoCo's key encoder,
//! DINO's teacher. The target is a second copy of the online modules, built under its own path of
//! the same `VarStore` (so it is checkpointed with the model) and never trained by gradients.
use anyhow::{ensure, Result};
use tch::{nn::VarStore, Tensor};

/// Cosine increase of the momentum from `base` to 1 over training (BYOL §3.2:
/// τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2; also MoCo v3 and DINO).
pub fn cosine_momentum(base: f64, fraction: f64) -> f64 {
    let f = fraction.clamp(0.0, 1.0);
    1.0 - (1.0 - base) * ((std::f64::consts::PI * f).cos() + 1.0) / 2.0
}

/// Pairs of (online parameter, target parameter).
pub struct EmaTarget {
    pairs: Vec<(Tensor, Tensor)>,
}

impl EmaTarget {
    /// Pairs every trainable variable named `<online>.<rest>` with `<target>.<rest>` for each
    /// `(online, target)` prefix, copies the online values into the target and takes the target
    /// out of training. The target's non-trainable buffers (batch-norm statistics) are left to its
    /// own forward passes, as in the reference implementations.
    pub fn bind(vs: &VarStore, prefixes: &[(&str, &str)]) -> Result<EmaTarget> {
        let vars = vs.variables();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let mut pairs = Vec::new();
        for (online, target) in prefixes {
            let (op, tp) = (format!("{online}."), format!("{target}."));
            let mut n_online = 0;
            for name in &names {
                let Some(rest) = name.strip_prefix(&op) else {
                    continue;
                };
                let o = &vars[*name];
                let tname = format!("{tp}{rest}");
                let t = vars.get(&tname);
                ensure!(
                    t.is_some(),
                    "EMA target has no variable {tname} to pair with {name}"
                );
                let t = t.unwrap();
                ensure!(
                    t.size() == o.size(),
                    "EMA target {tname} has shape {:?}, online {name} {:?}",
                    t.size(),
                    o.size()
                );
                if o.requires_grad() {
                    n_online += 1;
                    pairs.push((o.shallow_clone(), t.shallow_clone()));
                }
                // Buffers start equal too; parameters of the target are never trained.
                tch::no_grad(|| t.shallow_clone().copy_(o));
                let _ = t.shallow_clone().set_requires_grad(false);
            }
            ensure!(n_online > 0, "no trainable variables under {online}");
        }
        Ok(EmaTarget { pairs })
    }

    /// target ← m·target + (1 − m)·online.
    pub fn update(&self, momentum: f64) {
        tch::no_grad(|| {
            for (o, t) in &self.pairs {
                let mut t = t.shallow_clone();
                let _ = t.g_mul_scalar_(momentum);
                let _ = t.g_add_(&(o * (1.0 - momentum)));
            }
        });
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn cosine_momentum_runs_from_base_to_one() {
        assert!((cosine_momentum(0.996, 0.0) - 0.996).abs() < 1e-12);
        assert!((cosine_momentum(0.996, 1.0) - 1.0).abs() < 1e-12);
        // Half-way: cos(π/2) = 0, so τ = 1 − 0.004/2.
        assert!((cosine_momentum(0.996, 0.5) - 0.998).abs() < 1e-12);
    }

    #[test]
    fn target_starts_equal_follows_the_formula_and_gets_no_gradient() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let online = nn::linear(&root / "online", 3, 2, Default::default());
        let target = nn::linear(&root / "target", 3, 2, Default::default());
        let ema = EmaTarget::bind(&vs, &[("online", "target")]).unwrap();
        assert_eq!(ema.len(), 2);
        assert!(online.ws.equal(&target.ws));
        assert!(!target.ws.requires_grad());
        // Optimiser view: only the online parameters are trainable now.
        let trainable = vs
            .variables()
            .values()
            .filter(|t| t.requires_grad())
            .count();
        assert_eq!(trainable, 2);
        let before = target.ws.copy();
        tch::no_grad(|| {
            let _ = online.ws.shallow_clone().g_add_scalar_(1.0);
        });
        ema.update(0.9);
        // 0.9·w + 0.1·(w + 1) = w + 0.1
        let diff = (&target.ws - &before - 0.1).abs().max();
        assert!(f64::try_from(diff).unwrap() < 1e-6);
        let y = target.ws.sum(Kind::Float);
        assert!(!y.requires_grad());
    }

    #[test]
    fn a_missing_target_variable_is_an_error() {
        let vs = VarStore::new(Device::Cpu);
        let _online = nn::linear(vs.root() / "online", 3, 2, Default::default());
        let _target = nn::linear(
            vs.root() / "target",
            3,
            2,
            nn::LinearConfig {
                bias: false,
                ..Default::default()
            },
        );
        let e = EmaTarget::bind(&vs, &[("online", "target")]).err().unwrap();
        assert!(e.to_string().contains("target.bias"), "{e}");
    }
}
