//! A folder of WAV clips → log-mel spectrograms with labels and speakers.
//!
//! Labels come from class sub-folders (`train/<class>/*.wav`) or from the file name
//! `{label}_{speaker}_{take}.wav` (the Free Spoken Digit Dataset's naming); the latter also gives
//! each clip its speaker, which the speaker-independent protocol groups by, and its take number,
//! which FSDD's official split uses (takes 0–4 of every speaker are the test set).
use super::mel::{MelConfig, MelFrontEnd};
use super::wav::read_wav;
use crate::error::{BadInputPolicy, DataError, SkipReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a clip's label (and speaker) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioNaming {
    /// `{label}_{speaker}_{take}.wav` in one folder (FSDD).
    #[default]
    LabelSpeakerTake,
    /// `<class>/*.wav` sub-folders; no speakers.
    Subfolders,
}

/// How log-mel values are normalised before the model sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioNormalise {
    /// By the mean and deviation of every training value (BYOL-A).
    #[default]
    Dataset,
    /// Each clip's own mean per mel bin subtracted first (cepstral mean normalisation in the
    /// log-mel domain: a fixed channel or a speaker's long-term spectrum is a constant per bin),
    /// then the dataset's mean and deviation of what is left.
    ClipMean,
}

/// `[data.options]` of an audio folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioFolderOptions {
    pub naming: AudioNaming,
    /// With `label_speaker_take` naming and no `test` folder: clips whose take is below this
    /// number form the test set (FSDD's official split: 5).
    pub test_takes: Option<u32>,
    /// The sample rate the front end works at.
    pub sample_rate: u32,
    /// Resample clips recorded at another rate (else they are bad input).
    pub resample: bool,
    pub normalise: AudioNormalise,
    /// Width of the model's input in frames: longer clips are cropped, shorter ones padded with
    /// silence (64 frames of 10 ms with the default front end).
    pub frames: usize,
    pub mel: MelConfig,
}

impl Default for AudioFolderOptions {
    fn default() -> Self {
        AudioFolderOptions {
            naming: AudioNaming::LabelSpeakerTake,
            test_takes: None,
            sample_rate: 8000,
            resample: false,
            normalise: AudioNormalise::Dataset,
            frames: 64,
            mel: MelConfig::default(),
        }
    }
}

/// Clips as log-mel spectrograms, each `[n_mels][frames_i]` (its own length).
#[derive(Debug, Clone)]
pub struct AudioSet {
    pub root: PathBuf,
    pub paths: Vec<PathBuf>,
    pub log_mels: Vec<Vec<f32>>,
    pub n_mels: usize,
    /// Class index per clip (`None` when the naming gives no labels).
    pub labels: Option<Vec<i64>>,
    pub classes: Vec<String>,
    /// Speaker index per clip into `speakers` (empty when the naming has none).
    pub speaker: Vec<usize>,
    pub speakers: Vec<String>,
    pub takes: Vec<u32>,
    /// Seconds of audio read.
    pub seconds: f64,
}

