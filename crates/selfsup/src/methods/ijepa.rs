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

/// Narrow transformer that fills in target-token representations from the context tokens
/// (I-JEPA's predictor; T-JEPA reuses it with learned feature positions).
pub(crate) struct Predictor {
    embed: nn::Linear,
    mask_token: Tensor,
    /// `[1, L, Dp]`: the position of every token the encoder can see.
    pos: Tensor,
    stack: TransformerStack,
    proj: nn::Linear,
}

fn gather_positions(pos: &Tensor, idx: &Tensor) -> Tensor {
    let (n, l, d) = (idx.size()[0], pos.size()[1], pos.size()[2]);
    gather_tokens(&pos.expand([n, l, d], false), idx)
}

impl Predictor {
    /// `in_dim`: the encoder's width; `pos`: `[1, L, Dp]` positions (fixed or trainable).
    pub(crate) fn new(
        p: &nn::Path,
        in_dim: i64,
        pos: Tensor,
        depth: usize,
        heads: i64,
    ) -> Result<Self> {
        let dp = pos.size()[2];
        anyhow::ensure!(
            heads > 0 && dp % heads == 0,
            "method.predictor_dim = {dp}: must be divisible by {heads} heads"
        );
        Ok(Predictor {
            embed: xavier_linear(p / "embed", in_dim, dp),
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
                depth,
                heads,
                4.0,
                Attention::Fused,
                |_| None,
            ),
            proj: xavier_linear(p / "proj", dp, in_dim),
        })
    }

    /// Context outputs `[B, Nc, D]` at `ctx_idx` → predictions `[B, Nt, D]` at `tgt_idx`.
    pub(crate) fn forward(&self, ctx: &Tensor, ctx_idx: &Tensor, tgt_idx: &Tensor) -> Tensor {
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

    /// All target sets in one pass (the context repeated once per set), and the loss against
    /// the target encoder's outputs `s_y` (`[N, L, D]`) at the same tokens.
    pub(crate) fn loss(
        &self,
        s_x: &Tensor,
        context: &Tensor,
        targets: &[Tensor],
        s_y: &Tensor,
    ) -> Tensor {
        let m = targets.len() as i64;
        let tgt_idx = Tensor::cat(targets, 0);
        let pred = self.forward(&s_x.repeat([m, 1, 1]), &context.repeat([m, 1]), &tgt_idx);
        let s_y = gather_tokens(&s_y.repeat([m, 1, 1]), &tgt_idx);
        latent_regression(&pred, &s_y)
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
        anyhow::ensure!(
            cfg.predictor_dim % 4 == 0,
            "method.predictor_dim = {}: must be divisible by 4",
            cfg.predictor_dim
        );
        let (gh, gw) = vit.grid();
        let pp = &p / "predictor";
        let pos = fixed_sincos(&pp, "pos", cfg.predictor_dim, gh, gw);
        let predictor = Predictor::new(
            &pp,
            vit.dim(),
            pos,
            cfg.predictor_depth,
            cfg.predictor_heads,
        )?;
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
            let t = self
                .target
                .as_vit()
                .expect("same factory as the online encoder");
            t.encode(&t.embed_patches(&patches)).1
        });
        self.predictor.loss(&s_x, context, targets, &s_y)
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


impl super::MethodSpec for IjepaConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::MASKED_VIT
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::widths("method.predictor_dim", [self.predictor_dim])?;
        rules::widths("method.predictor_depth", [self.predictor_depth as i64])?;
        rules::widths("method.predictor_heads", [self.predictor_heads])?;
        rules::widths("method.targets", [self.targets as i64])?;
        rules::fraction_range("method.target_scale", self.target_scale, true)?;
        rules::fraction_range("method.context_scale", self.context_scale, true)?;
        let [lo, hi] = self.target_aspect;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(crate::rules::RecipeError::BadRange {
                field: "method.target_aspect",
                lo,
                hi,
                rule: "need 0 < lo <= hi",
            });
        }
        Ok(())
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Ijepa::new(vs, encoder, make_encoder, self)?))
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
