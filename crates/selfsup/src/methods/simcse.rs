//! Unsupervised SimCSE (Gao, Yao & Chen 2021): a sentence and itself, encoded twice with
//! different dropout masks, are a positive pair; the other sentences of the batch are the
//! negatives.
//!
//! ```text
//! z, z' = pooler(encoder(x)), pooler(encoder(x))     (two dropout draws, train mode)
//! L     = −(1/N) Σ_i log( exp(cos(z_i, z'_i)/τ) / Σ_j exp(cos(z_i, z'_j)/τ) ),   τ = 0.05
//! ```
//! The pooler is SimCSE's MLP (dense + tanh), used in training only; evaluation reads the
//! encoder's own representation, as the paper does for the unsupervised model.
use super::{Method, StepInput};
use crate::encoders::Encoder;
use crate::objectives::info_nce::info_nce_in_batch;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimcseConfig {
    /// τ = 0.05 in the paper.
    pub temperature: f64,
    /// SimCSE's training-time MLP pooler.
    pub pooler: bool,
}

impl Default for SimcseConfig {
    fn default() -> Self {
        SimcseConfig {
            temperature: 0.05,
            pooler: true,
        }
    }
}

pub struct Simcse {
    encoder: Box<dyn Encoder>,
    pooler: Option<nn::Linear>,
    temperature: f64,
}

impl Simcse {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &SimcseConfig) -> Simcse {
        let d = encoder.out_dim();
        Simcse {
            pooler: cfg
                .pooler
                .then(|| crate::torch_init::xavier_linear(p / "pooler", d, d)),
            temperature: cfg.temperature,
            encoder,
        }
    }

    /// One training-mode pass: a fresh dropout draw.
    pub fn view(&self, x: &Tensor) -> Tensor {
        let z = self.encoder.forward_t(x, true);
        match &self.pooler {
            Some(l) => l.forward(&z).tanh(),
            None => z,
        }
    }
}

impl Method for Simcse {
    fn name(&self) -> &'static str {
        "simcse"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let x = &input.views[0];
        info_nce_in_batch(&self.view(x), &self.view(x), self.temperature)
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for SimcseConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            min_batch: 2,
            ..super::mlm::TEXT_TOKENS
        }
    }
    fn validate(&self) -> crate::rules::R {
        crate::rules::temperature("method.temperature", self.temperature)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        super::text_batch::text_encoder(encoder.as_ref(), "simcse")?;
        Ok(Box::new(Simcse::new(&(vs.root() / "method"), encoder, self)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::text_batch::tests_support::{batch, tiny_encoder};
    use super::*;
    use tch::{Device, Kind};

    /// Without dropout the two views agree, so the loss is the InfoNCE of each sentence
    /// against itself, written out row by row with τ = 0.05.
    #[test]
    fn loss_is_in_batch_info_nce_of_two_passes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Simcse::new(&(vs.root() / "method"), tiny_encoder(&vs), &SimcseConfig::default());
        let b = batch();
        let x = b.ids_tensor(&b.ids).to_kind(Kind::Float);
        let views = [x.shallow_clone(), x.zeros_like()];
        let got = m.loss(&StepInput::new(&views, crate::methods::Progress::at(0, 1, 1))).double_value(&[]);
        let z: Vec<Vec<f64>> = (0..3)
            .map(|i| Vec::try_from(m.view(&x).get(i).to_kind(Kind::Double)).unwrap())
            .collect();
        let cos = |a: &[f64], b: &[f64]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            dot / (a.iter().map(|v| v * v).sum::<f64>().sqrt() * b.iter().map(|v| v * v).sum::<f64>().sqrt())
        };
        let mut want = 0.0;
        for i in 0..3 {
            let denom: f64 = (0..3).map(|j| (cos(&z[i], &z[j]) / 0.05).exp()).sum();
            want -= ((cos(&z[i], &z[i]) / 0.05).exp() / denom).ln();
        }
        want /= 3.0;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}
