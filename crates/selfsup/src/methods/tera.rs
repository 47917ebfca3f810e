//! TERA (Liu et al. 2021): a transformer over spectrogram frames learns to reconstruct frames
//! that were altered along time, frequency and magnitude.
//!
//! ```text
//! x̃ = alter(x):  time      — blocks of `block` consecutive frames, 15 % of all frames in
//!                             total; of the blocks 80 % are zeroed, 10 % replaced by another
//!                             block of the same clip, 10 % left as they are
//!                 frequency — one band of 0..=`freq_width` consecutive mel bins zeroed for
//!                             the whole clip
//!                 magnitude — with probability `noise_prob`, Gaussian noise of variance
//!                             `noise_var` added everywhere
//! h = frame_transformer(x̃);  x̂ = head(h)      (Linear → GELU → LayerNorm → Linear)
//! L = mean |x̂ − x| over the altered positions (every position of a clip given noise)
//! ```
//! Constants from the paper (§III): blocks of 7 frames, 15 % of frames, 80/10/10, a band of at
//! most 20 % of the bins, noise with probability 0.1 and variance 0.2. The draws come from the
//! keyed generator of (seed, step), so a resumed run alters as an uninterrupted one.
use super::{Method, StepInput};
use crate::encoders::frame_transformer::FrameTransformer;
use crate::encoders::Encoder;
use crate::objectives::masked::masked_l1;
use crate::rng::{keyed, Stream};
use crate::torch_init::xavier_linear;
use anyhow::{anyhow, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeraConfig {
    /// Fraction of frames altered along time (0.15).
    #[serde(default = "default_time_fraction")]
    pub time_fraction: f64,
    /// Consecutive frames per altered block (7).
    #[serde(default = "default_block")]
    pub block: usize,
    /// Widest zeroed frequency band as a fraction of the mel bins (0.2).
    #[serde(default = "default_freq_fraction")]
    pub freq_fraction: f64,
    /// Probability that a clip gets magnitude noise (0.1) and the noise's variance (0.2).
    #[serde(default = "default_noise_prob")]
    pub noise_prob: f64,
    #[serde(default = "default_noise_var")]
    pub noise_var: f64,
}

impl Default for TeraConfig {
    fn default() -> Self {
        TeraConfig {
            time_fraction: default_time_fraction(),
            block: default_block(),
            freq_fraction: default_freq_fraction(),
            noise_prob: default_noise_prob(),
            noise_var: default_noise_var(),
        }
    }
}

fn default_time_fraction() -> f64 {
    0.15
}
fn default_block() -> usize {
    7
}
fn default_freq_fraction() -> f64 {
    0.2
}
fn default_noise_prob() -> f64 {
    0.1
}
fn default_noise_var() -> f64 {
    0.2
}

/// One batch's altered input and the positions the loss scores, both `[N, T, F]`.
pub struct Altered {
    pub input: Vec<f32>,
    pub scored: Vec<f32>,
}

/// Draws TERA's alterations of `frames` (`[n][t][f]`, row-major).
pub fn alter(cfg: &TeraConfig, frames: &[f32], n: usize, t: usize, f: usize, rng: &mut ChaCha8Rng) -> Altered {
    let mut input = frames.to_vec();
    let mut scored = vec![0f32; frames.len()];
    let block = cfg.block.clamp(1, t);
    let blocks = ((cfg.time_fraction * t as f64 / block as f64).round() as usize).max(1);
    let max_band = (cfg.freq_fraction * f as f64).floor() as usize;
    for s in 0..n {
        let clip = s * t * f;
        for _ in 0..blocks {
            let start = rng.gen_range(0..=t - block);
            let u: f64 = rng.gen();
            let source = rng.gen_range(0..=t - block);
            for j in start..start + block {
                let row = clip + j * f;
                scored[row..row + f].fill(1.0);
                if u < 0.8 {
                    input[row..row + f].fill(0.0);
                } else if u < 0.9 {
                    // The original frame, not one an earlier block already altered.
                    let from = clip + (source + j - start) * f;
                    input[row..row + f].copy_from_slice(&frames[from..from + f]);
                }
            }
        }
        let width = rng.gen_range(0..=max_band);
        let at = rng.gen_range(0..=f - width);
        for j in 0..t {
            let row = clip + j * f;
            input[row + at..row + at + width].fill(0.0);
            scored[row + at..row + at + width].fill(1.0);
        }
        if rng.gen::<f64>() < cfg.noise_prob {
            let sd = cfg.noise_var.sqrt();
            for v in &mut input[clip..clip + t * f] {
                *v += (sd * normal(rng)) as f32;
            }
            scored[clip..clip + t * f].fill(1.0);
        }
    }
    Altered { input, scored }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub struct Tera {
    encoder: Box<dyn Encoder>,
    head1: nn::Linear,
    head_norm: nn::LayerNorm,
    head2: nn::Linear,
    cfg: TeraConfig,
}

impl Tera {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &TeraConfig) -> Result<Self> {
        let ft = encoder
            .as_frame_transformer()
            .ok_or_else(|| anyhow!("tera reconstructs frames and needs encoder.kind = \"frame_transformer\""))?;
        let (dim, mels) = (encoder.out_dim(), ft.n_mels());
        Ok(Tera {
            head1: xavier_linear(p / "head1", dim, dim),
            head_norm: crate::encoders::transformer::layer_norm(p / "head_norm", dim),
            head2: xavier_linear(p / "head2", dim, mels),
            cfg: cfg.clone(),
            encoder,
        })
    }

    fn transformer(&self) -> &FrameTransformer {
        self.encoder.as_frame_transformer().expect("checked in new()")
    }

    /// The loss for spectrograms `x` (`[N, 1, F, T]`) with the alterations drawn from `rng`.
    pub fn loss_with(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let frames = FrameTransformer::to_frames(x).contiguous();
        let (n, t, f) = frames.size3().expect("frames are [N, T, F]");
        let host: Vec<f32> = Vec::try_from(frames.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
            .expect("float frames");
        let a = alter(&self.cfg, &host, n as usize, t as usize, f as usize, rng);
        let device = x.device();
        let input = Tensor::from_slice(&a.input).view([n, t, f]).to_device(device);
        let scored = Tensor::from_slice(&a.scored).view([n, t, f]).to_device(device);
        let h = self.transformer().encode_frames(&input);
        let pred = h.apply(&self.head1).gelu("none").apply(&self.head_norm).apply(&self.head2);
        masked_l1(&pred, &frames, &scored)
    }
}

impl Method for Tera {
    fn name(&self) -> &'static str {
        "tera"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        self.loss_with(&input.views[0], &mut rng)
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for TeraConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            global_views: 1,
            encoders: &["frame_transformer"],
            ..super::Needs::JOINT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::open_fraction("method.time_fraction", self.time_fraction)?;
        rules::widths("method.block", [self.block as i64])?;
        rules::probability("method.freq_fraction", self.freq_fraction)?;
        rules::probability("method.noise_prob", self.noise_prob)?;
        rules::non_negative("method.noise_var", self.noise_var)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Tera::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alterations_hit_the_stated_rates() {
        let cfg = TeraConfig::default();
        let (n, t, f) = (200, 70, 40);
        let x: Vec<f32> = (0..n * t * f).map(|i| 1.0 + (i % 13) as f32).collect();
        let a = alter(&cfg, &x, n, t, f, &mut keyed(0, Stream::Method, 0, 0, 0));
        // Time: 15 % of 70 frames / 7 = round(1.5) = 2 blocks of 7 per clip (they may overlap).
        let mut frames_scored = 0usize;
        let mut zeroed_frames = 0usize;
        let mut noisy = 0usize;
        for s in 0..n {
            let clip = &a.scored[s * t * f..(s + 1) * t * f];
            if clip.iter().all(|&v| v == 1.0) {
                noisy += 1;
                continue;
            }
            frames_scored += (0..t).filter(|j| clip[j * f..(j + 1) * f].iter().all(|&v| v == 1.0)).count();
            zeroed_frames += (0..t)
                .filter(|j| a.input[s * t * f + j * f..s * t * f + (j + 1) * f].iter().all(|&v| v == 0.0))
                .count();
        }
        let clean = (n - noisy) as f64;
        let per_clip = frames_scored as f64 / clean;
        assert!(per_clip > 10.0 && per_clip <= 14.0, "{per_clip} frames scored per clip");
        let zero_share = zeroed_frames as f64 / frames_scored as f64;
        assert!((zero_share - 0.8).abs() < 0.1, "{zero_share} of scored frames zeroed");
        let noise_share = noisy as f64 / n as f64;
        assert!(noise_share < 0.2, "{noise_share} clips with noise");
        // Unscored positions are untouched unless noise was added.
        for s in 0..n {
            let r = s * t * f..(s + 1) * t * f;
            if a.scored[r.clone()].iter().all(|&v| v == 1.0) {
                continue;
            }
            for i in r {
                if a.scored[i] == 0.0 {
                    assert_eq!(a.input[i], x[i]);
                }
            }
        }
    }

    #[test]
    fn replaced_blocks_copy_original_frames_of_the_same_clip() {
        let cfg = TeraConfig {
            noise_prob: 0.0,
            freq_fraction: 0.0,
            ..Default::default()
        };
        let (n, t, f) = (50, 30, 3);
        let x: Vec<f32> = (0..n * t * f).map(|i| (i / f) as f32 + 1.0).collect();
        let a = alter(&cfg, &x, n, t, f, &mut keyed(4, Stream::Method, 0, 0, 0));
        for s in 0..n {
            for j in 0..t {
                let i = (s * t + j) * f;
                let v = a.input[i];
                if v != 0.0 {
                    // A frame's value names the frame it came from: same clip.
                    let from = (v - 1.0) as usize;
                    assert_eq!(from / t, s);
                }
            }
        }
    }
}
