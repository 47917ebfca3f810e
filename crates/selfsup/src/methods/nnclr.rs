//! NNCLR (Dwibedi et al. 2021): the positive for a view is the nearest neighbour of its projection
//! in a support set of projections from earlier batches; the other view's prediction must pick it
//! out among the batch (NT-Xent-style, eq. 2), symmetrised.
use super::branch::Branch;
use super::queue::FeatureQueue;
use super::{Method, Progress, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::info_nce::info_nce_in_batch_across;
use crate::objectives::info_nce::l2_normalize_rows as unit_rows;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NnclrConfig {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    #[serde(default = "default_predictor")]
    pub predictor: Vec<Block>,
    /// 98,304 in the paper (§4.1); 8,192 for a 60k-image set.
    #[serde(default = "default_support_size")]
    pub support_size: i64,
    /// τ = 0.1 (§4.1).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

impl Default for NnclrConfig {
    fn default() -> Self {
        NnclrConfig {
            projector: default_projector(),
            predictor: default_predictor(),
            support_size: default_support_size(),
            temperature: default_temperature(),
        }
    }
}

/// Projector: 3 layers, hidden 2048, output 256, BN on each (§4.1) — the shape of MoCo v3's
/// projector, narrowed the same way (hidden 1024).
pub fn default_projector() -> Vec<Block> {
    super::moco_v3::default_projector()
}
/// Predictor: hidden 4096, output 256 (§4.1); hidden 1024 here.
pub fn default_predictor() -> Vec<Block> {
    vec![
        Block::new(1024, true, true, false),
        Block::new(256, false, false, true),
    ]
}
pub fn default_support_size() -> i64 {
    8192
}
pub fn default_temperature() -> f64 {
    0.1
}

pub struct Nnclr {
    branch: Branch,
    predictor: Head,
    support: FeatureQueue,
    temperature: f64,
}

impl Nnclr {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, cfg: &NnclrConfig) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), &cfg.projector);
        let dim = projector.out_dim();
        let predictor = Head::new(&(vs / "predictor"), dim, &cfg.predictor);
        Nnclr {
            branch: Branch {
                encoder,
                head: Box::new(projector),
            },
            predictor,
            support: FeatureQueue::new(&(vs / "support"), cfg.support_size, dim),
            temperature: cfg.temperature,
        }
    }
    /// The support-set row closest (cosine) to each row of `z`.
    fn nearest(&self, z: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let s = self.support.rows();
            let idx = unit_rows(z).matmul(&s.tr()).argmax(1, false);
            s.index_select(0, &idx)
        })
    }
}

impl Method for Nnclr {
    fn name(&self) -> &'static str {
        "nnclr"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    /// The other samples of every rank are the negatives (gathered with their gradients), and
    /// the support set takes every rank's first-view projections, so it stays identical on
    /// every rank.
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let z1 = self.branch.forward(&input.views[0], true);
        let z2 = self.branch.forward(&input.views[1], true);
        let p1 = self.predictor.forward_t(&z1, true);
        let p2 = self.predictor.forward_t(&z2, true);
        let (nn1, nn2) = (self.nearest(&z1), self.nearest(&z2));
        // The support set is refreshed with the first view's projections (§3.1).
        self.support.stage(&comm.gather(&unit_rows(&z1.detach()))?);
        let t = self.temperature;
        let l1 = info_nce_in_batch_across(&nn1, &p2, t, comm)?;
        let l2 = info_nce_in_batch_across(&nn2, &p1, t, comm)?;
        Ok((l1 + l2) * 0.5)
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn after_update(&self, _progress: Progress) {
        self.support.commit();
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.branch.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.branch.encoder.as_ref()
    }
}

impl super::MethodSpec for NnclrConfig {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.temperature", self.temperature)?;
        rules::widths("method.support_size", [self.support_size])?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))?;
        rules::widths("method.predictor", self.predictor.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Nnclr::new(&(vs.root() / "method"), encoder, self)))
    }
}
