//! Image augmentation for self-supervised views, in pure Rust.
//!
//! The pipeline follows the torchvision recipe used by SimCLR (Chen et al. 2020) and BYOL
//! (Grill et al. 2020), in the same order:
//!
//! 1. random resized crop, resampled with an anti-aliased bilinear (triangle) filter;
//! 2. horizontal flip;
//! 3. colour jitter (brightness, contrast, saturation, hue in a random order);
//! 4. random grayscale;
//! 5. Gaussian blur;
//! 6. solarisation;
//! 7. normalisation `(x - mean) / std`.
//!
//! Steps 1–6 work on `f32` values in `[0, 1]`; input is `u8` planar `[C, H, W]`, output `f32`
//! planar `[C, out_h, out_w]`. The output buffer doubles as the working image, and the few
//! intermediate buffers live in a thread-local scratch so that a worker thread does not allocate
//! once it has seen its largest image.

use std::cell::RefCell;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Grayscale weights (ITU-R BT.601 luma), as used by torchvision's `rgb_to_grayscale`.
const GRAY_W: [f32; 3] = [0.299, 0.587, 0.114];

/// Settings for random views of an image. All probabilities are in `[0, 1]`.
///
/// Defaults: the SimCLR augmentation (Chen et al. 2020, Appendix A) with the colour-jitter
/// strength `s = 0.5` that SimCLR uses for CIFAR-10 (brightness/contrast/saturation `0.8 s`,
/// hue `0.2 s`), which suits the small images this library mostly trains on; the blur settings
/// are SimCLR's ImageNet ones. Solarisation is off (SimCLR has none; BYOL, Grill et al. 2020,
/// uses it on one of its two views with p = 0.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageAugment {
    /// Output `[h, w]`; `None` keeps the input size.
    pub size: Option<[usize; 2]>,
    /// `[h, w]` of the evaluation input (the whole image, resized); `None` = `size`. Setting it
    /// above `size` trains at a lower resolution than it tests: a random-resized crop enlarges
    /// objects, so small training views match the apparent object sizes of larger test images
    /// (FixRes, Touvron et al. 2019). Only for encoders that take any input size.
    pub eval_size: Option<[usize; 2]>,
    /// Range of the crop's area as a fraction of the image area.
    pub crop_scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub hflip_p: f64,
    /// Probability of applying colour jitter at all.
    pub jitter_p: f64,
    /// Brightness factor drawn from `[max(0, 1 - b), 1 + b]`; 0 disables.
    pub brightness: f64,
    /// Contrast factor drawn from `[max(0, 1 - c), 1 + c]`; 0 disables.
    pub contrast: f64,
    /// Saturation factor drawn from `[max(0, 1 - s), 1 + s]`; 0 disables. RGB only.
    pub saturation: f64,
    /// Hue shift (fraction of a full turn) drawn from `[-h, h]`; 0 disables. RGB only.
    pub hue: f64,
    /// Probability of converting to grayscale (replicated in all 3 channels). RGB only.
    pub grayscale_p: f64,
    /// Probability of a Gaussian blur.
    pub blur_p: f64,
    /// Blur kernel size (odd; even values are rounded up). 0 = 10 % of the output size per axis,
    /// made odd (SimCLR's rule: radius `floor(0.1 * size) / 2`, kernel `2 * radius + 1`).
    pub blur_kernel: usize,
    /// Range of the blur's standard deviation, in pixels.
    pub blur_sigma: [f64; 2],
    /// Probability of solarisation (`x -> 1 - x` where `x >= 0.5`).
    pub solarize_p: f64,
    /// Per-channel mean for normalisation, or a single value for all channels.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation for normalisation, or a single value for all channels.
    pub std: Vec<f32>,
}

impl Default for ImageAugment {
    fn default() -> Self {
        Self {
            size: None,
            eval_size: None,
            // SimCLR (Chen et al. 2020), App. A: RandomResizedCrop with torchvision's defaults.
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            // SimCLR (Chen et al. 2020): random horizontal flip.
            hflip_p: 0.5,
            // SimCLR (Chen et al. 2020): colour jitter applied with p = 0.8, strength s = 0.5
            // (the CIFAR-10 setting): 0.8 s, 0.8 s, 0.8 s, 0.2 s.
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            // SimCLR (Chen et al. 2020): random grayscale with p = 0.2.
            grayscale_p: 0.2,
            // SimCLR (Chen et al. 2020), ImageNet: blur with p = 0.5, sigma in [0.1, 2.0],
            // kernel 10 % of the image side.
            blur_p: 0.5,
            blur_kernel: 0,
            blur_sigma: [0.1, 2.0],
            // SimCLR has no solarisation; BYOL (Grill et al. 2020) adds it to one view only, so
            // the symmetric default is off.
            solarize_p: 0.0,
            // Maps [0, 1] to [-1, 1] without dataset statistics.
            mean: vec![0.5],
            std: vec![0.5],
        }
    }
}

impl ImageAugment {
    /// Output shape [C, h, w] for an input of (c, h, w).
    pub fn output_shape(&self, c: usize, h: usize, w: usize) -> [usize; 3] {
        match self.size {
            Some([oh, ow]) => [c, oh, ow],
            None => [c, h, w],
        }
    }

    /// Shape [C, h, w] of the evaluation input ([`Self::plain`]) for an input of (c, h, w).
    pub fn eval_shape(&self, c: usize, h: usize, w: usize) -> [usize; 3] {
        match self.eval_size {
            Some([oh, ow]) => [c, oh, ow],
            None => self.output_shape(c, h, w),
        }
    }

    /// One random view of `src` ([c,h,w] u8) into `out` (len c*oh*ow). All randomness from `rng`.
    pub fn augment<R: Rng + ?Sized>(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut R,
        out: &mut [f32],
    ) {
        let [_, oh, ow] = self.check(src, [c, h, w], self.output_shape(c, h, w), out);
        let n = oh * ow;
        let [top, left, ch, cw] = self.sample_crop(h, w, rng);
        SCRATCH.with(|s| {
            let sc = &mut *s.borrow_mut();
            resample(src, c, h, w, [top, left, ch, cw], oh, ow, sc, out);

            if coin(rng, self.hflip_p) {
                for row in out.chunks_exact_mut(ow) {
                    row.reverse();
                }
            }
            if coin(rng, self.jitter_p) {
                self.jitter(out, c, n, rng);
            }
            // The coin is drawn even for one channel so that the random stream, and hence every
            // later draw, does not depend on the channel count.
            if coin(rng, self.grayscale_p) && c == 3 {
                to_grayscale(out, n);
            }
            if coin(rng, self.blur_p) {
                let sigma = uniform(rng, self.blur_sigma[0], self.blur_sigma[1]);
                if sigma > 0.0 {
                    let (ky, kx) = self.blur_sizes(oh, ow);
                    gaussian_blur(out, c, oh, ow, sigma, ky, kx, sc);
                }
            }
            if coin(rng, self.solarize_p) {
                solarize(out);
            }
        });
        self.normalise(out, c, n);
    }

