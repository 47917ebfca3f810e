//! MAE (He et al. 2022): hide most patches, encode only the visible ones, and let a light decoder
//! reconstruct the pixels of the hidden ones from the encoded visible tokens plus mask tokens.
//!
//! ```text
//! patches = patchify(x);  keep, hide = split(random permutation)       (mask drawn by the loader)
//! h       = encoder(embed(patches)[keep])                              (visible tokens only)
//! d       = unshuffle([dec_embed(h), mask_token × |hide|]) + dec_pos
//! pred    = dec_pred(decoder(d))
//! loss    = mean over hidden patches of ‖pred − target‖² / values     (target: normalised patches)
//! ```
use super::{Method, StepInput};
use crate::encoders::transformer::{fixed_sincos, Attention, TransformerStack};
use crate::encoders::vit::{gather_tokens, Vit};
use crate::encoders::Encoder;
use crate::objectives::masked::{hidden_mask, masked_patch_loss, normalise_patches, PatchError};
use crate::torch_init::xavier_linear;
use crate::views::masking::{visible_count, MaskSpec};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaeConfig {
    /// Fraction of patches hidden (0.75 in the paper, §4 and Fig. 5).
    #[serde(default = "default_mask_ratio")]
    pub mask_ratio: f64,
    /// Decoder width, depth and heads; the paper's default decoder is 512 wide and 8 deep
    /// (Table 1a/b) for ViT-L; narrowed here for small images (W3's 128 × 2, 4 heads).
    #[serde(default = "default_decoder_dim")]
    pub decoder_dim: i64,
    #[serde(default = "default_decoder_depth")]
    pub decoder_depth: usize,
    #[serde(default = "default_decoder_heads")]
    pub decoder_heads: i64,
    /// Reconstruct per-patch normalised pixels (Table 1c: better representations).
    #[serde(default = "yes")]
    pub norm_pix_loss: bool,
}

impl Default for MaeConfig {
    fn default() -> Self {
        MaeConfig {
            mask_ratio: default_mask_ratio(),
            decoder_dim: default_decoder_dim(),
            decoder_depth: default_decoder_depth(),
            decoder_heads: default_decoder_heads(),
            norm_pix_loss: true,
        }
    }
}

pub fn default_mask_ratio() -> f64 {
    0.75
}
fn default_decoder_dim() -> i64 {
    128
}
fn default_decoder_depth() -> usize {
    2
}
fn default_decoder_heads() -> i64 {
    4
}
fn yes() -> bool {
    true
}

pub struct Mae {
    encoder: Box<dyn Encoder>,
    decoder: PixelDecoder,
    n_visible: i64,
    cfg: MaeConfig,
}

/// MAE's light decoder (shared with MixedAE): encoder width → `dim` (`embed`), a learned mask
/// token, fixed sine-cosine positions, transformer blocks, and a linear map to patch pixels.
pub(crate) struct PixelDecoder {
    pub(crate) embed: nn::Linear,
    pub(crate) mask_token: Tensor,
    pos: Tensor,
    stack: TransformerStack,
    pred: nn::Linear,
}

impl PixelDecoder {
    /// Under `p`: `decoder_pos`, `decoder_embed`, `mask_token`, `decoder`, `decoder_pred`.
    pub(crate) fn new(p: &nn::Path, vit: &Vit, dim: i64, depth: usize, heads: i64) -> Result<Self> {
        anyhow::ensure!(dim % 4 == 0, "method.decoder_dim = {dim}: must be divisible by 4");
        let (gh, gw) = vit.grid();
        let pos = fixed_sincos(p, "decoder_pos", dim, gh, gw);
        Ok(PixelDecoder {
            embed: xavier_linear(p / "decoder_embed", vit.dim(), dim),
            mask_token: p.var(
                "mask_token",
                &[1, 1, dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            pos,
            stack: TransformerStack::new(
                &(p / "decoder"),
                dim,
                depth,
                heads,
                4.0,
                Attention::Fused,
                |_| None,
            ),
            pred: xavier_linear(p / "decoder_pred", dim, vit.patch_len()),
        })
    }

    /// Predicted patches `[N, L, p²C]` from decoder tokens `[N, L, dim]` in grid order
    /// (positions are added here) and the embedded class token `[N, dim]`, which enters the
    /// decoder too (with a zero position), as in the MAE code.
    pub(crate) fn predict(&self, tokens: &Tensor, cls: Option<Tensor>) -> Tensor {
        let full = tokens + &self.pos;
        let l = full.size()[1];
        let out = match cls {
            Some(c) => self
                .stack
                .forward(&Tensor::cat(&[c.unsqueeze(1), full], 1))
                .narrow(1, 1, l),
            None => self.stack.forward(&full),
        };
        out.apply(&self.pred)
    }
}

/// The ViT inside `encoder`, or an error naming the method that needs one.
pub(crate) fn vit_of<'a>(encoder: &'a dyn Encoder, method: &str) -> Result<&'a Vit> {
    encoder
        .as_vit()
        .ok_or_else(|| anyhow!("{method} works on patch tokens and needs encoder.kind = \"vit\""))
}

