//! CLIP (Radford et al. 2021) over any number of modalities, as AstroM³ (Rizhko & Bloom 2024)
//! aligns three: one encoder and one linear projection per modality into a shared space, and the
//! symmetric contrastive loss with a learned temperature summed over every pair of modalities.
//!
//! Per step, with x_m the batch of modality m (row i of every x_m is one tuple):
//!   z_m = normalise(W_m · f_m(x_m))
//!   L   = mean over pairs m < n of clip_loss(z_m, z_n, exp(t)),
//! where t starts at log(1/0.07) and exp(t) is clipped at 100 (CLIP §2.5).
use super::{EncoderFactory, Method, MethodSpec, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::clip_loss;
use crate::rules;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// The temperature at the start (CLIP §2.5: 0.07).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Learn the temperature (as CLIP does) or keep it fixed.
    #[serde(default = "yes")]
    pub learn_temperature: bool,
    /// The largest logit scale 1/τ (CLIP clips it at 100 "to prevent training instability").
    #[serde(default = "default_max_scale")]
    pub max_scale: f64,
    /// Each modality's projection into the shared space (CLIP: one linear map without bias).
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
}

fn default_temperature() -> f64 {
    0.07
}
fn default_max_scale() -> f64 {
    100.0
}
fn yes() -> bool {
    true
}
fn default_projector() -> Vec<Block> {
    vec![Block::new(128, false, false, false)]
}

impl Default for ClipConfig {
    fn default() -> Self {
        ClipConfig {
            temperature: default_temperature(),
            learn_temperature: true,
            max_scale: default_max_scale(),
            projector: default_projector(),
        }
    }
}

impl MethodSpec for ClipConfig {
    fn validate(&self) -> rules::R {
        rules::temperature("method.temperature", self.temperature)?;
        rules::positive("method.max_scale", self.max_scale)?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))
    }
    fn build(
        &self,
        _: &nn::VarStore,
        _: Box<dyn Encoder>,
        _: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        anyhow::bail!(
            "clip aligns several modalities: give it paired data ([data] format = \"paired\")"
        )
    }
    fn build_paired(
        &self,
        vs: &nn::VarStore,
        encoders: Vec<Box<dyn Encoder>>,
    ) -> anyhow::Result<Box<dyn Method>> {
        anyhow::ensure!(
            encoders.len() >= 2,
            "clip needs at least two modalities, not {}",
            encoders.len()
        );
        let p = vs.root() / "method";
        let projectors = encoders
            .iter()
            .enumerate()
            .map(|(m, e)| Head::new(&(&p / format!("projector{m}")), e.out_dim(), &self.projector))
            .collect();
        let start = (1.0 / self.temperature).ln();
        let log_scale = if self.learn_temperature {
            p.var("log_scale", &[], nn::Init::Const(start))
        } else {
            let mut t = p.zeros_no_train("log_scale", &[]);
            let _ = tch::no_grad(|| t.fill_(start));
            t
        };
        Ok(Box::new(Clip {
            encoders,
            projectors,
            log_scale,
            max_log_scale: self.max_scale.ln(),
        }))
    }
}

pub struct Clip {
    encoders: Vec<Box<dyn Encoder>>,
    projectors: Vec<Head>,
    /// t, with 1/τ = exp(t).
    log_scale: Tensor,
    max_log_scale: f64,
}

impl Clip {
    fn project(&self, m: usize, x: &Tensor, train: bool) -> Tensor {
        self.projectors[m].forward_t(&self.encoders[m].forward_t(x, train), train)
    }
    /// The logit scale 1/τ the loss uses now.
    pub fn scale(&self) -> Tensor {
        self.log_scale.clamp_max(self.max_log_scale).exp()
    }
}

