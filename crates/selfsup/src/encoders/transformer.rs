//! Pre-norm transformer blocks (Vaswani et al. 2017, with the pre-norm placement of ViT,
//! Dosovitskiy et al. 2021) and 2-D sine-cosine positions (MAE, He et al. 2022, appendix A.1).
//! Shared by the ViT encoder, MAE's decoder and I-JEPA's predictor.
use crate::torch_init::{xavier_linear, xavier_linear_with};
use tch::{nn, nn::Module, Kind, Tensor};

/// How attention is computed. `Fused` calls libtorch's scaled-dot-product attention (one kernel,
/// no materialised `[N, H, T, T]` softmax kept for backward where a fused kernel applies);
/// `Explicit` spells out softmax(QKᵀ/√d)V and is the reference the fused path is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    Fused,
    Explicit,
}

/// The hidden width of a block's MLP, after checking that the heads split the width evenly.
fn mlp_width(dim: i64, heads: i64, mlp_ratio: f64) -> i64 {
    assert!(
        heads > 0 && dim % heads == 0,
        "width {dim} is not divisible by {heads} heads"
    );
    (dim as f64 * mlp_ratio).round() as i64
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
        let hidden = mlp_width(dim, heads, mlp_ratio);
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
        let qkv = x.apply(&self.qkv).chunk(3, -1);
        multi_head(&qkv[0], &qkv[1], &qkv[2], self.heads, self.attention).apply(&self.proj)
    }
}

/// Multi-head attention of projected queries `[N, T, D]` on projected keys and values `[N, S, D]`:
/// softmax(QKᵀ/√d_head)·V per head, heads concatenated back to `[N, T, D]` (before the output
/// projection).
pub fn multi_head(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, attention: Attention) -> Tensor {
    multi_head_masked(q, k, v, heads, attention, None, 0.0)
}

/// [`multi_head`] where `keys` (`[N, S]`, true = a real token) leaves padding out of every
/// softmax, and `dropout` drops attention weights (0 outside training).
pub fn multi_head_masked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: i64,
    attention: Attention,
    keys: Option<&Tensor>,
    dropout: f64,
) -> Tensor {
    let (b, t, d) = q.size3().expect("queries are [N, T, D]");
    let s = k.size()[1];
    let hd = d / heads;
    // [N, T, D] → [N, H, T, hd]
    let split = |x: &Tensor, len: i64| x.view([b, len, heads, hd]).transpose(1, 2);
    let (q, k, v) = (split(q, t), split(k, s), split(v, s));
    // libtorch's fused CPU kernel is slower than the explicit formula in bf16: forward + backward,
    // 2 threads, AMX CPU, [B, H, L, 64]: 6.6× slower at L = 16, 2.8× at L = 197, level at L = 577
    // (the same in PyTorch 2.13; docs/performance.md). So bf16 on the CPU takes the explicit path.
    let attention = if q.device() == tch::Device::Cpu && q.kind() == Kind::BFloat16 {
        Attention::Explicit
    } else {
        attention
    };
    // [N, S] → [N, 1, 1, S], broadcast over heads and queries.
    let keys = keys.map(|m| m.view([b, 1, 1, s]));
    let o = match attention {
        Attention::Fused => Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            keys.as_ref(),
            dropout,
            false,
            None,
            false,
        ),
        Attention::Explicit => {
            let mut scores = q.matmul(&k.transpose(-2, -1)) / (hd as f64).sqrt();
            if let Some(m) = &keys {
                scores = scores.masked_fill(&m.logical_not(), f64::NEG_INFINITY);
            }
            // Softmax in fp32 (also under bf16), the product in the values' type.
            let w = scores
                .softmax(-1, Kind::Float)
                .dropout(dropout, dropout > 0.0);
            w.to_kind(v.kind()).matmul(&v)
        }
    };
    o.transpose(1, 2).reshape([b, t, d])
}

