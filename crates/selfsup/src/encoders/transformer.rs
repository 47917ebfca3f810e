//! Pre-norm transformer blocks (Vaswani et al. 2017, with the pre-norm placement of ViT,
//! Dosovitskiy et al. 2021) and 2-D sine-cosine positions (MAE, He et al. 2022, appendix A.1).
//! Shared by the ViT encoder, MAE's decoder and I-JEPA's predictor.
use crate::torch_init::xavier_linear;
use tch::{nn, nn::Module, Kind, Tensor};

/// How attention is computed. `Fused` calls libtorch's scaled-dot-product attention (one kernel,
/// no materialised `[N, H, T, T]` softmax kept for backward where a fused kernel applies);
/// `Explicit` spells out softmax(QKᵀ/√d)V and is the reference the fused path is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    Fused,
    Explicit,
}

/// x + Attn(LN(x)), then x + MLP(LN(x)) with GELU; query, key and value from one fused projection.
#[derive(Debug)]
pub struct TransformerBlock {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
    attention: Attention,
}

/// LayerNorm with ε = 1e-6, as the ViT/MAE reference code uses.
pub fn layer_norm(p: nn::Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps: 1e-6,
            ..Default::default()
        },
    )
}

impl TransformerBlock {
    pub fn new(p: &nn::Path, dim: i64, heads: i64, mlp_ratio: f64, attention: Attention) -> Self {
        assert!(
            heads > 0 && dim % heads == 0,
            "width {dim} is not divisible by {heads} heads"
        );
        let hidden = (dim as f64 * mlp_ratio).round() as i64;
        TransformerBlock {
            ln1: layer_norm(p / "ln1", dim),
            qkv: xavier_linear(p / "qkv", dim, 3 * dim),
            proj: xavier_linear(p / "proj", dim, dim),
            ln2: layer_norm(p / "ln2", dim),
            fc1: xavier_linear(p / "fc1", dim, hidden),
            fc2: xavier_linear(p / "fc2", hidden, dim),
            heads,
            attention,
        }
    }

    /// Switches between the fused kernel and the explicit formula (same parameters).
    pub fn set_attention(&mut self, attention: Attention) {
        self.attention = attention;
    }

    fn attend(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().expect("tokens are [N, T, D]");
        let hd = d / self.heads;
        // [N, T, 3D] → [3, N, H, T, hd]
        let qkv = x
            .apply(&self.qkv)
            .view([b, t, 3, self.heads, hd])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let o = match self.attention {
            Attention::Fused => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                false,
                None,
                false,
            ),
            Attention::Explicit => {
                let scores = q.matmul(&k.transpose(-2, -1)) / (hd as f64).sqrt();
                scores.softmax(-1, Kind::Float).matmul(&v)
            }
        };
        o.transpose(1, 2).reshape([b, t, d]).apply(&self.proj)
    }
}

impl Module for TransformerBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + self.attend(&x.apply(&self.ln1));
        let h = x
            .apply(&self.ln2)
            .apply(&self.fc1)
            .gelu("none")
            .apply(&self.fc2);
        x + h
    }
}

/// A stack of blocks followed by a final LayerNorm.
#[derive(Debug)]
pub struct TransformerStack {
    blocks: Vec<TransformerBlock>,
    norm: nn::LayerNorm,
}

impl TransformerStack {
    /// Block `i` lives under `p/blocks/i`, the final norm under `p/norm`. `group(i)` names the
    /// optimiser group of block `i` (layer-wise learning-rate decay uses it); `None` keeps `p`'s.
    pub fn new(
        p: &nn::Path,
        dim: i64,
        depth: usize,
        heads: i64,
        mlp_ratio: f64,
        attention: Attention,
        group: impl Fn(usize) -> Option<usize>,
    ) -> Self {
        let blocks = (0..depth)
            .map(|i| {
                let bp = p / "blocks" / i;
                let bp = match group(i) {
                    Some(g) => bp.set_group(g),
                    None => bp,
                };
                TransformerBlock::new(&bp, dim, heads, mlp_ratio, attention)
            })
            .collect();
        let np = match group(depth) {
            Some(g) => (p / "norm").set_group(g),
            None => p / "norm",
        };
        TransformerStack {
            blocks,
            norm: layer_norm(np, dim),
        }
    }
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }
    pub fn set_attention(&mut self, attention: Attention) {
        self.blocks
            .iter_mut()
            .for_each(|b| b.set_attention(attention));
    }
}

impl Module for TransformerStack {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = self
            .blocks
            .iter()
            .fold(x.shallow_clone(), |h, b| b.forward(&h));
        h = h.apply(&self.norm);
        h
    }
}

/// A non-trainable `[1, gh·gw, dim]` variable named `name` under `p` holding [`sincos_2d`]
/// (saved with the model, never updated).
pub fn fixed_sincos(p: &nn::Path, name: &str, dim: i64, gh: i64, gw: i64) -> Tensor {
    let l = gh * gw;
    let t = p.zeros_no_train(name, &[1, l, dim]);
    tch::no_grad(|| {
        t.shallow_clone()
            .copy_(&Tensor::from_slice(&sincos_2d(dim, gh, gw)).view([1, l, dim]))
    });
    t
}

/// Fixed 2-D sine-cosine position embeddings `[gh·gw, dim]`, row-major over the patch grid:
/// half the channels encode the column, half the row, each as [sin(ω·pos), cos(ω·pos)] with
/// ω_k = 1 / 10000^(k / (dim/4)) (MAE's `get_2d_sincos_pos_embed`).
pub fn sincos_2d(dim: i64, gh: i64, gw: i64) -> Vec<f32> {
    assert!(
        dim % 4 == 0,
        "sine-cosine positions need a width divisible by 4, got {dim}"
    );
    let quarter = (dim / 4) as usize;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity((gh * gw * dim) as usize);
    for r in 0..gh {
        for c in 0..gw {
            for &pos in &[c as f64, r as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn fused_attention_equals_the_explicit_formula() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut block = TransformerBlock::new(&(vs.root() / "b"), 12, 3, 4.0, Attention::Fused);
        let x = Tensor::randn([2, 7, 12], (Kind::Float, Device::Cpu));
        let a = block.forward(&x);
        block.set_attention(Attention::Explicit);
        let b = block.forward(&x);
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "fused and explicit attention differ by {diff}");
    }

    #[test]
    fn sincos_positions_match_the_closed_form() {
        let e = sincos_2d(8, 2, 3);
        assert_eq!(e.len(), 2 * 3 * 8);
        // Token (row 1, col 2) = index 5; ω = [1, 1/100].
        let t = &e[5 * 8..6 * 8];
        let want = [
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
        ];
        for (g, w) in t.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{t:?}");
        }
    }
}
