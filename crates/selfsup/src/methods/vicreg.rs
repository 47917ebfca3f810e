//! VICReg (Bardes, Ponce & LeCun 2022): invariance, variance and covariance terms on the
//! expander outputs of two views; no negatives, no momentum encoder, no stop-gradient.
use super::branch::Branch;
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::distributed::{Alone, Collective};
use crate::objectives::vicreg::vicreg_across;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VicregConfig {
    #[serde(default = "default_expander")]
    pub projector: Vec<Block>,
    /// λ = μ = 25, ν = 1 (§4.3).
    #[serde(default = "crate::objectives::vicreg::default_sim_coeff")]
    pub sim_coeff: f64,
    #[serde(default = "crate::objectives::vicreg::default_std_coeff")]
    pub std_coeff: f64,
    #[serde(default = "crate::objectives::vicreg::default_cov_coeff")]
    pub cov_coeff: f64,
}

impl Default for VicregConfig {
    fn default() -> Self {
        VicregConfig {
            projector: default_expander(),
            sim_coeff: crate::objectives::vicreg::default_sim_coeff(),
            std_coeff: crate::objectives::vicreg::default_std_coeff(),
            cov_coeff: crate::objectives::vicreg::default_cov_coeff(),
        }
    }
}

/// The expander: three layers of 8192, BN+ReLU on the first two (§4.2); 1024 here.
pub fn default_expander() -> Vec<Block> {
    vec![
        Block::new(1024, true, true, true),
        Block::new(1024, true, true, true),
        Block::new(1024, false, false, true),
    ]
}

pub struct Vicreg {
    branch: Branch,
    cfg: VicregConfig,
}

impl Vicreg {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, cfg: &VicregConfig) -> Self {
        let expander = Head::new(&(vs / "projector"), encoder.out_dim(), &cfg.projector);
        Vicreg {
            branch: Branch {
                encoder,
                head: Box::new(expander),
            },
            cfg: cfg.clone(),
        }
    }
}

impl Method for Vicreg {
    fn name(&self) -> &'static str {
        "vicreg"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let z1 = self.branch.forward(&input.views[0], true);
        let z2 = self.branch.forward(&input.views[1], true);
        let c = &self.cfg;
        vicreg_across(&z1, &z2, (c.sim_coeff, c.std_coeff, c.cov_coeff), comm)
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

impl super::MethodSpec for VicregConfig {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        for (f, v) in [
            ("method.sim_coeff", self.sim_coeff),
            ("method.std_coeff", self.std_coeff),
            ("method.cov_coeff", self.cov_coeff),
        ] {
            rules::non_negative(f, v)?;
        }
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Vicreg::new(&(vs.root() / "method"), encoder, self)))
    }
}
