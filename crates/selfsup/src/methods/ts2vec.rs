//! TS2Vec (Yue et al., AAAI 2022): contextual consistency between two overlapping random crops
//! of each series, learned with the hierarchical contrastive loss.
//!
//! Per step (§3.1–3.3 and the authors' training loop):
//! 1. a series longer than `max_train_length` is cut to a random window of that length;
//! 2. draw an overlap [a, b) of length l ∈ [2^(temporal_unit+1), T], and around it two crops
//!    [a₁, b) and [a, b₂) with a₁ ≤ a and b₂ ≥ b; each series is shifted by its own random offset
//!    that keeps both crops inside it;
//! 3. encode each crop with its own Bernoulli(0.5) timestamp mask on the projected input;
//! 4. the hierarchical contrastive loss on the two encodings of the overlap.
//!
//! The representation handed downstream comes from a stochastic weight average (equal weights)
//! of the encoder after every applied step, as the authors' code evaluates
//! (`torch.optim.swa_utils.AveragedModel`); `swa = false` uses the trained encoder itself.
use super::ema::EmaTarget;
use super::{EncoderFactory, Method, MethodSpec, Needs, Progress, StepInput};
use crate::encoders::dilated_conv::StepMask;
use crate::encoders::Encoder;
use crate::objectives::hierarchical::hierarchical_contrastive;
use crate::rng::{keyed, Stream};
use crate::rules;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ts2VecConfig {
    /// Weight of the instance-wise term; the temporal term gets 1 − α (0.5 in the paper).
    pub alpha: f64,
    /// First scale (pooling level) with a temporal term; crops are at least 2^(unit+1) long
    /// (0 in the paper's classification runs).
    pub temporal_unit: usize,
    /// Longer series are cut to a random window of this length per batch (3000 in the
    /// authors' code).
    pub max_train_length: usize,
    /// Probability that a time step of the projected input is kept (Bernoulli mask, 0.5).
    pub mask_keep: f64,
    /// Evaluate the equal-weight average of the encoder over all steps (the authors' code).
    pub swa: bool,
}

impl Default for Ts2VecConfig {
    fn default() -> Self {
        Ts2VecConfig {
            alpha: 0.5,
            temporal_unit: 0,
            max_train_length: 3000,
            mask_keep: 0.5,
            swa: true,
        }
    }
}

impl MethodSpec for Ts2VecConfig {
    fn needs(&self) -> Needs {
        Needs {
            global_views: 1,
            own_views: true,
            encoders: &["dilated_conv"],
            ..Needs::JOINT
        }
    }
    fn validate(&self) -> rules::R {
        rules::probability("method.alpha", self.alpha)?;
        rules::open_fraction("method.mask_keep", self.mask_keep)?;
        if self.max_train_length < 2usize << self.temporal_unit.min(60) {
            return Err(rules::RecipeError::BadRange {
                field: "method.max_train_length",
                lo: self.max_train_length as f64,
                hi: self.max_train_length as f64,
                rule: "must be at least 2^(temporal_unit + 1), the shortest crop",
            });
        }
        Ok(())
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        Ok(Box::new(Ts2Vec::new(vs, encoder, make_encoder, self)?))
    }
}

/// The running average of the encoder: the average itself under `method.swa`, and how many
/// steps it holds (a variable, so checkpoints carry it).
struct Average {
    encoder: Box<dyn Encoder>,
    target: EmaTarget,
    count: Tensor,
}

pub struct Ts2Vec {
    encoder: Box<dyn Encoder>,
    average: Option<Average>,
    cfg: Ts2VecConfig,
}

/// The crop draw of one batch: window start per series is `offset[i] + start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Crops {
    /// Overlap length l.
    pub overlap: i64,
    /// First crop [left_extended, right), second [left, right_extended), in window coordinates.
    pub left_extended: i64,
    pub left: i64,
    pub right: i64,
    pub right_extended: i64,
    /// Per-series shift of both crops.
    pub offsets: Vec<i64>,
}

