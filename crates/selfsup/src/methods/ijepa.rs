//! I-JEPA (Assran et al. 2023): from one large context block of patches, predict the
//! representations of several target blocks as a momentum target encoder sees them — prediction in
//! representation space, with no pixel decoder and no hand-made augmentations.
//!
//! ```text
//! context, targets₁..M = multi-block masks                        (drawn by the loader)
//! s_x  = context_encoder(embed(patches)[context])                   (context tokens only)
//! s_y  = layer_norm(target_encoder(embed(patches)))[targets_m]      (all tokens, no gradient)
//! ŝ_y  = predictor(s_x, positions of context, mask tokens at positions of targets_m)
//! loss = mean_m smooth_l1(ŝ_y, s_y);   target ← EMA(context encoder), momentum 0.996 → 1 (linear)
//! ```
use super::ema::EmaTarget;
use super::mae::vit_of;
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::encoders::transformer::{fixed_sincos, Attention, TransformerStack};
use crate::encoders::vit::{gather_tokens, Vit};
use crate::encoders::Encoder;
use crate::objectives::masked::latent_regression;
use crate::torch_init::xavier_linear;
use crate::views::masking::{BlockMasks, MaskSpec};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IjepaConfig {
    /// Predictor width, depth and heads. The paper's predictor is 384 wide and 6–12 deep for
    /// ViT-B/L/H (appendix A); narrowed for ViT-Tiny-sized encoders.
    #[serde(default = "default_predictor_dim")]
    pub predictor_dim: i64,
    #[serde(default = "default_predictor_depth")]
    pub predictor_depth: usize,
    #[serde(default = "default_predictor_heads")]
    pub predictor_heads: i64,
    /// Momentum of the target encoder, raised linearly to 1 over training (0.996 in the paper).
    #[serde(default = "default_base_momentum")]
    pub base_momentum: f64,
    /// Target blocks per image and their scale / aspect ranges (4, 0.15–0.2, 0.75–1.5).
    #[serde(default = "default_targets")]
    pub targets: usize,
    #[serde(default = "default_target_scale")]
    pub target_scale: [f64; 2],
    #[serde(default = "default_target_aspect")]
    pub target_aspect: [f64; 2],
    /// Scale of the context block before target tokens are removed (0.85–1.0).
    #[serde(default = "default_context_scale")]
    pub context_scale: [f64; 2],
}

impl Default for IjepaConfig {
    fn default() -> Self {
        IjepaConfig {
            predictor_dim: default_predictor_dim(),
            predictor_depth: default_predictor_depth(),
            predictor_heads: default_predictor_heads(),
            base_momentum: default_base_momentum(),
            targets: default_targets(),
            target_scale: default_target_scale(),
            target_aspect: default_target_aspect(),
            context_scale: default_context_scale(),
        }
    }
}

fn default_predictor_dim() -> i64 {
    96
}
fn default_predictor_depth() -> usize {
    4
}
fn default_predictor_heads() -> i64 {
    4
}
fn default_base_momentum() -> f64 {
    0.996
}
fn default_targets() -> usize {
    4
}
fn default_target_scale() -> [f64; 2] {
    [0.15, 0.2]
}
fn default_target_aspect() -> [f64; 2] {
    [0.75, 1.5]
}
fn default_context_scale() -> [f64; 2] {
    [0.85, 1.0]
}

/// Narrow transformer that fills in target-block representations from the context tokens.
struct Predictor {
    embed: nn::Linear,
    mask_token: Tensor,
    /// `[1, L, Dp]`, fixed sine-cosine.
    pos: Tensor,
    stack: TransformerStack,
    proj: nn::Linear,
}

fn gather_positions(pos: &Tensor, idx: &Tensor) -> Tensor {
    let (n, l, d) = (idx.size()[0], pos.size()[1], pos.size()[2]);
    gather_tokens(&pos.expand([n, l, d], false), idx)
}