impl AudioSet {
    pub fn len(&self) -> usize {
        self.log_mels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.log_mels.is_empty()
    }
    pub fn frames(&self, i: usize) -> usize {
        self.log_mels[i].len() / self.n_mels
    }
    /// The clips `keep` (in that order), with the same classes and speakers.
    pub fn subset(&self, keep: &[usize]) -> AudioSet {
        AudioSet {
            root: self.root.clone(),
            paths: keep.iter().map(|&i| self.paths[i].clone()).collect(),
            log_mels: keep.iter().map(|&i| self.log_mels[i].clone()).collect(),
            n_mels: self.n_mels,
            labels: self
                .labels
                .as_ref()
                .map(|l| keep.iter().map(|&i| l[i]).collect()),
            classes: self.classes.clone(),
            speaker: if self.speaker.is_empty() {
                Vec::new()
            } else {
                keep.iter().map(|&i| self.speaker[i]).collect()
            },
            speakers: self.speakers.clone(),
            takes: if self.takes.is_empty() {
                Vec::new()
            } else {
                keep.iter().map(|&i| self.takes[i]).collect()
            },
            seconds: self.seconds * keep.len() as f64 / self.len().max(1) as f64,
        }
    }
    /// Each clip's mean log-mel per bin, `[clip][bin]`.
    pub fn clip_means(&self) -> Vec<Vec<f32>> {
        (0..self.len())
            .map(|i| {
                let t = self.frames(i);
                self.log_mels[i]
                    .chunks_exact(t)
                    .map(|row| (row.iter().map(|&v| v as f64).sum::<f64>() / t as f64) as f32)
                    .collect()
            })
            .collect()
    }
    /// Mean and standard deviation of every log-mel value less its clip's `offsets` per bin
    /// (none: the values themselves; BYOL-A normalises by these).
    pub fn value_stats(&self, offsets: &[Vec<f32>]) -> (f32, f32) {
        let values = || {
            (0..self.len()).flat_map(move |i| {
                let t = self.frames(i);
                self.log_mels[i]
                    .iter()
                    .enumerate()
                    .map(move |(k, &v)| v as f64 - offsets.get(i).map_or(0.0, |o| o[k / t] as f64))
            })
        };
        let n = values().count().max(1) as f64;
        let mean = values().sum::<f64>() / n;
        let var = values().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        (mean as f32, (var.sqrt() as f32).max(1e-6))
    }
}

/// One clip's name parts under `label_speaker_take` naming.
fn parse_name(path: &Path) -> Result<(String, String, u32), String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("the file name is not UTF-8")?;
    let parts: Vec<&str> = stem.split('_').collect();
    match parts.as_slice() {
        [label, speaker, take] if !label.is_empty() && !speaker.is_empty() => {
            let take = take.parse::<u32>().map_err(|_| {
                format!("the name {stem:?} should be label_speaker_take with a numeric take")
            })?;
            Ok((label.to_string(), speaker.to_string(), take))
        }
        _ => Err(format!(
            "the name {stem:?} is not label_speaker_take (e.g. 7_jackson_32.wav)"
        )),
    }
}

fn is_wav(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// The WAV files of `dir` with their class folder (sorted by path).
fn list(dir: &Path, naming: AudioNaming) -> Result<Vec<(PathBuf, Option<String>)>, DataError> {
    let read = |d: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).map_err(|e| DataError::io(d, e))? {
            v.push(e.map_err(|e| DataError::io(d, e))?.path());
        }
        v.sort();
        Ok(v)
    };
    if !dir.is_dir() {
        return Err(DataError::format(dir, "no such folder"));
    }
    let mut out = Vec::new();
    match naming {
        AudioNaming::LabelSpeakerTake => out.extend(
            read(dir)?
                .into_iter()
                .filter(|p| is_wav(p))
                .map(|p| (p, None)),
        ),
        AudioNaming::Subfolders => {
            for sub in read(dir)?.into_iter().filter(|p| p.is_dir()) {
                let class = sub
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.extend(
                    read(&sub)?
                        .into_iter()
                        .filter(|p| is_wav(p))
                        .map(|p| (p, Some(class.clone()))),
                );
            }
        }
    }
    Ok(out)
}

