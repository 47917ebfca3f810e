//! Methods wire views + encoder + heads + objective. A new method is one file plus one line in
//! [`build`] and one variant in [`MethodConfig`].
//!
//! Method state that is not trained by gradients (EMA teachers, queues, centres) lives in the run's
//! `VarStore` as non-trainable variables, so it is checkpointed, checksummed and restored with the
//! model, and the trainer's non-finite guard restores it together with batch-norm statistics.
use crate::encoders::Encoder;
use crate::heads::Block;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

pub mod barlow_twins;
pub mod branch;
pub mod byol;
pub mod cae;
pub mod dino;
pub mod ema;
pub mod ijepa;
pub mod mae;
pub mod moco;
pub mod moco_v3;
pub mod nnclr;
pub mod queue;
pub mod simclr;
pub mod simmim;
pub mod simsiam;
pub mod supcon;
pub mod swav;
pub mod tjepa;
pub mod vicreg;
pub mod vime;

/// Where training stands, for schedules inside a method (EMA momentum, DINO's teacher
/// temperature, SwAV's prototype freezing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Optimiser steps taken before this one.
    pub step: u64,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

impl Progress {
    /// Fraction of training done, in [0, 1].
    pub fn fraction(&self) -> f64 {
        (self.step as f64 / self.total_steps.max(1) as f64).min(1.0)
    }
    /// Epochs done, fractional.
    pub fn epoch(&self) -> f64 {
        self.step as f64 / self.steps_per_epoch.max(1) as f64
    }
    /// A fixed point, for tests and single forward passes.
    pub fn at(step: u64, total_steps: u64, steps_per_epoch: u64) -> Progress {
        Progress {
            step,
            total_steps,
            steps_per_epoch,
        }
    }
}

/// What a method sees of one training step.
pub struct StepInput<'a> {
    /// `views[v]` is `[N, ...]`: the global views first, then any local (multi-crop) views.
    pub views: &'a [Tensor],
    /// Class labels `[N]`, when the data has them (only supervised methods use them).
    pub labels: Option<&'a Tensor>,
    /// Token masks the loader drew for [`Method::mask_spec`] (empty for other methods).
    pub masks: &'a [Tensor],
    pub progress: Progress,
}

impl<'a> StepInput<'a> {
    pub fn new(views: &'a [Tensor], progress: Progress) -> Self {
        StepInput {
            views,
            labels: None,
            masks: &[],
            progress,
        }
    }
}

/// A self-supervised method: a loss on a batch of views, and the encoder it trains.
///
/// The trainer calls, per step: [`loss`](Method::loss), backward,
/// [`before_update`](Method::before_update), the optimiser step and then
/// [`after_update`](Method::after_update). When the step is rejected (non-finite loss or
/// gradient) neither hook is called and every non-trainable variable is restored, so state
/// changes belong in `after_update`.
pub trait Method {
    fn name(&self) -> &'static str;
    /// How many global views of each sample the loss needs.
    fn n_views(&self) -> usize {
        2
    }
    /// Whether extra low-resolution local crops may follow the global views (multi-crop).
    fn accepts_local_crops(&self) -> bool {
        false
    }
    /// Whether the loss needs class labels (supervised contrastive).
    fn needs_labels(&self) -> bool {
        false
    }
    /// The masks the loader should draw with each batch (masked methods).
    fn mask_spec(&self) -> Option<crate::views::masking::MaskSpec> {
        None
    }
    /// The training loss for one batch.
    fn loss(&self, input: &StepInput) -> Tensor;
    /// After backward, before the optimiser: adjust gradients (e.g. freeze a layer early on).
    fn before_update(&self, _progress: Progress) {}
    /// After a successful optimiser step: EMA teachers, queues, centres.
    fn after_update(&self, _progress: Progress) {}
    /// The representation used downstream (encoder output, evaluation mode; caller disables grad).
    fn embed(&self, x: &Tensor) -> Tensor;
    fn encoder(&self) -> &dyn Encoder;
}

