//! SimCLR (Chen et al. 2020): two augmented views → encoder → projector → NT-Xent.
use super::{EncoderFactory, Method, MethodSpec, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::nt_xent::nt_xent_across;
use anyhow::Result;
use crate::rules;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimclrConfig {
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
}

impl Default for SimclrConfig {
    fn default() -> Self {
        SimclrConfig {
            temperature: default_temperature(),
            projector: default_projector(),
        }
    }
}

impl MethodSpec for SimclrConfig {
    fn validate(&self) -> rules::R {
        rules::temperature("method.temperature", self.temperature)?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        let p = vs.root() / "method";
        Ok(Box::new(SimClr::new(
            &p,
            encoder,
            &self.projector,
            self.temperature,
        )))
    }
}

/// τ = 0.5 is the paper's choice for CIFAR-10 at batch 256–512 (Appendix B.9).
pub fn default_temperature() -> f64 {
    0.5
}

/// The paper's projector: Linear → ReLU → Linear(128) (§2, "g(·)"), widened with batch norm as in
/// SimCLR v2 and most re-implementations.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, true, true, true),
        Block::new(128, false, false, true),
    ]
}

pub struct SimClr {
    encoder: Box<dyn Encoder>,
    projector: Head,
    temperature: f64,
}

impl SimClr {
    pub fn new(
        vs: &nn::Path,
        encoder: Box<dyn Encoder>,
        projector: &[Block],
        temperature: f64,
    ) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), projector);
        SimClr {
            encoder,
            projector,
            temperature,
        }
    }
    fn project(&self, x: &Tensor) -> Tensor {
        self.projector
            .forward_t(&self.encoder.forward_t(x, true), true)
    }
}

impl Method for SimClr {
    fn name(&self) -> &'static str {
        "simclr"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let views = input.views;
        // The views go through the network separately so that batch norm sees one view at a time,
        // as in the reference pipeline.
        nt_xent_across(
            &self.project(&views[0]),
            &self.project(&views[1]),
            self.temperature,
            comm,
        )
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}
