//! The log-mel front end: short-time Fourier transform (`realfft`), power spectrum, triangular
//! mel filterbank, logarithm; and MFCCs (a DCT-II of the log-mel in decibels).
//!
//! The conventions are torchaudio's `MelSpectrogram` defaults, so that a spectrogram here equals
//! one computed there (`tests/fixtures/logmel_torchaudio.json`, compared in this file's tests):
//! frames centred on `t·hop` with reflect padding of `n_fft/2`, a periodic Hann window of
//! `win_length` centred in `n_fft`, power 2, the HTK mel scale `2595·log10(1 + f/700)` and
//! filters without area normalisation.
use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

/// `[data.options.mel]`: the front end's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MelConfig {
    pub n_fft: usize,
    /// Window length in samples (≤ `n_fft`; zero-padded to it).
    pub win_length: usize,
    pub hop: usize,
    pub n_mels: usize,
    pub f_min: f64,
    /// Upper edge of the filterbank in Hz (`None`: the Nyquist frequency).
    pub f_max: Option<f64>,
    /// Added before the logarithm (BYOL-A adds float32's machine epsilon; here the default is
    /// 1e-6, a floor of -60 dB below a full-scale sine's power).
    pub log_offset: f64,
}

impl Default for MelConfig {
    /// BYOL-A's front end (Niizumi et al. 2021: 64 mel bins, 25 ms windows every 10 ms, 60 Hz to
    /// 7.8 kHz at 16 kHz), scaled to 8 kHz audio: 200-sample windows, hop 80, FFT of 512,
    /// 60 Hz to 3.8 kHz.
    fn default() -> Self {
        MelConfig {
            n_fft: 512,
            win_length: 200,
            hop: 80,
            n_mels: 64,
            f_min: 60.0,
            f_max: Some(3800.0),
            log_offset: 1e-6,
        }
    }
}

impl MelConfig {
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }
    /// Frames of a clip of `n` samples (centred frames).
    pub fn n_frames(&self, n: usize) -> usize {
        n / self.hop + 1
    }
    /// Checks the parameters against a sample rate; the message names the field.
    pub fn check(&self, sample_rate: u32) -> Result<(), String> {
        let nyquist = sample_rate as f64 / 2.0;
        if self.n_fft < 2 || self.hop == 0 || self.n_mels == 0 {
            return Err("n_fft must be ≥ 2, hop and n_mels > 0".into());
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return Err(format!(
                "win_length must be in 1..={} (n_fft), not {}",
                self.n_fft, self.win_length
            ));
        }
        let f_max = self.f_max.unwrap_or(nyquist);
        if !(self.f_min >= 0.0 && self.f_min < f_max && f_max <= nyquist) {
            return Err(format!(
                "need 0 ≤ f_min < f_max ≤ {nyquist} Hz (half the sample rate), got f_min {} and f_max {f_max}",
                self.f_min
            ));
        }
        if !(self.log_offset > 0.0) {
            return Err("log_offset must be > 0".into());
        }
        Ok(())
    }
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}
fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The filterbank `[n_freqs][n_mels]`: triangles between `n_mels + 2` points evenly spaced on
/// the mel scale, evaluated at the FFT bins' frequencies.
pub fn mel_filterbank(cfg: &MelConfig, sample_rate: u32) -> Vec<Vec<f64>> {
    let nyquist = sample_rate as f64 / 2.0;
    let f_max = cfg.f_max.unwrap_or(nyquist);
    let n_freqs = cfg.n_freqs();
    let (m_lo, m_hi) = (hz_to_mel(cfg.f_min), hz_to_mel(f_max));
    let points: Vec<f64> = (0..cfg.n_mels + 2)
        .map(|i| mel_to_hz(m_lo + (m_hi - m_lo) * i as f64 / (cfg.n_mels + 1) as f64))
        .collect();
    (0..n_freqs)
        .map(|k| {
            let f = nyquist * k as f64 / (n_freqs - 1) as f64;
            (0..cfg.n_mels)
                .map(|m| {
                    let rise = (f - points[m]) / (points[m + 1] - points[m]);
                    let fall = (points[m + 2] - f) / (points[m + 2] - points[m + 1]);
                    rise.min(fall).max(0.0)
                })
                .collect()
        })
        .collect()
}

/// Computes power mel spectrograms for one sample rate; reusable across clips (the FFT plan and
/// the filterbank are built once).
pub struct MelFrontEnd {
    cfg: MelConfig,
    window: Vec<f32>,
    /// Sparse filterbank: for each mel bin, its first FFT bin and weights.
    filters: Vec<(usize, Vec<f32>)>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
}