    /// The evaluation input: resize to `eval_size` (else `size`) if set (same resampler, whole
    /// image), scale, normalise. No randomness.
    pub fn plain(&self, src: &[u8], c: usize, h: usize, w: usize, out: &mut [f32]) {
        let [_, oh, ow] = self.check(src, [c, h, w], self.eval_shape(c, h, w), out);
        SCRATCH.with(|s| {
            let sc = &mut *s.borrow_mut();
            resample(src, c, h, w, [0, 0, h, w], oh, ow, sc, out);
        });
        self.normalise(out, c, oh * ow);
    }

    /// Validates buffer sizes against the input `[c, h, w]` and the output `shape`, and the
    /// normalisation lengths; returns `shape`.
    fn check(
        &self,
        src: &[u8],
        [c, h, w]: [usize; 3],
        shape: [usize; 3],
        out: &[f32],
    ) -> [usize; 3] {
        assert!(
            c > 0 && h > 0 && w > 0,
            "ImageAugment: empty input shape ({c}, {h}, {w})"
        );
        assert!(
            shape[1] > 0 && shape[2] > 0,
            "ImageAugment: empty output shape {shape:?}"
        );
        assert_eq!(
            src.len(),
            c * h * w,
            "ImageAugment: src length does not match [c, h, w]"
        );
        assert_eq!(
            out.len(),
            shape.iter().product::<usize>(),
            "ImageAugment: out length does not match the output shape {shape:?}"
        );
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            assert!(
                v.len() == 1 || v.len() == c,
                "ImageAugment: {name} has {} values, expected 1 or {c}",
                v.len()
            );
        }
        shape
    }

    /// Samples a crop box `[top, left, height, width]` with torchvision's RandomResizedCrop rule.
    fn sample_crop<R: Rng + ?Sized>(&self, h: usize, w: usize, rng: &mut R) -> [usize; 4] {
        let area = (h * w) as f64;
        let (r_lo, r_hi) = min_max(self.crop_ratio);
        let (s_lo, s_hi) = min_max(self.crop_scale);
        let (log_lo, log_hi) = (r_lo.ln(), r_hi.ln());
        for _ in 0..10 {
            let target = area * uniform(rng, s_lo, s_hi);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w as f64 && ch <= h as f64 {
                let (ch, cw) = (ch as usize, cw as usize);
                let top = rng.gen_range(0..=h - ch);
                let left = rng.gen_range(0..=w - cw);
                return [top, left, ch, cw];
            }
        }
        // Fallback: the largest central crop whose aspect ratio is within range.
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < r_lo {
            (((w as f64 / r_lo).round() as usize).clamp(1, h), w)
        } else if in_ratio > r_hi {
            (h, ((h as f64 * r_hi).round() as usize).clamp(1, w))
        } else {
            (h, w)
        };
        [(h - ch) / 2, (w - cw) / 2, ch, cw]
    }

    /// Colour jitter as torchvision's ColorJitter: random order, then four factors.
    fn jitter<R: Rng + ?Sized>(&self, buf: &mut [f32], c: usize, n: usize, rng: &mut R) {
        // Fisher–Yates permutation of the four operations.
        let mut order = [0u8, 1, 2, 3];
        for i in (1..4).rev() {
            let j = rng.gen_range(0..=i);
            order.swap(i, j);
        }
        let b = jitter_factor(rng, self.brightness);
        let ct = jitter_factor(rng, self.contrast);
        let s = jitter_factor(rng, self.saturation);
        let hue = if self.hue > 0.0 {
            Some(uniform(rng, -self.hue, self.hue) as f32)
        } else {
            None
        };
        for op in order {
            match (op, b, ct, s, hue) {
                (0, Some(f), ..) => adjust_brightness(buf, f),
                (1, _, Some(f), ..) => adjust_contrast(buf, c, n, f),
                (2, _, _, Some(f), _) if c == 3 => adjust_saturation(buf, n, f),
                (3, .., Some(f)) if c == 3 => adjust_hue(buf, n, f),
                _ => {}
            }
        }
    }

    /// Blur kernel sizes (vertical, horizontal) for an `oh × ow` output.
    fn blur_sizes(&self, oh: usize, ow: usize) -> (usize, usize) {
        if self.blur_kernel == 0 {
            // SimCLR: kernel = 10 % of the side, then made odd via its radius.
            let k = |side: usize| 2 * ((side / 10) / 2) + 1;
            (k(oh), k(ow))
        } else {
            let k = self.blur_kernel | 1;
            (k, k)
        }
    }

    fn normalise(&self, buf: &mut [f32], c: usize, n: usize) {
        for (ci, plane) in buf.chunks_exact_mut(n).enumerate().take(c) {
            let m = self.mean[if self.mean.len() == 1 { 0 } else { ci }];
            let s = self.std[if self.std.len() == 1 { 0 } else { ci }];
            for x in plane {
                *x = (*x - m) / s;
            }
        }
    }
}

fn min_max(v: [f64; 2]) -> (f64, f64) {
    (v[0].min(v[1]), v[0].max(v[1]))
}

/// Uniform draw in `[a, b)`; unlike `gen_range` it accepts `a == b` (a fixed value).
fn uniform<R: Rng + ?Sized>(rng: &mut R, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.gen::<f64>()
}

/// Bernoulli(p). Probabilities 0 and 1 draw nothing, so disabled steps cost nothing.
fn coin<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.gen::<f64>() < p
    }
}

fn jitter_factor<R: Rng + ?Sized>(rng: &mut R, strength: f64) -> Option<f32> {
    (strength > 0.0).then(|| uniform(rng, (1.0 - strength).max(0.0), 1.0 + strength) as f32)
}

// ---------------------------------------------------------------------------------------------
// Scratch buffers