/// [`multi_head`] where each query attends only to its `keep` highest-scoring keys (the others'
/// weights are zero; ties at the threshold are all kept): the "homologous" attention of MixedAE,
/// which lets a token of a mixed image attend to the tokens it judges to come from its own
/// image. `keep ≥ S` is ordinary attention.
pub fn multi_head_top_k(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, keep: i64) -> Tensor {
    let (b, t, d) = q.size3().expect("queries are [N, T, D]");
    let s = k.size()[1];
    let hd = d / heads;
    let split = |x: &Tensor, len: i64| x.view([b, len, heads, hd]).transpose(1, 2);
    let (q, k, v) = (split(q, t), split(k, s), split(v, s));
    let mut scores = q.matmul(&k.transpose(-2, -1)) / (hd as f64).sqrt();
    if keep < s {
        // The keep-th largest score of each query; everything below it is left out.
        let (top, _) = scores.detach().topk(keep, -1, true, true);
        let threshold = top.narrow(-1, keep - 1, 1);
        scores = scores.masked_fill(&scores.lt_tensor(&threshold), f64::NEG_INFINITY);
    }
    // Softmax in fp32 at least (bf16 scores), in fp64 for fp64 inputs.
    let softmax_kind = if v.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let w = scores.softmax(-1, softmax_kind);
    w.to_kind(v.kind())
        .matmul(&v)
        .transpose(1, 2)
        .reshape([b, t, d])
}

impl TransformerBlock {
    /// The block with padding left out of attention (`keys`: `[N, T]`, true = real token) and
    /// BERT's dropout (rate `dropout` on attention weights and on both residual branches) when
    /// `train`.
    pub fn forward_masked(
        &self,
        x: &Tensor,
        keys: Option<&Tensor>,
        dropout: f64,
        train: bool,
    ) -> Tensor {
        let p = if train { dropout } else { 0.0 };
        let qkv = x.apply(&self.ln1).apply(&self.qkv).chunk(3, -1);
        let a = multi_head_masked(
            &qkv[0],
            &qkv[1],
            &qkv[2],
            self.heads,
            self.attention,
            keys,
            p,
        )
        .apply(&self.proj)
        .dropout(p, train);
        let x = x + a;
        let h = x
            .apply(&self.ln2)
            .apply(&self.fc1)
            .gelu("none")
            .apply(&self.fc2)
            .dropout(p, train);
        x + h
    }
}

