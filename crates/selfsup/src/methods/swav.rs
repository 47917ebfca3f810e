//! SwAV (Caron et al. 2020): prototype assignments ("codes") of one crop, computed with the
//! Sinkhorn-Knopp equipartition, are predicted from the other crops (swapped prediction).
//!
//! Not included: the feature queue the paper adds for batches under 256 (§4.3 / App.); batches
//! here must be large enough for the equipartition on their own.
use super::branch::Branch;
use super::{Method, Progress, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::info_nce::l2_normalize_rows as unit_rows;
use crate::distributed::{Alone, Collective};
use crate::objectives::swav::{self, swav_loss_across};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwavConfig {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    /// K = 3000 prototypes (ImageNet, §4.1); 300 keeps ~30 per class for ten classes.
    #[serde(default = "default_prototypes")]
    pub prototypes: i64,
    /// τ = 0.1 (§4.1).
    #[serde(default = "swav::default_temperature")]
    pub temperature: f64,
    /// ε = 0.05 and 3 Sinkhorn iterations (§4.1, App. A.1).
    #[serde(default = "swav::default_epsilon")]
    pub epsilon: f64,
    #[serde(default = "swav::default_iters")]
    pub sinkhorn_iters: usize,
    /// The prototypes are frozen during the first epoch (§4.1, "freeze the prototypes").
    #[serde(default = "default_freeze_epochs")]
    pub freeze_prototypes_epochs: f64,
}

impl Default for SwavConfig {
    fn default() -> Self {
        SwavConfig {
            projector: default_projector(),
            prototypes: default_prototypes(),
            temperature: swav::default_temperature(),
            epsilon: swav::default_epsilon(),
            sinkhorn_iters: swav::default_iters(),
            freeze_prototypes_epochs: default_freeze_epochs(),
        }
    }
}

/// Linear(2048) → BN → ReLU → Linear(128) (§4.1); hidden 512 here.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, true, true, true),
        Block::new(128, false, false, true),
    ]
}
pub fn default_prototypes() -> i64 {
    300
}
pub fn default_freeze_epochs() -> f64 {
    1.0
}

pub struct Swav {
    branch: Branch,
    /// Prototype vectors `[K, D]`, kept at unit norm.
    prototypes: Tensor,
    cfg: SwavConfig,
}

impl Swav {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SwavConfig) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), &cfg.projector);
        let prototypes = vs.var(
            "prototypes",
            &[cfg.prototypes, projector.out_dim()],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let s = Swav {
            branch: Branch {
                encoder,
                head: Box::new(projector),
            },
            prototypes,
            cfg: cfg.clone(),
        };
        s.normalise_prototypes();
        s
    }
    fn normalise_prototypes(&self) {
        tch::no_grad(|| {
            let p = &self.prototypes;
            p.shallow_clone().copy_(&unit_rows(p));
        });
    }
}

impl Method for Swav {
    fn name(&self) -> &'static str {
        "swav"
    }
    fn accepts_local_crops(&self) -> bool {
        true
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process reduces nothing")
    }
    /// Sinkhorn's sums over every rank's samples (`sinkhorn_across`), per-sample losses after.
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let scores: Vec<Tensor> = input
            .views
            .iter()
            .map(|v| unit_rows(&self.branch.forward(v, true)).matmul(&self.prototypes.tr()))
            .collect();
        let c = &self.cfg;
        // Codes come from the two global crops only (§3.2, multi-crop).
        swav_loss_across(&scores, 2, (c.temperature, c.epsilon, c.sinkhorn_iters), comm)
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn before_update(&self, progress: Progress) {
        if progress.epoch() < self.cfg.freeze_prototypes_epochs {
            let mut g = self.prototypes.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
    fn after_update(&self, _progress: Progress) {
        // The reference normalises the prototypes before every forward pass; doing it after each
        // update (and once at construction) gives the same forward passes.
        self.normalise_prototypes();
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.branch.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.branch.encoder.as_ref()
    }
}

impl super::MethodSpec for SwavConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            local_crops: true,
            ..super::Needs::JOINT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.temperature", self.temperature)?;
        rules::temperature("method.epsilon", self.epsilon)?;
        rules::widths("method.prototypes", [self.prototypes])?;
        rules::widths("method.sinkhorn_iters", [self.sinkhorn_iters as i64])?;
        rules::non_negative(
            "method.freeze_prototypes_epochs",
            self.freeze_prototypes_epochs,
        )?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Swav::new(&(vs.root() / "method"), encoder, self)))
    }
}
