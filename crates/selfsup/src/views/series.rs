//! Views of a time series, in this order: a random window slice resampled back to the full
//! length (Le Guennec et al. 2016), a permutation of random segments (TS-TCC's strong view,
//! Eldele et al. 2021), a per-series scaling factor and additive Gaussian jitter (Um et al. 2017;
//! TS-TCC's weak view is scaling + jitter). Each draw comes from the keyed generator of
//! (seed, epoch, sample, view).
use super::ViewSource;
use crate::data::ucr::SeriesSet;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `[views.series]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesAugment {
    /// Standard deviation of the additive Gaussian noise (σ = 0.03 in Um et al. 2017).
    pub jitter: f64,
    /// Standard deviation of the per-series factor drawn around 1 (0.1 in Um et al. 2017).
    pub scale: f64,
    /// Fraction of the series a window slice keeps, drawn uniformly in [lo, hi]; `[1, 1]` is
    /// off (0.9 in Le Guennec et al. 2016).
    pub crop_scale: [f64; 2],
    /// Cut the series into 1..=N random segments and shuffle them (0 or 1: off; TS-TCC uses 5).
    pub permute_segments: usize,
}

impl Default for SeriesAugment {
    fn default() -> Self {
        SeriesAugment {
            jitter: 0.03,
            scale: 0.1,
            crop_scale: [1.0, 1.0],
            permute_segments: 0,
        }
    }
}

impl SeriesAugment {
    /// No change: the series itself (methods that draw their own views, such as TS2Vec).
    pub const IDENTITY: SeriesAugment = SeriesAugment {
        jitter: 0.0,
        scale: 0.0,
        crop_scale: [1.0, 1.0],
        permute_segments: 0,
    };
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl SeriesAugment {
    /// Writes a view of `x` into `out` (both the series' length).
    pub fn apply(&self, x: &[f32], rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let t = x.len();
        let [lo, hi] = self.crop_scale;
        if hi < 1.0 || lo < 1.0 {
            // A window of `keep` points, stretched back to `t` points by linear interpolation.
            let frac = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            let keep = ((t as f64 * frac).round() as usize).clamp(2.min(t), t);
            let start = rng.gen_range(0..=t - keep);
            for (i, o) in out.iter_mut().enumerate() {
                let pos = if t > 1 {
                    i as f64 * (keep - 1) as f64 / (t - 1) as f64
                } else {
                    0.0
                };
                let (a, w) = (pos.floor() as usize, (pos - pos.floor()) as f32);
                let b = (a + 1).min(keep - 1);
                *o = x[start + a] * (1.0 - w) + x[start + b] * w;
            }
        } else {
            out.copy_from_slice(x);
        }
        if self.permute_segments > 1 && t > 1 {
            let k = rng.gen_range(1..=self.permute_segments.min(t));
            if k > 1 {
                let mut cuts: Vec<usize> = (1..t).collect();
                use rand::seq::SliceRandom;
                cuts.shuffle(rng);
                let mut cuts: Vec<usize> = cuts[..k - 1].to_vec();
                cuts.sort_unstable();
                let mut bounds = vec![0];
                bounds.extend(cuts);
                bounds.push(t);
                let mut segments: Vec<(usize, usize)> =
                    bounds.windows(2).map(|w| (w[0], w[1])).collect();
                segments.shuffle(rng);
                let src = out.to_vec();
                let mut o = 0;
                for (a, b) in segments {
                    out[o..o + (b - a)].copy_from_slice(&src[a..b]);
                    o += b - a;
                }
            }
        }
        let factor = 1.0 + self.scale * normal(rng);
        for v in out.iter_mut() {
            *v = (*v as f64 * factor + self.jitter * normal(rng)) as f32;
        }
    }
}

/// Series as a view source: samples are `[1, length]` (one channel).
pub struct SeriesViews {
    pub set: Arc<SeriesSet>,
    pub augment: SeriesAugment,
    /// The second view's augmentation, when it differs (TS-TCC's strong view).
    pub second: Option<SeriesAugment>,
}

impl ViewSource for SeriesViews {
    fn len(&self) -> usize {
        self.set.len
    }
    fn sample_shape(&self) -> Vec<i64> {
        vec![1, self.set.length as i64]
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let augment = match (&self.second, view) {
            (Some(s), 1) => s,
            _ => &self.augment,
        };
        if *augment == SeriesAugment::IDENTITY {
            return self.make_plain(index, out);
        }
        augment.apply(self.set.series(index), rng, out);
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        out.copy_from_slice(self.set.series(index));
    }
    fn label(&self, index: usize) -> Option<i64> {
        Some(self.set.labels[index])
    }
    fn n_classes(&self) -> usize {
        self.set.classes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{keyed, Stream};

    fn ramp(t: usize) -> Vec<f32> {
        (0..t).map(|i| i as f32).collect()
    }

    #[test]
    fn without_noise_a_view_is_the_series_and_views_are_keyed() {
        let quiet = SeriesAugment {
            jitter: 0.0,
            scale: 0.0,
            ..Default::default()
        };
        let x = ramp(10);
        let mut out = vec![0f32; 10];
        quiet.apply(&x, &mut keyed(1, Stream::View, 0, 0, 0), &mut out);
        assert_eq!(out, x);
        let noisy = SeriesAugment::default();
        let (mut a, mut b, mut c) = (vec![0f32; 10], vec![0f32; 10], vec![0f32; 10]);
        noisy.apply(&x, &mut keyed(1, Stream::View, 0, 3, 0), &mut a);
        noisy.apply(&x, &mut keyed(1, Stream::View, 0, 3, 0), &mut b);
        noisy.apply(&x, &mut keyed(1, Stream::View, 0, 3, 1), &mut c);
        assert_eq!(a, b, "same key, same view");
        assert_ne!(a, c, "another view, another draw");
    }

    #[test]
    fn a_window_slice_resamples_a_contiguous_part_to_the_full_length() {
        let slice = SeriesAugment {
            jitter: 0.0,
            scale: 0.0,
            crop_scale: [0.5, 0.5],
            permute_segments: 0,
        };
        let x = ramp(11);
        let mut out = vec![0f32; 11];
        slice.apply(&x, &mut keyed(2, Stream::View, 0, 0, 0), &mut out);
        // 6 of 11 points kept (round(5.5)), stretched over 11: a ramp of step 0.5 from `start`.
        let start = out[0];
        for (i, v) in out.iter().enumerate() {
            assert!((v - (start + 0.5 * i as f32)).abs() < 1e-5, "{out:?}");
        }
        assert!(start + 5.0 <= 10.0);
    }

    #[test]
    fn a_permutation_keeps_every_value_once_in_contiguous_segments() {
        let perm = SeriesAugment {
            jitter: 0.0,
            scale: 0.0,
            crop_scale: [1.0, 1.0],
            permute_segments: 5,
        };
        let x = ramp(40);
        let mut moved = false;
        for i in 0..20 {
            let mut out = vec![0f32; 40];
            perm.apply(&x, &mut keyed(3, Stream::View, 0, i, 0), &mut out);
            let mut sorted = out.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, x);
            // Within a segment values rise by 1: at most 4 places where they do not.
            let breaks = out.windows(2).filter(|w| w[1] != w[0] + 1.0).count();
            assert!(breaks <= 4, "{out:?}");
            moved |= out != x;
        }
        assert!(moved);
    }
}
