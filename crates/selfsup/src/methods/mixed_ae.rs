//! MixedAE (Chen et al., "Mixed Autoencoder for Self-supervised Visual Representation Learning",
//! CVPR 2023): MAE whose input is a mix of several images instead of one image with most patches
//! hidden, plus "homologous recognition" so that mixing does not make the task easier.
//!
//! ```text
//! group the batch by G;  partition the L positions into G random parts P_1..P_G (one per member)
//! mixed[p] = embed(patches of member m)[p]  for p ∈ P_m           (one mixed image per group)
//! h        = encoder(mixed) with homologous attention: each query keeps its ⌈L/G⌉ best keys
//! for each member m:  d_m = decoder([dec_embed(h)[p] if p ∈ P_m else mask_token] + dec_pos)
//! L_rec    = MAE loss of member m on the positions outside P_m (its hidden patches)
//! L_homo   = SupCon over the tokens of h, positives = tokens from the same member
//! loss     = L_rec + λ L_homo
//! ```
//! Which parts follow the paper: mixing several images into one input in place of MAE's masking,
//! homologous attention (attention restricted to the tokens a query recognises as its own image's)
//! and the homologous contrastive term (abstract and introduction). Ours, because the paper's
//! method section and code were not available here: the exact top-k rule (keep the ⌈L/G⌉
//! highest scores, every encoder block, pretraining only), G = 4 with a balanced random partition
//! (an image keeps ~1/G of its patches, MAE's 75 % mask at G = 4), the reconstruction of each
//! member from its own tokens only, λ 0.5 and τ 0.07 (an unofficial re-implementation's values),
//! and no segment embeddings (they would tell the encoder each token's image outright). At
//! evaluation the encoder sees one whole image with ordinary attention.
use super::mae::{vit_of, PixelDecoder};
use super::{Method, StepInput};
use crate::encoders::vit::Vit;
use crate::encoders::Encoder;
use crate::objectives::homologous::homologous_contrast;
use crate::objectives::masked::{masked_patch_loss, normalise_patches, PatchError};
use crate::views::masking::MaskSpec;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixedAeConfig {
    /// Images mixed into one input (the mixing ratio is 1/group).
    pub group: usize,
    /// Homologous (top-k) attention in the encoder during pretraining.
    pub homologous_attention: bool,
    /// λ and τ of the homologous contrastive term (0 turns it off).
    pub contrast_weight: f64,
    pub temperature: f64,
    /// The decoder and target, as MAE's.
    pub decoder_dim: i64,
    pub decoder_depth: usize,
    pub decoder_heads: i64,
    pub norm_pix_loss: bool,
}

impl Default for MixedAeConfig {
    fn default() -> Self {
        MixedAeConfig {
            group: 4,
            homologous_attention: true,
            contrast_weight: 0.5,
            temperature: 0.07,
            decoder_dim: 128,
            decoder_depth: 2,
            decoder_heads: 4,
            norm_pix_loss: true,
        }
    }
}

pub struct MixedAe {
    encoder: Box<dyn Encoder>,
    decoder: PixelDecoder,
    cfg: MixedAeConfig,
}

