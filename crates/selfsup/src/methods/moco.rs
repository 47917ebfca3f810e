//! MoCo v2 (Chen et al. 2020, "Improved baselines…"; He et al. 2020, Algorithm 1): a query
//! encoder is trained to pick its key (the other view through a momentum key encoder) out of a
//! queue of keys from earlier batches.
//!
//! Across processes the keys of every rank are enqueued (`loss_across`).
//! Not reproduced: shuffling batch norm across devices. On one device the query and key batches
//! go through separate forward passes, each with its own batch statistics, as in single-GPU
//! re-implementations.
use super::branch::{Branch, MomentumBranch};
use super::queue::FeatureQueue;
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::distributed::{Alone, Collective};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::info_nce::l2_normalize_rows as unit_rows;
use crate::objectives::info_nce::moco_queue_loss;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoV2Config {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    /// K = 65,536 in the paper; 4,096 keeps the queue fresh on a 60k-image set.
    #[serde(default = "default_queue")]
    pub queue_size: i64,
    /// τ = 0.2 (MoCo v2, §2).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// m = 0.999, constant (He et al. 2020, §3.2).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Also let view 2 query view 1's key (the original is one-directional).
    #[serde(default)]
    pub symmetric: bool,
}

impl Default for MocoV2Config {
    fn default() -> Self {
        MocoV2Config {
            projector: default_projector(),
            queue_size: default_queue(),
            temperature: default_temperature(),
            momentum: default_momentum(),
            symmetric: false,
        }
    }
}

/// MoCo v2's MLP head: Linear(2048) → ReLU → Linear(128), no batch norm; 512 wide here.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, false, true, true),
        Block::new(128, false, false, true),
    ]
}
pub fn default_queue() -> i64 {
    4096
}
pub fn default_temperature() -> f64 {
    0.2
}
pub fn default_momentum() -> f64 {
    0.999
}

pub struct MocoV2 {
    query: Branch,
    key: MomentumBranch,
    queue: FeatureQueue,
    temperature: f64,
    momentum: f64,
    symmetric: bool,
}

impl MocoV2 {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &MocoV2Config,
    ) -> anyhow::Result<Self> {
        let p = vs.root() / "method";
        let projector = Head::new(&(&p / "projector"), encoder.out_dim(), &cfg.projector);
        let dim = projector.out_dim();
        let (d, blocks) = (encoder.out_dim(), cfg.projector.clone());
        let key = MomentumBranch::new(vs, make_encoder, "projector", move |p| {
            Box::new(Head::new(p, d, &blocks))
        })?;
        let queue = FeatureQueue::new(&(&p / "queue"), cfg.queue_size, dim);
        Ok(MocoV2 {
            query: Branch {
                encoder,
                head: Box::new(projector),
            },
            key,
            queue,
            temperature: cfg.temperature,
            momentum: cfg.momentum,
            symmetric: cfg.symmetric,
        })
    }
}

impl Method for MocoV2 {
    fn name(&self) -> &'static str {
        "moco_v2"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    /// Each query's loss is its own (its key and the shared queue), so the mean over ranks is
    /// the one-process loss; the keys every rank enqueues are all ranks' keys in rank order,
    /// so the queue stays the one-process queue on every rank.
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let (v1, v2) = (&input.views[0], &input.views[1]);
        let q1 = self.query.forward(v1, true);
        let k2 = unit_rows(&self.key.forward(v2));
        let loss = moco_queue_loss(&q1, &k2, self.queue.rows(), self.temperature);
        if !self.symmetric {
            self.queue.stage(&comm.gather(&k2.detach())?);
            return Ok(loss);
        }
        let q2 = self.query.forward(v2, true);
        let k1 = unit_rows(&self.key.forward(v1));
        let keys = [comm.gather(&k2.detach())?, comm.gather(&k1.detach())?];
        self.queue.stage(&Tensor::cat(&keys, 0));
        Ok((loss + moco_queue_loss(&q2, &k1, self.queue.rows(), self.temperature)) * 0.5)
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn after_update(&self, _progress: Progress) {
        // Algorithm 1 updates the key encoder before computing this step's keys; updating right
        // after the previous step's optimiser update is the same sequence.
        self.key.update(self.momentum);
        self.queue.commit();
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.query.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.query.encoder.as_ref()
    }
}

impl super::MethodSpec for MocoV2Config {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.temperature", self.temperature)?;
        rules::momentum("method.momentum", self.momentum)?;
        rules::widths("method.queue_size", [self.queue_size])?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(MocoV2::new(vs, encoder, make_encoder, self)?))
    }
}