impl MelFrontEnd {
    pub fn new(cfg: &MelConfig, sample_rate: u32) -> Result<Self, String> {
        cfg.check(sample_rate)?;
        let fb = mel_filterbank(cfg, sample_rate);
        let filters = (0..cfg.n_mels)
            .map(|m| {
                let nz: Vec<usize> = (0..fb.len()).filter(|&k| fb[k][m] > 0.0).collect();
                match (nz.first(), nz.last()) {
                    (Some(&a), Some(&b)) => (a, (a..=b).map(|k| fb[k][m] as f32).collect()),
                    _ => (0, Vec::new()),
                }
            })
            .collect();
        // Periodic Hann (torch.hann_window's default), centred in the FFT frame.
        let mut window = vec![0f32; cfg.n_fft];
        let left = (cfg.n_fft - cfg.win_length) / 2;
        for i in 0..cfg.win_length {
            let w =
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / cfg.win_length as f64).cos();
            window[left + i] = w as f32;
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        Ok(MelFrontEnd {
            cfg: cfg.clone(),
            window,
            filters,
            fft,
        })
    }

    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// Power mel spectrogram of `x`, `[n_mels][frames]` row-major (mel-major, as torchaudio's
    /// `[n_mels, time]`).
    pub fn power_mel(&self, x: &[f32]) -> Vec<f32> {
        let (n_fft, hop, n_mels) = (self.cfg.n_fft, self.cfg.hop, self.cfg.n_mels);
        let frames = self.cfg.n_frames(x.len());
        let padded = reflect_pad(x, n_fft / 2);
        let mut out = vec![0f32; n_mels * frames];
        let mut buf = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut power = vec![0f32; n_fft / 2 + 1];
        for t in 0..frames {
            let start = t * hop;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = padded[start + i] * self.window[i];
            }
            self.fft
                .process(&mut buf, &mut spec)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, (first, w)) in self.filters.iter().enumerate() {
                let v: f32 = w.iter().zip(&power[*first..]).map(|(a, b)| a * b).sum();
                out[m * frames + t] = v;
            }
        }
        out
    }

    /// `ln(mel + log_offset)`, `[n_mels][frames]`.
    pub fn log_mel(&self, x: &[f32]) -> Vec<f32> {
        let off = self.cfg.log_offset as f32;
        let mut m = self.power_mel(x);
        m.iter_mut().for_each(|v| *v = (*v + off).ln());
        m
    }
}

/// `x` with `pad` samples mirrored at each end (numpy's "reflect": the edge sample is not
/// repeated). A clip shorter than the padding mirrors as far as it can and repeats the mirror
/// (zero-length clips pad with zeros).
pub fn reflect_pad(x: &[f32], pad: usize) -> Vec<f32> {
    let n = x.len();
    if n == 0 {
        return vec![0.0; 2 * pad];
    }
    let at = |i: isize| -> f32 {
        if n == 1 {
            return x[0];
        }
        // Reflection without repeating the edge has period 2(n-1).
        let period = 2 * (n as isize - 1);
        let mut j = i.rem_euclid(period);
        if j >= n as isize {
            j = period - j;
        }
        x[j as usize]
    };
    (-(pad as isize)..(n + pad) as isize).map(at).collect()
}

