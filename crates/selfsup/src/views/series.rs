//! Views of a time series, in this order: a random window slice resampled back to the full
//! length (Le Guennec et al. 2016), a permutation of random segments (TS-TCC's strong view,
//! Eldele et al. 2021), time warping and magnitude warping by smooth random curves, a per-series
//! scaling factor and additive Gaussian jitter (Um et al. 2017; TS-TCC's weak view is scaling +
//! jitter). Each draw comes from the keyed generator of
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
    /// Time warping: the local speed of time follows a smooth curve through `warp_knots` knots
    /// drawn from N(1, σ²), σ this value (0: off; 0.2 in Um et al. 2017).
    // Left out of the written recipe when off, so recipes without warping keep their hashes.
    #[serde(skip_serializing_if = "is_zero")]
    pub time_warp: f64,
    /// Magnitude warping: the series is multiplied by a smooth curve through `warp_knots` knots
    /// drawn from N(1, σ²) (0: off; 0.2 in Um et al. 2017).
    #[serde(skip_serializing_if = "is_zero")]
    pub magnitude_warp: f64,
    /// Inner knots of the warping curves (4 in Um et al. 2017).
    #[serde(skip_serializing_if = "is_default_knots")]
    pub warp_knots: usize,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn is_default_knots(k: &usize) -> bool {
    *k == 4
}

impl Default for SeriesAugment {
    fn default() -> Self {
        SeriesAugment {
            jitter: 0.03,
            scale: 0.1,
            crop_scale: [1.0, 1.0],
            permute_segments: 0,
            time_warp: 0.0,
            magnitude_warp: 0.0,
            warp_knots: 4,
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
        time_warp: 0.0,
        magnitude_warp: 0.0,
        warp_knots: 4,
    };
}

/// A smooth random curve over `t` steps: `knots` inner knots plus the two ends, evenly spaced,
/// with values from N(1, σ²), joined by Catmull-Rom cubic pieces (smooth, through every knot;
/// Um et al. use SciPy's cubic spline, a curve of the same kind).
fn smooth_curve(t: usize, knots: usize, sigma: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let k = knots + 2;
    let values: Vec<f64> = (0..k).map(|_| 1.0 + sigma * normal(rng)).collect();
    let at = |i: isize| values[i.clamp(0, k as isize - 1) as usize];
    (0..t)
        .map(|i| {
            let pos = if t > 1 {
                i as f64 * (k - 1) as f64 / (t - 1) as f64
            } else {
                0.0
            };
            let seg = (pos.floor() as isize).min(k as isize - 2);
            let u = pos - seg as f64;
            let (p0, p1, p2, p3) = (at(seg - 1), at(seg), at(seg + 1), at(seg + 2));
            0.5 * (2.0 * p1
                + (p2 - p0) * u
                + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * u * u
                + (3.0 * p1 - p0 - 3.0 * p2 + p3) * u * u * u)
        })
        .collect()
}

/// `x` read at fractional positions `pos` by linear interpolation.
fn resample(x: &[f32], pos: impl Iterator<Item = f64>, out: &mut [f32]) {
    let last = x.len() - 1;
    for (o, p) in out.iter_mut().zip(pos) {
        let p = p.clamp(0.0, last as f64);
        let (a, w) = (p.floor() as usize, (p - p.floor()) as f32);
        let b = (a + 1).min(last);
        *o = x[a] * (1.0 - w) + x[b] * w;
    }
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
        if self.time_warp > 0.0 && t > 1 {
            // Speeds (kept positive) integrate to the warped time, rescaled to [0, t − 1].
            let speed = smooth_curve(t, self.warp_knots, self.time_warp, rng);
            let mut clock = Vec::with_capacity(t);
            let mut acc = 0.0;
            for (i, s) in speed.iter().enumerate() {
                if i > 0 {
                    acc += s.max(1e-3);
                }
                clock.push(acc);
            }
            let span = acc.max(1e-12);
            let src = out.to_vec();
            resample(&src, clock.iter().map(|c| c / span * (t - 1) as f64), out);
        }
        if self.magnitude_warp > 0.0 {
            let curve = smooth_curve(t, self.warp_knots, self.magnitude_warp, rng);
            for (v, c) in out.iter_mut().zip(curve) {
                *v = (*v as f64 * c) as f32;
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
            ..SeriesAugment::IDENTITY
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
            permute_segments: 5,
            ..SeriesAugment::IDENTITY
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

    #[test]
    fn warping_curves_are_smooth_pass_their_knots_and_keep_the_order_of_time() {
        let mut rng = keyed(4, Stream::View, 0, 0, 0);
        let c = smooth_curve(31, 4, 0.2, &mut rng);
        // 6 knots over 31 steps: a knot every 6 steps, and the curve passes through each.
        let mut again = keyed(4, Stream::View, 0, 0, 0);
        let knots: Vec<f64> = (0..6).map(|_| 1.0 + 0.2 * normal(&mut again)).collect();
        for (j, k) in knots.iter().enumerate() {
            assert!((c[6 * j] - k).abs() < 1e-12, "knot {j}");
        }
        // Smooth: no jump between neighbours larger than the knots' spread allows.
        let spread = knots
            .iter()
            .cloned()
            .fold(0.0, |m: f64, v| m.max((v - 1.0).abs()))
            * 2.0;
        assert!(c.windows(2).all(|w| (w[1] - w[0]).abs() <= spread));
        // Time warping of a ramp keeps it rising and its ends in place; magnitude warping of a
        // constant series is the curve itself.
        let warp = SeriesAugment {
            time_warp: 0.3,
            ..SeriesAugment::IDENTITY
        };
        let x = ramp(50);
        let mut out = vec![0f32; 50];
        warp.apply(&x, &mut keyed(5, Stream::View, 0, 1, 0), &mut out);
        assert!(out.windows(2).all(|w| w[1] >= w[0]), "{out:?}");
        assert!(out[0].abs() < 1e-4 && (out[49] - 49.0).abs() < 1e-3);
        assert_ne!(out, x);
        let mag = SeriesAugment {
            magnitude_warp: 0.2,
            ..SeriesAugment::IDENTITY
        };
        mag.apply(
            &[1.0; 20],
            &mut keyed(6, Stream::View, 0, 0, 0),
            &mut out[..20],
        );
        let curve = smooth_curve(20, 4, 0.2, &mut keyed(6, Stream::View, 0, 0, 0));
        for (a, b) in out[..20].iter().zip(curve) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
    }
}