impl MixedAe {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &MixedAeConfig) -> Result<Self> {
        let vit = vit_of(encoder.as_ref(), "mixed_ae")?;
        let l = vit.n_patches();
        anyhow::ensure!(
            (cfg.group as i64) <= l,
            "method.group = {}: more images than the {l} patch positions to share",
            cfg.group
        );
        let decoder = PixelDecoder::new(
            p,
            vit,
            cfg.decoder_dim,
            cfg.decoder_depth,
            cfg.decoder_heads,
        )?;
        Ok(MixedAe {
            decoder,
            cfg: cfg.clone(),
            encoder,
        })
    }

    fn vit(&self) -> &Vit {
        self.encoder.as_vit().expect("checked in new()")
    }

    /// Which member of its group each position of each mixed image takes, `[N/G, L]` int64:
    /// the group's first image's random order `ids` cut into `G` consecutive parts (sizes
    /// ⌊L/G⌋ or ⌈L/G⌉), part m going to member m.
    pub fn sources(&self, ids: &Tensor) -> Tensor {
        let (n, l) = ids.size2().expect("orders are [N, L]");
        let g = self.cfg.group as i64;
        let first = ids.slice(0, 0, n / g * g, g); // [S, L]: each group's first order
        let part: Vec<i64> = (0..l).map(|j| j * g / l).collect();
        let part = Tensor::from_slice(&part).to_device(ids.device());
        // Position ids[j] belongs to part ⌊j·G/L⌋: scatter the parts to their positions.
        first.zeros_like().scatter(1, &first, &part.expand_as(&first))
    }

    /// The loss on images `x` (`[N, C, H, W]`, `N ≥ G`; a remainder beyond a multiple of `G` is
    /// left out of the step) with random orders `ids`.
    pub fn loss_with(&self, x: &Tensor, ids: &Tensor) -> Tensor {
        let vit = self.vit();
        let g = self.cfg.group as i64;
        let n = x.size()[0] / g * g;
        let s = n / g;
        let patches = vit.patchify(&x.narrow(0, 0, n)); // [N, L, P]
        let l = patches.size()[1];
        let source = self.sources(&ids.narrow(0, 0, n)); // [S, L]
        // Member m of group i is image i·G + m; the mixed image takes its token at p from
        // member source[i, p].
        let tokens = vit.embed_patches(&patches); // [N, L, D]
        let d = tokens.size()[2];
        let grouped = tokens.view([s, g, l, d]);
        let mixed = grouped
            .gather(1, &source.view([s, 1, l, 1]).expand([s, 1, l, d], false), false)
            .squeeze_dim(1);
        let keep = (l + g - 1) / g;
        let (cls, h) = if self.cfg.homologous_attention {
            vit.encode_top_k(&mixed, keep)
        } else {
            vit.encode(&mixed)
        };
        // Unmixing: member m's decoder input holds the encoded tokens at its own positions and
        // the mask token at every other.
        let dd = self.cfg.decoder_dim;
        let d = &self.decoder;
        let e = h.apply(&d.embed).unsqueeze(1).expand([s, g, l, dd], false);
        let member = Tensor::arange(g, (Kind::Int64, x.device())).view([1, g, 1]);
        let own = source.unsqueeze(1).eq_tensor(&member); // [S, G, L]
        let full = e
            .where_self(&own.unsqueeze(-1), &d.mask_token.view([1, 1, 1, dd]))
            .reshape([n, l, dd]);
        // Each member's sequence starts with the mixed image's class token.
        let cls = cls.map(|c| {
            c.apply(&d.embed)
                .view([s, 1, dd])
                .expand([s, g, dd], false)
                .reshape([n, dd])
        });
        let pred = d.predict(&full, cls);
        let target = if self.cfg.norm_pix_loss { normalise_patches(&patches) } else { patches };
        let hidden = own.logical_not().reshape([n, l]).to_kind(Kind::Float);
        let rec = masked_patch_loss(&pred, &target, &hidden, PatchError::Squared);
        if self.cfg.contrast_weight > 0.0 {
            rec + homologous_contrast(&h, &source, self.cfg.temperature) * self.cfg.contrast_weight
        } else {
            rec
        }
    }
}