impl Predictor {
    fn new(p: &nn::Path, vit: &Vit, cfg: &IjepaConfig) -> Result<Self> {
        let dp = cfg.predictor_dim;
        anyhow::ensure!(dp % 4 == 0, "method.predictor_dim = {dp}: must be divisible by 4");
        let (gh, gw) = vit.grid();
        let pos = fixed_sincos(p, "pos", dp, gh, gw);
        Ok(Predictor {
            embed: xavier_linear(p / "embed", vit.dim(), dp),
            mask_token: p.var(
                "mask_token",
                &[1, 1, dp],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            pos,
            stack: TransformerStack::new(
                &(p / "blocks"),
                dp,
                cfg.predictor_depth,
                cfg.predictor_heads,
                4.0,
                Attention::Fused,
                |_| None,
            ),
            proj: xavier_linear(p / "proj", dp, vit.dim()),
        })
    }

    /// Context outputs `[B, Nc, D]` at `ctx_idx` → predictions `[B, Nt, D]` at `tgt_idx`.
    fn forward(&self, ctx: &Tensor, ctx_idx: &Tensor, tgt_idx: &Tensor) -> Tensor {
        let (b, nt) = tgt_idx.size2().expect("target indices are [B, Nt]");
        let nc = ctx.size()[1];
        let dp = self.pos.size()[2];
        let x = ctx.apply(&self.embed) + gather_positions(&self.pos, ctx_idx);
        let m = self.mask_token.expand([b, nt, dp], false) + gather_positions(&self.pos, tgt_idx);
        self.stack
            .forward(&Tensor::cat(&[x, m], 1))
            .narrow(1, nc, nt)
            .apply(&self.proj)
    }
}

pub struct Ijepa {
    encoder: Box<dyn Encoder>,
    target: Box<dyn Encoder>,
    ema: EmaTarget,
    predictor: Predictor,
    cfg: IjepaConfig,
}

impl Ijepa {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &IjepaConfig,
    ) -> Result<Self> {
        let p = vs.root() / "method";
        let vit = vit_of(encoder.as_ref(), "ijepa")?;
        let predictor = Predictor::new(&(&p / "predictor"), vit, cfg)?;
        let target = make_encoder(&(&p / "teacher" / "encoder"))?;
        let ema = EmaTarget::bind(vs, &[("encoder", "method.teacher.encoder")])?;
        Ok(Ijepa {
            encoder,
            target,
            ema,
            predictor,
            cfg: cfg.clone(),
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    /// The loss for images `x`, context indices `[N, Nc]` and target blocks (each `[N, Nt]`).
    pub fn loss_with(&self, x: &Tensor, context: &Tensor, targets: &[Tensor]) -> Tensor {
        let vit = self.vit();
        let patches = vit.patchify(x);
        let (_, s_x) = vit.encode(&gather_tokens(&vit.embed_patches(&patches), context));
        let s_y = tch::no_grad(|| {
            let t = self.target.as_vit().expect("same factory as the online encoder");
            t.encode(&t.embed_patches(&patches)).1
        });
        // All target blocks in one predictor pass: the context repeated once per block.
        let m = targets.len() as i64;
        let tgt_idx = Tensor::cat(targets, 0);
        let pred = self.predictor.forward(
            &s_x.repeat([m, 1, 1]),
            &context.repeat([m, 1]),
            &tgt_idx,
        );
        let s_y = gather_tokens(&s_y.repeat([m, 1, 1]), &tgt_idx);
        latent_regression(&pred, &s_y)
    }
}

/// Linear increase of the momentum from `base` to 1 over training (the reference code's schedule).
pub fn linear_momentum(base: f64, fraction: f64) -> f64 {
    base + (1.0 - base) * fraction.clamp(0.0, 1.0)
}

impl Method for Ijepa {
    fn name(&self) -> &'static str {
        "ijepa"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn mask_spec(&self) -> Option<MaskSpec> {
        let (gh, gw) = self.vit().grid();
        let mut b = BlockMasks::ijepa((gh as usize, gw as usize));
        b.targets = self.cfg.targets;
        b.target_scale = self.cfg.target_scale;
        b.target_aspect = self.cfg.target_aspect;
        b.context_scale = self.cfg.context_scale;
        Some(MaskSpec::Blocks(b))
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_with(&input.views[0], &input.masks[0], &input.masks[1..])
    }
    fn after_update(&self, progress: Progress) {
        self.ema
            .update(linear_momentum(self.cfg.base_momentum, progress.fraction()));
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_momentum_rises_linearly_from_base_to_one() {
        assert_eq!(linear_momentum(0.996, 0.0), 0.996);
        assert!((linear_momentum(0.996, 0.5) - 0.998).abs() < 1e-12);
        assert_eq!(linear_momentum(0.996, 1.0), 1.0);
        assert_eq!(linear_momentum(0.996, 2.0), 1.0);
    }
}