impl Crops {
    /// The authors' draws, for series of length `t` (≥ `min_len`), for `n` series.
    pub fn draw(rng: &mut ChaCha8Rng, t: i64, min_len: i64, n: usize) -> Crops {
        let overlap = rng.gen_range(min_len..=t);
        let left = rng.gen_range(0..=t - overlap);
        let right = left + overlap;
        let left_extended = rng.gen_range(0..=left);
        let right_extended = rng.gen_range(right..=t);
        let offsets = (0..n)
            .map(|_| rng.gen_range(-left_extended..=t - right_extended))
            .collect();
        Crops {
            overlap,
            left_extended,
            left,
            right,
            right_extended,
            offsets,
        }
    }
}

/// `x[i, :, offsets[i] + start .. + len]` for each series `i` of `x` `[N, C, T]`.
fn take_per_row(x: &Tensor, offsets: &[i64], start: i64, len: i64) -> Tensor {
    let (n, c) = (x.size()[0], x.size()[1]);
    let device = x.device();
    let starts = Tensor::from_slice(offsets).to_device(device) + start;
    let idx = starts.view([n, 1, 1]) + Tensor::arange(len, (Kind::Int64, device)).view([1, 1, len]);
    x.gather(2, &idx.expand([n, c, len], false), false)
}

/// A Bernoulli(`keep`) mask `[n, t]` from `rng`.
fn step_mask(rng: &mut ChaCha8Rng, n: i64, t: i64, keep: f64, device: tch::Device) -> Tensor {
    let bits: Vec<bool> = (0..n * t).map(|_| rng.gen_bool(keep)).collect();
    Tensor::from_slice(&bits).view([n, t]).to_device(device)
}

impl Ts2Vec {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &Ts2VecConfig,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            encoder.as_dilated_conv().is_some(),
            "ts2vec needs encoder.kind = \"dilated_conv\" (per-step outputs)"
        );
        let average = if cfg.swa {
            let p = vs.root() / "method";
            let encoder = make_encoder(&(&p / "swa"))?;
            let count = p.zeros_no_train("swa_count", &[]);
            let target = EmaTarget::bind(vs, &[("encoder", "method.swa")])?;
            Some(Average {
                encoder,
                target,
                count,
            })
        } else {
            None
        };
        Ok(Ts2Vec {
            encoder,
            average,
            cfg: cfg.clone(),
        })
    }

    /// The loss of one batch `x` `[N, C, T]` with every draw from `rng`.
    pub fn loss_with(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let enc = self
            .encoder
            .as_dilated_conv()
            .expect("checked when built");
        let (n, t) = (x.size()[0], x.size()[2]);
        let device = x.device();
        let max_len = self.cfg.max_train_length as i64;
        let x = if t > max_len {
            let start = rng.gen_range(0..=t - max_len);
            x.narrow(2, start, max_len)
        } else {
            x.shallow_clone()
        };
        let t = t.min(max_len);
        let min_len = 2i64 << self.cfg.temporal_unit;
        assert!(
            t >= min_len,
            "ts2vec: series of {t} steps are shorter than the shortest crop ({min_len})"
        );
        let c = Crops::draw(rng, t, min_len, n as usize);
        let first = take_per_row(&x, &c.offsets, c.left_extended, c.right - c.left_extended);
        let second = take_per_row(&x, &c.offsets, c.left, c.right_extended - c.left);
        let keep = self.cfg.mask_keep;
        let m1 = step_mask(rng, n, first.size()[2], keep, device);
        let m2 = step_mask(rng, n, second.size()[2], keep, device);
        let z1 = enc.steps(&first, StepMask::Keep(&m1), true);
        let z2 = enc.steps(&second, StepMask::Keep(&m2), true);
        // The overlap is the end of the first crop and the start of the second.
        let z1 = z1.narrow(1, z1.size()[1] - c.overlap, c.overlap);
        let z2 = z2.narrow(1, 0, c.overlap);
        hierarchical_contrastive(&z1, &z2, self.cfg.alpha, self.cfg.temporal_unit)
    }
}

