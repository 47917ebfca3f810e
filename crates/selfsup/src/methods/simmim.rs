//! SimMIM (Xie et al. 2022): replace the embeddings of randomly hidden patches by a learned mask
//! token, encode all tokens, and regress the raw pixels of the hidden patches with a one-layer
//! linear head under an ℓ1 loss.
//!
//! ```text
//! t    = patch_embed(patchify(x));  t[hidden] = mask_token;  t += positions
//! h    = encoder(t)                                   (all tokens, unlike MAE)
//! loss = mean over hidden patches of |linear(h) − patch| / values
//! ```
//! The paper masks 32×32 regions of 192² images (a coarser grid than its 4×4 patches); on small
//! images the mask is drawn per patch, which its Table 1 also reports to work.
use super::mae::vit_of;
use super::{Method, StepInput};
use crate::encoders::vit::Vit;
use crate::encoders::Encoder;
use crate::objectives::masked::{hidden_mask, masked_patch_loss, PatchError};
use crate::torch_init::xavier_linear;
use crate::views::masking::{visible_count, MaskSpec};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimConfig {
    /// Fraction of patches hidden (0.6 for ViT in the paper, Table 1).
    #[serde(default = "default_mask_ratio")]
    pub mask_ratio: f64,
}

impl Default for SimMimConfig {
    fn default() -> Self {
        SimMimConfig {
            mask_ratio: default_mask_ratio(),
        }
    }
}

pub fn default_mask_ratio() -> f64 {
    0.6
}

pub struct SimMim {
    encoder: Box<dyn Encoder>,
    mask_token: Tensor,
    head: nn::Linear,
    n_visible: i64,
    mask_ratio: f64,
}

impl SimMim {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SimMimConfig) -> Result<Self> {
        let vit = vit_of(encoder.as_ref(), "simmim")?;
        Ok(SimMim {
            mask_token: p.var(
                "mask_token",
                &[1, 1, vit.dim()],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            head: xavier_linear(p / "head", vit.dim(), vit.patch_len()),
            n_visible: visible_count(vit.n_patches() as usize, cfg.mask_ratio) as i64,
            mask_ratio: cfg.mask_ratio,
            encoder,
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    pub fn loss_with(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        let vit = self.vit();
        let (_, l) = ids.size2().expect("mask order is [N, L]");
        let patches = vit.patchify(x);
        let hidden = hidden_mask(l, &ids.narrow(1, self.n_visible, l - self.n_visible));
        let h = encode_with_mask_token(vit, &self.mask_token, &patches, &hidden);
        masked_patch_loss(
            &h.apply(&self.head),
            &patches,
            &hidden,
            PatchError::Absolute,
        )
    }
}

/// SimMIM's encoding: the embeddings of the patches where `hidden` (`[N, L]`, 1 = hidden) is 1
/// replaced by `mask_token`, positions added, every token encoded → `[N, L, D]` (SSAST encodes
/// the same way).
pub(crate) fn encode_with_mask_token(vit: &Vit, mask_token: &Tensor, patches: &Tensor, hidden: &Tensor) -> Tensor {
    let w = hidden.unsqueeze(-1);
    let t = vit.patch_tokens(patches);
    let t = &t * (1.0 - &w) + mask_token * &w;
    vit.encode(&vit.add_positions(&t)).1
}

impl Method for SimMim {
    fn name(&self) -> &'static str {
        "simmim"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn mask_spec(&self) -> Option<MaskSpec> {
        Some(MaskSpec::Random {
            tokens: self.vit().n_patches() as usize,
            ratio: self.mask_ratio,
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

impl super::MethodSpec for SimMimConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::MASKED_VIT
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::open_fraction("method.mask_ratio", self.mask_ratio)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(SimMim::new(&(vs.root() / "method"), encoder, self)?))
    }
}