/// The `[method]` table of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    Simclr {
        #[serde(default = "simclr::default_temperature")]
        temperature: f64,
        #[serde(default = "simclr::default_projector")]
        projector: Vec<Block>,
    },
    BarlowTwins {
        #[serde(default = "barlow_twins::default_lambda")]
        lambda: f64,
        #[serde(default = "barlow_twins::default_projector")]
        projector: Vec<Block>,
    },
    Byol(byol::ByolConfig),
    Simsiam(simsiam::SimSiamConfig),
    MocoV2(moco::MocoV2Config),
    MocoV3(moco_v3::MocoV3Config),
    Vicreg(vicreg::VicregConfig),
    Dino(dino::DinoConfig),
    Swav(swav::SwavConfig),
    Nnclr(nnclr::NnclrConfig),
    Supcon(supcon::SupConConfig),
    Mae(mae::MaeConfig),
    Cae(cae::CaeConfig),
    Simmim(simmim::SimMimConfig),
    Ijepa(ijepa::IjepaConfig),
    Tjepa(tjepa::TjepaConfig),
    Vime(vime::VimeConfig),
}

impl MethodConfig {
    /// Every method, with its defaults (for listings and the comparison table).
    pub fn all_defaults() -> Vec<MethodConfig> {
        vec![
            MethodConfig::Simclr {
                temperature: simclr::default_temperature(),
                projector: simclr::default_projector(),
            },
            MethodConfig::BarlowTwins {
                lambda: barlow_twins::default_lambda(),
                projector: barlow_twins::default_projector(),
            },
            MethodConfig::Byol(Default::default()),
            MethodConfig::Simsiam(Default::default()),
            MethodConfig::MocoV2(Default::default()),
            MethodConfig::MocoV3(Default::default()),
            MethodConfig::Vicreg(Default::default()),
            MethodConfig::Dino(Default::default()),
            MethodConfig::Swav(Default::default()),
            MethodConfig::Nnclr(Default::default()),
            MethodConfig::Supcon(Default::default()),
            MethodConfig::Mae(Default::default()),
            MethodConfig::Cae(Default::default()),
            MethodConfig::Simmim(Default::default()),
            MethodConfig::Ijepa(Default::default()),
            MethodConfig::Tjepa(Default::default()),
            MethodConfig::Vime(Default::default()),
        ]
    }
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Simclr { .. } => "simclr",
            MethodConfig::BarlowTwins { .. } => "barlow_twins",
            MethodConfig::Byol(_) => "byol",
            MethodConfig::Simsiam(_) => "simsiam",
            MethodConfig::MocoV2(_) => "moco_v2",
            MethodConfig::MocoV3(_) => "moco_v3",
            MethodConfig::Vicreg(_) => "vicreg",
            MethodConfig::Dino(_) => "dino",
            MethodConfig::Swav(_) => "swav",
            MethodConfig::Nnclr(_) => "nnclr",
            MethodConfig::Supcon(_) => "supcon",
            MethodConfig::Mae(_) => "mae",
            MethodConfig::Cae(_) => "cae",
            MethodConfig::Simmim(_) => "simmim",
            MethodConfig::Ijepa(_) => "ijepa",
            MethodConfig::Tjepa(_) => "tjepa",
            MethodConfig::Vime(_) => "vime",
        }
    }
    /// Smallest batch for which the objective is defined (contrastive losses need a negative;
    /// batch statistics need two samples).
    pub fn min_batch(&self) -> usize {
        2
    }
    /// Global views per sample: two for joint-embedding methods, one for masked ones.
    pub fn n_global_views(&self) -> usize {
        if self.is_masked() {
            1
        } else {
            2
        }
    }
    /// Masked-prediction methods: one view plus a token mask, on a token encoder (a ViT, or a
    /// feature transformer for T-JEPA).
    pub fn is_masked(&self) -> bool {
        matches!(
            self,
            MethodConfig::Mae(_)
                | MethodConfig::Cae(_)
                | MethodConfig::Simmim(_)
                | MethodConfig::Ijepa(_)
                | MethodConfig::Tjepa(_)
        )
    }
    /// Methods defined on table features only.
    pub fn needs_tables(&self) -> bool {
        matches!(self, MethodConfig::Tjepa(_) | MethodConfig::Vime(_))
    }
    /// Whether multi-crop local views may be added (`views.local_crops`).
    pub fn accepts_local_crops(&self) -> bool {
        matches!(self, MethodConfig::Dino(_) | MethodConfig::Swav(_))
    }
    /// Whether training needs class labels.
    pub fn needs_labels(&self) -> bool {
        matches!(self, MethodConfig::Supcon(_))
    }
    /// The first head's blocks (the projector, or the expander for VICReg); empty for DINO,
    /// whose head is described by widths.
    pub fn projector(&self) -> &[Block] {
        match self {
            MethodConfig::Simclr { projector, .. }
            | MethodConfig::BarlowTwins { projector, .. } => projector,
            MethodConfig::Byol(c) => &c.projector,
            MethodConfig::Simsiam(c) => &c.projector,
            MethodConfig::MocoV2(c) => &c.projector,
            MethodConfig::MocoV3(c) => &c.projector,
            MethodConfig::Vicreg(c) => &c.projector,
            MethodConfig::Dino(_)
            | MethodConfig::Mae(_)
            | MethodConfig::Cae(_)
            | MethodConfig::Simmim(_)
            | MethodConfig::Ijepa(_)
            | MethodConfig::Tjepa(_)
            | MethodConfig::Vime(_) => &[],
            MethodConfig::Swav(c) => &c.projector,
            MethodConfig::Nnclr(c) => &c.projector,
            MethodConfig::Supcon(c) => &c.projector,
        }
    }
    /// The predictor's blocks, for methods with one.
    pub fn predictor(&self) -> &[Block] {
        match self {
            MethodConfig::Byol(c) => &c.predictor,
            MethodConfig::Simsiam(c) => &c.predictor,
            MethodConfig::MocoV3(c) => &c.predictor,
            MethodConfig::Nnclr(c) => &c.predictor,
            _ => &[],
        }
    }
}

