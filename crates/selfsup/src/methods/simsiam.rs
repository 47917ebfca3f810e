//! SimSiam (Chen & He 2021): encoder → projector → predictor on one view predicts the other view's
//! projection, with a stop-gradient on the target side and no momentum encoder.
use super::branch::Branch;
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::simsiam::negative_cosine;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSiamConfig {
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    #[serde(default = "default_predictor")]
    pub predictor: Vec<Block>,
}

impl Default for SimSiamConfig {
    fn default() -> Self {
        SimSiamConfig {
            projector: default_projector(),
            predictor: default_predictor(),
        }
    }
}

/// Three layers with BN on every output, ReLU on the hidden ones (§4.1: 2048 wide); 512 here.
pub fn default_projector() -> Vec<Block> {
    vec![
        Block::new(512, true, true, false),
        Block::new(512, true, true, false),
        Block::new(512, true, false, false),
    ]
}
/// The bottleneck predictor (§4.1: 2048 → 512 → 2048), scaled by a quarter.
pub fn default_predictor() -> Vec<Block> {
    vec![
        Block::new(128, true, true, false),
        Block::new(512, false, false, true),
    ]
}

pub struct SimSiam {
    branch: Branch,
    predictor: Head,
}

impl SimSiam {
    pub fn new(vs: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SimSiamConfig) -> Self {
        let projector = Head::new(&(vs / "projector"), encoder.out_dim(), &cfg.projector);
        let predictor = Head::new(&(vs / "predictor"), projector.out_dim(), &cfg.predictor);
        SimSiam {
            branch: Branch {
                encoder,
                head: Box::new(projector),
            },
            predictor,
        }
    }
}

impl Method for SimSiam {
    fn name(&self) -> &'static str {
        "simsiam"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let z1 = self.branch.forward(&input.views[0], true);
        let z2 = self.branch.forward(&input.views[1], true);
        let p1 = self.predictor.forward_t(&z1, true);
        let p2 = self.predictor.forward_t(&z2, true);
        // Algorithm 1: L = D(p1, stopgrad(z2))/2 + D(p2, stopgrad(z1))/2.
        (negative_cosine(&p1, &z2.detach()) + negative_cosine(&p2, &z1.detach())) * 0.5
    }
    /// Per-sample terms: trains across processes as it is.
    fn per_sample_loss(&self) -> bool {
        true
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.branch.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.branch.encoder.as_ref()
    }
}

impl super::MethodSpec for SimSiamConfig {
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))?;
        rules::widths("method.predictor", self.predictor.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(SimSiam::new(&(vs.root() / "method"), encoder, self)))
    }
}
