//! Vision Transformer (Dosovitskiy et al. 2021) that can run on a subset of its patch tokens.
//!
//! Masked methods call the pieces separately: [`Vit::patchify`], [`Vit::embed_patches`] (patch
//! embedding + positions for all patches), [`gather_tokens`] to keep only the visible ones, and
//! [`Vit::encode`] on those — so the blocks cost grows with the visible tokens only, which is the
//! saving MAE is built on (He et al. 2022 §3), instead of masking attention over all tokens.
//!
//! Optimiser groups (for layer-wise learning-rate decay when fine-tuning): group 0 holds the patch
//! embedding, positions and class token, group i+1 block i, group depth+1 the final norm.
use super::transformer::{fixed_sincos, Attention, TransformerStack};
use crate::torch_init::xavier_linear;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// Fixed 2-D sine-cosine (MAE, I-JEPA).
    Sincos,
    /// Learned, initialised N(0, 0.02²) (the original ViT).
    Learned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// A class token is prepended; the representation is its output.
    Cls,
    /// No class token; the representation is the mean of the patch-token outputs (I-JEPA).
    Mean,
}

#[derive(Debug)]
pub struct Vit {
    in_channels: i64,
    patch: i64,
    grid: (i64, i64),
    dim: i64,
    embed: nn::Linear,
    /// `[1, L, D]`.
    pos: Tensor,
    cls: Option<Tensor>,
    stack: TransformerStack,
}

/// Keeps tokens `idx` (`[N, K]`, int64) of `tokens` (`[N, L, D]`) → `[N, K, D]`.
pub fn gather_tokens(tokens: &Tensor, idx: &Tensor) -> Tensor {
    let d = tokens.size()[2];
    let (n, k) = idx.size2().expect("token indices are [N, K]");
    tokens.gather(1, &idx.unsqueeze(-1).expand([n, k, d], false), false)
}

