//! BGRL (Thakoor et al., ICLR 2022): bootstrapped graph latents — an online encoder + predictor
//! regresses the embedding an EMA target encoder gives another view; no negatives.
//!
//! ```text
//! G1, G2 = two views (edge dropping, feature-column masking; different rates)
//! q1 = pred(online(G1)),  y2 = target(G2);  q2, y1 likewise
//! loss = 2 − mean cos(q1, sg(y2)) − mean cos(q2, sg(y1))
//! after each step: θ_target ← m θ_target + (1 − m) θ_online,  m: 0.99 → 1 on a cosine
//! ```
//! The target starts from its own random initialisation, as in the reference implementation.
use super::GraphMethod;
use crate::views::graph::batch::GraphBatch;
use crate::encoders::EncoderConfig;
use crate::encoders::graph::{self as encoders, Activation, ActivationKind, NodeEncoder};
use crate::objectives::graph::bgrl_loss;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgrlConfig {
    pub drop_edge: [f64; 2],
    pub drop_feature: [f64; 2],
    /// Hidden width of the predictor (512 in the paper).
    #[serde(default = "pred_hidden")]
    pub predictor_hidden: i64,
    /// Starting EMA rate (0.99).
    #[serde(default = "base_momentum")]
    pub base_momentum: f64,
}

fn pred_hidden() -> i64 {
    512
}
fn base_momentum() -> f64 {
    0.99
}

/// The views of BGRL on Cora as GraphMAE's authors ran it (THUDM/GraphMAE issue 4: edge drop
/// 0.5 / 0.3, feature-column drop 0.2 / 0.5), with the paper's predictor width and EMA start.
impl Default for BgrlConfig {
    fn default() -> Self {
        BgrlConfig {
            drop_edge: [0.5, 0.3],
            drop_feature: [0.2, 0.5],
            predictor_hidden: pred_hidden(),
            base_momentum: base_momentum(),
        }
    }
}

#[derive(Debug)]
pub struct Bgrl {
    cfg: BgrlConfig,
    online: Box<dyn NodeEncoder>,
    target: Box<dyn NodeEncoder>,
    pred1: nn::Linear,
    pred_act: Activation,
    pred2: nn::Linear,
    /// `(target, online)` trainable-parameter pairs for the EMA update.
    pairs: Vec<(Tensor, Tensor)>,
}

impl Bgrl {
    pub fn new(
        vs: &nn::VarStore,
        cfg: &BgrlConfig,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Self> {
        let p = &vs.root();
        let online = encoders::build(encoder, &(p / "online"), in_dim)?;
        // The target sits in the run's store under `target`, so checkpoints carry it; its
        // tensors do not require gradients, so the optimiser never sees them — only the EMA
        // moves them. (It is initialised on its own, after the online encoder.)
        let target = encoders::build(encoder, &(p / "target"), in_dim)?;
        let d = online.out_dim();
        let online_vars = p.sub("online");
        let target_vars = p.sub("target");
        let mut pairs = Vec::new();
        let mut names: Vec<String> = vs
            .variables()
            .into_keys()
            .filter_map(|k| k.strip_prefix("target.").map(str::to_string))
            .collect();
        names.sort();
        for name in names {
            // Variable names are dotted paths; `Path::get` takes the last component only.
            let parts: Vec<&str> = name.split('.').collect();
            let (last, dirs) = parts.split_last().expect("a variable has a name");
            let (mut o, mut t) = (online_vars.clone(), target_vars.clone());
            for d in dirs {
                o = o.sub(*d);
                t = t.sub(*d);
            }
            if let (Some(o), Some(t)) = (o.get(last), t.get(last)) {
                if o.requires_grad() {
                    let _ = t.shallow_clone().set_requires_grad(false);
                    pairs.push((t, o));
                }
            }
        }
        Ok(Bgrl {
            cfg: cfg.clone(),
            online,
            target,
            pred1: crate::torch_init::linear(p / "pred1", d, cfg.predictor_hidden, true),
            pred_act: Activation::new(&(p / "pred_act"), ActivationKind::Prelu),
            pred2: crate::torch_init::linear(p / "pred2", cfg.predictor_hidden, d, true),
            pairs,
        })
    }

    fn predict(&self, h: &Tensor) -> Tensor {
        self.pred_act
            .apply(&h.apply(&self.pred1))
            .apply(&self.pred2)
    }
}

impl GraphMethod for Bgrl {
    fn loss(&self, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let views: Vec<_> = (0..2)
            .map(|k| b.dropped_view(self.cfg.drop_edge[k], self.cfg.drop_feature[k], rng))
            .collect();
        let q1 = self.predict(&self.online.forward(&views[0].0, &views[0].1, true));
        let q2 = self.predict(&self.online.forward(&views[1].0, &views[1].1, true));
        let (y1, y2) = {
            let _g = tch::no_grad_guard();
            (
                self.target.forward(&views[0].0, &views[0].1, true),
                self.target.forward(&views[1].0, &views[1].1, true),
            )
        };
        bgrl_loss(&q1, &y2, &q2, &y1)
    }

