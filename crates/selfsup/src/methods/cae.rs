//! CAE, the context autoencoder (Chen et al. 2022): the encoder sees the visible patches only; a
//! latent regressor predicts the representations of the hidden patches from them by cross-
//! attention, and those predictions must (i) agree with what the same encoder computes from the
//! hidden patches themselves (alignment, no gradient into that target) and (ii) let a decoder
//! reconstruct the hidden patches. Encoding (understanding the visible content) and prediction
//! are kept in separate modules.
//!
//! ```text
//! patches = patchify(x);  vis, hid = split(random permutation)          (mask drawn by the loader)
//! z_vis   = encoder(embed(patches)[vis])                                 (visible tokens only)
//! z_tgt   = stop_grad(encoder(embed(patches)[hid]))                      (same weights)
//! q       = mask_token × |hid|
//! repeat regressor_depth times:
//!     q   = cross_block(q, keys/values = [z_vis, q], positions pos[hid], [pos[vis], pos[hid]])
//! pred    = head(decoder(q + pos[hid]))
//! loss    = mean ‖pred − target(patches[hid])‖²  +  λ · mean ‖q − z_tgt‖²
//! ```
//! Choices, following the reference code where the paper is silent: the target encoder is the
//! online encoder itself (the code copies the weights every step, i.e. momentum 0); regressor and
//! decoder run at the encoder's width with fixed sine-cosine positions; the regressor's queries
//! attend to the visible latents and to themselves. Differences: the reconstruction target is
//! normalised pixels (as MAE) instead of the DALL-E tokenizer's codes, which selfsup does not
//! ship; masking is random rather than BEiT's block-wise masking; the decoder blocks have no
//! layer scale (the regressor's do).
use super::mae::vit_of;
use super::{Method, StepInput};
use crate::encoders::transformer::{
    fixed_sincos, Attention, CrossAttentionBlock, TransformerStack,
};
use crate::encoders::vit::{gather_tokens, Vit};
use crate::encoders::Encoder;
use crate::objectives::masked::normalise_patches;
use crate::torch_init::xavier_linear;
use crate::views::masking::{visible_count, MaskSpec};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaeConfig {
    /// Fraction of patches hidden (the paper hides 98 of 196 patches, i.e. one half).
    #[serde(default = "default_mask_ratio")]
    pub mask_ratio: f64,
    /// Cross-attention layers of the regressor (4 in the paper for ViT-B; fewer for small images).
    #[serde(default = "default_depth")]
    pub regressor_depth: usize,
    /// Self-attention layers of the decoder (4 in the paper for ViT-B).
    #[serde(default = "default_depth")]
    pub decoder_depth: usize,
    /// Attention heads of regressor and decoder (they run at the encoder's width).
    #[serde(default = "default_heads")]
    pub heads: i64,
    /// λ, the weight of the alignment loss (2 in the paper, §4.1).
    #[serde(default = "default_align_weight")]
    pub align_weight: f64,
    /// Initial value of the regressor's layer-scale factors (0.1 in the reference code).
    #[serde(default = "default_layer_scale")]
    pub layer_scale: f64,
    /// Reconstruct per-patch normalised pixels (as MAE); raw pixels otherwise.
    #[serde(default = "yes")]
    pub norm_pix_loss: bool,
}

impl Default for CaeConfig {
    fn default() -> Self {
        CaeConfig {
            mask_ratio: default_mask_ratio(),
            regressor_depth: default_depth(),
            decoder_depth: default_depth(),
            heads: default_heads(),
            align_weight: default_align_weight(),
            layer_scale: default_layer_scale(),
            norm_pix_loss: true,
        }
    }
}

fn default_mask_ratio() -> f64 {
    0.5
}
fn default_depth() -> usize {
    2
}
fn default_heads() -> i64 {
    4
}
fn default_align_weight() -> f64 {
    2.0
}
fn default_layer_scale() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}

pub struct Cae {
    encoder: Box<dyn Encoder>,
    mask_token: Tensor,
    /// Fixed positions of regressor and decoder `[1, L, D]`.
    pos: Tensor,
    regressor: Vec<CrossAttentionBlock>,
    decoder: TransformerStack,
    head: nn::Linear,
    n_visible: i64,
    cfg: CaeConfig,
}

/// What one step computes, kept apart so that tests can check each part.
pub struct CaeParts {
    /// The regressor's predictions for the hidden tokens `[N, M, D]`.
    pub predicted: Tensor,
    /// The encoder's own representations of the hidden tokens, without gradient `[N, M, D]`.
    pub target: Tensor,
    /// The decoder's reconstruction of the hidden patches `[N, M, p²C]`.
    pub reconstruction: Tensor,
}

