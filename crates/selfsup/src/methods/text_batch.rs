//! What the token-level text methods (MLM, RTS, C-RTS, SLM) share: a batch's ids and word
//! indices on the host, the positions they corrupt, the encoder behind them, and BERT's tied
//! output layer.
use crate::encoders::text_transformer::TextTransformer;
use crate::encoders::Encoder;
use crate::views::text_masking::{choose, MaskStrategy, SpanLengths};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

/// One batch of text views on the host: `[n][len]` ids and word indices.
pub struct HostBatch {
    pub ids: Vec<u32>,
    pub words: Vec<i32>,
    pub n: usize,
    pub len: usize,
    pub device: Device,
}

impl HostBatch {
    /// From the text views: `views[0]` ids, `views[1]` word indices (both `[N, L]`).
    pub fn from_views(views: &[Tensor]) -> HostBatch {
        let (n, len) = views[0].size2().expect("text views are [N, L]");
        let host = |t: &Tensor| -> Vec<f32> {
            Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
                .expect("float views")
        };
        HostBatch {
            ids: host(&views[0]).iter().map(|&v| v as u32).collect(),
            words: host(&views[1]).iter().map(|&v| v as i32).collect(),
            n: n as usize,
            len: len as usize,
            device: views[0].device(),
        }
    }

    /// The positions to corrupt, sentence by sentence, flat `[n·len]`.
    pub fn pick(
        &self,
        rate: f64,
        strategy: MaskStrategy,
        spans: SpanLengths,
        rng: &mut ChaCha8Rng,
    ) -> Vec<bool> {
        self.words
            .chunks(self.len)
            .flat_map(|w| choose(w, rate, strategy, spans, rng))
            .collect()
    }

    /// Flat ids → `[n, len]` int64 on the batch's device.
    pub fn ids_tensor(&self, ids: &[u32]) -> Tensor {
        let v: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        Tensor::from_slice(&v)
            .view([self.n as i64, self.len as i64])
            .to_device(self.device)
    }

    /// Flat flags → `[n, len]` bool on the batch's device.
    pub fn flags_tensor(&self, flags: &[bool]) -> Tensor {
        Tensor::from_slice(flags)
            .view([self.n as i64, self.len as i64])
            .to_device(self.device)
    }

    /// Positions holding ordinary tokens (not special, not padding).
    pub fn ordinary(&self) -> Vec<bool> {
        self.words.iter().map(|&w| w >= 0).collect()
    }
}

/// The text transformer behind `encoder`, or an error naming the method that needs it.
pub fn text_encoder<'a>(
    encoder: &'a dyn Encoder,
    method: &str,
) -> anyhow::Result<&'a TextTransformer> {
    encoder.as_text_transformer().ok_or_else(|| {
        anyhow::anyhow!("{method} works on tokens and needs encoder.kind = \"text_transformer\"")
    })
}

/// BERT's masked-LM output layer: dense + GELU + LayerNorm, then logits against the (tied)
/// token embeddings plus a per-token bias.
#[derive(Debug)]
pub struct TiedTokenHead {
    dense: nn::Linear,
    norm: nn::LayerNorm,
    bias: Tensor,
}

impl TiedTokenHead {
    pub fn new(p: &nn::Path, dim: i64, vocab: i64) -> TiedTokenHead {
        TiedTokenHead {
            dense: crate::torch_init::xavier_linear(p / "dense", dim, dim),
            norm: crate::encoders::transformer::layer_norm(p / "norm", dim),
            bias: p.zeros("bias", &[vocab]),
        }
    }
    /// Logits `[M, vocab]` for token outputs `h` `[M, dim]`.
    pub fn logits(&self, h: &Tensor, embeddings: &Tensor) -> Tensor {
        h.apply(&self.dense)
            .gelu("none")
            .apply(&self.norm)
            .matmul(&embeddings.tr())
            + &self.bias
    }
}

/// Cross-entropy of `logits` `[M, V]` with `targets` `[M]` (mean).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    -logits
        .log_softmax(-1, Kind::Float)
        .gather(1, &targets.unsqueeze(1), false)
        .mean(Kind::Float)
}

/// Token-level prediction at `picked` positions: the encoder reads `input`, the tied head
/// predicts `targets` (the original ids) where `picked` is true.
pub fn predict_originals(
    enc: &TextTransformer,
    head: &TiedTokenHead,
    input: &Tensor,
    targets: &Tensor,
    picked: &Tensor,
) -> Tensor {
    let keys = input.ne(crate::data::text::tokenizer::PAD as i64);
    let h = enc.encode_tokens(input, &keys, true);
    let at = picked.flatten(0, -1).nonzero().squeeze_dim(1);
    let rows = h.flatten(0, 1).index_select(0, &at);
    let logits = head.logits(&rows, enc.token_embeddings());
    cross_entropy(&logits, &targets.flatten(0, -1).index_select(0, &at))
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::encoders::text_transformer::{TextPooling, TextTransformer};

    /// A two-layer text transformer without dropout (so two passes agree), vocabulary 40.
    pub fn tiny_encoder(vs: &nn::VarStore) -> Box<dyn Encoder> {
        tch::manual_seed(7);
        Box::new(
            TextTransformer::new(
                &(vs.root() / "encoder"),
                &[8],
                40,
                8,
                2,
                2,
                2.0,
                0.0,
                TextPooling::Mean,
            )
            .unwrap(),
        )
    }

    /// Three sentences of 8 positions: [CLS] pieces [SEP] [PAD]…, words of one or two pieces.
    pub fn batch() -> HostBatch {
        let ids = vec![
            2, 10, 11, 12, 13, 3, 0, 0, //
            2, 20, 21, 22, 23, 24, 25, 3, //
            2, 30, 3, 0, 0, 0, 0, 0,
        ];
        let words = vec![
            -1, 0, 0, 1, 2, -1, -1, -1, //
            -1, 0, 1, 1, 2, 3, 4, -1, //
            -1, 0, -1, -1, -1, -1, -1, -1,
        ];
        HostBatch {
            ids,
            words,
            n: 3,
            len: 8,
            device: Device::Cpu,
        }
    }
}
