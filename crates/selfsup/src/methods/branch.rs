//! The two halves most joint-embedding methods are made of: an encoder followed by a head (a
//! "branch"), and a momentum copy of a branch (the target / teacher).
use super::ema::EmaTarget;
use super::EncoderFactory;
use crate::encoders::Encoder;
use anyhow::Result;
use tch::{nn, nn::ModuleT, Tensor};

/// encoder → head.
pub struct Branch {
    pub encoder: Box<dyn Encoder>,
    pub head: Box<dyn ModuleT>,
}

impl Branch {
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.head
            .forward_t(&self.encoder.forward_t(x, train), train)
    }
}

/// A branch whose weights follow an online branch by exponential moving average. Built under
/// `method.teacher` from the same factory and head constructor, so it has the online branch's
/// shapes; its parameters are not trained.
pub struct MomentumBranch {
    pub branch: Branch,
    ema: EmaTarget,
}

impl MomentumBranch {
    /// `head_path` is the online head's path below `method` (e.g. `projector`); the target's is
    /// `teacher.<head_path>`.
    pub fn new(
        vs: &nn::VarStore,
        make_encoder: &EncoderFactory,
        head_path: &str,
        make_head: impl Fn(&nn::Path) -> Box<dyn ModuleT>,
    ) -> Result<Self> {
        let t = vs.root() / "method" / "teacher";
        let encoder = make_encoder(&(&t / "encoder"))?;
        let head = make_head(&(&t / head_path));
        let ema = EmaTarget::bind(
            vs,
            &[
                ("encoder", "method.teacher.encoder"),
                (
                    &format!("method.{head_path}"),
                    &format!("method.teacher.{head_path}"),
                ),
            ],
        )?;
        Ok(MomentumBranch {
            branch: Branch { encoder, head },
            ema,
        })
    }
    /// The target's output, in training mode (batch statistics), without gradient.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.branch.forward(x, true))
    }
    pub fn update(&self, momentum: f64) {
        self.ema.update(momentum);
    }
}
