//! Sample-rate conversion of whole clips through `rubato`'s FFT resampler (synchronous: a fixed
//! ratio of integer rates, band-limited by its anti-aliasing filter).
use rubato::{FftFixedIn, Resampler};

/// Input frames per chunk handed to the resampler.
const CHUNK: usize = 1024;

/// `x` at `from` Hz resampled to `to` Hz: `round(len · to / from)` samples, aligned with the
/// input (the resampler's delay removed).
pub fn resample(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == to {
        return Ok(x.to_vec());
    }
    let want = ((x.len() as u64 * to as u64 + from as u64 / 2) / from as u64) as usize;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
        .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))?;
    let fail = |e: rubato::ResampleError| format!("resampling {from} Hz to {to} Hz: {e}");
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(want + delay + 2 * CHUNK);
    let mut at = 0;
    while x.len() - at >= r.input_frames_next() {
        let n = r.input_frames_next();
        out.extend_from_slice(&r.process(&[&x[at..at + n]], None).map_err(fail)?[0]);
        at += n;
    }
    if at < x.len() {
        out.extend_from_slice(&r.process_partial(Some(&[&x[at..]]), None).map_err(fail)?[0]);
    }
    // Flush what the filter still holds until the delayed output covers the whole clip.
    while out.len() < want + delay {
        out.extend_from_slice(&r.process_partial::<&[f32]>(None, None).map_err(fail)?[0]);
    }
    Ok(out[delay..delay + want].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_sine_keeps_its_frequency_and_the_clip_its_duration() {
        let x = sine(440.0, 16_000, 16_000);
        let y = resample(&x, 16_000, 8_000).unwrap();
        assert_eq!(y.len(), 8_000);
        let want = sine(440.0, 8_000, 8_000);
        // Away from the edges the resampled sine is the sine sampled at the new rate.
        let err = y[200..7800]
            .iter()
            .zip(&want[200..7800])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 0.02, "largest error {err}");
        let up = resample(&y, 8_000, 22_050).unwrap();
        assert_eq!(up.len(), 22_050);
        assert_eq!(
            resample(&x[..10], 16_000, 16_000).unwrap(),
            x[..10].to_vec()
        );
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let x = sine(6_000.0, 16_000, 16_000);
        let y = resample(&x, 16_000, 8_000).unwrap();
        let rms = (y[200..7800].iter().map(|v| v * v).sum::<f32>() / 7600.0).sqrt();
        assert!(
            rms < 0.05,
            "rms {rms} of a tone above 4 kHz after resampling to 8 kHz"
        );
    }
}