impl Mae {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &MaeConfig) -> Result<Self> {
        let vit = vit_of(encoder.as_ref(), "mae")?;
        let l = vit.n_patches();
        let decoder = PixelDecoder::new(
            p,
            vit,
            cfg.decoder_dim,
            cfg.decoder_depth,
            cfg.decoder_heads,
        )?;
        Ok(Mae {
            decoder,
            n_visible: visible_count(l as usize, cfg.mask_ratio) as i64,
            cfg: cfg.clone(),
            encoder,
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    /// The decoder's attention (the encoder's is set on the ViT before it is boxed).
    pub fn set_attention(&mut self, attention: Attention) {
        self.decoder.stack.set_attention(attention);
    }

    /// Predicted patches `[N, L, p²C]` for images `x` and mask order `ids` (`[N, L]`: visible
    /// tokens first, as [`MaskSpec::Random`] draws them).
    pub fn reconstruct(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        self.reconstruct_patches(&self.vit().patchify(x), ids)
    }

    /// [`Mae::reconstruct`] from already patchified images `[N, L, p²C]`.
    fn reconstruct_patches(&self, patches: &Tensor, ids: &Tensor) -> Tensor {
        let vit = self.vit();
        let (n, l) = ids.size2().expect("mask order is [N, L]");
        let k = self.n_visible;
        let tokens = gather_tokens(&vit.embed_patches(patches), &ids.narrow(1, 0, k));
        let (cls, h) = vit.encode(&tokens);
        let dd = self.cfg.decoder_dim;
        let d = &self.decoder;
        let shuffled = Tensor::cat(
            &[h.apply(&d.embed), d.mask_token.expand([n, l - k, dd], false)],
            1,
        );
        // Back to grid order: position j of `shuffled` holds token ids[j].
        let full = gather_tokens(&shuffled, &ids.argsort(1, false));
        d.predict(&full, cls.map(|c| c.apply(&d.embed)))
    }

    /// The loss on images `x` with mask order `ids`.
    pub fn loss_with(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        let (_, l) = ids.size2().expect("mask order is [N, L]");
        let patches = self.vit().patchify(x);
        let pred = self.reconstruct_patches(&patches, ids);
        let target = if self.cfg.norm_pix_loss {
            normalise_patches(&patches)
        } else {
            patches
        };
        let hidden = hidden_mask(l, &ids.narrow(1, self.n_visible, l - self.n_visible));
        masked_patch_loss(&pred, &target, &hidden, PatchError::Squared)
    }
}

impl Method for Mae {
    fn name(&self) -> &'static str {
        "mae"
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
    /// Per-sample terms: every sample hides the same number of patches (its mask keyed by the sample), so each rank's mean is its share of the whole batch's.
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


impl super::MethodSpec for MaeConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::MASKED_VIT
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::open_fraction("method.mask_ratio", self.mask_ratio)?;
        rules::widths("method.decoder_dim", [self.decoder_dim])?;
        rules::widths("method.decoder_heads", [self.decoder_heads])
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Mae::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::tests::vit_factory;
    use tch::{Device, Kind};

    fn mae(mask_ratio: f64, norm_pix_loss: bool) -> (nn::VarStore, Mae) {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = vit_factory(vec![1, 8, 8])(&(vs.root() / "encoder")).unwrap();
        let cfg = MaeConfig {
            mask_ratio,
            decoder_dim: 8,
            decoder_depth: 1,
            decoder_heads: 2,
            norm_pix_loss,
        };
        let m = Mae::new(&(vs.root() / "method"), enc, &cfg).unwrap();
        (vs, m)
    }

    /// With one hidden patch (of 16), the loss is exactly that patch's mean squared error, and the
    /// reconstructions of the 15 visible patches do not enter it.
    #[test]
    fn the_loss_is_computed_on_the_one_hidden_patch_only() {
        for norm in [false, true] {
            let (_vs, m) = mae(1.0 / 16.0, norm);
            assert_eq!(m.n_visible, 15);
            let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
            // Sample 0 hides patch 5, sample 1 hides patch 0.
            let order = |h: i64| -> Vec<i64> { (0..16).filter(|&i| i != h).chain([h]).collect() };
            let ids = Tensor::from_slice(&[order(5), order(0)].concat()).view([2, 16]);
            let pred = m.reconstruct(&x, &ids);
            let mut target = m.vit().patchify(&x);
            if norm {
                target = normalise_patches(&target);
            }
            let err = |s: i64, p: i64| {
                (pred.get(s).get(p) - target.get(s).get(p))
                    .square()
                    .mean(Kind::Float)
                    .double_value(&[])
            };
            let want = (err(0, 5) + err(1, 0)) / 2.0;
            let got = m.loss_with(&x, &ids).double_value(&[]);
            assert!((got - want).abs() < 1e-6, "norm {norm}: {got} vs {want}");
            let all: f64 = (0..16).map(|p| err(0, p) + err(1, p)).sum::<f64>() / 32.0;
            assert!(
                (got - all).abs() > 1e-4,
                "the visible patches must not count"
            );
        }
    }

    /// The encoder sees only visible tokens: hiding a patch's pixels entirely (they are replaced by
    /// garbage) leaves the reconstruction unchanged when that patch is masked.
    #[test]
    fn hidden_pixels_do_not_reach_the_encoder() {
        let (_vs, m) = mae(0.75, true);
        let x = Tensor::randn([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let ids = crate::views::masking::MaskSpec::Random {
            tokens: 16,
            ratio: 0.75,
        }
        .make_batch(0, 0, 0, &[3])
        .remove(0);
        let hidden: Vec<i64> = Vec::<i64>::try_from(ids.narrow(1, 4, 12).flatten(0, -1)).unwrap();
        let patches = m.vit().patchify(&x);
        for &h in &hidden {
            let _ = patches.get(0).get(h).fill_(1e3);
        }
        // Fold the patches back into an image (inverse of patchify for 1 channel, 2×2 patches).
        let x2 = patches
            .view([1, 4, 4, 2, 2])
            .permute([0, 1, 3, 2, 4])
            .reshape([1, 1, 8, 8]);
        assert!(m.vit().patchify(&x2).equal(&patches));
        let d = (m.reconstruct(&x, &ids) - m.reconstruct(&x2, &ids))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6, "{d}");
    }
}