/// Builds an encoder under a path: the online encoder under `encoder`, and a second copy for
/// methods with a momentum target.
pub type EncoderFactory<'a> = dyn Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> + 'a;

/// The registry: builds the method named in `cfg`; the encoder's variables live under `encoder.`,
/// the method's own (heads, targets, queues) under `method.`.
pub fn build(
    cfg: &MethodConfig,
    vs: &nn::VarStore,
    make_encoder: &EncoderFactory,
) -> anyhow::Result<Box<dyn Method>> {
    let root = vs.root();
    let p = &root / "method";
    let encoder = make_encoder(&(&root / "encoder"))?;
    Ok(match cfg {
        MethodConfig::Simclr {
            temperature,
            projector,
        } => Box::new(simclr::SimClr::new(&p, encoder, projector, *temperature)),
        MethodConfig::BarlowTwins { lambda, projector } => Box::new(
            barlow_twins::BarlowTwins::new(&p, encoder, projector, *lambda),
        ),
        MethodConfig::Byol(c) => Box::new(byol::Byol::new(vs, encoder, make_encoder, c)?),
        MethodConfig::Simsiam(c) => Box::new(simsiam::SimSiam::new(&p, encoder, c)),
        MethodConfig::MocoV2(c) => Box::new(moco::MocoV2::new(vs, encoder, make_encoder, c)?),
        MethodConfig::MocoV3(c) => Box::new(moco_v3::MocoV3::new(vs, encoder, make_encoder, c)?),
        MethodConfig::Vicreg(c) => Box::new(vicreg::Vicreg::new(&p, encoder, c)),
        MethodConfig::Dino(c) => Box::new(dino::Dino::new(vs, encoder, make_encoder, c)?),
        MethodConfig::Swav(c) => Box::new(swav::Swav::new(&p, encoder, c)),
        MethodConfig::Nnclr(c) => Box::new(nnclr::Nnclr::new(&p, encoder, c)),
        MethodConfig::Supcon(c) => Box::new(supcon::SupCon::new(&p, encoder, c)),
        MethodConfig::Mae(c) => Box::new(mae::Mae::new(&p, encoder, c)?),
        MethodConfig::Cae(c) => Box::new(cae::Cae::new(&p, encoder, c)?),
        MethodConfig::Simmim(c) => Box::new(simmim::SimMim::new(&p, encoder, c)?),
        MethodConfig::Ijepa(c) => Box::new(ijepa::Ijepa::new(vs, encoder, make_encoder, c)?),
        MethodConfig::Tjepa(c) => Box::new(tjepa::Tjepa::new(vs, encoder, make_encoder, c)?),
        MethodConfig::Vime(c) => Box::new(vime::Vime::new(&p, encoder, c)?),
    })
}

#[cfg(test)]
mod tests;
