//! Views of a clip's log-mel spectrogram, in this order: a random window of `frames` frames
//! (BYOL-A's random crop), a gain (a constant added to the log power), normalisation by the
//! training set's mean and deviation, mixup with another clip in the power domain (BYOL-A:
//! `log((1−λ)·e^x + λ·e^y)`, λ ~ U(0, α)), a random resized crop of the spectrogram (BYOL-A's
//! RRC on a virtual canvas, resized back bilinearly where BYOL-A uses bicubic), and SpecAugment
//! time and frequency masks (Park et al. 2019) set to the normalised mean, 0.
//! Each draw comes from the keyed generator of (seed, epoch, sample, view).
use super::ViewSource;
use crate::data::audio::AudioSet;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `[views.audio]`; the defaults are off except the random window, so a recipe turns on what
/// its method uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioAugment {
    /// Take a random window of the clip (else the centred one, as evaluation does).
    pub random_crop: bool,
    /// Gain drawn uniformly in ±this many dB (0: off).
    pub gain_db: f64,
    /// Mixup's α: the other clip's weight is drawn in U(0, α) (0: off; 0.4 in BYOL-A).
    pub mixup: f64,
    /// Random resized crop (BYOL-A's defaults when on: canvas 1.0 × 1.5 of the spectrogram in
    /// frequency × time, crop 0.6–1.5 of each side).
    pub rrc: bool,
    /// Canvas size as multiples of the spectrogram's (frequency, time).
    pub rrc_canvas: [f64; 2],
    /// Crop height as a multiple of the mel bins, drawn uniformly in this range.
    pub rrc_freq_scale: [f64; 2],
    /// Crop width as a multiple of the frames, drawn uniformly in this range.
    pub rrc_time_scale: [f64; 2],
    /// SpecAugment: number of time masks and the largest width of each (frames).
    pub time_masks: usize,
    pub time_mask_width: usize,
    /// SpecAugment: number of frequency masks and the largest width of each (mel bins).
    pub freq_masks: usize,
    pub freq_mask_width: usize,
}

impl Default for AudioAugment {
    fn default() -> Self {
        AudioAugment {
            random_crop: true,
            ..AudioAugment::IDENTITY
        }
    }
}

impl AudioAugment {
    /// The clip itself (centred window, nothing else): methods that alter their input
    /// themselves (TERA) and evaluation.
    pub const IDENTITY: AudioAugment = AudioAugment {
        random_crop: false,
        gain_db: 0.0,
        mixup: 0.0,
        rrc: false,
        rrc_canvas: [1.0, 1.5],
        rrc_freq_scale: [0.6, 1.5],
        rrc_time_scale: [0.6, 1.5],
        time_masks: 0,
        time_mask_width: 0,
        freq_masks: 0,
        freq_mask_width: 0,
    };
}

/// An [`AudioSet`] as model inputs `[1, n_mels, frames]`.
pub struct AudioViews {
    pub set: Arc<AudioSet>,
    /// Model input width in frames.
    pub frames: usize,
    /// Normalisation: the training set's mean and deviation of log-mel values.
    pub norm: (f32, f32),
    /// The log value of silence (`ln(log_offset)`), padded where a clip is shorter.
    pub silence: f32,
    /// Per clip and mel bin, subtracted from its values and its silence before the
    /// normalisation (each clip's own mean under `normalise = "clip_mean"`; empty: none).
    pub clip_offsets: Vec<Vec<f32>>,
    pub augment: AudioAugment,
}

impl AudioViews {
    /// Window `[start, start + frames)` of clip `i` (frames outside the clip are silence),
    /// plus `gain` in log units, normalised, into `out` (`[n_mels][frames]`).
    fn window(&self, i: usize, start: isize, gain: f32, out: &mut [f32]) {
        let (m, t) = (self.set.n_mels, self.frames);
        let clip = &self.set.log_mels[i];
        let len = self.set.frames(i);
        let (mean, std) = self.norm;
        for b in 0..m {
            let row = &clip[b * len..(b + 1) * len];
            let offset = self.clip_offsets.get(i).map_or(0.0, |o| o[b]);
            for (j, o) in out[b * t..(b + 1) * t].iter_mut().enumerate() {
                let s = start + j as isize;
                let v = if s >= 0 && (s as usize) < len {
                    row[s as usize] + gain
                } else {
                    self.silence
                };
                *o = (v - offset - mean) / std;
            }
        }
    }

    /// The start of the centred window of clip `i`.
    fn centre(&self, i: usize) -> isize {
        (self.set.frames(i) as isize - self.frames as isize) / 2
    }

    fn random_start(&self, i: usize, rng: &mut ChaCha8Rng) -> isize {
        let len = self.set.frames(i) as isize;
        let t = self.frames as isize;
        if len >= t {
            rng.gen_range(0..=len - t)
        } else {
            // A short clip lands anywhere inside the window.
            -rng.gen_range(0..=t - len)
        }
    }

    fn start(&self, i: usize, rng: &mut ChaCha8Rng) -> isize {
        if self.augment.random_crop {
            self.random_start(i, rng)
        } else {
            self.centre(i)
        }
    }
}