/// MFCCs `[n_mfcc][frames]` of a log-mel `[n_mels][frames]` (natural log of power): the log-mel
/// is turned into decibels (`10·log10`), then an orthonormal DCT-II over the mel axis, as
/// torchaudio's `MFCC` does.
pub fn mfcc(log_mel: &[f32], n_mels: usize, n_mfcc: usize) -> Vec<f32> {
    let frames = log_mel.len() / n_mels;
    let to_db = 10.0 / std::f64::consts::LN_10;
    let mut out = vec![0f32; n_mfcc * frames];
    for k in 0..n_mfcc {
        let scale = if k == 0 {
            (1.0 / n_mels as f64).sqrt()
        } else {
            (2.0 / n_mels as f64).sqrt()
        };
        let basis: Vec<f64> = (0..n_mels)
            .map(|m| {
                scale * (std::f64::consts::PI / n_mels as f64 * (m as f64 + 0.5) * k as f64).cos()
            })
            .collect();
        for t in 0..frames {
            let v: f64 = (0..n_mels)
                .map(|m| basis[m] * log_mel[m * frames + t] as f64 * to_db)
                .sum();
            out[k * frames + t] = v as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_matches_numpy() {
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
        // Longer than the clip: the mirror repeats.
        assert_eq!(
            reflect_pad(&[1.0, 2.0], 3),
            vec![2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0]
        );
    }

    #[test]
    fn filterbank_triangles_peak_at_one_and_cover_the_band() {
        let cfg = MelConfig::default();
        let fb = mel_filterbank(&cfg, 8000);
        assert_eq!(fb.len(), 257);
        for m in 0..cfg.n_mels {
            let col: Vec<f64> = fb.iter().map(|r| r[m]).collect();
            let peak = col.iter().cloned().fold(0.0, f64::max);
            assert!(peak > 0.3 && peak <= 1.0, "mel bin {m} peaks at {peak}");
        }
        // Nothing below f_min or above f_max.
        let bin = |f: f64| (f / 4000.0 * 256.0) as usize;
        assert!(fb[..bin(60.0)].iter().all(|r| r.iter().all(|&v| v == 0.0)));
        assert!(fb[bin(3800.0) + 1..]
            .iter()
            .all(|r| r.iter().all(|&v| v == 0.0)));
    }

    #[test]
    fn a_sine_lights_the_mel_bin_of_its_frequency() {
        let cfg = MelConfig::default();
        let fe = MelFrontEnd::new(&cfg, 8000).unwrap();
        let x: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin())
            .collect();
        let m = fe.power_mel(&x);
        let frames = cfg.n_frames(x.len());
        assert_eq!(m.len(), 64 * frames);
        let t = frames / 2;
        let best = (0..64)
            .max_by(|&a, &b| m[a * frames + t].total_cmp(&m[b * frames + t]))
            .unwrap();
        // The mel bin whose centre is nearest 1 kHz.
        let (lo, hi) = (hz_to_mel(60.0), hz_to_mel(3800.0));
        let centre = |b: usize| mel_to_hz(lo + (hi - lo) * (b + 1) as f64 / 65.0);
        let want = (0..64)
            .min_by(|&a, &b| {
                (centre(a) - 1000.0)
                    .abs()
                    .total_cmp(&(centre(b) - 1000.0).abs())
            })
            .unwrap();
        assert!(
            best.abs_diff(want) <= 1,
            "peak at bin {best}, expected {want}"
        );
        // Parseval: the frame's power spectrum sums to (Σ w²)·N/2 · A²/2 for a unit sine.
        let w2: f64 = fe.window.iter().map(|w| (*w as f64).powi(2)).sum();
        let expected_peak_power = (w2 * 512.0 / 2.0) * 0.5;
        let total: f64 = (0..64).map(|b| m[b * frames + t] as f64).sum();
        assert!(total > 0.2 * expected_peak_power && total < 2.0 * expected_peak_power);
    }

    #[test]
    fn mfcc_of_a_flat_log_mel_is_only_its_first_coefficient() {
        let frames = 3;
        let lm = vec![2.0f32; 40 * frames];
        let c = mfcc(&lm, 40, 13);
        let db = 2.0 * 10.0 / std::f64::consts::LN_10;
        assert!((c[0] as f64 - db * (40f64).sqrt()).abs() < 1e-3);
        assert!(c[frames..].iter().all(|v| v.abs() < 1e-3));
    }

    #[test]
    fn bad_parameters_are_named() {
        let mut c = MelConfig::default();
        c.f_max = Some(5000.0);
        assert!(c.check(8000).unwrap_err().contains("f_max"));
        c = MelConfig::default();
        c.win_length = 1024;
        assert!(c.check(8000).unwrap_err().contains("win_length"));
    }

    /// The front end against torchaudio's `MelSpectrogram` on fixed inputs
    /// (`scripts/make_logmel_fixture.py` wrote the fixture with torchaudio 2.x).
    #[test]
    fn matches_torchaudio_mel_spectrogram() {
        let text = include_str!("../../../tests/fixtures/logmel_torchaudio.json");
        let fx: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = fx["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let cfg: MelConfig = serde_json::from_value(case["config"].clone()).unwrap();
            let rate = case["sample_rate"].as_u64().unwrap() as u32;
            let x: Vec<f32> = serde_json::from_value(case["input"].clone()).unwrap();
            let want: Vec<Vec<f32>> = serde_json::from_value(case["mel"].clone()).unwrap();
            let fe = MelFrontEnd::new(&cfg, rate).unwrap();
            let got = fe.power_mel(&x);
            let frames = cfg.n_frames(x.len());
            assert_eq!(want.len(), cfg.n_mels, "{}", case["name"]);
            assert_eq!(want[0].len(), frames, "{}", case["name"]);
            // Power values span many decades: compare in the log domain, where the models
            // see them. Tolerance: 1e-3 in ln (0.1 %) above a floor 1e-6 below the peak.
            let peak = want.iter().flatten().cloned().fold(0f32, f32::max) as f64;
            let floor = peak * 1e-6;
            let mut worst = 0f64;
            for m in 0..cfg.n_mels {
                for t in 0..frames {
                    let (a, b) = (got[m * frames + t] as f64, want[m][t] as f64);
                    let d = ((a + floor).ln() - (b + floor).ln()).abs();
                    worst = worst.max(d);
                }
            }
            assert!(
                worst < 1e-3,
                "{}: worst log difference {worst}",
                case["name"]
            );
        }
    }
}
