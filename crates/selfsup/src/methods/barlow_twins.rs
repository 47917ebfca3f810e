//! Barlow Twins (Zbontar et al. 2021): two views → encoder → projector → cross-correlation loss.
use super::{EncoderFactory, Method, MethodSpec, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::barlow_twins::barlow_twins_across;
use anyhow::Result;
use crate::rules::{self, RecipeError};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarlowTwinsConfig {
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
}

impl Default for BarlowTwinsConfig {
    fn default() -> Self {
        BarlowTwinsConfig {
            lambda: default_lambda(),
            projector: default_projector(),
        }
    }
}

impl MethodSpec for BarlowTwinsConfig {
    fn validate(&self) -> rules::R {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(RecipeError::LambdaNotPositive(self.lambda));
        }
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        let p = vs.root() / "method";
        Ok(Box::new(BarlowTwins::new(
            &p,
            encoder,
            &self.projector,
            self.lambda,
        )))
    }
}

/// λ = 5·10⁻³, the paper's value (§4, "trade-off parameter").
pub fn default_lambda() -> f64 {
    5e-3
}

/// The paper's projector: three linear layers of 8192 with BN+ReLU between, no biases (§4); scaled
/// here to 512 wide for small images and CPUs.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, true, true, false),
        Block::new(512, true, true, false),
        Block::new(512, false, false, false),
    ]
}

pub struct BarlowTwins {
    encoder: Box<dyn Encoder>,
    projector: Head,
    lambda: f64,
}

impl BarlowTwins {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, projector: &[Block], lambda: f64) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), projector);
        BarlowTwins {
            encoder,
            projector,
            lambda,
        }
    }
    fn project(&self, x: &Tensor) -> Tensor {
        self.projector
            .forward_t(&self.encoder.forward_t(x, true), true)
    }
}

impl Method for BarlowTwins {
    fn name(&self) -> &'static str {
        "barlow_twins"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process reduces nothing")
    }
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let views = input.views;
        barlow_twins_across(
            &self.project(&views[0]),
            &self.project(&views[1]),
            self.lambda,
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
