//! SSAST (Gong et al. 2022): masked spectrogram patch modelling on a ViT. Hidden patches'
//! embeddings are replaced by a learned mask token, all tokens are encoded, and each hidden
//! patch's output feeds two heads: one must pick its own patch among the clip's hidden patches
//! (discriminative, an InfoNCE over dot products), the other regresses the patch (generative,
//! mean squared error).
//!
//! ```text
//! t   = patch_embed(patchify(x));  t[hidden] = mask_token;  h = encoder(t + positions)
//! L_d = InfoNCE(cls_head(h[hidden]), patches[hidden])     (among the clip's hidden patches)
//! L_g = MSE(gen_head(h[hidden]), patches[hidden])
//! L   = L_d + λ·L_g                                        (λ = 10 in the paper)
//! ```
//! The paper hides 400 of 512 patches in clusters; here the patches are hidden independently at
//! random (its "cluster factor" of 0, also reported in its Table 5).
use super::mae::vit_of;
use super::simmim::encode_with_mask_token;
use super::{Method, StepInput};
use crate::encoders::vit::{gather_tokens, Vit};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::masked::patch_info_nce;
use crate::views::masking::{visible_count, MaskSpec};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Reduction, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsastConfig {
    /// Fraction of patches hidden (400 of 512 in the paper: 0.78).
    #[serde(default = "default_mask_ratio")]
    pub mask_ratio: f64,
    /// λ, the weight of the generative term (10 in the paper, §2.3).
    #[serde(default = "default_generative_weight")]
    pub generative_weight: f64,
    /// Hidden width of both two-layer heads (the paper uses the encoder's width).
    #[serde(default)]
    pub head_hidden: Option<i64>,
}

impl Default for SsastConfig {
    fn default() -> Self {
        SsastConfig {
            mask_ratio: default_mask_ratio(),
            generative_weight: default_generative_weight(),
            head_hidden: None,
        }
    }
}

fn default_mask_ratio() -> f64 {
    400.0 / 512.0
}
fn default_generative_weight() -> f64 {
    10.0
}

pub struct Ssast {
    encoder: Box<dyn Encoder>,
    mask_token: Tensor,
    cls_head: Head,
    gen_head: Head,
    n_visible: i64,
    mask_ratio: f64,
    generative_weight: f64,
}

impl Ssast {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SsastConfig) -> Result<Self> {
        let vit = vit_of(encoder.as_ref(), "ssast")?;
        let n_visible = visible_count(vit.n_patches() as usize, cfg.mask_ratio) as i64;
        anyhow::ensure!(
            n_visible < vit.n_patches() - 1,
            "ssast: mask_ratio {} hides fewer than two of {} patches; the discriminative term \
             needs at least two",
            cfg.mask_ratio,
            vit.n_patches()
        );
        let hidden = cfg.head_hidden.unwrap_or(vit.dim());
        let head = |name: &str| {
            Head::new(
                &(p / name),
                vit.dim(),
                &[
                    Block::new(hidden, false, true, true),
                    Block::new(vit.patch_len(), false, false, true),
                ],
            )
        };
        Ok(Ssast {
            mask_token: p.var(
                "mask_token",
                &[1, 1, vit.dim()],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            cls_head: head("cls_head"),
            gen_head: head("gen_head"),
            n_visible,
            mask_ratio: cfg.mask_ratio,
            generative_weight: cfg.generative_weight,
            encoder,
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    /// The loss for inputs `x` and mask orders `ids` (`[N, L]`: visible patches first).
    pub fn loss_with(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        let vit = self.vit();
        let (_, l) = ids.size2().expect("mask order is [N, L]");
        let patches = vit.patchify(x);
        let hidden_idx = ids.narrow(1, self.n_visible, l - self.n_visible);
        let hidden = crate::objectives::masked::hidden_mask(l, &hidden_idx);
        let h = encode_with_mask_token(vit, &self.mask_token, &patches, &hidden);
        let h_hidden = gather_tokens(&h, &hidden_idx);
        let target = gather_tokens(&patches, &hidden_idx);
        let discriminative = patch_info_nce(&self.cls_head.forward_t(&h_hidden, true), &target);
        let generative = self
            .gen_head
            .forward_t(&h_hidden, true)
            .mse_loss(&target, Reduction::Mean);
        discriminative + generative * self.generative_weight
    }
}

impl Method for Ssast {
    fn name(&self) -> &'static str {
        "ssast"
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
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for SsastConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::MASKED_VIT
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::open_fraction("method.mask_ratio", self.mask_ratio)?;
        rules::non_negative("method.generative_weight", self.generative_weight)?;
        if let Some(h) = self.head_hidden {
            rules::widths("method.head_hidden", [h])?;
        }
        Ok(())
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Ssast::new(&(vs.root() / "method"), encoder, self)?))
    }
}
