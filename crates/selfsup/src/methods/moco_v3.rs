//! MoCo v3 (Chen, Xie & He 2021, Algorithm 1): a query branch with a predictor contrasts against
//! the keys of the other view from a momentum branch, with the other keys of the batch as
//! negatives (no queue); the loss is symmetrised and scaled by 2τ.
use super::branch::{Branch, MomentumBranch};
use super::ema::cosine_momentum;
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::info_nce::info_nce_in_batch_across;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoV3Config {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    #[serde(default = "default_predictor")]
    pub predictor: Vec<Block>,
    /// τ = 1.0 for ResNets in the reference code (0.2 for ViTs).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// m = 0.99, raised to 1 by a cosine schedule (§4, "momentum coefficient").
    #[serde(default = "default_base_momentum")]
    pub base_momentum: f64,
}

impl Default for MocoV3Config {
    fn default() -> Self {
        MocoV3Config {
            projector: default_projector(),
            predictor: default_predictor(),
            temperature: default_temperature(),
            base_momentum: default_base_momentum(),
        }
    }
}

/// Projector: 3 layers, hidden 4096 with BN+ReLU, output 256 with BN (§4); hidden 1024 here.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(1024, true, true, false),
        Block::new(1024, true, true, false),
        Block::new(256, true, false, false),
    ]
}
/// Predictor: 2 layers, hidden 4096 with BN+ReLU, output 256 with BN; hidden 1024 here.
pub fn default_predictor() -> Vec<Block> {
    vec![
        Block::new(1024, true, true, false),
        Block::new(256, true, false, false),
    ]
}
pub fn default_temperature() -> f64 {
    1.0
}
pub fn default_base_momentum() -> f64 {
    0.99
}

pub struct MocoV3 {
    query: Branch,
    predictor: Head,
    key: MomentumBranch,
    temperature: f64,
    base_momentum: f64,
}

impl MocoV3 {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &MocoV3Config,
    ) -> anyhow::Result<Self> {
        let p = vs.root() / "method";
        let projector = Head::new(&(&p / "projector"), encoder.out_dim(), &cfg.projector);
        let predictor = Head::new(&(&p / "predictor"), projector.out_dim(), &cfg.predictor);
        let (d, blocks) = (encoder.out_dim(), cfg.projector.clone());
        let key = MomentumBranch::new(vs, make_encoder, "projector", move |p| {
            Box::new(Head::new(p, d, &blocks))
        })?;
        Ok(MocoV3 {
            query: Branch {
                encoder,
                head: Box::new(projector),
            },
            predictor,
            key,
            temperature: cfg.temperature,
            base_momentum: cfg.base_momentum,
        })
    }
}

impl Method for MocoV3 {
    fn name(&self) -> &'static str {
        "moco_v3"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    /// The keys of every rank are the negatives (gathered; they carry no gradient, the key
    /// encoder being a momentum copy), as the authors' `concat_all_gather`.
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let (v1, v2) = (&input.views[0], &input.views[1]);
        let q1 = self
            .predictor
            .forward_t(&self.query.forward(v1, true), true);
        let q2 = self
            .predictor
            .forward_t(&self.query.forward(v2, true), true);
        let (k1, k2) = (self.key.forward(v1), self.key.forward(v2));
        let t = self.temperature;
        let l1 = info_nce_in_batch_across(&q1, &k2, t, comm)?;
        let l2 = info_nce_in_batch_across(&q2, &k1, t, comm)?;
        Ok((l1 + l2) * (2.0 * t))
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn after_update(&self, progress: Progress) {
        self.key
            .update(cosine_momentum(self.base_momentum, progress.fraction()));
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.query.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.query.encoder.as_ref()
    }
}

impl super::MethodSpec for MocoV3Config {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.temperature", self.temperature)?;
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
        Ok(Box::new(MocoV3::new(vs, encoder, make_encoder, self)?))
    }
}