/// Reads every clip of `dir` into log-mels; bad clips (unreadable, another sample rate, a name
/// that does not parse) follow `policy`.
pub fn load_audio_folder(
    dir: &Path,
    opts: &AudioFolderOptions,
    policy: BadInputPolicy,
) -> Result<(AudioSet, SkipReport), DataError> {
    opts.mel
        .check(opts.sample_rate)
        .map_err(|m| DataError::format(dir, format!("data.options.mel: {m}")))?;
    let front =
        MelFrontEnd::new(&opts.mel, opts.sample_rate).map_err(|m| DataError::format(dir, m))?;
    let mut report = SkipReport::default();
    struct Read {
        path: PathBuf,
        log_mel: Vec<f32>,
        label: String,
        speaker: Option<String>,
        take: Option<u32>,
        seconds: f64,
    }
    let mut clips = Vec::new();
    for (path, class) in list(dir, opts.naming)? {
        let one = || -> Result<Read, DataError> {
            let (label, speaker, take) = match &class {
                Some(c) => (c.clone(), None, None),
                None => {
                    let (l, s, t) = parse_name(&path).map_err(|m| DataError::format(&path, m))?;
                    (l, Some(s), Some(t))
                }
            };
            let clip = read_wav(&path)?;
            let samples = if clip.sample_rate == opts.sample_rate {
                clip.samples.clone()
            } else if opts.resample {
                super::resample::resample(&clip.samples, clip.sample_rate, opts.sample_rate)
                    .map_err(|m| DataError::format(&path, m))?
            } else {
                return Err(DataError::format(
                    &path,
                    format!(
                        "sampled at {} Hz, the recipe reads {} Hz (data.options.sample_rate; \
                         data.options.resample = true converts it)",
                        clip.sample_rate, opts.sample_rate
                    ),
                ));
            };
            Ok(Read {
                log_mel: front.log_mel(&samples),
                seconds: clip.seconds(),
                path: path.clone(),
                label,
                speaker,
                take,
            })
        };
        match one() {
            Ok(r) => clips.push(r),
            Err(e) => report.handle(policy, e)?,
        }
    }
    if clips.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
            message: format!(
                "no readable .wav clips ({} skipped){}",
                report.skipped,
                if opts.naming == AudioNaming::Subfolders {
                    " in class sub-folders"
                } else {
                    ""
                }
            ),
        });
    }
    let classes: Vec<String> = clips
        .iter()
        .map(|c| c.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let speakers: Vec<String> = clips
        .iter()
        .filter_map(|c| c.speaker.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = |v: &[String], s: &str| v.iter().position(|c| c == s).expect("collected above");
    Ok((
        AudioSet {
            root: dir.to_path_buf(),
            n_mels: opts.mel.n_mels,
            labels: Some(
                clips
                    .iter()
                    .map(|c| index(&classes, &c.label) as i64)
                    .collect(),
            ),
            speaker: clips
                .iter()
                .filter_map(|c| c.speaker.as_deref().map(|s| index(&speakers, s)))
                .collect(),
            takes: clips.iter().filter_map(|c| c.take).collect(),
            seconds: clips.iter().map(|c| c.seconds).sum(),
            paths: clips.iter().map(|c| c.path.clone()).collect(),
            log_mels: clips.into_iter().map(|c| c.log_mel).collect(),
            classes,
            speakers,
        },
        report,
    ))
}

/// Splits by take: clips with take < `test_takes` are the test set (FSDD's official split).
pub fn split_by_take(set: &AudioSet, test_takes: u32) -> Result<(AudioSet, AudioSet), DataError> {
    if set.takes.len() != set.len() {
        return Err(DataError::format(
            &set.root,
            "data.options.test_takes needs label_speaker_take names",
        ));
    }
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..set.len()).partition(|&i| set.takes[i] < test_takes);
    if test.is_empty() || train.is_empty() {
        return Err(DataError::Empty {
            path: set.root.clone(),
            message: format!(
                "test_takes = {test_takes} leaves {} training and {} test clips",
                train.len(),
                test.len()
            ),
        });
    }
    Ok((set.subset(&train), set.subset(&test)))
}