impl TransformerBlock {
    /// The block with [`multi_head_top_k`] attention.
    pub fn forward_top_k(&self, x: &Tensor, keep: i64) -> Tensor {
        let qkv = x.apply(&self.ln1).apply(&self.qkv).chunk(3, -1);
        let a = multi_head_top_k(&qkv[0], &qkv[1], &qkv[2], self.heads, keep).apply(&self.proj);
        let x = x + a;
        let h = x
            .apply(&self.ln2)
            .apply(&self.fc1)
            .gelu("none")
            .apply(&self.fc2);
        x + h
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

/// The layer of CAE's latent regressor (Chen et al. 2022, as in the paper's reference code):
/// queries attend to a separate key/value set; positions enter queries and keys but not values;
/// the attention residual is followed by a LayerNorm (post-norm), and both residual branches are
/// scaled by learned per-channel factors γ (layer scale, initialised to `layer_scale`).
///
/// ```text
/// x = LN₂(x_q + γ₁ ⊙ proj(Attn(W_q LN_q(x_q + pos_q), W_k LN_k(kv + pos_kv), W_v LN_v(kv))))
/// out = x + γ₂ ⊙ MLP(x)
/// ```
/// The key projection has no bias: a key bias adds the same q·b to every score of a query and
/// cancels in the softmax.
#[derive(Debug)]
pub struct CrossAttentionBlock {
    ln_q: nn::LayerNorm,
    ln_k: nn::LayerNorm,
    ln_v: nn::LayerNorm,
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    gamma1: Tensor,
    gamma2: Tensor,
    heads: i64,
    attention: Attention,
}

impl CrossAttentionBlock {
    pub fn new(
        p: &nn::Path,
        dim: i64,
        heads: i64,
        mlp_ratio: f64,
        layer_scale: f64,
        attention: Attention,
    ) -> Self {
        let hidden = mlp_width(dim, heads, mlp_ratio);
        CrossAttentionBlock {
            ln_q: layer_norm(p / "ln_q", dim),
            ln_k: layer_norm(p / "ln_k", dim),
            ln_v: layer_norm(p / "ln_v", dim),
            q: xavier_linear(p / "q", dim, dim),
            k: xavier_linear_with(p / "k", dim, dim, false),
            v: xavier_linear(p / "v", dim, dim),
            proj: xavier_linear(p / "proj", dim, dim),
            ln2: layer_norm(p / "ln2", dim),
            fc1: xavier_linear(p / "fc1", dim, hidden),
            fc2: xavier_linear(p / "fc2", hidden, dim),
            gamma1: p.var("gamma1", &[dim], nn::Init::Const(layer_scale)),
            gamma2: p.var("gamma2", &[dim], nn::Init::Const(layer_scale)),
            heads,
            attention,
        }
    }

    /// Queries `x_q` `[N, T, D]` with positions `pos_q`, attending to `kv` `[N, S, D]` with
    /// positions `pos_kv`.
    pub fn forward(&self, x_q: &Tensor, kv: &Tensor, pos_q: &Tensor, pos_kv: &Tensor) -> Tensor {
        let q = (x_q + pos_q).apply(&self.ln_q).apply(&self.q);
        let k = (kv + pos_kv).apply(&self.ln_k).apply(&self.k);
        let v = kv.apply(&self.ln_v).apply(&self.v);
        let o = multi_head(&q, &k, &v, self.heads, self.attention).apply(&self.proj);
        let x = (x_q + &self.gamma1 * o).apply(&self.ln2);
        let h = x.apply(&self.fc1).gelu("none").apply(&self.fc2);
        &x + &self.gamma2 * h
    }

    pub fn set_attention(&mut self, attention: Attention) {
        self.attention = attention;
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

impl TransformerStack {
    /// Every block by [`TransformerBlock::forward_masked`], then the final norm.
    pub fn forward_masked(
        &self,
        x: &Tensor,
        keys: Option<&Tensor>,
        dropout: f64,
        train: bool,
    ) -> Tensor {
        self.blocks
            .iter()
            .fold(x.shallow_clone(), |h, b| {
                b.forward_masked(&h, keys, dropout, train)
            })
            .apply(&self.norm)
    }
}

impl TransformerStack {
    /// Every block by [`TransformerBlock::forward_top_k`], then the final norm.
    pub fn forward_top_k(&self, x: &Tensor, keep: i64) -> Tensor {
        self.blocks
            .iter()
            .fold(x.shallow_clone(), |h, b| b.forward_top_k(&h, keep))
            .apply(&self.norm)
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
    fn top_k_attention_keeps_the_best_keys_only() {
        tch::manual_seed(4);
        let opts = (Kind::Double, Device::Cpu);
        let (q, k, v) = (
            Tensor::randn([2, 5, 6], opts),
            Tensor::randn([2, 5, 6], opts),
            Tensor::randn([2, 5, 6], opts),
        );
        // Keeping every key is ordinary attention (whose softmax runs in fp32).
        let all = multi_head_top_k(&q, &k, &v, 2, 5);
        let plain = multi_head(&q, &k, &v, 2, Attention::Explicit);
        assert!(all.allclose(&plain, 1e-6, 1e-6, false));
        // Keeping one key copies that key's value: per head, the argmax of q·k.
        let one = multi_head_top_k(&q, &k, &v, 2, 1);
        for head in 0..2i64 {
            let cols = head * 3..head * 3 + 3;
            let (qh, kh, vh) = (
                q.narrow(2, cols.start, 3),
                k.narrow(2, cols.start, 3),
                v.narrow(2, cols.start, 3),
            );
            let best = qh.matmul(&kh.transpose(1, 2)).argmax(-1, false); // [2, 5]
            let expected = vh.gather(1, &best.unsqueeze(-1).expand([2, 5, 3], false), false);
            assert!(one
                .narrow(2, cols.start, 3)
                .allclose(&expected, 1e-10, 1e-12, false));
        }
        // Keeping two: a softmax over exactly the two best scores of each query.
        let two = multi_head_top_k(&q, &k, &v, 1, 2);
        let scores = q.matmul(&k.transpose(1, 2)) / 6f64.sqrt();
        let (top, idx) = scores.topk(2, -1, true, true);
        let w = top.softmax(-1, Kind::Double); // [2, 5, 2]
        let picked = |j: i64| {
            v.gather(
                1,
                &idx.select(2, j).unsqueeze(-1).expand([2, 5, 6], false),
                false,
            )
        };
        let expected =
            picked(0) * w.select(2, 0).unsqueeze(-1) + picked(1) * w.select(2, 1).unsqueeze(-1);
        assert!(two.allclose(&expected, 1e-10, 1e-12, false));
    }

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

    /// Padding keys change nothing for the real tokens: a sentence padded with junk tokens
    /// under a key mask gives the outputs of the unpadded sentence, on both attention paths.
    #[test]
    fn masked_keys_are_left_out_of_attention() {
        tch::manual_seed(6);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut block = TransformerBlock::new(&(vs.root() / "b"), 8, 2, 2.0, Attention::Fused);
        let x = Tensor::randn([1, 4, 8], (Kind::Float, Device::Cpu));
        let junk = Tensor::randn([1, 3, 8], (Kind::Float, Device::Cpu)) * 5.0;
        let padded = Tensor::cat(&[&x, &junk], 1);
        let keys = Tensor::from_slice(&[true, true, true, true, false, false, false]).view([1, 7]);
        for attention in [Attention::Fused, Attention::Explicit] {
            block.set_attention(attention);
            let alone = block.forward(&x);
            let masked = block
                .forward_masked(&padded, Some(&keys), 0.0, false)
                .narrow(1, 0, 4);
            let diff = (&alone - masked).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{attention:?}: {diff}");
            let unmasked = block
                .forward_masked(&padded, None, 0.0, false)
                .narrow(1, 0, 4);
            assert!((&alone - unmasked).abs().max().double_value(&[]) > 1e-3);
        }
    }

    /// bf16 on the CPU takes the explicit path whatever was asked (the fused kernel is slower
    /// there): both settings give bit-identical outputs, and they stay close to fp32.
    #[test]
    fn bf16_on_the_cpu_attends_explicitly() {
        tch::manual_seed(5);
        let x = |s: i64| Tensor::randn([2, 5, 8], (Kind::Float, Device::Cpu)) * s;
        let (q, k, v) = (x(1), x(1), x(1));
        let bf = |t: &Tensor| t.to_kind(Kind::BFloat16);
        let fused = multi_head(&bf(&q), &bf(&k), &bf(&v), 2, Attention::Fused);
        let explicit = multi_head(&bf(&q), &bf(&k), &bf(&v), 2, Attention::Explicit);
        assert_eq!(fused.kind(), Kind::BFloat16);
        let same = (&fused - &explicit).abs().max().double_value(&[]);
        assert_eq!(same, 0.0);
        let full = multi_head(&q, &k, &v, 2, Attention::Fused);
        let diff = (fused.to_kind(Kind::Float) - full)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 0.05, "bf16 attention is {diff} from fp32");
    }
    /// The cross-attention block against its formula written out with one head: softmax over the
    /// keys of each query's scaled scores, values without positions, post-norm, layer scale.
    #[test]
    fn cross_attention_follows_its_formula() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut block =
            CrossAttentionBlock::new(&(vs.root() / "c"), 4, 1, 2.0, 0.1, Attention::Fused);
        let opts = (Kind::Float, Device::Cpu);
        let (xq, kv) = (
            Tensor::randn([1, 2, 4], opts),
            Tensor::randn([1, 3, 4], opts),
        );
        let (pq, pkv) = (
            Tensor::randn([1, 2, 4], opts),
            Tensor::randn([1, 3, 4], opts),
        );
        let got = block.forward(&xq, &kv, &pq, &pkv);
        let ln = |x: &Tensor| x.layer_norm([4], None::<Tensor>, None::<Tensor>, 1e-6, false);
        let lin = |x: &Tensor, l: &nn::Linear| {
            let y = x.matmul(&l.ws.tr());
            match &l.bs {
                Some(b) => y + b,
                None => y,
            }
        };
        // Fresh LayerNorms are the identity affine map, so plain normalisation is theirs.
        let q = lin(&ln(&(&xq + &pq)), &block.q).get(0);
        let k = lin(&ln(&(&kv + &pkv)), &block.k).get(0);
        let v = lin(&ln(&kv), &block.v).get(0);
        let mut rows = Vec::new();
        for t in 0..2 {
            let scores = k.matmul(&q.get(t)) / 2.0; // √d_head = √4
            let w = scores.softmax(0, Kind::Float);
            rows.push((w.unsqueeze(1) * &v).sum_dim_intlist(0, false, Kind::Float));
        }
        let attn = lin(&Tensor::stack(&rows, 0), &block.proj).unsqueeze(0);
        let x = ln(&(&xq + attn * 0.1));
        let h = lin(&lin(&x, &block.fc1).gelu("none"), &block.fc2);
        let want = &x + h * 0.1;
        let diff = (&got - &want).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
        assert!(block.k.bs.is_none(), "the key projection has no bias");
        block.set_attention(Attention::Explicit);
        let explicit = block.forward(&xq, &kv, &pq, &pkv);
        assert!((&got - explicit).abs().max().double_value(&[]) < 1e-5);
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