impl Cae {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &CaeConfig) -> Result<Self> {
        let vit = vit_of(encoder.as_ref(), "cae")?;
        let d = vit.dim();
        ensure!(
            cfg.heads > 0 && d % cfg.heads == 0,
            "method.heads = {}: the encoder's width {d} must be divisible by it",
            cfg.heads
        );
        ensure!(
            cfg.regressor_depth > 0,
            "method.regressor_depth must be at least 1"
        );
        let (gh, gw) = vit.grid();
        let regressor = (0..cfg.regressor_depth)
            .map(|i| {
                CrossAttentionBlock::new(
                    &(p / "regressor" / i),
                    d,
                    cfg.heads,
                    4.0,
                    cfg.layer_scale,
                    Attention::Fused,
                )
            })
            .collect();
        Ok(Cae {
            mask_token: p.var(
                "mask_token",
                &[1, 1, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            pos: fixed_sincos(p, "pos", d, gh, gw),
            regressor,
            decoder: TransformerStack::new(
                &(p / "decoder"),
                d,
                cfg.decoder_depth,
                cfg.heads,
                4.0,
                Attention::Fused,
                |_| None,
            ),
            head: xavier_linear(p / "head", d, vit.patch_len()),
            n_visible: visible_count(vit.n_patches() as usize, cfg.mask_ratio) as i64,
            cfg: cfg.clone(),
            encoder,
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    /// Regressor predictions, alignment targets and reconstructions for images `x` and mask
    /// order `ids` (`[N, L]`: visible tokens first, as [`MaskSpec::Random`] draws them).
    pub fn parts(&self, x: &Tensor, ids: &Tensor) -> CaeParts {
        self.parts_of_patches(&self.vit().patchify(x), ids)
    }

    fn parts_of_patches(&self, patches: &Tensor, ids: &Tensor) -> CaeParts {
        let vit = self.vit();
        let (n, l) = ids.size2().expect("mask order is [N, L]");
        let (k, m, d) = (self.n_visible, l - self.n_visible, vit.dim());
        let (vis, hid) = (ids.narrow(1, 0, k), ids.narrow(1, k, m));
        let tokens = vit.embed_patches(patches);
        let (_, z_vis) = vit.encode(&gather_tokens(&tokens, &vis));
        let target = tch::no_grad(|| vit.encode(&gather_tokens(&tokens, &hid)).1);
        let pos = self.pos.expand([n, l, d], false);
        let (pos_vis, pos_hid) = (gather_tokens(&pos, &vis), gather_tokens(&pos, &hid));
        let pos_kv = Tensor::cat(&[&pos_vis, &pos_hid], 1);
        let mut q = self.mask_token.expand([n, m, d], false);
        for block in &self.regressor {
            let kv = Tensor::cat(&[&z_vis, &q], 1);
            q = block.forward(&q, &kv, &pos_hid, &pos_kv);
        }
        let reconstruction = self.decoder.forward(&(&q + &pos_hid)).apply(&self.head);
        CaeParts {
            predicted: q,
            target,
            reconstruction,
        }
    }

    /// The loss on images `x` with mask order `ids`.
    pub fn loss_with(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        let patches = self.vit().patchify(x);
        let parts = self.parts_of_patches(&patches, ids);
        let (_, l) = ids.size2().expect("mask order is [N, L]");
        let hid = ids.narrow(1, self.n_visible, l - self.n_visible);
        let target = if self.cfg.norm_pix_loss {
            normalise_patches(&patches)
        } else {
            patches
        };
        let reconstruction = (parts.reconstruction - gather_tokens(&target, &hid))
            .square()
            .mean(Kind::Float);
        let alignment = (parts.predicted - parts.target).square().mean(Kind::Float);
        reconstruction + alignment * self.cfg.align_weight
    }
}

impl Method for Cae {
    fn name(&self) -> &'static str {
        "cae"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn mask_spec(&self) -> Option<MaskSpec> {
        Some(MaskSpec::Random {
            tokens: self.vit().n_patches() as usize,
            ratio: self.cfg.mask_ratio,
        })
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_with(&input.views[0], &input.masks[0])
    }
    /// Per-sample terms: every sample hides the same number of patches (its mask keyed by the sample), and the alignment target is this rank's encoder, identical on every rank.
    fn per_sample_loss(&self) -> bool {
        true
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}


impl super::MethodSpec for CaeConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::MASKED_VIT
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::open_fraction("method.mask_ratio", self.mask_ratio)?;
        rules::widths("method.heads", [self.heads])?;
        rules::widths("method.regressor_depth", [self.regressor_depth as i64])?;
        rules::non_negative("method.align_weight", self.align_weight)?;
        rules::non_negative("method.layer_scale", self.layer_scale)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Cae::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::tests::vit_factory;
    use tch::{Device, Kind};

    fn cae(mask_ratio: f64, align_weight: f64) -> (nn::VarStore, Cae) {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = vit_factory(vec![1, 8, 8])(&(vs.root() / "encoder")).unwrap();
        let cfg = CaeConfig {
            mask_ratio,
            regressor_depth: 1,
            decoder_depth: 1,
            heads: 2,
            align_weight,
            ..Default::default()
        };
        let m = Cae::new(&(vs.root() / "method"), enc, &cfg).unwrap();
        (vs, m)
    }

    fn order(hidden: &[i64]) -> Vec<i64> {
        (0..16)
            .filter(|i| !hidden.contains(i))
            .chain(hidden.iter().copied())
            .collect()
    }

    /// The loss is the reconstruction error of the hidden patches plus λ times the squared distance
    /// between the regressor's predictions and the encoder's own encoding of the hidden patches,
    /// the latter computed here by running the ViT on those tokens directly.
    #[test]
    fn the_loss_is_reconstruction_plus_weighted_alignment() {
        let (_vs, m) = cae(0.25, 2.0);
        assert_eq!(m.n_visible, 12);
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let hidden = [[1i64, 6, 7, 12], [0, 3, 9, 15]];
        let ids =
            Tensor::from_slice(&[order(&hidden[0]), order(&hidden[1])].concat()).view([2, 16]);
        let parts = m.parts(&x, &ids);
        let vit = m.vit();
        let target = normalise_patches(&vit.patchify(&x));
        let mut rec = 0.0;
        let mut align = 0.0;
        for s in 0..2 {
            let toks = vit
                .embed_patches(&vit.patchify(&x.get(s).unsqueeze(0)))
                .get(0);
            let hid_tokens = Tensor::stack(
                &hidden[s as usize]
                    .iter()
                    .map(|&h| toks.get(h))
                    .collect::<Vec<_>>(),
                0,
            );
            let (_, direct) = vit.encode(&hid_tokens.unsqueeze(0));
            for (j, &h) in hidden[s as usize].iter().enumerate() {
                let j = j as i64;
                rec += (parts.reconstruction.get(s).get(j) - target.get(s).get(h))
                    .square()
                    .sum(Kind::Float)
                    .double_value(&[]);
                align += (parts.predicted.get(s).get(j) - direct.get(0).get(j))
                    .square()
                    .sum(Kind::Float)
                    .double_value(&[]);
            }
        }
        let (rec, align) = (rec / (2.0 * 4.0 * 4.0), align / (2.0 * 4.0 * 8.0));
        let got = m.loss_with(&x, &ids).double_value(&[]);
        assert!(
            (got - (rec + 2.0 * align)).abs() < 1e-5,
            "{got} vs {rec} + 2·{align}"
        );
        assert!(
            !parts.target.requires_grad(),
            "the alignment target carries no gradient"
        );
    }

    /// Predictions and reconstructions come from the visible patches alone: garbage in the hidden
    /// patches changes only the alignment target.
    #[test]
    fn hidden_pixels_reach_only_the_alignment_target() {
        let (_vs, m) = cae(0.5, 2.0);
        let x = Tensor::randn([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let ids = MaskSpec::Random {
            tokens: 16,
            ratio: 0.5,
        }
        .make_batch(0, 0, 0, &[7])
        .remove(0);
        let hidden: Vec<i64> = Vec::<i64>::try_from(ids.narrow(1, 8, 8).flatten(0, -1)).unwrap();
        let patches = m.vit().patchify(&x);
        for &h in &hidden {
            let _ = patches.get(0).get(h).fill_(1e3);
        }
        let a = m.parts_of_patches(&m.vit().patchify(&x), &ids);
        let b = m.parts_of_patches(&patches, &ids);
        let diff = |u: &Tensor, v: &Tensor| (u - v).abs().max().double_value(&[]);
        assert!(diff(&a.predicted, &b.predicted) < 1e-6);
        assert!(diff(&a.reconstruction, &b.reconstruction) < 1e-6);
        assert!(
            diff(&a.target, &b.target) > 1e-3,
            "the target encodes the hidden patches"
        );
    }
}
