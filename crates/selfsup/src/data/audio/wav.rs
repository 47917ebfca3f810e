//! One WAV file → mono `f32` samples in [-1, 1] and its sample rate, through `hound`.
//!
//! The file is read whole (at most [`MAX_WAV_BYTES`]) and parsed from memory, and nothing is
//! allocated from the sizes the file declares, so a header that lies about its length cannot
//! make us allocate more than the file holds. Integer PCM of 8, 16, 24 and 32 bits and 32-bit
//! float are read; other encodings (ADPCM, µ-law, ...) are refused with the file named.
use crate::error::DataError;
use std::io::Cursor;
use std::path::Path;

/// Largest WAV file read (1 GiB: about 9 hours of 16-bit mono at 16 kHz).
pub const MAX_WAV_BYTES: u64 = 1 << 30;

/// A decoded clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Mono samples (channels averaged), in [-1, 1] for integer PCM.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channels of the file before the mix-down.
    pub channels: u16,
}

impl Clip {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Reads `path`.
pub fn read_wav(path: &Path) -> Result<Clip, DataError> {
    let size = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if size > MAX_WAV_BYTES {
        return Err(DataError::format(
            path,
            format!("{size} bytes is more than the {MAX_WAV_BYTES} a WAV file may have here"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_wav(&bytes).map_err(|m| DataError::format(path, m))
}

/// Decodes WAV bytes; the error is a message for [`DataError::format`].
pub fn decode_wav(bytes: &[u8]) -> Result<Clip, String> {
    // The parser is a dependency: a panic inside it on some malformed header must still end as
    // an error naming the file, not as a crash of the whole run.
    std::panic::catch_unwind(|| decode_unguarded(bytes))
        .unwrap_or_else(|_| Err("not a readable WAV file (malformed header)".to_string()))
}

fn decode_unguarded(bytes: &[u8]) -> Result<Clip, String> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(describe)?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err("the header declares 0 channels".into());
    }
    if spec.sample_rate == 0 {
        return Err("the header declares a sample rate of 0 Hz".into());
    }
    let channels = spec.channels as usize;
    let declared = reader.len() as usize;
    // Never trust the declared length for the allocation: cap it by what the bytes can hold.
    let bytes_per_sample = (spec.bits_per_sample as usize).div_ceil(8).max(1);
    let mut interleaved: Vec<f32> =
        Vec::with_capacity(declared.min(bytes.len() / bytes_per_sample));
    let position = |i: usize| format!("sample {i} of the {declared} the header declares");
    match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(format!(
                    "{}-bit float samples are not supported (32-bit float is)",
                    spec.bits_per_sample
                ));
            }
            for (i, s) in reader.samples::<f32>().enumerate() {
                let v = s.map_err(|e| format!("{}: {}", position(i), describe(e)))?;
                if !v.is_finite() {
                    return Err(format!("{}: not a finite number ({v})", position(i)));
                }
                interleaved.push(v);
            }
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !matches!(bits, 8 | 16 | 24 | 32) {
                return Err(format!(
                    "{bits}-bit integer samples are not supported (8, 16, 24 and 32 are)"
                ));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for (i, s) in reader.samples::<i32>().enumerate() {
                let v = s.map_err(|e| format!("{}: {}", position(i), describe(e)))?;
                interleaved.push((v as f64 * scale) as f32);
            }
        }
    }
    let frames = interleaved.len() / channels;
    if frames == 0 {
        return Err("the file holds no audio samples".into());
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Clip {
        samples,
        sample_rate: spec.sample_rate,
        channels: spec.channels,
    })
}

fn describe(e: hound::Error) -> String {
    match e {
        // The bytes are in memory: a read can only fail by running out of them.
        hound::Error::IoError(io) => {
            format!("the file ends before the data its header declares (truncated: {io})")
        }
        hound::Error::FormatError(m) => format!("not a valid WAV file: {m}"),
        hound::Error::Unsupported => {
            "an encoding other than integer PCM or 32-bit float (e.g. ADPCM or µ-law), which is not supported".to_string()
        }
        other => format!("not a readable WAV file: {other}"),
    }
}

/// Writes 16-bit mono PCM (tests and examples build fixtures with it).
pub fn write_wav_i16(path: &Path, samples: &[i16], sample_rate: u32) -> Result<(), DataError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| DataError::format(path, format!("cannot write WAV: {e}"));
    let mut w = hound::WavWriter::create(path, spec).map_err(fail)?;
    for &s in samples {
        w.write_sample(s).map_err(fail)?;
    }
    w.finalize().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(
        spec: hound::WavSpec,
        write: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
            write(&mut w);
            w.finalize().unwrap();
        }
        c.into_inner()
    }

    fn spec(channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn every_pcm_width_and_float_reads_to_the_same_scale() {
        use hound::SampleFormat::{Float, Int};
        let c8 = decode_wav(&wav_bytes(spec(1, 8, Int), |w| {
            w.write_sample(64i8).unwrap();
            w.write_sample(-128i8).unwrap();
        }))
        .unwrap();
        assert_eq!(c8.samples, vec![0.5, -1.0]);
        let c16 = decode_wav(&wav_bytes(spec(1, 16, Int), |w| {
            w.write_sample(16384i16).unwrap();
            w.write_sample(-32768i16).unwrap();
        }))
        .unwrap();
        assert_eq!(c16.samples, vec![0.5, -1.0]);
        let c24 = decode_wav(&wav_bytes(spec(1, 24, Int), |w| {
            w.write_sample(1i32 << 22).unwrap();
            w.write_sample(-(1i32 << 23)).unwrap();
        }))
        .unwrap();
        assert_eq!(c24.samples, vec![0.5, -1.0]);
        let c32 = decode_wav(&wav_bytes(spec(1, 32, Int), |w| {
            w.write_sample(1i32 << 30).unwrap();
            w.write_sample(i32::MIN).unwrap();
        }))
        .unwrap();
        assert_eq!(c32.samples, vec![0.5, -1.0]);
        let f = decode_wav(&wav_bytes(spec(1, 32, Float), |w| {
            w.write_sample(0.25f32).unwrap();
            w.write_sample(-0.75f32).unwrap();
        }))
        .unwrap();
        assert_eq!(f.samples, vec![0.25, -0.75]);
        assert_eq!(f.sample_rate, 8000);
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let c = decode_wav(&wav_bytes(spec(2, 16, hound::SampleFormat::Int), |w| {
            for s in [16384i16, 0, -16384, -16384] {
                w.write_sample(s).unwrap();
            }
        }))
        .unwrap();
        assert_eq!(c.channels, 2);
        assert_eq!(c.samples, vec![0.25, -0.5]);
    }

    fn good16(n: usize) -> Vec<u8> {
        wav_bytes(spec(1, 16, hound::SampleFormat::Int), |w| {
            for i in 0..n {
                w.write_sample((i as i16).wrapping_mul(97)).unwrap();
            }
        })
    }

    /// Offset of the `data` chunk's size field in a canonical 44-byte-header file.
    fn data_size_offset(b: &[u8]) -> usize {
        b.windows(4).position(|w| w == b"data").unwrap() + 4
    }

    #[test]
    fn hostile_files_are_errors_never_panics_or_huge_allocations() {
        let good = good16(100);
        assert_eq!(decode_wav(&good).unwrap().samples.len(), 100);
        // Truncated header.
        let e = decode_wav(&good[..20]).unwrap_err();
        assert!(
            e.contains("not a valid WAV") || e.contains("truncated"),
            "{e}"
        );
        // Truncated data: the header declares 100 samples, the bytes hold 50.
        let e = decode_wav(&good[..good.len() - 100]).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        // A data chunk declaring 4 GiB: an error about the missing data, not a 4 GiB allocation.
        let mut huge = good.clone();
        let at = data_size_offset(&huge);
        huge[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let e = decode_wav(&huge).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        // A RIFF size that lies (larger than the file) with correct chunks still reads or errors.
        let mut riff = good.clone();
        riff[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = decode_wav(&riff);
        // Zero samples.
        let e = decode_wav(&good16(0)).unwrap_err();
        assert!(e.contains("no audio samples"), "{e}");
        // A non-PCM format tag (2 = Microsoft ADPCM).
        let mut adpcm = good.clone();
        adpcm[20..22].copy_from_slice(&2u16.to_le_bytes());
        let e = decode_wav(&adpcm).unwrap_err();
        assert!(
            e.contains("not supported") || e.contains("not a valid WAV"),
            "{e}"
        );
        // Not a WAV at all.
        assert!(decode_wav(b"OggS\0\0\0\0 definitely not RIFF").is_err());
        assert!(decode_wav(&[]).is_err());
        // Zero channels and a zero sample rate in the format chunk.
        let mut zero_ch = good.clone();
        zero_ch[22..24].copy_from_slice(&0u16.to_le_bytes());
        assert!(decode_wav(&zero_ch).is_err());
        let mut zero_rate = good.clone();
        zero_rate[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(decode_wav(&zero_rate).is_err());
    }

    #[test]
    fn read_wav_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.wav");
        std::fs::write(&p, b"RIFF\x10\0\0\0WAVEfmt ").unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(e.contains("bad.wav"), "{e}");
        let ok = dir.path().join("ok.wav");
        write_wav_i16(&ok, &[0, 1000, -1000], 16000).unwrap();
        let c = read_wav(&ok).unwrap();
        assert_eq!(c.samples.len(), 3);
        assert_eq!(c.sample_rate, 16000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any corruption of a valid file's bytes decodes or errors; it never panics.
        #[test]
        fn corrupted_bytes_never_panic(
            edits in proptest::collection::vec((0usize..300, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..300,
        ) {
            let mut b = good16(100);
            for (at, v) in edits {
                let i = at % b.len();
                b[i] = v;
            }
            b.truncate(cut.max(1).min(b.len()));
            let _ = decode_wav(&b);
        }
    }
}
