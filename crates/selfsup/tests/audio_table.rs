//! Audio through the whole pipeline and `audio-table`'s bookkeeping on synthetic clips: two
//! "digits" (a low and a high tone with a glide) said by three "speakers" (each with their own
//! pitch offset and loudness), ten takes each. TERA pretrains for a few steps; the table holds
//! the method, its random initialisation and both baselines for both splits, reads its
//! finished cells back, and refuses cells made under other settings.
use selfsup::data::audio::wav::write_wav_i16;
use selfsup::error::BadInputPolicy;
use selfsup::recipe::Recipe;
use selfsup::run::RunOptions;
use selfsup::study::audio_table::{format_table, run_audio_table, AudioTableOptions};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn write_clips(dir: &Path) {
    for (s, speaker) in ["ann", "bob", "cy"].iter().enumerate() {
        for digit in 0..2 {
            for take in 0..10 {
                let base = if digit == 0 { 400.0 } else { 1400.0 } + 60.0 * s as f32;
                let n = 2400 + 160 * take;
                let amp = 3000.0 + 2000.0 * s as f32;
                let samples: Vec<i16> = (0..n)
                    .map(|i| {
                        let t = i as f32 / 8000.0;
                        let f = base + 300.0 * t;
                        ((2.0 * std::f32::consts::PI * f * t).sin() * amp) as i16
                    })
                    .collect();
                let p = dir.join(format!("{digit}_{speaker}_{take}.wav"));
                write_wav_i16(&p, &samples, 8000).unwrap();
            }
        }
    }
}

fn recipe(dir: &Path, epochs: u64) -> Recipe {
    let text = format!(
        r#"
name = "tiny-tera"
[data]
format = "audio_folder"
train = {:?}
options = {{ test_takes = 3, frames = 32, mel = {{ n_mels = 16 }} }}
[views.audio]
random_crop = true
[encoder]
kind = "frame_transformer"
dim = 16
depth = 1
heads = 2
[method]
name = "tera"
[train]
epochs = {epochs}
batch_size = 16
optimizer = {{ name = "adamw", lr = 1e-3, weight_decay = 0.0 }}
log_every = 1
[eval]
knn_k = 3
probe_iters = 100
"#,
        dir.display()
    );
    Recipe::from_toml(&text, "tiny-tera", &[]).unwrap()
}

fn options(runs: &Path) -> AudioTableOptions {
    AudioTableOptions {
        seeds: vec![0],
        runs: runs.to_path_buf(),
        run: RunOptions {
            run_dir: None,
            resume: false,
            device: tch::Device::Cpu,
            threads: 1,
            on_bad_input: BadInputPolicy::Fail,
            evaluate: true,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
        },
    }
}

#[test]
fn audio_table_scores_both_splits_and_continues() {
    let clips = tempfile::tempdir().unwrap();
    write_clips(clips.path());
    let runs = tempfile::tempdir().unwrap();
    let r = recipe(clips.path(), 2);
    let mut lines = Vec::new();
    let table = run_audio_table(&[r.clone()], &options(runs.path()), |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(table.speakers, vec!["ann", "bob", "cy"]);
    assert_eq!((table.train_clips, table.test_clips), (42, 18));
    assert_eq!(
        table.rows,
        vec![
            "tiny-tera".to_string(),
            "random init: tiny-tera".into(),
            "raw log-mel".into(),
            "raw log-mel, mean + max over time".into(),
            "MFCC statistics (20 coefficients)".into()
        ]
    );
    assert_eq!(table.cells.len(), 5);
    for c in &table.cells {
        let s = &c.scores;
        assert_eq!(s.per_speaker_linear.len(), 3, "{}", c.row);
        for v in [
            s.official_knn,
            s.official_linear,
            s.speaker_knn,
            s.speaker_linear,
        ] {
            assert!((0.0..=1.0).contains(&v), "{}: {v}", c.row);
        }
    }
    // The tones are far apart: the MFCC baseline separates the two digits in both splits.
    let mfcc = table
        .cells
        .iter()
        .find(|c| c.row.starts_with("MFCC"))
        .unwrap();
    assert!(mfcc.scores.official_linear > 0.9, "{:?}", mfcc.scores);
    assert!(mfcc.scores.speaker_linear > 0.9, "{:?}", mfcc.scores);
    let trained = table.cells.iter().find(|c| c.row == "tiny-tera").unwrap();
    assert!(trained.pretrain_seconds > 0.0);
    assert!(trained
        .run_dir
        .as_ref()
        .unwrap()
        .join("checkpoints")
        .exists());
    let text = format_table(&table);
    assert!(text.contains("| tiny-tera | 1 |"), "{text}");
    assert!(text.contains("ann, bob, cy"), "{text}");

    // Again: every cell is read back, nothing runs.
    lines.clear();
    let again = run_audio_table(&[r.clone()], &options(runs.path()), |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(
        serde_json::to_string(&again.cells).unwrap(),
        serde_json::to_string(&table.cells).unwrap()
    );

    // Other settings under the same folder are refused, naming the cell.
    let e = run_audio_table(&[recipe(clips.path(), 3)], &options(runs.path()), |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}