impl Method for Clip {
    fn name(&self) -> &'static str {
        "clip"
    }
    fn n_views(&self) -> usize {
        self.encoders.len()
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let z: Vec<Tensor> = (0..self.encoders.len())
            .map(|m| self.project(m, &input.views[m], true))
            .collect();
        let scale = self.scale();
        let mut total = None;
        let mut pairs = 0.0;
        for a in 0..z.len() {
            for b in a + 1..z.len() {
                let l = clip_loss(&z[a], &z[b], &scale);
                total = Some(match total {
                    None => l,
                    Some(t) => t + l,
                });
                pairs += 1.0;
            }
        }
        total.expect("at least two modalities") / pairs
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoders[0].forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoders[0].as_ref()
    }
    fn modalities(&self) -> usize {
        self.encoders.len()
    }
    fn embed_modality(&self, m: usize, x: &Tensor) -> Tensor {
        self.encoders[m].forward_t(x, false)
    }
    fn shared_embedding(&self, m: usize, x: &Tensor) -> Option<Tensor> {
        Some(crate::objectives::info_nce::l2_normalize_rows(&self.project(m, x, false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::EncoderConfig;
    use tch::{Device, Kind};

    fn model(learn: bool) -> (nn::VarStore, Box<dyn Method>) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = |dims: Vec<i64>| EncoderConfig::Mlp { dims, batch_norm: false };
        let encoders = vec![
            crate::encoders::build_for(&mlp(vec![8]), &(vs.root() / "encoder"), &[5], None).unwrap(),
            crate::encoders::build_for(&mlp(vec![6]), &(vs.root() / "m1"), &[3], None).unwrap(),
            crate::encoders::build_for(&mlp(vec![4]), &(vs.root() / "m2"), &[2], None).unwrap(),
        ];
        let cfg = ClipConfig {
            learn_temperature: learn,
            projector: vec![Block::new(4, false, false, false)],
            ..Default::default()
        };
        let m = cfg.build_paired(&vs, encoders).unwrap();
        (vs, m)
    }

    #[test]
    fn the_loss_averages_the_pairwise_clip_losses_and_trains_every_encoder_and_the_temperature() {
        let (vs, m) = model(true);
        let views = [
            Tensor::randn([6, 5], (Kind::Float, Device::Cpu)),
            Tensor::randn([6, 3], (Kind::Float, Device::Cpu)),
            Tensor::randn([6, 2], (Kind::Float, Device::Cpu)),
        ];
        let input = StepInput::new(&views, super::super::Progress::at(0, 1, 1));
        let loss = m.loss(&input);
        let z: Vec<Tensor> = (0..3).map(|k| m.shared_embedding(k, &views[k]).unwrap()).collect();
        let s = Tensor::from(1.0f32 / 0.07);
        let want = (clip_loss(&z[0], &z[1], &s) + clip_loss(&z[0], &z[2], &s) + clip_loss(&z[1], &z[2], &s)) / 3.0;
        assert!((f64::try_from(&loss).unwrap() - f64::try_from(&want).unwrap()).abs() < 1e-5);
        loss.backward();
        for (name, v) in vs.variables() {
            let g = v.grad();
            assert!(g.defined() && f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0, "{name} has no gradient");
        }
        assert_eq!((m.modalities(), m.n_views()), (3, 3));
        assert_eq!(m.embed_modality(2, &views[2]).size(), [6, 4]);
    }

    #[test]
    fn a_fixed_temperature_is_not_trained() {
        let (vs, _) = model(false);
        let t = &vs.variables()["method.log_scale"];
        assert!(!t.requires_grad());
        assert!((f64::try_from(t).unwrap() - (1.0f64 / 0.07).ln()).abs() < 1e-6);
    }

    #[test]
    fn one_modality_is_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let e = crate::encoders::build_for(
            &EncoderConfig::Mlp { dims: vec![4], batch_norm: false },
            &(vs.root() / "encoder"),
            &[3],
            None,
        )
        .unwrap();
        assert!(ClipConfig::default().build_paired(&vs, vec![e]).is_err());
    }
}
