//! VIME's self-supervised part (Yoon et al. 2020, §4.1): corrupt a row by replacing a random
//! subset of its features with draws from their empirical marginals, then from the encoding of
//! the corrupted row estimate (a) which entries were replaced and (b) the original row.
//!
//! ```text
//! x̃    = corrupted row (the loader's marginal resampling, [views.table] corruption_rate = p_m)
//! m    = 1[x̃ ≠ x]           per encoded column — the reference code derives the mask the same way
//! z    = encoder(x̃)
//! loss = BCE(mask_head(z), m) · α + MSE(feature_head(z), x)      (α = 2, the reference default)
//! ```
//! View 0 is the clean row (`clean_first_view = true`), view 1 the corrupted one.
use super::{Method, StepInput};
use crate::encoders::Encoder;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Reduction, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VimeConfig {
    /// Weight of the mask-estimation loss against feature reconstruction.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

impl Default for VimeConfig {
    fn default() -> Self {
        VimeConfig {
            alpha: default_alpha(),
        }
    }
}

fn default_alpha() -> f64 {
    2.0
}

pub struct Vime {
    encoder: Box<dyn Encoder>,
    mask_head: nn::Linear,
    feature_head: nn::Linear,
    alpha: f64,
}

impl Vime {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &VimeConfig) -> Result<Self> {
        let d = encoder.input_len().ok_or_else(|| {
            anyhow!("vime reconstructs flat rows and needs encoder.kind = \"mlp\"")
        })?;
        let h = encoder.out_dim();
        Ok(Vime {
            mask_head: crate::torch_init::linear(p / "mask_head", h, d, true),
            feature_head: crate::torch_init::linear(p / "feature_head", h, d, true),
            alpha: cfg.alpha,
            encoder,
        })
    }

    pub fn loss_with(&self, clean: &Tensor, corrupted: &Tensor) -> Tensor {
        let m = corrupted.ne_tensor(clean).to_kind(Kind::Float);
        let z = self.encoder.forward_t(corrupted, true);
        let mask_loss = self
            .mask_head
            .forward(&z)
            .binary_cross_entropy_with_logits::<Tensor>(&m, None, None, Reduction::Mean);
        let recon = self
            .feature_head
            .forward(&z)
            .mse_loss(clean, Reduction::Mean);
        mask_loss * self.alpha + recon
    }
}

impl Method for Vime {
    fn name(&self) -> &'static str {
        "vime"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_with(&input.views[0], &input.views[1])
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}


impl super::MethodSpec for VimeConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            tables: true,
            encoders: &["mlp"],
            ..super::Needs::JOINT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::non_negative("method.alpha", self.alpha)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Vime::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::mlp::Mlp;
    use tch::Device;

    /// The loss equals α·BCE on the changed-entry mask plus the reconstruction MSE, computed here
    /// from the heads' outputs by the formulas.
    #[test]
    fn loss_is_mask_bce_times_alpha_plus_reconstruction_mse() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Box::new(Mlp::new(&(vs.root() / "encoder"), 3, &[4], false));
        let v = Vime::new(&(vs.root() / "method"), enc, &VimeConfig { alpha: 2.0 }).unwrap();
        let clean = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.]).view([2, 3]);
        let corrupted = Tensor::from_slice(&[1f32, 9., 3., 0., 5., 6.]).view([2, 3]);
        let z = v.encoder.forward_t(&corrupted, true);
        let logits =
            Vec::<f64>::try_from(v.mask_head.forward(&z).flatten(0, -1).to_kind(Kind::Double))
                .unwrap();
        let recon = Vec::<f64>::try_from(
            v.feature_head
                .forward(&z)
                .flatten(0, -1)
                .to_kind(Kind::Double),
        )
        .unwrap();
        let m = [0., 1., 0., 1., 0., 0.];
        let x = [1., 2., 3., 4., 5., 6.];
        let bce: f64 = logits
            .iter()
            .zip(m)
            .map(|(l, y)| {
                let p = 1.0 / (1.0 + (-l).exp());
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / 6.0;
        let mse: f64 = recon
            .iter()
            .zip(x)
            .map(|(r, x)| (r - x).powi(2))
            .sum::<f64>()
            / 6.0;
        let got = v.loss_with(&clean, &corrupted).double_value(&[]);
        assert!(
            (got - (2.0 * bce + mse)).abs() < 1e-4,
            "{got} vs {}",
            2.0 * bce + mse
        );
    }
}
