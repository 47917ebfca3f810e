//! BYOL (Grill et al. 2020): an online network (encoder → projector → predictor) predicts the
//! projection of the other view made by a target network, an exponential moving average of the
//! online encoder and projector; no negatives.
use super::branch::{Branch, MomentumBranch};
use super::ema::cosine_momentum;
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::byol::normalized_mse;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByolConfig {
    #[serde(default = "default_head")]
    pub projector: Vec<Block>,
    #[serde(default = "default_head")]
    pub predictor: Vec<Block>,
    /// τ_base = 0.996 (§3.3), raised to 1 by a cosine schedule over training.
    #[serde(default = "default_base_momentum")]
    pub base_momentum: f64,
}

impl Default for ByolConfig {
    fn default() -> Self {
        ByolConfig {
            projector: default_head(),
            predictor: default_head(),
            base_momentum: default_base_momentum(),
        }
    }
}

/// Projector and predictor in the paper: Linear(4096) → BN → ReLU → Linear(256) (§3.3); the hidden
/// layer narrowed to 1024 for small images and CPUs.
pub fn default_head() -> Vec<Block> {
    vec![
        Block::new(1024, true, true, true),
        Block::new(256, false, false, true),
    ]
}
pub fn default_base_momentum() -> f64 {
    0.996
}

pub struct Byol {
    online: Branch,
    predictor: Head,
    target: MomentumBranch,
    base_momentum: f64,
}

impl Byol {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &ByolConfig,
    ) -> anyhow::Result<Self> {
        let p = vs.root() / "method";
        let projector = Head::new(&(&p / "projector"), encoder.out_dim(), &cfg.projector);
        let predictor = Head::new(&(&p / "predictor"), projector.out_dim(), &cfg.predictor);
        let (d, blocks) = (encoder.out_dim(), cfg.projector.clone());
        let target = MomentumBranch::new(vs, make_encoder, "projector", move |p| {
            Box::new(Head::new(p, d, &blocks))
        })?;
        Ok(Byol {
            online: Branch {
                encoder,
                head: Box::new(projector),
            },
            predictor,
            target,
            base_momentum: cfg.base_momentum,
        })
    }
}

impl Method for Byol {
    fn name(&self) -> &'static str {
        "byol"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let (v1, v2) = (&input.views[0], &input.views[1]);
        let p1 = self
            .predictor
            .forward_t(&self.online.forward(v1, true), true);
        let p2 = self
            .predictor
            .forward_t(&self.online.forward(v2, true), true);
        let (z1, z2) = (self.target.forward(v1), self.target.forward(v2));
        // Symmetrised loss (eq. 2 and the sentence after it): each view predicts the other's target.
        normalized_mse(&p1, &z2) + normalized_mse(&p2, &z1)
    }
    fn after_update(&self, progress: Progress) {
        self.target
            .update(cosine_momentum(self.base_momentum, progress.fraction()));
    }
    /// Per-sample terms: trains across processes as it is; BYOL's EMA target follows the averaged update identically on every rank.
    fn per_sample_loss(&self) -> bool {
        true
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.online.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.online.encoder.as_ref()
    }
}

impl super::MethodSpec for ByolConfig {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))?;
        rules::widths("method.predictor", self.predictor.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Byol::new(vs, encoder, make_encoder, self)?))
    }
}
