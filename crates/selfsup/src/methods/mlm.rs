//! Masked language modelling (BERT, Devlin et al. 2019), with the masking strategies and the
//! masking-rate curriculum studied by BIOptimus (Shen et al. 2023).
//!
//! ```text
//! rate     = rate + (rate_end − rate) · t          (t: fraction of training done; constant
//!                                                   when rate_end is not given)
//! picked   = choose(words, rate, strategy)          (tokens, whole words or SpanBERT spans)
//! x̃        = picked → [MASK] 80 %, random token 10 %, unchanged 10 %
//! L        = CE( head(encoder(x̃))[picked], x[picked] )   (head tied to the token embeddings)
//! ```
//! Defaults are BERT's: 15 %, 80/10/10, single tokens; spans use SpanBERT's p = 0.2, at most 10
//! words.
use super::text_batch::{predict_originals, text_encoder, HostBatch, TiedTokenHead};
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::rng::{keyed, Stream};
use crate::views::text_masking::{bert_corrupt, MaskStrategy, SpanLengths};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlmConfig {
    /// Share of ordinary tokens picked (0.15), at the start of training.
    pub rate: f64,
    /// The share at the end of training, reached linearly (a curriculum); none: constant.
    pub rate_end: Option<f64>,
    pub strategy: MaskStrategy,
    /// Of the picked tokens: the share replaced by [MASK] (0.8) and by a random token (0.1).
    pub mask_prob: f64,
    pub random_prob: f64,
    /// SpanBERT's span lengths, for `strategy = "span"`.
    pub span_p: f64,
    pub span_max: usize,
}

impl Default for MlmConfig {
    fn default() -> Self {
        MlmConfig {
            rate: 0.15,
            rate_end: None,
            strategy: MaskStrategy::Token,
            mask_prob: 0.8,
            random_prob: 0.1,
            span_p: SpanLengths::default().p,
            span_max: SpanLengths::default().max,
        }
    }
}

impl MlmConfig {
    /// The masking rate after `fraction` of training.
    pub fn rate_at(&self, fraction: f64) -> f64 {
        match self.rate_end {
            Some(end) => self.rate + (end - self.rate) * fraction.clamp(0.0, 1.0),
            None => self.rate,
        }
    }
    pub fn spans(&self) -> SpanLengths {
        SpanLengths {
            p: self.span_p,
            max: self.span_max,
        }
    }
}

pub struct Mlm {
    encoder: Box<dyn Encoder>,
    head: TiedTokenHead,
    cfg: MlmConfig,
}

/// One batch's corrupted input and where the loss looks.
pub struct Corrupted {
    pub input: Vec<u32>,
    pub picked: Vec<bool>,
}

impl Mlm {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &MlmConfig) -> anyhow::Result<Mlm> {
        let t = text_encoder(encoder.as_ref(), "mlm")?;
        Ok(Mlm {
            head: TiedTokenHead::new(&(p / "head"), t.dim(), t.vocab()),
            cfg: cfg.clone(),
            encoder,
        })
    }

    /// BERT's corruption of a batch at masking rate `rate`.
    pub fn corrupt(&self, b: &HostBatch, rate: f64, rng: &mut ChaCha8Rng) -> Corrupted {
        let vocab = text_encoder(self.encoder.as_ref(), "mlm").expect("checked").vocab() as u32;
        let picked = b.pick(rate, self.cfg.strategy, self.cfg.spans(), rng);
        let input = bert_corrupt(&b.ids, &picked, vocab, self.cfg.mask_prob, self.cfg.random_prob, rng);
        Corrupted { input, picked }
    }

    /// The loss of a corrupted batch against its original ids.
    pub fn loss_of(&self, b: &HostBatch, c: &Corrupted) -> Tensor {
        let enc = text_encoder(self.encoder.as_ref(), "mlm").expect("checked");
        predict_originals(
            enc,
            &self.head,
            &b.ids_tensor(&c.input),
            &b.ids_tensor(&b.ids),
            &b.flags_tensor(&c.picked),
        )
    }
}

impl Method for Mlm {
    fn name(&self) -> &'static str {
        "mlm"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let b = HostBatch::from_views(input.views);
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        let c = self.corrupt(&b, self.cfg.rate_at(input.progress.fraction()), &mut rng);
        self.loss_of(&b, &c)
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

/// What every token-level text method needs: ids and word indices of each sentence (the two
/// text views), as they are, on a text transformer.
pub const TEXT_TOKENS: super::Needs = super::Needs {
    global_views: 2,
    own_views: true,
    encoders: &["text_transformer"],
    min_batch: 1,
    ..super::Needs::JOINT
};

/// The rules of a masking rate, a strategy's span lengths and BERT's replacement shares.
pub fn check_rate(field: &'static str, rate: f64) -> crate::rules::R {
    crate::rules::open_fraction(field, rate)
}

impl super::MethodSpec for MlmConfig {
    fn needs(&self) -> super::Needs {
        TEXT_TOKENS
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        check_rate("method.rate", self.rate)?;
        if let Some(end) = self.rate_end {
            check_rate("method.rate_end", end)?;
        }
        rules::probability("method.mask_prob", self.mask_prob)?;
        rules::probability("method.random_prob", self.random_prob)?;
        rules::probability("method.mask_prob + method.random_prob", self.mask_prob + self.random_prob)?;
        rules::open_fraction("method.span_p", self.span_p)?;
        rules::widths("method.span_max", [self.span_max as i64])
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        Ok(Box::new(Mlm::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::text_batch::tests_support::{batch, tiny_encoder};
    use super::*;
    use tch::{Device, Kind};

    /// The loss equals cross-entropy written out position by position: softmax over the tied
    /// logits at each picked position, minus the log-probability of the original token.
    #[test]
    fn loss_is_cross_entropy_at_the_picked_positions() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Mlm::new(&(vs.root() / "method"), tiny_encoder(&vs), &MlmConfig::default()).unwrap();
        let b = batch();
        let mut rng = keyed(1, Stream::Method, 0, 0, 0);
        let c = m.corrupt(&b, 0.3, &mut rng);
        assert!(c.picked.iter().any(|&p| p));
        let got = m.loss_of(&b, &c).double_value(&[]);
        let enc = m.encoder.as_text_transformer().unwrap();
        let x = b.ids_tensor(&c.input);
        let keys = x.ne(0);
        let h = enc.encode_tokens(&x, &keys, true);
        let (mut sum, mut count) = (0.0, 0);
        for (flat, &p) in c.picked.iter().enumerate() {
            if !p {
                continue;
            }
            let (i, j) = ((flat / b.len) as i64, (flat % b.len) as i64);
            let logits = m.head.logits(&h.get(i).get(j).unsqueeze(0), enc.token_embeddings()).squeeze();
            let z: Vec<f64> = Vec::try_from(logits.to_kind(Kind::Double)).unwrap();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            sum += lse - z[b.ids[flat] as usize];
            count += 1;
        }
        let want = sum / count as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn the_curriculum_moves_the_rate_linearly() {
        let c = MlmConfig {
            rate: 0.3,
            rate_end: Some(0.15),
            ..Default::default()
        };
        assert_eq!(c.rate_at(0.0), 0.3);
        assert!((c.rate_at(0.5) - 0.225).abs() < 1e-12);
        assert_eq!(c.rate_at(1.0), 0.15);
        assert_eq!(MlmConfig::default().rate_at(0.7), 0.15);
    }
}
