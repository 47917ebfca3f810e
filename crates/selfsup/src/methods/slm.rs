//! Swapped language modelling (SLM), from "Effective pre-training objectives for
//! transformer-based autoencoders" (Di Liello, Gabburo & Moschitti, 2022): MLM without the
//! [MASK] token — the picked tokens are all swapped for random ones, so pretraining never shows
//! the encoder an input it will not meet when fine-tuned — and the originals are predicted.
//!
//! ```text
//! picked = choose(words, rate, strategy)
//! x̃_i    = picked_i ? a random other ordinary token : x_i
//! L      = CE( head(encoder(x̃))[picked], x[picked] )      (head tied to the token embeddings)
//! ```
use super::text_batch::{predict_originals, text_encoder, HostBatch, TiedTokenHead};
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::rng::{keyed, Stream};
use crate::views::text_masking::{other_token, MaskStrategy, SpanLengths};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlmConfig {
    /// Share of ordinary tokens swapped (0.15).
    pub rate: f64,
    pub strategy: MaskStrategy,
}

impl Default for SlmConfig {
    fn default() -> Self {
        SlmConfig {
            rate: 0.15,
            strategy: MaskStrategy::Token,
        }
    }
}

pub struct Slm {
    encoder: Box<dyn Encoder>,
    head: TiedTokenHead,
    cfg: SlmConfig,
}

impl Slm {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SlmConfig) -> anyhow::Result<Slm> {
        let t = text_encoder(encoder.as_ref(), "slm")?;
        Ok(Slm {
            head: TiedTokenHead::new(&(p / "head"), t.dim(), t.vocab()),
            cfg: cfg.clone(),
            encoder,
        })
    }

    /// The swapped ids and the positions swapped.
    pub fn corrupt(&self, b: &HostBatch, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<bool>) {
        let vocab = text_encoder(self.encoder.as_ref(), "slm").expect("checked").vocab() as u32;
        let picked = b.pick(self.cfg.rate, self.cfg.strategy, SpanLengths::default(), rng);
        let input = b
            .ids
            .iter()
            .zip(&picked)
            .map(|(&id, &p)| if p { other_token(id, vocab, rng) } else { id })
            .collect();
        (input, picked)
    }

    pub fn loss_of(&self, b: &HostBatch, input: &[u32], picked: &[bool]) -> Tensor {
        let enc = text_encoder(self.encoder.as_ref(), "slm").expect("checked");
        predict_originals(
            enc,
            &self.head,
            &b.ids_tensor(input),
            &b.ids_tensor(&b.ids),
            &b.flags_tensor(picked),
        )
    }
}

impl Method for Slm {
    fn name(&self) -> &'static str {
        "slm"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let b = HostBatch::from_views(input.views);
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        let (x, picked) = self.corrupt(&b, &mut rng);
        self.loss_of(&b, &x, &picked)
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for SlmConfig {
    fn needs(&self) -> super::Needs {
        super::mlm::TEXT_TOKENS
    }
    fn validate(&self) -> crate::rules::R {
        super::mlm::check_rate("method.rate", self.rate)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        Ok(Box::new(Slm::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::text_batch::tests_support::{batch, tiny_encoder};
    use super::*;
    use tch::{Device, Kind};

    /// Every picked token is swapped (none kept, none masked), and the loss is the
    /// cross-entropy of the originals written out at the swapped positions.
    #[test]
    fn swaps_every_picked_token_and_scores_the_originals() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = SlmConfig { rate: 0.3, ..Default::default() };
        let m = Slm::new(&(vs.root() / "method"), tiny_encoder(&vs), &cfg).unwrap();
        let b = batch();
        let (x, picked) = m.corrupt(&b, &mut keyed(4, Stream::Method, 0, 0, 0));
        for i in 0..x.len() {
            assert_eq!(picked[i], x[i] != b.ids[i]);
            assert_ne!(x[i], crate::data::text::tokenizer::MASK);
        }
        let got = m.loss_of(&b, &x, &picked).double_value(&[]);
        let enc = m.encoder.as_text_transformer().unwrap();
        let xt = b.ids_tensor(&x);
        let h = enc.encode_tokens(&xt, &xt.ne(0), true);
        let logp = m.head.logits(&h.flatten(0, 1), enc.token_embeddings()).to_kind(Kind::Double).log_softmax(-1, None::<Kind>);
        let (mut sum, mut n) = (0.0, 0);
        for i in 0..x.len() {
            if picked[i] {
                sum -= logp.get(i as i64).get(b.ids[i] as i64).double_value(&[]);
                n += 1;
            }
        }
        let want = sum / n as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