/// Per-thread working memory; grows to the largest image seen and is then reused.
#[derive(Default)]
struct Scratch {
    taps_x: Taps,
    taps_y: Taps,
    /// Resampler intermediate ([c, crop_h, out_w]) and the blur's copy of a plane.
    tmp: Vec<f32>,
    kern_x: Vec<f32>,
    kern_y: Vec<f32>,
    /// One reflect-padded row for the horizontal blur.
    line: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

// ---------------------------------------------------------------------------------------------
// Resampling

/// Filter taps for one axis: output `i` reads inputs `start[i] .. start[i] + k` with weights
/// `w[i * k ..][.. k]`. Every output uses the same number of taps `k` (shorter windows are padded
/// with zero weights and shifted to stay inside the input), so the inner loop has a fixed trip
/// count that can be specialised and predicted.
#[derive(Default)]
struct Taps {
    start: Vec<usize>,
    w: Vec<f32>,
    k: usize,
    /// Working copy of one output's unpadded weights.
    raw: Vec<f64>,
    first: Vec<usize>,
}

impl Taps {
    /// Triangle (bilinear) filter mapping `in_len` samples onto `out_len`. When downscaling, the
    /// filter is stretched by the scale factor so every input pixel contributes (anti-aliasing, as
    /// PIL and torchvision's `antialias=True`); when upscaling this is ordinary bilinear with
    /// half-pixel centres. Weights are renormalised at the borders, which equals edge clamping.
    fn build(&mut self, in_len: usize, out_len: usize) {
        let scale = in_len as f64 / out_len as f64;
        let fs = scale.max(1.0);
        let tri = |d: f64| (1.0 - d.abs()).max(0.0);
        let inv_fs = 1.0 / fs;
        // Upper bound on hi - lo + 1 below (2 fs + 4 with the truncating casts), with margin.
        let max_taps = (2.0 * fs).ceil() as usize + 5;
        // Every row is fully written below, so only growth needs initialising.
        if self.raw.len() < max_taps * out_len {
            self.raw.resize(max_taps * out_len, 0.0);
        }
        self.first.clear();
        let mut k = 1;
        for i in 0..out_len {
            let center = (i as f64 + 0.5) * scale;
            // Input j (centre j + 0.5) contributes when |j + 0.5 - center| < fs.
            // Saturating casts instead of floor/ceil (libm calls on baseline x86-64): negative
            // values clamp to 0 as wanted, and `hi` may overshoot by one tap, whose weight is 0.
            let lo = (center - fs - 0.5) as usize;
            let hi = ((center + fs - 0.5) as usize + 1).min(in_len - 1);
            let row = &mut self.raw[i * max_taps..(i + 1) * max_taps];
            let (mut first, mut last, mut sum) = (usize::MAX, 0, 0.0);
            for j in lo..=hi {
                let wt = tri((j as f64 + 0.5 - center) * inv_fs);
                row[j - lo] = wt;
                if wt > 0.0 {
                    first = first.min(j);
                    last = j;
                    sum += wt;
                }
            }
            debug_assert!(sum > 0.0, "every output centre lies inside the input");
            // Shift the window to start at `first`, normalise, and zero what is left behind.
            let len = last - first + 1;
            row.copy_within(first - lo..first - lo + len, 0);
            let inv_sum = 1.0 / sum;
            row[..len].iter_mut().for_each(|w| *w *= inv_sum);
            row[len..].fill(0.0);
            self.first.push(first);
            k = k.max(last - first + 1);
        }
        // Pad every window to k taps; k <= in_len because each window lies inside the input.
        self.k = k;
        self.start.clear();
        self.w.clear();
        self.w.resize(k * out_len, 0.0);
        for i in 0..out_len {
            let first = self.first[i];
            let start = first.min(in_len - k);
            self.start.push(start);
            let off = first - start;
            let raw = &self.raw[i * max_taps..(i + 1) * max_taps];
            for (t, w) in self.w[i * k..(i + 1) * k].iter_mut().enumerate() {
                // Zero outside the window (the padding); `raw` is zero past the window's end.
                *w = if t >= off { raw[t - off] as f32 } else { 0.0 };
            }
        }
    }
}

/// Horizontal pass over one row with a compile-time tap count (unrolled inner loop).
#[inline]
fn hpass_fixed<const K: usize>(row: &[u8], taps: &Taps, out: &mut [f32]) {
    for ((o, &s), ws) in out.iter_mut().zip(&taps.start).zip(taps.w.chunks_exact(K)) {
        let px = &row[s..s + K];
        let mut acc = 0.0f32;
        for t in 0..K {
            acc += ws[t] * px[t] as f32;
        }
        *o = acc;
    }
}

/// Horizontal pass for any tap count (large downscale factors).
fn hpass_dyn(row: &[u8], taps: &Taps, out: &mut [f32]) {
    let k = taps.k;
    for ((o, &s), ws) in out.iter_mut().zip(&taps.start).zip(taps.w.chunks_exact(k)) {
        let mut acc = 0.0f32;
        for (&wt, &p) in ws.iter().zip(&row[s..s + k]) {
            acc += wt * p as f32;
        }
        *o = acc;
    }
}

/// Resamples the crop `[top, left, ch, cw]` of `src` to `[c, oh, ow]` in `[0, 1]`.
/// Horizontal pass first (reading `u8` directly), then vertical.
#[allow(clippy::too_many_arguments)]
fn resample(
    src: &[u8],
    c: usize,
    h: usize,
    w: usize,
    [top, left, ch, cw]: [usize; 4],
    oh: usize,
    ow: usize,
    sc: &mut Scratch,
    out: &mut [f32],
) {
    let Scratch {
        taps_x,
        taps_y,
        tmp,
        ..
    } = sc;
    taps_x.build(cw, ow);
    taps_y.build(ch, oh);
    tmp.clear();
    tmp.resize(c * ch * ow, 0.0);

    let hpass: fn(&[u8], &Taps, &mut [f32]) = match taps_x.k {
        1 => hpass_fixed::<1>,
        2 => hpass_fixed::<2>,
        3 => hpass_fixed::<3>,
        4 => hpass_fixed::<4>,
        5 => hpass_fixed::<5>,
        6 => hpass_fixed::<6>,
        _ => hpass_dyn,
    };
    for ci in 0..c {
        let plane = &src[ci * h * w..(ci + 1) * h * w];
        for (y, trow) in tmp[ci * ch * ow..(ci + 1) * ch * ow]
            .chunks_exact_mut(ow)
            .enumerate()
        {
            hpass(&plane[(top + y) * w + left..][..cw], taps_x, trow);
        }
    }

    let k = taps_y.k;
    for ci in 0..c {
        let tplane = &tmp[ci * ch * ow..(ci + 1) * ch * ow];
        let oplane = &mut out[ci * oh * ow..(ci + 1) * oh * ow];
        for ((orow, &s), ws) in oplane
            .chunks_exact_mut(ow)
            .zip(&taps_y.start)
            .zip(taps_y.w.chunks_exact(k))
        {
            // Rows are accumulated tap by tap so the inner loop vectorises over x.
            orow.fill(0.0);
            for (j, &wt) in ws.iter().enumerate() {
                let trow = &tplane[(s + j) * ow..][..ow];
                for (o, &t) in orow.iter_mut().zip(trow) {
                    *o += wt * t;
                }
            }
            // Division (not multiplication by 1/255) so an identity resample reproduces
            // `v / 255` bit for bit.
            for o in orow.iter_mut() {
                *o /= 255.0;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Colour

#[inline]
fn clamp01(x: f32) -> f32 {
    x.clamp(0.0, 1.0)
}

/// Blend with black: `clamp(f * x)`.
fn adjust_brightness(buf: &mut [f32], f: f32) {
    for x in buf {
        *x = clamp01(*x * f);
    }
}

/// Blend with the mean of the grayscale image: `clamp(f * x + (1 - f) * mean)`.
fn adjust_contrast(buf: &mut [f32], c: usize, n: usize, f: f32) {
    let mean = if c == 3 {
        let (r, rest) = buf.split_at(n);
        let (g, b) = rest.split_at(n);
        let mut acc = 0.0f64;
        for i in 0..n {
            acc += (GRAY_W[0] * r[i] + GRAY_W[1] * g[i] + GRAY_W[2] * b[i]) as f64;
        }
        (acc / n as f64) as f32
    } else {
        // A single-channel image is its own grayscale (torchvision does the same).
        (buf.iter().map(|&x| x as f64).sum::<f64>() / buf.len() as f64) as f32
    };
    let off = (1.0 - f) * mean;
    for x in buf {
        *x = clamp01(f * *x + off);
    }
}

/// Blend each pixel with its own gray value: `clamp(f * x + (1 - f) * gray)`. RGB only.
fn adjust_saturation(buf: &mut [f32], n: usize, f: f32) {
    let (r, rest) = buf.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    for i in 0..n {
        let gray = (1.0 - f) * (GRAY_W[0] * r[i] + GRAY_W[1] * g[i] + GRAY_W[2] * b[i]);
        r[i] = clamp01(f * r[i] + gray);
        g[i] = clamp01(f * g[i] + gray);
        b[i] = clamp01(f * b[i] + gray);
    }
}

/// Rotates the hue (in HSV, as a fraction of a turn) by `shift`. RGB only.
///
/// Written without data-dependent branches so it vectorises: the hue comes from whichever
/// channel is the maximum (selected, not branched), and HSV -> RGB uses the closed form
/// `f(n) = V - V S clamp(min(k, 4 - k), 0, 1)` with `k = (n + 6 H) mod 6`, n = 5, 3, 1 for
/// R, G, B (and `V S` = max - min). Gray pixels have `V S = 0` and come back unchanged.
fn adjust_hue(buf: &mut [f32], n: usize, shift: f32) {
    let (r, rest) = buf.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    // Hue is kept in sixths of a turn; reducing the shift to [0, 6) once means one conditional
    // add/subtract per pixel wraps the result.
    let shift6 = (shift * 6.0).rem_euclid(6.0);
    let chan = |k: f32, v: f32, delta: f32| {
        let k = if k >= 6.0 { k - 6.0 } else { k };
        v - delta * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    for ((rv, gv), bv) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (x, y, z) = (*rv, *gv, *bv);
        let maxc = x.max(y).max(z);
        let minc = x.min(y).min(z);
        let delta = maxc - minc;
        let inv = if delta > 0.0 { 1.0 / delta } else { 0.0 };
        let h_r = (y - z) * inv; // in [-1, 1]
        let h_g = (z - x) * inv + 2.0;
        let h_b = (x - y) * inv + 4.0;
        let h6 = if maxc == x {
            h_r
        } else if maxc == y {
            h_g
        } else {
            h_b
        };
        // h6 + shift6 lies in [-1, 11); wrap into [0, 6).
        let mut h6 = h6 + shift6;
        if h6 < 0.0 {
            h6 += 6.0;
        }
        if h6 >= 6.0 {
            h6 -= 6.0;
        }
        *rv = chan(5.0 + h6, maxc, delta);
        *gv = chan(3.0 + h6, maxc, delta);
        *bv = chan(1.0 + h6, maxc, delta);
    }
}

/// Replaces all three channels with the luma.
fn to_grayscale(buf: &mut [f32], n: usize) {
    let (r, rest) = buf.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    for i in 0..n {
        let y = GRAY_W[0] * r[i] + GRAY_W[1] * g[i] + GRAY_W[2] * b[i];
        r[i] = y;
        g[i] = y;
        b[i] = y;
    }
}

fn solarize(buf: &mut [f32]) {
    for x in buf {
        if *x >= 0.5 {
            *x = 1.0 - *x;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blur

/// Normalised 1-D Gaussian of `k` taps centred on the middle tap.
fn gaussian_kernel(k: usize, sigma: f64, out: &mut Vec<f32>) {
    out.clear();
    let r = (k as f64 - 1.0) / 2.0;
    let raw = |i: usize| {
        let x = (i as f64 - r) / sigma;
        (-0.5 * x * x).exp()
    };
    let sum: f64 = (0..k).map(raw).sum();
    out.extend((0..k).map(|i| (raw(i) / sum) as f32));
}

/// Reflect padding without repeating the edge (`[2, 1, | 0, 1, 2, ... ]`), as torch's "reflect";
/// folds repeatedly so kernels wider than the image still work.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    // Fast path: the interior (avoids an integer division for all but the border taps).
    if i >= 0 && (i as usize) < n {
        return i as usize;
    }
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Separable Gaussian blur with reflect padding, in place on `[c, oh, ow]`.
#[allow(clippy::too_many_arguments)]
fn gaussian_blur(
    buf: &mut [f32],
    c: usize,
    oh: usize,
    ow: usize,
    sigma: f64,
    ky: usize,
    kx: usize,
    sc: &mut Scratch,
) {
    let Scratch {
        tmp,
        kern_x,
        kern_y,
        line,
        ..
    } = sc;
    gaussian_kernel(kx, sigma, kern_x);
    gaussian_kernel(ky, sigma, kern_y);
    let (rx, ry) = ((kx / 2) as isize, (ky / 2) as isize);
    let n = oh * ow;
    for plane in buf.chunks_exact_mut(n).take(c) {
        if kx > 1 {
            line.clear();
            line.resize(ow + kx - 1, 0.0);
            for row in plane.chunks_exact_mut(ow) {
                let r = rx as usize;
                line[r..r + ow].copy_from_slice(row);
                for p in 0..r {
                    line[p] = row[reflect(p as isize - rx, ow)];
                    line[r + ow + p] = row[reflect((ow + p) as isize, ow)];
                }
                // Tap-major (one shifted row per tap) so the inner loop vectorises over x.
                row.fill(0.0);
                for (t, &kw) in kern_x.iter().enumerate() {
                    for (o, &v) in row.iter_mut().zip(&line[t..t + ow]) {
                        *o += kw * v;
                    }
                }
            }
        }
        if ky > 1 {
            tmp.clear();
            tmp.extend_from_slice(plane);
            for (y, orow) in plane.chunks_exact_mut(ow).enumerate() {
                orow.fill(0.0);
                for (t, &kw) in kern_y.iter().enumerate() {
                    let sy = reflect(y as isize + t as isize - ry, oh);
                    for (o, &v) in orow.iter_mut().zip(&tmp[sy * ow..(sy + 1) * ow]) {
                        *o += kw * v;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Every random step off, crop fixed to the whole (square) image, no normalisation shift.
    fn identity() -> ImageAugment {
        ImageAugment {
            size: None,
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            hflip_p: 0.0,
            jitter_p: 0.0,
            grayscale_p: 0.0,
            blur_p: 0.0,
            solarize_p: 0.0,
            mean: vec![0.0],
            std: vec![1.0],
            ..ImageAugment::default()
        }
    }

    fn random_image(c: usize, h: usize, w: usize, seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..c * h * w).map(|_| rng.gen()).collect()
    }

    fn run(aug: &ImageAugment, src: &[u8], c: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
        let [oc, oh, ow] = aug.output_shape(c, h, w);
        let mut out = vec![f32::NAN; oc * oh * ow];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        aug.augment(src, c, h, w, &mut rng, &mut out);
        out
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "index {i}: {x} vs {y}");
        }
    }

    /// 2×2 RGB image, planar: pixels red, green, blue, mid-gray. Its grayscale mean is
    /// (0.299 + 0.587 + 0.114 + 0.5) / 4 = 0.375.
    fn rgb2x2() -> Vec<f32> {
        vec![
            1.0, 0.0, 0.0, 0.5, // R
            0.0, 1.0, 0.0, 0.5, // G
            0.0, 0.0, 1.0, 0.5, // B
        ]
    }

    #[test]
    fn defaults_and_serde() {
        let d = ImageAugment::default();
        assert_eq!(d.crop_scale, [0.08, 1.0]);
        assert_eq!(d.output_shape(3, 32, 40), [3, 32, 40]);
        let s = ImageAugment {
            size: Some([24, 20]),
            ..d.clone()
        };
        assert_eq!(s.output_shape(1, 32, 40), [1, 24, 20]);
        let back: ImageAugment = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // `default` fills missing fields; unknown ones are rejected.
        let part: ImageAugment = serde_json::from_str(r#"{"hflip_p": 0.0}"#).unwrap();
        assert_eq!(
            part,
            ImageAugment {
                hflip_p: 0.0,
                ..ImageAugment::default()
            }
        );
        assert!(serde_json::from_str::<ImageAugment>(r#"{"hflipp": 0.0}"#).is_err());
    }

    #[test]
    fn identity_settings_give_exactly_the_normalised_input() {
        for c in [1usize, 3] {
            let (h, w) = (7, 7);
            let src = random_image(c, h, w, 1);
            let mut aug = identity();
            aug.mean = if c == 3 {
                vec![0.485, 0.456, 0.406]
            } else {
                vec![0.5]
            };
            aug.std = if c == 3 {
                vec![0.229, 0.224, 0.225]
            } else {
                vec![0.5]
            };
            let out = run(&aug, &src, c, h, w, 3);
            let n = h * w;
            for (i, (&o, &v)) in out.iter().zip(&src).enumerate() {
                let ci = if c == 3 { i / n } else { 0 };
                let want = (v as f32 / 255.0 - aug.mean[ci]) / aug.std[ci];
                assert_eq!(o, want, "c={c} index {i}");
            }
            // `plain` without a size is the same thing.
            let mut p = vec![0.0; c * n];
            aug.plain(&src, c, h, w, &mut p);
            assert_eq!(p, out);
        }
    }

    #[test]
    fn same_seed_same_view_and_different_seeds_differ() {
        let aug = ImageAugment {
            size: Some([24, 24]),
            ..ImageAugment::default()
        };
        let src = random_image(3, 32, 32, 7);
        let a = run(&aug, &src, 3, 32, 32, 42);
        let b = run(&aug, &src, 3, 32, 32, 42);
        let c = run(&aug, &src, 3, 32, 32, 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn flip_with_p1_mirrors_rows() {
        let (c, h, w) = (3, 5, 6);
        let src = random_image(c, h, w, 2);
        let mut aug = identity();
        // Identity crop needs a ratio equal to the (non-square) image's.
        aug.crop_ratio = [w as f64 / h as f64; 2];
        let plain = run(&aug, &src, c, h, w, 0);
        aug.hflip_p = 1.0;
        let flipped = run(&aug, &src, c, h, w, 0);
        for row in 0..c * h {
            for x in 0..w {
                assert_eq!(flipped[row * w + x], plain[row * w + (w - 1 - x)]);
            }
        }
    }

    #[test]
    fn brightness_scales_and_clamps() {
        let mut buf = vec![0.0, 0.2, 0.5, 0.9];
        adjust_brightness(&mut buf, 0.5);
        assert_close(&buf, &[0.0, 0.1, 0.25, 0.45], 1e-7);
        adjust_brightness(&mut buf, 3.0);
        assert_close(&buf, &[0.0, 0.3, 0.75, 1.0], 1e-6);

        // Through the public API the factor range is [1 - b, 1 + b], so a fixed range [f, f]
        // exists only for b = 0 (no-op). Instead check that every pixel is scaled by the *same*
        // factor, which lies in the range. Values stay below 1 / 1.5 so nothing clamps.
        let (h, w) = (6, 6);
        let src: Vec<u8> = (0..h * w).map(|i| 10 + (i as u8) * 4).collect();
        let mut aug = identity();
        aug.jitter_p = 1.0;
        aug.brightness = 0.5;
        aug.contrast = 0.0;
        aug.saturation = 0.0;
        aug.hue = 0.0;
        for seed in 0..20 {
            let out = run(&aug, &src, 1, h, w, seed);
            let f = out[0] / (src[0] as f32 / 255.0);
            assert!((0.5..=1.5).contains(&f), "factor {f}");
            for (o, &v) in out.iter().zip(&src) {
                assert!((o - f * v as f32 / 255.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn contrast_matches_hand_computed_values() {
        let mut buf = rgb2x2();
        adjust_contrast(&mut buf, 3, 4, 0.5);
        // 0.5 x + 0.5 * 0.375
        #[rustfmt::skip]
        let want = [
            0.6875, 0.1875, 0.1875, 0.4375,
            0.1875, 0.6875, 0.1875, 0.4375,
            0.1875, 0.1875, 0.6875, 0.4375,
        ];
        assert_close(&buf, &want, 1e-6);

        let mut buf = rgb2x2();
        adjust_contrast(&mut buf, 3, 4, 2.0);
        // 2 x - 0.375, clamped
        #[rustfmt::skip]
        let want = [
            1.0, 0.0, 0.0, 0.625,
            0.0, 1.0, 0.0, 0.625,
            0.0, 0.0, 1.0, 0.625,
        ];
        assert_close(&buf, &want, 1e-6);

        // One channel: the mean of the image itself (0.25 here).
        let mut g = vec![0.0, 0.0, 0.5, 0.5];
        adjust_contrast(&mut g, 1, 4, 0.0);
        assert_close(&g, &[0.25; 4], 1e-7);
    }

    #[test]
    fn saturation_matches_hand_computed_values() {
        let mut buf = rgb2x2();
        adjust_saturation(&mut buf, 4, 0.5);
        // 0.5 x + 0.5 gray(pixel); grays are 0.299, 0.587, 0.114, 0.5.
        #[rustfmt::skip]
        let want = [
            0.6495, 0.2935, 0.0570, 0.5,
            0.1495, 0.7935, 0.0570, 0.5,
            0.1495, 0.2935, 0.5570, 0.5,
        ];
        assert_close(&buf, &want, 1e-6);

        let mut buf = rgb2x2();
        adjust_saturation(&mut buf, 4, 0.0);
        #[rustfmt::skip]
        let want = [
            0.299, 0.587, 0.114, 0.5,
            0.299, 0.587, 0.114, 0.5,
            0.299, 0.587, 0.114, 0.5,
        ];
        assert_close(&buf, &want, 1e-6);

        let mut buf = rgb2x2();
        adjust_saturation(&mut buf, 4, 2.0);
        // 2 x - gray, clamped: red -> (1.701 -> 1, 0, 0) etc.; gray pixel unchanged.
        #[rustfmt::skip]
        let want = [
            1.0, 0.0, 0.0, 0.5,
            0.0, 1.0, 0.0, 0.5,
            0.0, 0.0, 1.0, 0.5,
        ];
        assert_close(&buf, &want, 1e-6);
    }

    #[test]
    fn hue_matches_hand_computed_values() {
        // Pixels: red, (0.2, 0.6, 1.0) [h = 7/12, s = 0.8, v = 1], (0.5, 0.25, 0.25), gray.
        #[rustfmt::skip]
        let img = vec![
            1.0, 0.2, 0.5, 0.4,
            0.0, 0.6, 0.25, 0.4,
            0.0, 1.0, 0.25, 0.4,
        ];
        // A third of a turn maps R -> G -> B -> R, i.e. (r, g, b) -> (b, r, g).
        let mut buf = img.clone();
        adjust_hue(&mut buf, 4, 1.0 / 3.0);
        #[rustfmt::skip]
        let want = [
            0.0, 1.0, 0.25, 0.4,
            1.0, 0.2, 0.5, 0.4,
            0.0, 0.6, 0.25, 0.4,
        ];
        assert_close(&buf, &want, 1e-5);

        // 0.1 turn: red -> h = 0.1, sector 0, f = 0.6 -> (1, 0.6, 0).
        // -0.5 turn on (0.2, 0.6, 1.0): h = 1/12, sector 0, f = 0.5 -> (1, 0.6, 0.2).
        let mut buf = img.clone();
        adjust_hue(&mut buf, 4, 0.1);
        assert_close(&[buf[0], buf[4], buf[8]], &[1.0, 0.6, 0.0], 1e-5);
        let mut buf = img;
        adjust_hue(&mut buf, 4, -0.5);
        assert_close(&[buf[1], buf[5], buf[9]], &[1.0, 0.6, 0.2], 1e-5);
        assert_close(&[buf[3], buf[7], buf[11]], &[0.4, 0.4, 0.4], 0.0);
    }

    /// Textbook RGB -> HSV -> RGB round trip with the hue rotated, one pixel at a time.
    fn hue_reference(rgb: [f32; 3], shift: f32) -> [f32; 3] {
        let [r, g, b] = rgb.map(|x| x as f64);
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        let delta = maxc - minc;
        if delta == 0.0 {
            return rgb;
        }
        let h6 = if maxc == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if maxc == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        };
        let hue = (h6 / 6.0 + shift as f64).rem_euclid(1.0);
        let (s, v) = (delta / maxc, maxc);
        let h6 = hue * 6.0;
        let f = h6 - h6.floor();
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let out = match h6.floor() as i32 {
            0 => [v, t, p],
            1 => [q, v, p],
            2 => [p, v, t],
            3 => [p, q, v],
            4 => [t, p, v],
            _ => [v, p, q],
        };
        out.map(|x| x as f32)
    }

    #[test]
    fn hue_matches_textbook_hsv_on_random_pixels() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let n = 500;
        let img: Vec<f32> = (0..3 * n).map(|_| rng.gen::<f32>()).collect();
        for shift in [-0.5f32, -0.37, -0.1, 0.0, 0.05, 0.25, 0.5, 0.9] {
            let mut buf = img.clone();
            adjust_hue(&mut buf, n, shift);
            for i in 0..n {
                let want = hue_reference([img[i], img[n + i], img[2 * n + i]], shift);
                let got = [buf[i], buf[n + i], buf[2 * n + i]];
                assert_close(&got, &want, 2e-5);
            }
        }
    }

    #[test]
    fn jitter_on_one_channel_skips_colour_ops() {
        // Saturation and hue must not touch a gray image: with only those enabled the view is the
        // plain image.
        let src = random_image(1, 8, 8, 5);
        let mut aug = identity();
        aug.jitter_p = 1.0;
        aug.brightness = 0.0;
        aug.contrast = 0.0;
        aug.saturation = 0.8;
        aug.hue = 0.5;
        aug.grayscale_p = 1.0;
        assert_eq!(
            run(&aug, &src, 1, 8, 8, 9),
            run(&identity(), &src, 1, 8, 8, 9)
        );
    }

    #[test]
    fn grayscale_p1_gives_equal_channels_with_luma_weights() {
        let (h, w) = (4, 4);
        let src = random_image(3, h, w, 11);
        let mut aug = identity();
        aug.grayscale_p = 1.0;
        let out = run(&aug, &src, 3, h, w, 0);
        let n = h * w;
        for i in 0..n {
            let [r, g, b] = [0, 1, 2].map(|c| src[c * n + i] as f32 / 255.0);
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            for c in 0..3 {
                assert!((out[c * n + i] - y).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn blur_kernel_sums_to_one_and_is_symmetric() {
        let mut k = Vec::new();
        for (size, sigma) in [(3, 0.1), (5, 1.0), (23, 2.0), (9, 0.7)] {
            gaussian_kernel(size, sigma, &mut k);
            assert_eq!(k.len(), size);
            let s: f32 = k.iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "sum {s}");
            for i in 0..size {
                assert!((k[i] - k[size - 1 - i]).abs() < 1e-7);
            }
            // Ratio of neighbouring taps is the Gaussian's.
            let r = size / 2;
            let want = (-0.5 / (sigma * sigma)).exp() as f32;
            assert!((k[r + 1] / k[r] - want).abs() < 1e-5);
        }
    }

    #[test]
    fn reflect_padding_matches_torch() {
        let got: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
        // Wider than the image: keeps folding.
        assert_eq!(reflect(-5, 3), 1);
        assert_eq!(reflect(7, 1), 0);
    }

    #[test]
    fn blur_sizes_follow_the_ten_percent_rule() {
        let aug = ImageAugment::default();
        assert_eq!(aug.blur_sizes(224, 28), (23, 3));
        assert_eq!(aug.blur_sizes(32, 96), (3, 9));
        assert_eq!(aug.blur_sizes(8, 8), (1, 1));
        let fixed = ImageAugment {
            blur_kernel: 4,
            ..aug
        };
        assert_eq!(fixed.blur_sizes(28, 28), (5, 5));
    }

    #[test]
    fn blur_of_constant_image_is_constant_and_blur_smooths() {
        let (h, w) = (9, 9);
        let src = vec![100u8; 3 * h * w];
        let mut aug = identity();
        aug.blur_p = 1.0;
        aug.blur_kernel = 7;
        aug.blur_sigma = [0.5, 3.0];
        for seed in 0..5 {
            let out = run(&aug, &src, 3, h, w, seed);
            for &o in &out {
                assert!((o - 100.0 / 255.0).abs() < 1e-6);
            }
        }
        // An impulse spreads symmetrically and keeps its mass away from the borders.
        let mut img = vec![0u8; h * w];
        img[4 * w + 4] = 255;
        aug.blur_sigma = [1.0, 1.0];
        let out = run(&aug, &img, 1, h, w, 0);
        let total: f32 = out.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(out[4 * w + 4] < 1.0 && out[4 * w + 4] > out[4 * w + 3]);
        assert!((out[4 * w + 3] - out[4 * w + 5]).abs() < 1e-7);
        assert!((out[3 * w + 4] - out[4 * w + 3]).abs() < 1e-7);
    }

    #[test]
    fn solarize_p1_inverts_bright_values() {
        let src: Vec<u8> = vec![0, 64, 127, 128, 200, 255];
        let mut aug = identity();
        aug.crop_ratio = [6.0, 6.0]; // 1×6 image
        aug.solarize_p = 1.0;
        let out = run(&aug, &src, 1, 1, 6, 0);
        let want: Vec<f32> = src
            .iter()
            .map(|&v| {
                let x = v as f32 / 255.0;
                if x >= 0.5 {
                    1.0 - x
                } else {
                    x
                }
            })
            .collect();
        assert_close(&out, &want, 0.0);
        assert_eq!(out[5], 0.0);
        assert!(out[3] < 0.5 && out[2] < 0.5);
    }

    #[test]
    fn resize_of_constant_image_is_constant() {
        let (h, w) = (20, 9);
        let src = vec![77u8; h * w];
        for size in [[7, 13], [40, 3], [20, 9], [1, 1]] {
            let aug = ImageAugment {
                size: Some(size),
                ..identity()
            };
            let mut out = vec![0.0; size[0] * size[1]];
            aug.plain(&src, 1, h, w, &mut out);
            for &o in &out {
                assert!((o - 77.0 / 255.0).abs() < 1e-6, "{size:?}: {o}");
            }
        }
    }

    fn checkerboard(n: usize) -> Vec<u8> {
        (0..n * n)
            .map(|i| if (i / n + i % n) % 2 == 0 { 0 } else { 255 })
            .collect()
    }

    #[test]
    fn downscaling_checkerboard_by_two_averages_it() {
        let n = 16;
        let aug = ImageAugment {
            size: Some([n / 2, n / 2]),
            ..identity()
        };
        let mut out = vec![0.0; n * n / 4];
        aug.plain(&checkerboard(n), 1, n, n, &mut out);
        let m = n / 2;
        for y in 0..m {
            for x in 0..m {
                let v = out[y * m + x];
                // Interior: the symmetric 4-tap filter averages exactly. Border pixels have their
                // filter truncated (as PIL does), so they are only close to the mean.
                if (1..m - 1).contains(&y) && (1..m - 1).contains(&x) {
                    assert!((v - 0.5).abs() < 1e-6, "({y},{x}) = {v}");
                } else {
                    assert!((v - 0.5).abs() < 0.1, "({y},{x}) = {v}");
                }
            }
        }
    }

    #[test]
    fn downscaling_by_three_is_antialiased() {
        // Plain bilinear would land on pixel centres here and return pure 0 / 1 values.
        let n = 12;
        let aug = ImageAugment {
            size: Some([4, 4]),
            ..identity()
        };
        let mut out = vec![0.0; 16];
        aug.plain(&checkerboard(n), 1, n, n, &mut out);
        for &v in &out {
            assert!((v - 0.5).abs() < 0.1, "{v}");
        }
    }

    #[test]
    fn eval_size_sets_the_plain_input_and_leaves_the_views_at_size() {
        let (h, w) = (12, 10);
        let src = random_image(1, h, w, 5);
        let aug = ImageAugment {
            size: Some([4, 4]),
            eval_size: Some([h, w]),
            ..identity()
        };
        assert_eq!(aug.output_shape(1, h, w), [1, 4, 4]);
        assert_eq!(aug.eval_shape(1, h, w), [1, h, w]);
        // The plain input at the native size is the image itself: the resample is the identity.
        let mut p = vec![f32::NAN; h * w];
        aug.plain(&src, 1, h, w, &mut p);
        let want: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(p, want);
        // Views stay at `size`; without `eval_size` the plain input follows `size`.
        assert_eq!(run(&aug, &src, 1, h, w, 1).len(), 16);
        let no_eval = ImageAugment {
            eval_size: None,
            ..aug
        };
        assert_eq!(no_eval.eval_shape(1, h, w), [1, 4, 4]);
        let mut q = vec![f32::NAN; 16];
        no_eval.plain(&src, 1, h, w, &mut q);
        assert!(q.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn upscaling_is_bilinear() {
        // 1×2 -> 1×4: centres at 0.25, 0.75, 1.25, 1.75 in input pixels.
        let aug = ImageAugment {
            size: Some([1, 4]),
            ..identity()
        };
        let mut out = vec![0.0; 4];
        aug.plain(&[0, 255], 1, 1, 2, &mut out);
        assert_close(&out, &[0.0, 0.25, 0.75, 1.0], 1e-6);
    }

    #[test]
    fn resample_taps_are_normalised() {
        let mut t = Taps::default();
        for (i, o) in [(28, 28), (13, 28), (100, 7), (5, 3), (1, 9), (9, 1)] {
            t.build(i, o);
            assert!(t.k >= 1 && t.k <= i);
            for k in 0..o {
                let ws = &t.w[k * t.k..][..t.k];
                let s: f32 = ws.iter().sum();
                assert!((s - 1.0).abs() < 1e-6);
                assert!(ws.iter().all(|&w| w >= 0.0) && ws.iter().any(|&w| w > 0.0));
                assert!(t.start[k] + t.k <= i);
            }
        }
    }

    #[test]
    fn crop_boxes_lie_inside_and_respect_scale_and_ratio() {
        let aug = ImageAugment::default();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (h, w) = (100usize, 100usize);
        let area = (h * w) as f64;
        let mut fracs = Vec::new();
        for _ in 0..5000 {
            let [top, left, ch, cw] = aug.sample_crop(h, w, &mut rng);
            assert!(ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w);
            let frac = (ch * cw) as f64 / area;
            // Rounding each side moves the area by at most about half a row plus half a column.
            let slack = (ch + cw + 1) as f64 / 2.0 / area;
            assert!(frac >= 0.08 - slack && frac <= 1.0 + slack, "frac {frac}");
            let ratio = cw as f64 / ch as f64;
            let rslack = 1.0 / ch.min(cw) as f64 + 1e-9;
            assert!(ratio >= 0.75 * (1.0 - rslack) && ratio <= 4.0 / 3.0 * (1.0 + rslack));
            fracs.push(frac);
        }
        // Both ends of the range are reached. (The mean is below 0.54 because large areas with a
        // non-square ratio do not fit and are redrawn, exactly as in torchvision.)
        assert!(fracs.iter().any(|&f| f < 0.1) && fracs.iter().any(|&f| f > 0.9));

        // With ratio 1 on a square image every draw fits, so the area fraction is uniform.
        let square = ImageAugment {
            crop_ratio: [1.0, 1.0],
            ..ImageAugment::default()
        };
        let n = 5000;
        let mean = (0..n)
            .map(|_| {
                let [_, _, ch, cw] = square.sample_crop(h, w, &mut rng);
                (ch * cw) as f64 / area
            })
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.54).abs() < 0.02, "mean frac {mean}");

        // Elongated images, narrow crop ranges, tiny images: always inside.
        for (h, w, scale, ratio) in [
            (30, 200, [0.5, 1.0], [0.75, 1.333]),
            (200, 30, [0.9, 1.0], [1.0, 1.0]),
            (3, 2, [0.08, 1.0], [0.75, 1.333]),
            (1, 1, [0.08, 1.0], [0.75, 1.333]),
        ] {
            let aug = ImageAugment {
                crop_scale: scale,
                crop_ratio: ratio,
                ..ImageAugment::default()
            };
            for _ in 0..500 {
                let [top, left, ch, cw] = aug.sample_crop(h, w, &mut rng);
                assert!(ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w);
            }
        }
    }

    #[test]
    fn outputs_are_finite_and_in_range() {
        let aug = ImageAugment {
            size: Some([24, 20]),
            solarize_p: 0.2,
            ..ImageAugment::default()
        };
        for (c, h, w) in [(1usize, 28usize, 28usize), (3, 32, 32), (3, 17, 45)] {
            let src = random_image(c, h, w, 123);
            let mut out = vec![0.0; c * 24 * 20];
            let mut rng = ChaCha8Rng::seed_from_u64(99);
            for _ in 0..200 {
                aug.augment(&src, c, h, w, &mut rng, &mut out);
                // mean 0.5, std 0.5 maps [0, 1] onto [-1, 1].
                assert!(out.iter().all(|x| x.is_finite() && x.abs() <= 1.0 + 1e-4));
            }
        }
    }

    /// `cargo test --release -p selfsup --lib views::image_aug -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn throughput() {
        use std::time::Instant;
        for (c, side, out_side, iters) in [
            (1usize, 28usize, 28usize, 200_000usize),
            (3, 32, 32, 100_000),
            (3, 256, 224, 500),
        ] {
            let base = ImageAugment {
                size: Some([out_side, out_side]),
                ..ImageAugment::default()
            };
            for (label, aug) in [
                ("default", base.clone()),
                (
                    "no jitter",
                    ImageAugment {
                        jitter_p: 0.0,
                        ..base.clone()
                    },
                ),
                (
                    "no blur",
                    ImageAugment {
                        blur_p: 0.0,
                        ..base.clone()
                    },
                ),
                (
                    "crop+flip only",
                    ImageAugment {
                        jitter_p: 0.0,
                        blur_p: 0.0,
                        grayscale_p: 0.0,
                        ..base.clone()
                    },
                ),
            ] {
                let src = random_image(c, side, side, 1);
                let mut out = vec![0.0; c * out_side * out_side];
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                // Warm the thread-local scratch.
                aug.augment(&src, c, side, side, &mut rng, &mut out);
                let t = Instant::now();
                let mut sink = 0.0f32;
                for _ in 0..iters {
                    aug.augment(&src, c, side, side, &mut rng, &mut out);
                    sink += out[0];
                }
                let dt = t.elapsed().as_secs_f64();
                println!(
                "{c}x{side}x{side} -> {out_side}x{out_side} {label}: {:.0} views/s per thread ({:.2} us/view) [{sink}]",
                iters as f64 / dt,
                dt / iters as f64 * 1e6
            );
            }
        }
    }
}