/// `test` with its labels re-indexed into `train`'s classes (folders read apart list their own
/// classes); a test clip of a class the training set lacks is an error naming it.
pub fn align_classes(train: &AudioSet, mut test: AudioSet) -> Result<AudioSet, DataError> {
    if let Some(labels) = test.labels.as_mut() {
        for (i, l) in labels.iter_mut().enumerate() {
            let name = &test.classes[*l as usize];
            *l = train
                .classes
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| {
                    DataError::format(
                        &test.paths[i],
                        format!("class {name:?} is not among the training set's classes"),
                    )
                })? as i64;
        }
    }
    test.classes = train.classes.clone();
    if !test.speaker.is_empty() {
        let mut speakers = train.speakers.clone();
        for s in &test.speakers {
            if !speakers.contains(s) {
                speakers.push(s.clone());
            }
        }
        for k in test.speaker.iter_mut() {
            let name = &test.speakers[*k];
            *k = speakers
                .iter()
                .position(|s| s == name)
                .expect("added above");
        }
        test.speakers = speakers;
    }
    Ok(test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::audio::wav::write_wav_i16;

    fn tone(freq: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn fsdd_names_give_labels_speakers_takes_and_the_official_split() {
        let dir = tempfile::tempdir().unwrap();
        for (label, speaker, take) in [(0, "ann", 0), (0, "bob", 7), (1, "ann", 9), (1, "bob", 3)] {
            let p = dir.path().join(format!("{label}_{speaker}_{take}.wav"));
            write_wav_i16(&p, &tone(300.0 * (label + 1) as f32, 2000), 8000).unwrap();
        }
        std::fs::write(dir.path().join("README.txt"), "not audio").unwrap();
        let (set, skipped) = load_audio_folder(
            dir.path(),
            &AudioFolderOptions::default(),
            BadInputPolicy::Fail,
        )
        .unwrap();
        assert_eq!(skipped.skipped, 0);
        assert_eq!(set.len(), 4);
        assert_eq!(set.classes, vec!["0", "1"]);
        assert_eq!(set.speakers, vec!["ann", "bob"]);
        assert_eq!(set.labels.as_ref().unwrap(), &vec![0, 0, 1, 1]);
        assert_eq!(set.speaker, vec![0, 1, 0, 1]);
        assert_eq!(set.takes, vec![0, 7, 9, 3]);
        assert_eq!(set.frames(0), 2000 / 80 + 1);
        let (train, test) = split_by_take(&set, 5).unwrap();
        assert_eq!(train.takes, vec![7, 9]);
        assert_eq!(test.takes, vec![0, 3]);
        assert_eq!(test.classes, set.classes);
    }

    #[test]
    fn bad_clips_are_named_or_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        write_wav_i16(&dir.path().join("0_ann_1.wav"), &tone(300.0, 900), 8000).unwrap();
        write_wav_i16(&dir.path().join("1_ann_2.wav"), &tone(300.0, 900), 16000).unwrap();
        std::fs::write(dir.path().join("2_ann_3.wav"), b"RIFF....WAVE").unwrap();
        write_wav_i16(
            &dir.path().join("no-underscores.wav"),
            &tone(300.0, 900),
            8000,
        )
        .unwrap();
        let opts = AudioFolderOptions::default();
        let e = load_audio_folder(dir.path(), &opts, BadInputPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1_ann_2.wav") && e.contains("16000 Hz"), "{e}");
        let (set, skipped) = load_audio_folder(dir.path(), &opts, BadInputPolicy::Skip).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.skipped, 3);
        // Asked to, the 16 kHz clip is resampled: same duration, same frame count.
        std::fs::remove_file(dir.path().join("2_ann_3.wav")).unwrap();
        std::fs::remove_file(dir.path().join("no-underscores.wav")).unwrap();
        let resampling = AudioFolderOptions {
            resample: true,
            ..opts
        };
        let (set, _) = load_audio_folder(dir.path(), &resampling, BadInputPolicy::Fail).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.frames(1), 450 / 80 + 1);
        assert!(skipped
            .paths
            .iter()
            .any(|p| p.ends_with("no-underscores.wav")));
        assert!(skipped.paths.iter().any(|p| p.ends_with("2_ann_3.wav")));
    }

    #[test]
    fn class_subfolders_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["dog", "cat"] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
            write_wav_i16(&dir.path().join(c).join("a.wav"), &tone(440.0, 1000), 8000).unwrap();
        }
        let opts = AudioFolderOptions {
            naming: AudioNaming::Subfolders,
            ..Default::default()
        };
        let (set, _) = load_audio_folder(dir.path(), &opts, BadInputPolicy::Fail).unwrap();
        assert_eq!(set.classes, vec!["cat", "dog"]);
        assert!(set.speaker.is_empty());
        let empty = tempfile::tempdir().unwrap();
        let e = load_audio_folder(empty.path(), &opts, BadInputPolicy::Fail).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
    }
}