/// `log((1−λ)·e^x + λ·e^y)`, computed stably.
fn log_mix(x: f32, y: f32, lambda: f32) -> f32 {
    let m = x.max(y);
    m + ((1.0 - lambda) * (x - m).exp() + lambda * (y - m).exp()).ln()
}

/// Bilinear sample of `img` (`[h][w]`) at (y, x); outside the image reads 0.
fn bilinear(img: &[f32], h: usize, w: usize, y: f64, x: f64) -> f32 {
    let at = |r: isize, c: isize| -> f64 {
        if r < 0 || c < 0 || r >= h as isize || c >= w as isize {
            0.0
        } else {
            img[r as usize * w + c as usize] as f64
        }
    };
    let (y0, x0) = (y.floor(), x.floor());
    let (dy, dx) = (y - y0, x - x0);
    let (r, c) = (y0 as isize, x0 as isize);
    let v = at(r, c) * (1.0 - dy) * (1.0 - dx)
        + at(r, c + 1) * (1.0 - dy) * dx
        + at(r + 1, c) * dy * (1.0 - dx)
        + at(r + 1, c + 1) * dy * dx;
    v as f32
}

/// BYOL-A's random resized crop: the spectrogram sits in the middle of a zero canvas of
/// `canvas` times its size; a crop of random size and place on the canvas is resized back to the
/// spectrogram's size.
fn random_resized_crop(x: &mut [f32], h: usize, w: usize, a: &AudioAugment, rng: &mut ChaCha8Rng) {
    let (ch, cw) = (
        (h as f64 * a.rrc_canvas[0]).round().max(h as f64),
        (w as f64 * a.rrc_canvas[1]).round().max(w as f64),
    );
    let uniform = |r: [f64; 2], rng: &mut ChaCha8Rng| {
        if r[1] > r[0] {
            rng.gen_range(r[0]..r[1])
        } else {
            r[0]
        }
    };
    let crop_h = (h as f64 * uniform(a.rrc_freq_scale, rng)).clamp(1.0, ch);
    let crop_w = (w as f64 * uniform(a.rrc_time_scale, rng)).clamp(1.0, cw);
    let top = rng.gen_range(0.0..=(ch - crop_h));
    let left = rng.gen_range(0.0..=(cw - crop_w));
    // Canvas coordinates → spectrogram coordinates.
    let (off_y, off_x) = ((ch - h as f64) / 2.0, (cw - w as f64) / 2.0);
    let src = x.to_vec();
    for r in 0..h {
        // Pixel centres, as a resize with align_corners = false.
        let y = top + (r as f64 + 0.5) * crop_h / h as f64 - 0.5 - off_y;
        for c in 0..w {
            let xx = left + (c as f64 + 0.5) * crop_w / w as f64 - 0.5 - off_x;
            x[r * w + c] = bilinear(&src, h, w, y, xx);
        }
    }
}