    fn embed(&self, batch: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.online.forward(&batch.input, &batch.index, false)
    }

    fn after_step(&self, progress: f64) {
        let m = ema_rate(self.cfg.base_momentum, progress);
        let _g = tch::no_grad_guard();
        for (t, o) in &self.pairs {
            let mut t = t.shallow_clone();
            let _ = t.g_mul_scalar_(m);
            let _ = t.g_add_(&(o * (1.0 - m)));
        }
    }
}

/// BGRL's EMA rate at `progress` ∈ [0, 1]: `1 − (1 − m₀)(1 + cos πt)/2`, from m₀ to 1.
pub fn ema_rate(base: f64, progress: f64) -> f64 {
    1.0 - (1.0 - base) * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos()) / 2.0
}


impl super::MethodSpec for BgrlConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        for r in self.drop_edge {
            rules::probability("method.drop_edge", r)?;
        }
        for r in self.drop_feature {
            rules::probability("method.drop_feature", r)?;
        }
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::widths("method.predictor_hidden", [self.predictor_hidden])
    }
    fn build_graph(
        &self,
        vs: &nn::VarStore,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Box<dyn super::GraphMethod>> {
        Ok(Box::new(Bgrl::new(vs, self, encoder, in_dim)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::graph::gcn::GcnConfig;
    use tch::{Device, Kind};

    #[test]
    fn ema_update_follows_its_formula_and_the_target_is_frozen() {
        assert!((ema_rate(0.99, 0.0) - 0.99).abs() < 1e-12);
        assert!((ema_rate(0.99, 1.0) - 1.0).abs() < 1e-12);
        assert!((ema_rate(0.99, 0.5) - 0.995).abs() < 1e-12);
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = EncoderConfig::Gcn(GcnConfig {
            dims: vec![4],
            activation: ActivationKind::Prelu,
            dropout: 0.0,
            batch_norm: false,
        });
        let cfg = BgrlConfig {
            drop_edge: [0.1, 0.2],
            drop_feature: [0.1, 0.2],
            predictor_hidden: 8,
            base_momentum: 0.9,
        };
        let m = Bgrl::new(&vs, &cfg, &enc, 3).unwrap();
        assert_eq!(
            m.pairs.len(),
            3,
            "weight, bias and PReLU slope of one GCN layer"
        );
        assert!(m
            .pairs
            .iter()
            .all(|(t, o)| !t.requires_grad() && o.requires_grad()));
        let before: Vec<(Tensor, Tensor)> =
            m.pairs.iter().map(|(t, o)| (t.copy(), o.copy())).collect();
        m.after_step(0.0);
        for ((t, _), (t0, o0)) in m.pairs.iter().zip(&before) {
            let expect = t0 * 0.9 + o0 * 0.1;
            assert!((t - expect).abs().max().double_value(&[]) < 1e-6);
        }
        let _ = Kind::Float;
    }
}