impl Method for MixedAe {
    fn name(&self) -> &'static str {
        "mixed_ae"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn mask_spec(&self) -> Option<MaskSpec> {
        // Only the random order is used: cut into G parts, it is the mixing partition.
        let g = self.cfg.group as f64;
        Some(MaskSpec::Random { tokens: self.vit().n_patches() as usize, ratio: 1.0 - 1.0 / g })
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

impl super::MethodSpec for MixedAeConfig {
    fn needs(&self) -> super::Needs {
        super::Needs { min_batch: self.group.max(2), ..super::Needs::MASKED_VIT }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::widths("method.group", [self.group as i64 - 1])?;
        rules::non_negative("method.contrast_weight", self.contrast_weight)?;
        rules::temperature("method.temperature", self.temperature)?;
        rules::widths("method.decoder_dim", [self.decoder_dim])?;
        rules::widths("method.decoder_heads", [self.decoder_heads])
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(MixedAe::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::tests::vit_factory;
    use tch::Device;

    fn mixed(group: usize) -> (nn::VarStore, MixedAe) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = vit_factory(vec![1, 8, 8])(&(vs.root() / "encoder")).unwrap();
        let cfg = MixedAeConfig { group, decoder_dim: 8, decoder_depth: 1, decoder_heads: 2, ..Default::default() };
        let m = MixedAe::new(&(vs.root() / "method"), enc, &cfg).unwrap();
        (vs, m)
    }

    fn orders(n: i64, l: i64) -> Tensor {
        Tensor::rand([n, l], (Kind::Float, Device::Cpu)).argsort(1, false)
    }

    #[test]
    fn the_partition_gives_every_member_its_share_of_positions() {
        let (_vs, m) = mixed(4);
        let l = m.vit().n_patches();
        let ids = orders(8, l);
        let src = m.sources(&ids);
        assert_eq!(src.size(), vec![2, l]);
        for i in 0..2 {
            let row = Vec::<i64>::try_from(src.get(i)).unwrap();
            for member in 0..4 {
                let c = row.iter().filter(|&&x| x == member).count() as i64;
                assert!(c == l / 4 || c == (l + 3) / 4, "member {member}: {c} of {l}");
            }
            // The part of position ids[i·G][j] is ⌊j·G/L⌋.
            let order = Vec::<i64>::try_from(ids.get(i * 4)).unwrap();
            for (j, &pos) in order.iter().enumerate() {
                assert_eq!(row[pos as usize], j as i64 * 4 / l);
            }
        }
    }

    #[test]
    fn a_member_is_reconstructed_from_its_own_patches_only() {
        // Changing a pixel of image 0 at a position member 0 holds moves the loss; the same
        // change where another member holds the position (so image 0's patch there is hidden
        // and only a target) moves the reconstruction term but never reaches the encoder.
        let (_vs, m) = mixed(2);
        let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let l = m.vit().n_patches();
        let ids = orders(2, l);
        let src = Vec::<i64>::try_from(m.sources(&ids).get(0)).unwrap();
        let hidden_pos = src.iter().position(|&s| s != 0).unwrap() as i64;
        let patches = m.vit().patchify(&x);
        let mixed_tokens = |x: &Tensor| {
            let p = m.vit().patchify(x);
            let t = m.vit().embed_patches(&p).view([1, 2, l, -1]);
            let s = m.sources(&ids);
            t.gather(1, &s.view([1, 1, l, 1]).expand([1, 1, l, t.size()[3]], false), false)
        };
        let changed = patches.copy();
        let _ = changed.get(0).get(hidden_pos).fill_(5.0);
        let before = mixed_tokens(&x);
        // The image whose patchified form is `changed` (patches 2×2 on a 4×4 grid).
        let x2 = changed.view([2, 4, 4, 2, 2, 1]).permute([0, 5, 1, 3, 2, 4]).reshape([2, 1, 8, 8]);
        assert!(m.vit().patchify(&x2).allclose(&changed, 0.0, 0.0, false), "layout");
        let after = mixed_tokens(&x2);
        assert!(before.allclose(&after, 0.0, 0.0, false), "a hidden patch reached the encoder");
        let (a, b) = (m.loss_with(&x, &ids).double_value(&[]), m.loss_with(&x2, &ids).double_value(&[]));
        assert!(a.is_finite() && b.is_finite() && (a - b).abs() > 1e-6, "the target moves the loss");
    }
}
