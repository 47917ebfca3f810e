//! A transformer over subword tokens (BERT, Devlin et al. 2019, with pre-norm blocks): token
//! embeddings plus learned positions, LayerNorm and dropout, then the blocks with padding left
//! out of attention. The sentence representation is the [CLS] token's output or the mean over
//! the real (non-padding) tokens.
//!
//! Input: `[N, L]` token ids as numbers (what the text views hand over), [PAD] = 0.
use super::transformer::{layer_norm, Attention, TransformerStack};
use crate::data::text::tokenizer::PAD;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPooling {
    /// The output at [CLS] (position 0).
    Cls,
    /// The mean of the outputs at real tokens ([CLS] and [SEP] included, padding not).
    #[default]
    Mean,
}

#[derive(Debug)]
pub struct TextTransformer {
    tokens: nn::Embedding,
    pos: Tensor,
    norm_in: nn::LayerNorm,
    stack: TransformerStack,
    dropout: f64,
    pooling: TextPooling,
    vocab: i64,
    dim: i64,
}

impl TextTransformer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        shape: &[i64],
        vocab: i64,
        dim: i64,
        depth: usize,
        heads: i64,
        mlp_ratio: f64,
        dropout: f64,
        pooling: TextPooling,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            shape.len() == 1 && shape[0] > 1,
            "text_transformer needs token sequences [max_len], got {shape:?}"
        );
        anyhow::ensure!(
            vocab > PAD as i64 + 1,
            "text_transformer needs the vocabulary size (encoder.vocab), got {vocab}"
        );
        anyhow::ensure!(
            heads > 0 && dim % heads == 0,
            "text_transformer: width {dim} must be divisible by {heads} heads"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&dropout),
            "text_transformer: dropout must be in [0, 1)"
        );
        // BERT initialises embeddings from N(0, 0.02²).
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let tokens = nn::embedding(
            p / "tokens",
            vocab,
            dim,
            nn::EmbeddingConfig {
                ws_init: init,
                ..Default::default()
            },
        );
        Ok(TextTransformer {
            tokens,
            pos: p.var("pos_embed", &[1, shape[0], dim], init),
            norm_in: layer_norm(p / "norm_in", dim),
            stack: TransformerStack::new(p, dim, depth, heads, mlp_ratio, Attention::Fused, |_| {
                None
            }),
            dropout,
            pooling,
            vocab,
            dim,
        })
    }

    pub fn vocab(&self) -> i64 {
        self.vocab
    }
    pub fn dim(&self) -> i64 {
        self.dim
    }
    /// The token embedding matrix `[vocab, dim]` (tied output layers of MLM and SLM, C-RTS's
    /// clusters).
    pub fn token_embeddings(&self) -> &Tensor {
        &self.tokens.ws
    }

    /// `[N, L]` ids (any numeric kind) → int64 ids and the key mask (true = real token).
    pub fn ids_and_keys(x: &Tensor) -> (Tensor, Tensor) {
        let ids = x.to_kind(Kind::Int64);
        let keys = ids.ne(PAD as i64);
        (ids, keys)
    }

    /// Per-token outputs `[N, L, dim]` of int64 `ids`, padding (`keys` false) left out of
    /// attention; dropout when `train`.
    ///
    /// Padding only ever follows the text, so the positions after the batch's longest text are
    /// padding everywhere: they are cut before the blocks run (most of a batch of short
    /// sentences padded to `max_len`) and come back as zeros. Exact, since padding takes no
    /// part in attention or pooling.
    pub fn encode_tokens(&self, ids: &Tensor, keys: &Tensor, train: bool) -> Tensor {
        let l = ids.size()[1];
        let used = keys
            .sum_dim_intlist(1, false, Kind::Int64)
            .max()
            .int64_value(&[])
            .clamp(1, l);
        let h = (ids.narrow(1, 0, used).apply(&self.tokens) + self.pos.narrow(1, 0, used))
            .apply(&self.norm_in)
            .dropout(self.dropout, train);
        let h = self
            .stack
            .forward_masked(&h, Some(&keys.narrow(1, 0, used)), self.dropout, train);
        if used < l {
            h.constant_pad_nd([0, 0, 0, l - used])
        } else {
            h
        }
    }

    /// Sentence representations `[N, dim]` from per-token outputs.
    pub fn pool(&self, h: &Tensor, keys: &Tensor) -> Tensor {
        match self.pooling {
            TextPooling::Cls => h.select(1, 0),
            TextPooling::Mean => {
                let m = keys.to_kind(h.kind()).unsqueeze(-1);
                (h * &m).sum_dim_intlist(1, false, h.kind())
                    / m.sum_dim_intlist(1, false, h.kind()).clamp_min(1.0)
            }
        }
    }
}

impl ModuleT for TextTransformer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (ids, keys) = Self::ids_and_keys(x);
        self.pool(&self.encode_tokens(&ids, &keys, train), &keys)
    }
}

impl super::Encoder for TextTransformer {
    fn out_dim(&self) -> i64 {
        self.dim
    }
    fn as_text_transformer(&self) -> Option<&TextTransformer> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn model(pooling: TextPooling) -> (nn::VarStore, TextTransformer) {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = TextTransformer::new(&vs.root(), &[6], 20, 8, 2, 2, 2.0, 0.1, pooling).unwrap();
        (vs, m)
    }

    /// Mean pooling averages the real tokens only, and the real tokens' outputs are those of
    /// the sentence run without its padding.
    #[test]
    fn padding_is_left_out_of_attention_and_pooling() {
        let (_vs, m) = model(TextPooling::Mean);
        let x = Tensor::from_slice(&[2f32, 7., 9., 3., 0., 0.]).view([1, 6]);
        let (ids, keys) = TextTransformer::ids_and_keys(&x);
        let h = m.encode_tokens(&ids, &keys, false);
        let want = h.narrow(1, 0, 4).mean_dim(1, false, Kind::Float);
        let got = m.forward_t(&x, false);
        assert!((&got - want).abs().max().double_value(&[]) < 1e-6);
        // The real tokens' outputs equal those of an encoder that never saw the padding: the
        // blocks run on the first four positions alone (positions are absolute, so the same).
        let short =
            (ids.narrow(1, 0, 4).apply(&m.tokens) + m.pos.narrow(1, 0, 4)).apply(&m.norm_in);
        let alone = m.stack.forward_masked(&short, None, 0.0, false);
        let diff = (alone - h.narrow(1, 0, 4)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn cls_pooling_takes_position_zero_and_dropout_only_trains() {
        let (_vs, m) = model(TextPooling::Cls);
        let x =
            Tensor::from_slice(&[2f32, 7., 9., 3., 0., 0., 2., 5., 3., 0., 0., 0.]).view([2, 6]);
        let (ids, keys) = TextTransformer::ids_and_keys(&x);
        let h = m.encode_tokens(&ids, &keys, false);
        let got = m.forward_t(&x, false);
        assert_eq!(got.size(), vec![2, 8]);
        assert!((&got - h.select(1, 0)).abs().max().double_value(&[]) < 1e-6);
        let a = m.forward_t(&x, false);
        assert!((&got - a).abs().max().double_value(&[]) == 0.0);
        let (t1, t2) = (m.forward_t(&x, true), m.forward_t(&x, true));
        assert!(
            (t1 - t2).abs().max().double_value(&[]) > 1e-4,
            "dropout draws differ"
        );
    }
}