impl ViewSource for AudioViews {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn sample_shape(&self) -> Vec<i64> {
        vec![1, self.set.n_mels as i64, self.frames as i64]
    }
    fn make_view(&self, index: usize, _view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let a = &self.augment;
        let (h, w) = (self.set.n_mels, self.frames);
        let gain = if a.gain_db > 0.0 {
            // dB of power → natural-log units.
            (rng.gen_range(-a.gain_db..=a.gain_db) * std::f64::consts::LN_10 / 10.0) as f32
        } else {
            0.0
        };
        let start = self.start(index, rng);
        self.window(index, start, gain, out);
        if a.mixup > 0.0 && self.set.len() > 1 {
            let lambda = rng.gen_range(0.0..a.mixup) as f32;
            let other = rng.gen_range(0..self.set.len());
            let mut y = vec![0f32; h * w];
            let s = self.random_start(other, rng);
            self.window(other, s, 0.0, &mut y);
            for (o, y) in out.iter_mut().zip(&y) {
                *o = log_mix(*o, *y, lambda);
            }
        }
        if a.rrc {
            random_resized_crop(out, h, w, a, rng);
        }
        for _ in 0..a.time_masks {
            let width = rng.gen_range(0..=a.time_mask_width.min(w));
            let at = rng.gen_range(0..=w - width);
            for r in 0..h {
                out[r * w + at..r * w + at + width].fill(0.0);
            }
        }
        for _ in 0..a.freq_masks {
            let width = rng.gen_range(0..=a.freq_mask_width.min(h));
            let at = rng.gen_range(0..=h - width);
            out[at * w..(at + width) * w].fill(0.0);
        }
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        self.window(index, self.centre(index), 0.0, out);
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.set.labels.as_ref().map(|l| l[index])
    }
    fn n_classes(&self) -> usize {
        if self.set.labels.is_some() {
            self.set.classes.len()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{keyed, Stream};

    /// Two clips of 2 mel bins: clip 0 has 3 frames, clip 1 has 6.
    fn views(augment: AudioAugment) -> AudioViews {
        let set = AudioSet {
            root: "clips".into(),
            paths: vec!["a.wav".into(), "b.wav".into()],
            log_mels: vec![
                vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0],
                vec![
                    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0,
                ],
            ],
            n_mels: 2,
            labels: Some(vec![0, 1]),
            classes: vec!["a".into(), "b".into()],
            speaker: vec![0, 0],
            speakers: vec!["s".into()],
            takes: vec![0, 1],
            seconds: 1.0,
        };
        AudioViews {
            set: Arc::new(set),
            frames: 4,
            norm: (0.0, 1.0),
            silence: -100.0,
            clip_offsets: Vec::new(),
            augment,
        }
    }

    #[test]
    fn plain_inputs_are_centred_windows_padded_with_silence() {
        let v = views(AudioAugment::IDENTITY);
        assert_eq!(v.sample_shape(), vec![1, 2, 4]);
        let mut out = vec![0f32; 8];
        v.make_plain(0, &mut out);
        // 3 frames in a window of 4: start (3-4)/2 = 0, one frame of silence at the end.
        assert_eq!(out, vec![1.0, 2.0, 3.0, -100.0, 10.0, 20.0, 30.0, -100.0]);
        v.make_plain(1, &mut out);
        assert_eq!(out, vec![2.0, 3.0, 4.0, 5.0, -2.0, -3.0, -4.0, -5.0]);
    }

    #[test]
    fn random_windows_stay_inside_the_clip_and_follow_the_key() {
        let v = views(AudioAugment::default());
        let mut seen = std::collections::BTreeSet::new();
        for e in 0..40 {
            let mut out = vec![0f32; 8];
            v.make_view(1, 0, &mut keyed(1, Stream::View, e, 1, 0), &mut out);
            let start = out[0] as i64 - 1;
            assert_eq!(out[..4], [1.0, 2.0, 3.0, 4.0].map(|x| x + start as f32));
            seen.insert(start);
            let mut again = vec![0f32; 8];
            v.make_view(1, 0, &mut keyed(1, Stream::View, e, 1, 0), &mut again);
            assert_eq!(out, again);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn clip_mean_normalisation_subtracts_each_bins_mean() {
        let mut v = views(AudioAugment::IDENTITY);
        v.clip_offsets = v.set.clip_means();
        assert_eq!(v.clip_offsets[1], vec![3.5, -3.5]);
        let mut out = vec![0f32; 8];
        v.make_plain(1, &mut out);
        assert_eq!(out, vec![-1.5, -0.5, 0.5, 1.5, 1.5, 0.5, -0.5, -1.5]);
        // Silence moves with the clip's offset too.
        v.make_plain(0, &mut out);
        assert_eq!(out[3], -100.0 - 2.0);
        assert_eq!(out[7], -100.0 - 20.0);
    }

    #[test]
    fn gain_shifts_log_power_by_its_decibels() {
        let v = views(AudioAugment {
            random_crop: false,
            gain_db: 6.0,
            ..AudioAugment::IDENTITY
        });
        let mut plain = vec![0f32; 8];
        v.make_plain(1, &mut plain);
        let mut out = vec![0f32; 8];
        v.make_view(1, 0, &mut keyed(3, Stream::View, 0, 1, 0), &mut out);
        let shift = out[0] - plain[0];
        assert!(shift.abs() <= 6.0 * std::f32::consts::LN_10 / 10.0 + 1e-5);
        assert!(out
            .iter()
            .zip(&plain)
            .all(|(a, b)| (a - b - shift).abs() < 1e-5));
    }

    #[test]
    fn log_mixing_is_a_mixture_of_powers() {
        let (x, y, l) = (0.3f32, -1.2f32, 0.25f32);
        let direct = ((1.0 - l) * x.exp() + l * y.exp()).ln();
        assert!((log_mix(x, y, l) - direct).abs() < 1e-6);
        assert_eq!(log_mix(x, y, 0.0), x);
    }

    #[test]
    fn resized_crop_of_the_whole_canvas_is_identity_and_masks_zero_bands() {
        let a = AudioAugment {
            rrc: true,
            rrc_canvas: [1.0, 1.0],
            rrc_freq_scale: [1.0, 1.0],
            rrc_time_scale: [1.0, 1.0],
            ..AudioAugment::IDENTITY
        };
        let mut x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let before = x.clone();
        random_resized_crop(&mut x, 3, 4, &a, &mut keyed(0, Stream::View, 0, 0, 0));
        for (a, b) in x.iter().zip(&before) {
            assert!((a - b).abs() < 1e-5);
        }
        let v = views(AudioAugment {
            random_crop: false,
            time_masks: 1,
            time_mask_width: 4,
            freq_masks: 1,
            freq_mask_width: 2,
            ..AudioAugment::IDENTITY
        });
        let mut zeros_seen = 0;
        for e in 0..20 {
            let mut out = vec![0f32; 8];
            v.make_view(1, 0, &mut keyed(5, Stream::View, e, 1, 0), &mut out);
            zeros_seen += out.iter().filter(|&&v| v == 0.0).count();
        }
        assert!(zeros_seen > 0);
    }
}