impl Vit {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        image: &[i64],
        patch: i64,
        dim: i64,
        depth: usize,
        heads: i64,
        mlp_ratio: f64,
        positions: Positions,
        pooling: Pooling,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            image.len() == 3,
            "vit needs image inputs [C, H, W], got {image:?}"
        );
        let (c, h, w) = (image[0], image[1], image[2]);
        anyhow::ensure!(
            patch > 0 && h % patch == 0 && w % patch == 0,
            "vit: patch size {patch} does not divide the {h}×{w} image"
        );
        anyhow::ensure!(
            heads > 0 && dim % heads == 0,
            "vit: width {dim} is not divisible by {heads} heads"
        );
        anyhow::ensure!(
            positions == Positions::Learned || dim % 4 == 0,
            "vit: sine-cosine positions need a width divisible by 4, got {dim}"
        );
        let grid = (h / patch, w / patch);
        let l = grid.0 * grid.1;
        let g0 = p.set_group(0);
        let embed = xavier_linear(&g0 / "patch_embed", c * patch * patch, dim);
        let pos = match positions {
            Positions::Sincos => fixed_sincos(&g0, "pos_embed", dim, grid.0, grid.1),
            Positions::Learned => g0.var(
                "pos_embed",
                &[1, l, dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
        };
        let cls = (pooling == Pooling::Cls).then(|| {
            g0.var(
                "cls_token",
                &[1, 1, dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
        });
        let stack = TransformerStack::new(p, dim, depth, heads, mlp_ratio, Attention::Fused, |i| {
            Some(i + 1)
        });
        Ok(Vit {
            in_channels: c,
            patch,
            grid,
            dim,
            embed,
            pos,
            cls,
            stack,
        })
    }

    pub fn n_patches(&self) -> i64 {
        self.grid.0 * self.grid.1
    }
    pub fn grid(&self) -> (i64, i64) {
        self.grid
    }
    pub fn dim(&self) -> i64 {
        self.dim
    }
    /// Values per patch (`patch² · channels`).
    pub fn patch_len(&self) -> i64 {
        self.patch * self.patch * self.in_channels
    }
    pub fn depth(&self) -> usize {
        self.stack.depth()
    }
    pub fn has_cls(&self) -> bool {
        self.cls.is_some()
    }
    pub fn set_attention(&mut self, attention: Attention) {
        self.stack.set_attention(attention);
    }

    /// `[N, C, H, W]` → `[N, L, p·p·C]`, patches in row-major grid order, each patch's values in
    /// (row, column, channel) order as MAE's `patchify`.
    pub fn patchify(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        let (gh, gw, p, c) = (self.grid.0, self.grid.1, self.patch, self.in_channels);
        x.reshape([n, c, gh, p, gw, p])
            .permute([0, 2, 4, 3, 5, 1])
            .reshape([n, gh * gw, p * p * c])
    }

    /// Patch embeddings plus positions for every patch: `[N, L, D]`.
    pub fn embed_patches(&self, patches: &Tensor) -> Tensor {
        self.add_positions(&self.patch_tokens(patches))
    }
    /// Patch embeddings without positions (SimMIM swaps in its mask token here).
    pub fn patch_tokens(&self, patches: &Tensor) -> Tensor {
        patches.apply(&self.embed)
    }
    pub fn add_positions(&self, tokens: &Tensor) -> Tensor {
        tokens + &self.pos
    }

    /// Runs the blocks (and final norm) on the given tokens `[N, K, D]`, prepending the class
    /// token when there is one. Returns the class-token output (if any) and the `K` token outputs.
    pub fn encode(&self, tokens: &Tensor) -> (Option<Tensor>, Tensor) {
        self.encode_with(tokens, |x| self.stack.forward(x))
    }

    /// [`Vit::encode`] with each query attending to its `keep` best-scoring keys only
    /// ([`crate::encoders::transformer::multi_head_top_k`]; MixedAE's homologous attention).
    pub fn encode_top_k(&self, tokens: &Tensor, keep: i64) -> (Option<Tensor>, Tensor) {
        self.encode_with(tokens, |x| self.stack.forward_top_k(x, keep))
    }

    fn encode_with(
        &self,
        tokens: &Tensor,
        stack: impl Fn(&Tensor) -> Tensor,
    ) -> (Option<Tensor>, Tensor) {
        match &self.cls {
            Some(cls) => {
                let n = tokens.size()[0];
                let x = Tensor::cat(
                    &[cls.expand([n, 1, self.dim], false), tokens.shallow_clone()],
                    1,
                );
                let h = stack(&x);
                let k = h.size()[1] - 1;
                (Some(h.select(1, 0)), h.narrow(1, 1, k))
            }
            None => (None, stack(tokens)),
        }
    }

    /// The pooled representation of encoded tokens.
    pub fn pool(&self, cls: Option<Tensor>, tokens: &Tensor) -> Tensor {
        match cls {
            Some(c) => c,
            None => tokens.mean_dim(1, false, Kind::Float),
        }
    }
}

impl nn::ModuleT for Vit {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let tokens = self.embed_patches(&self.patchify(x));
        let (cls, toks) = self.encode(&tokens);
        self.pool(cls, &toks)
    }
}

impl super::Encoder for Vit {
    fn out_dim(&self) -> i64 {
        self.dim
    }
    fn as_vit(&self) -> Option<&Vit> {
        Some(self)
    }
    fn lr_layers(&self) -> Option<usize> {
        Some(self.depth() + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tiny(pooling: Pooling) -> (nn::VarStore, Vit) {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let v = Vit::new(
            &(vs.root() / "encoder"),
            &[2, 8, 12],
            4,
            16,
            2,
            2,
            2.0,
            Positions::Sincos,
            pooling,
        )
        .unwrap();
        (vs, v)
    }

    #[test]
    fn patchify_orders_patches_row_major_and_values_row_column_channel() {
        let (_vs, v) = tiny(Pooling::Cls);
        assert_eq!(v.n_patches(), 6);
        let x = Tensor::arange(2 * 8 * 12, (Kind::Float, Device::Cpu)).view([1, 2, 8, 12]);
        let p = v.patchify(&x);
        assert_eq!(p.size(), vec![1, 6, 32]);
        // Patch 4 = grid row 1, column 1: pixel (row 4 + r, col 4 + c), channel ch.
        for (r, c, ch) in [(0, 0, 0), (1, 2, 1), (3, 3, 0)] {
            let want = (ch * 96 + (4 + r) * 12 + (4 + c)) as f64;
            let got = p.double_value(&[0, 4, (r * 4 * 2 + c * 2 + ch) as i64]);
            assert_eq!(got, want, "r{r} c{c} ch{ch}");
        }
    }

    /// Encoding only the visible tokens equals running the same blocks, by hand, on exactly those
    /// tokens (with the class token in front) — and differs from encoding all tokens.
    #[test]
    fn the_visible_token_path_equals_a_reference_computation_on_the_same_tokens() {
        let (_vs, v) = tiny(Pooling::Cls);
        let x = Tensor::randn([3, 2, 8, 12], (Kind::Float, Device::Cpu));
        let all = v.embed_patches(&v.patchify(&x));
        let keep = Tensor::from_slice(&[0i64, 5, 1, 2, 3, 4]).view([3, 2]);
        let (cls, vis) = v.encode(&gather_tokens(&all, &keep));
        assert_eq!(vis.size(), vec![3, 2, 16]);
        for s in 0..3i64 {
            let i0 = keep.int64_value(&[s, 0]);
            let i1 = keep.int64_value(&[s, 1]);
            let tokens = Tensor::stack(&[all.get(s).get(i0), all.get(s).get(i1)], 0).unsqueeze(0);
            let cls_tok = v.cls.as_ref().unwrap().view([1, 1, 16]);
            let reference = v.stack.forward(&Tensor::cat(&[cls_tok, tokens], 1));
            let d_cls = (cls.as_ref().unwrap().get(s) - reference.get(0).get(0))
                .abs()
                .max()
                .double_value(&[]);
            let d_tok = (vis.get(s) - reference.get(0).narrow(0, 1, 2))
                .abs()
                .max()
                .double_value(&[]);
            assert!(d_cls < 1e-5 && d_tok < 1e-5, "sample {s}: {d_cls} {d_tok}");
        }
        // The class token's output depends on which tokens it saw.
        let (cls_all, _) = v.encode(&all);
        let d = (cls_all.unwrap() - cls.unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert!(d > 1e-4);
    }

    /// Optimiser groups follow the layers: with group 0's learning rate at zero, one AdamW step
    /// moves the blocks and the final norm but not the patch embedding or the class token.
    #[test]
    fn optimiser_groups_follow_the_layers() {
        use tch::nn::OptimizerConfig;
        let (vs, v) = tiny(Pooling::Cls);
        let before = |name: &str| vs.variables()[name].copy();
        let names = [
            "encoder.patch_embed.weight",
            "encoder.cls_token",
            "encoder.blocks.0.qkv.weight",
            "encoder.blocks.1.fc2.weight",
            "encoder.norm.weight",
        ];
        let old: Vec<Tensor> = names.iter().map(|n| before(n)).collect();
        let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
        for g in 0..4 {
            opt.set_lr_group(g, if g == 0 { 0.0 } else { 1e-2 });
        }
        let y = nn::ModuleT::forward_t(
            &v,
            &Tensor::randn([2, 2, 8, 12], (Kind::Float, Device::Cpu)),
            true,
        );
        opt.backward_step(
            &(y * Tensor::randn([2, 16], (Kind::Float, Device::Cpu))).sum(Kind::Float),
        );
        let moved: Vec<bool> = names
            .iter()
            .zip(&old)
            .map(|(n, o)| !vs.variables()[*n].equal(o))
            .collect();
        assert_eq!(moved, vec![false, false, true, true, true], "{names:?}");
    }

    #[test]
    fn mean_pooling_has_no_class_token_and_positions_are_frozen() {
        let (vs, v) = tiny(Pooling::Mean);
        assert!(!v.has_cls());
        let vars = vs.variables();
        assert!(!vars["encoder.pos_embed"].requires_grad());
        use nn::ModuleT;
        let out = v.forward_t(
            &Tensor::randn([2, 2, 8, 12], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(out.size(), vec![2, 16]);
        use crate::encoders::Encoder;
        assert_eq!(v.lr_layers(), Some(4));
    }
}