impl Method for Ts2Vec {
    fn name(&self) -> &'static str {
        "ts2vec"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        self.loss_with(&input.views[0], &mut rng)
    }
    fn after_update(&self, _progress: Progress) {
        if let Some(a) = &self.average {
            // avg ← avg + (θ − avg)/(n + 1): an EMA with momentum n/(n + 1); n = 0 copies θ.
            let n = a.count.double_value(&[]);
            a.target.update(n / (n + 1.0));
            tch::no_grad(|| {
                let _ = a.count.shallow_clone().g_add_scalar_(1.0);
            });
        }
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder().forward_t(x, false)
    }
    /// The averaged encoder when `swa` is on: what evaluation and fine-tuning start from.
    fn encoder(&self) -> &dyn Encoder {
        match &self.average {
            Some(a) => a.encoder.as_ref(),
            None => self.encoder.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::dilated_conv::DilatedConv;
    use tch::{nn::OptimizerConfig, Device};

    fn model(swa: bool) -> (nn::VarStore, Ts2Vec) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let make = |p: &nn::Path| -> anyhow::Result<Box<dyn Encoder>> {
            Ok(Box::new(DilatedConv::new(p, 1, 8, 16, 3, 3)))
        };
        let enc = make(&(vs.root() / "encoder")).unwrap();
        let cfg = Ts2VecConfig {
            swa,
            ..Default::default()
        };
        let m = Ts2Vec::new(&vs, enc, &make, &cfg).unwrap();
        (vs, m)
    }

    #[test]
    fn crops_overlap_and_stay_inside_every_series() {
        let mut rng = keyed(1, Stream::Method, 0, 0, 0);
        for _ in 0..500 {
            let t = rng.gen_range(2..40);
            let c = Crops::draw(&mut rng, t, 2, 4);
            assert!(c.overlap >= 2 && c.overlap == c.right - c.left);
            assert!(0 <= c.left_extended && c.left_extended <= c.left);
            assert!(c.right <= c.right_extended && c.right_extended <= t);
            for o in &c.offsets {
                assert!(o + c.left_extended >= 0 && o + c.right_extended <= t);
            }
        }
    }

    #[test]
    fn take_per_row_shifts_each_series() {
        let x = Tensor::arange(20, (Kind::Float, Device::Cpu)).view([2, 1, 10]);
        let w = take_per_row(&x, &[1, -1], 2, 3);
        assert_eq!(Vec::<f32>::try_from(w.flatten(0, -1)).unwrap(), [3., 4., 5., 11., 12., 13.]);
    }

    #[test]
    fn the_loss_trains_and_the_average_follows_the_steps() {
        let (vs, m) = model(true);
        let x = Tensor::randn([4, 1, 32], (Kind::Float, Device::Cpu));
        let mut rng = keyed(2, Stream::Method, 0, 0, 0);
        let loss = m.loss_with(&x, &mut rng);
        assert!(loss.double_value(&[]).is_finite());
        let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
        // Step 1: the average becomes the trained encoder.
        opt.backward_step(&loss);
        m.after_update(Progress::at(0, 2, 1));
        let after1 = m.encoder.forward_t(&x, false);
        assert!(m.embed(&x).allclose(&after1, 1e-6, 1e-6, false));
        // Step 2: the average is the mean of the two parameter sets.
        let w = |name: &str| vs.variables()[name].copy();
        let name = "encoder.input_fc.weight";
        let first = w(name);
        let loss = m.loss_with(&x, &mut rng);
        opt.backward_step(&loss);
        m.after_update(Progress::at(1, 2, 1));
        let mean = (first + w(name)) / 2.0;
        assert!(w("method.swa.input_fc.weight").allclose(&mean, 1e-6, 1e-6, false));
        assert_eq!(vs.variables()["method.swa_count"].double_value(&[]), 2.0);
    }

    #[test]
    fn without_averaging_the_trained_encoder_embeds() {
        let (_vs, m) = model(false);
        let x = Tensor::randn([3, 1, 20], (Kind::Float, Device::Cpu));
        assert!(m.embed(&x).allclose(&m.encoder.forward_t(&x, false), 1e-6, 1e-6, false));
        assert_eq!(m.embed(&x).size(), [3, 16]);
    }
}
