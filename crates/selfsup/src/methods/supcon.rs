//! Supervised contrastive learning (Khosla et al. 2020): every view of every sample with the same
//! class label is a positive. Needs labelled training data.
use super::branch::Branch;
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::supcon::supcon_across;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupConConfig {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    /// τ = 0.1 (§4 "we use τ = 0.1").
    #[serde(default = "crate::objectives::supcon::default_temperature")]
    pub temperature: f64,
    /// The reference code multiplies the loss by τ/τ_base with τ_base = 0.07.
    #[serde(default = "crate::objectives::supcon::default_base_temperature")]
    pub base_temperature: f64,
}

impl Default for SupConConfig {
    fn default() -> Self {
        SupConConfig {
            projector: default_projector(),
            temperature: crate::objectives::supcon::default_temperature(),
            base_temperature: crate::objectives::supcon::default_base_temperature(),
        }
    }
}

/// The paper's projection network: Linear(2048) → ReLU → Linear(128); 512 wide here.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, false, true, true),
        Block::new(128, false, false, true),
    ]
}

pub struct SupCon {
    branch: Branch,
    temperature: f64,
    base_temperature: f64,
}

impl SupCon {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SupConConfig) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), &cfg.projector);
        SupCon {
            branch: Branch {
                encoder,
                head: Box::new(projector),
            },
            temperature: cfg.temperature,
            base_temperature: cfg.base_temperature,
        }
    }
}

impl Method for SupCon {
    fn name(&self) -> &'static str {
        "supcon"
    }
    fn needs_labels(&self) -> bool {
        true
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let labels = input
            .labels
            .context("supcon needs labels; the trainer checks this before the first step")?;
        let z: Vec<Tensor> = input.views[..2]
            .iter()
            .map(|v| self.branch.forward(v, true))
            .collect();
        supcon_across(&z, labels, (self.temperature, self.base_temperature), comm)
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.branch.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.branch.encoder.as_ref()
    }
}

impl super::MethodSpec for SupConConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            labels: true,
            ..super::Needs::JOINT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.temperature", self.temperature)?;
        rules::temperature("method.base_temperature", self.base_temperature)?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(SupCon::new(&(vs.root() / "method"), encoder, self)))
    }
}
