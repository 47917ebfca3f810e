//! `selfsup audio-table`: audio recipes (one per method), each pretrained once per seed, their
//! frozen clip representations scored by kNN and a linear probe on two splits:
//!
//! * the data's own split (FSDD's official one: takes 0–4 of every speaker are the test set);
//! * leave one speaker out: each speaker in turn is the test set and the probe is fitted on the
//!   other speakers' clips; the mean over speakers is the speaker-independent figure.
//!
//! Beside them, baselines measured by the same code: MFCC statistics (mean and deviation of
//! each coefficient over the clip's frames), the raw log-mel input, and each recipe's encoder
//! at its random initialisation. The pretraining sees the training split's clips (all speakers,
//! no labels); in the speaker split the held-out speaker's labels are never used, but their
//! unlabelled training-split clips were among the pretraining data.
//!
//! The table lives in `<runs>/table.json`, rewritten after every cell; running the command
//! again continues it (finished cells are reused when their recipe is unchanged, an interrupted
//! pretraining continues from its checkpoint).
use crate::data::audio::mel::mfcc;
use crate::data::audio::AudioSet;
use crate::error::BadInputPolicy;
use crate::recipe::{EvalConfig, Recipe};
use crate::run::folder::atomic_write;
use crate::run::pipeline::{self, Protocol};
use crate::run::{commands, RunOptions};
use crate::stats::mean_std;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Coefficients of the MFCC baseline (the first 20, a common choice for speech).
pub const N_MFCC: usize = 20;

/// The figures of one representation (fractions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    pub official_knn: f64,
    pub official_linear: f64,
    /// Means over the held-out speakers.
    pub speaker_knn: f64,
    pub speaker_linear: f64,
    /// Linear-probe accuracy with each speaker held out, in the order of `AudioTable::speakers`.
    pub per_speaker_linear: Vec<f64>,
    pub dim: i64,
}

/// One row's result at one seed (seed-independent baselines have one, seed 0).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub row: String,
    pub seed: u64,
    pub fingerprint: String,
    pub scores: Scores,
    pub pretrain_seconds: f64,
    pub eval_seconds: f64,
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AudioTable {
    pub speakers: Vec<String>,
    pub train_clips: usize,
    pub test_clips: usize,
    pub seeds: Vec<u64>,
    /// Row names in order: the recipes, then the baselines.
    pub rows: Vec<String>,
    pub cells: Vec<Cell>,
}

pub struct AudioTableOptions {
    pub seeds: Vec<u64>,
    /// `table.json`, `table.md` and one run folder per recipe and seed, `<runs>/<name>/seed<k>`.
    pub runs: PathBuf,
    pub run: RunOptions,
}

/// Clip labels, speakers and the official split of the data, in embedding order (training
/// clips first).
struct Clips {
    labels: Tensor,
    speakers: Vec<usize>,
    n_train: usize,
    n_classes: i64,
}

fn clips(train: &AudioSet, test: &AudioSet) -> Result<Clips> {
    let (Some(a), Some(b)) = (&train.labels, &test.labels) else {
        bail!("the audio table needs labelled clips");
    };
    if train.speaker.len() != train.len() || test.speaker.len() != test.len() {
        bail!(
            "{}: the speaker split needs speakers (label_speaker_take names)",
            train.root.display()
        );
    }
    let labels: Vec<i64> = a.iter().chain(b).copied().collect();
    Ok(Clips {
        labels: Tensor::from_slice(&labels),
        speakers: train.speaker.iter().chain(&test.speaker).copied().collect(),
        n_train: train.len(),
        n_classes: train.classes.len() as i64,
    })
}

/// MFCC statistics of each clip: mean and standard deviation of each coefficient over its frames.
pub fn mfcc_stats(set: &AudioSet, n_mfcc: usize) -> Tensor {
    let rows: Vec<f32> = set
        .log_mels
        .iter()
        .flat_map(|lm| {
            let c = mfcc(lm, set.n_mels, n_mfcc);
            let frames = lm.len() / set.n_mels;
            let mut out = Vec::with_capacity(2 * n_mfcc);
            for k in 0..n_mfcc {
                let v: Vec<f64> = c[k * frames..(k + 1) * frames]
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                let (m, s) = mean_std(&v);
                out.push(m as f32);
                out.push(if s.is_finite() { s as f32 } else { 0.0 });
            }
            out
        })
        .collect();
    Tensor::from_slice(&rows).view([set.len() as i64, 2 * n_mfcc as i64])
}

/// Flattened `[1, mels, frames]` inputs → each mel bin's mean and maximum over time
/// (`[N, 2·mels]`): the raw input pooled as the encoders pool their outputs.
fn pooled_over_time(raw: &Tensor, n_mels: i64) -> Tensor {
    let n = raw.size()[0];
    let x = raw.view([n, n_mels, -1]);
    Tensor::cat(&[x.mean_dim(2, false, Kind::Float), x.amax(2, false)], 1)
}

/// kNN and the linear probe on the official split and with each speaker held out.
fn score(x: &Tensor, features: &str, c: &Clips, n_speakers: usize, eval: &EvalConfig) -> Scores {
    let protocols = [Protocol::Knn, Protocol::Linear];
    let pick = |idx: &[usize]| {
        let i = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        (x.index_select(0, &i), c.labels.index_select(0, &i))
    };
    let run = |tr: &[usize], te: &[usize]| {
        let ((a, ya), (b, yb)) = (pick(tr), pick(te));
        pipeline::evaluate_features(features, &a, &ya, &b, &yb, c.n_classes, eval, &protocols)
    };
    let n = c.speakers.len();
    let official = run(
        &(0..c.n_train).collect::<Vec<_>>(),
        &(c.n_train..n).collect::<Vec<_>>(),
    );
    let mut knn = Vec::new();
    let mut linear = Vec::new();
    for s in 0..n_speakers {
        let (te, tr): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| c.speakers[i] == s);
        if te.is_empty() {
            continue;
        }
        let r = run(&tr, &te);
        knn.push(Protocol::Knn.accuracy_in(&r));
        linear.push(Protocol::Linear.accuracy_in(&r));
    }
    Scores {
        official_knn: Protocol::Knn.accuracy_in(&official),
        official_linear: Protocol::Linear.accuracy_in(&official),
        speaker_knn: mean_std(&knn).0,
        speaker_linear: mean_std(&linear).0,
        per_speaker_linear: linear,
        dim: x.size()[1],
    }
}

/// A method's representations of every clip (training split first), in evaluation mode.
fn embed_all(
    method: &dyn crate::methods::Method,
    p: &pipeline::Prepared,
    batch: usize,
    device: Device,
) -> Result<Tensor> {
    let test = p
        .test
        .as_ref()
        .context("the audio table needs a test split")?;
    let a = pipeline::embed(method, p.train.as_ref(), p.train.len(), batch, device)?;
    let b = pipeline::embed(method, test.as_ref(), test.len(), batch, device)?;
    Ok(Tensor::cat(&[a, b], 0).to_kind(Kind::Float))
}

/// The data of `recipe` as its runs read it, read into `slot` on first use.
fn prepared<'a>(
    slot: &'a mut Option<pipeline::Prepared>,
    recipe: &Recipe,
) -> Result<&'a pipeline::Prepared> {
    if slot.is_none() {
        *slot = Some(pipeline::prepare_data(
            recipe,
            BadInputPolicy::Fail,
            None,
            None,
        )?);
    }
    Ok(slot.as_ref().expect("read above"))
}

/// Runs (or reads back) every cell, saving the table after each.
pub fn run_audio_table(
    recipes: &[Recipe],
    opts: &AudioTableOptions,
    mut log: impl FnMut(&str),
) -> Result<AudioTable> {
    let Some(first) = recipes.first() else {
        bail!("give at least one audio recipe");
    };
    for r in recipes {
        if !r.data.is_audio() {
            bail!(
                "{}: selfsup audio-table runs audio recipes (data.format = \"audio_folder\")",
                r.name
            );
        }
        if r.data != first.data {
            bail!(
                "{} and {} read different data; the table compares methods on the same clips",
                first.name,
                r.name
            );
        }
    }
    std::fs::create_dir_all(&opts.runs).with_context(|| format!("{}", opts.runs.display()))?;
    let state = opts.runs.join("table.json");
    let mut table: AudioTable = if state.exists() {
        let text = std::fs::read_to_string(&state)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a table of `selfsup audio-table`", state.display()))?
    } else {
        AudioTable::default()
    };
    let mut data_recipe = first.clone();
    commands::absolutise(&mut data_recipe.data);
    let (train, test, _) = pipeline::audio_sets(&data_recipe.data, BadInputPolicy::Fail)?;
    let test = test
        .context("the audio table needs a test split (data.options.test_takes or a test folder)")?;
    let c = clips(&train, &test)?;
    table.speakers = train.speakers.clone();
    table.train_clips = train.len();
    table.test_clips = test.len();
    table.seeds = opts.seeds.clone();
    table.rows = recipes.iter().map(|r| r.name.clone()).collect();
    table
        .rows
        .extend(recipes.iter().map(|r| format!("random init: {}", r.name)));
    table.rows.extend([
        "raw log-mel".to_string(),
        "raw log-mel, mean + max over time".to_string(),
        format!("MFCC statistics ({N_MFCC} coefficients)"),
    ]);
    let n_speakers = table.speakers.len();
    let eval = &first.eval;
    let device = opts.run.device;

    // A cell is done when the table holds it with the same fingerprint; another fingerprint
    // means the recipe changed, which a table must not mix.
    let done = |table: &AudioTable, row: &str, seed: u64, fingerprint: &str| -> Result<bool> {
        let saved = table.cells.iter().find(|c| c.row == row && c.seed == seed);
        super::table_file::cell_done(
            saved.map(|c| c.fingerprint.as_str()),
            &state,
            row,
            seed,
            fingerprint,
        )
    };
    let save =
        |table: &AudioTable| atomic_write(&state, serde_json::to_string_pretty(table)?.as_bytes());

    // Seed-independent baselines first (seconds to minutes), each computed once.
    let baseline_fp = format!("{}-{}", first.results_fingerprint(), N_MFCC);
    let names: Vec<String> = table.rows[2 * recipes.len()..].to_vec();
    // The plain inputs of every recipe's clips (the recipes read the same data, checked above),
    // read once for the raw baselines and the untrained encoders.
    let mut plain: Option<pipeline::Prepared> = None;
    let mut raw: Option<Tensor> = None;
    for (b, name) in names.iter().enumerate() {
        if done(&table, name, 0, &baseline_fp)? {
            continue;
        }
        let t = Instant::now();
        let x = if b == 2 {
            Tensor::cat(&[mfcc_stats(&train, N_MFCC), mfcc_stats(&test, N_MFCC)], 0)
        } else {
            if raw.is_none() {
                let p = prepared(&mut plain, &data_recipe)?;
                let te = p.test.as_ref().context("a test split")?;
                raw = Some(Tensor::cat(
                    &[
                        pipeline::raw_features(p.train.as_ref(), p.train.len())?,
                        pipeline::raw_features(te.as_ref(), te.len())?,
                    ],
                    0,
                ));
            }
            let r = raw.as_ref().expect("read above");
            if b == 0 {
                r.shallow_clone()
            } else {
                pooled_over_time(r, train.n_mels as i64)
            }
        };
        let scores = score(&x, "raw", &c, n_speakers, eval);
        log(&format!(
            "{name}: official linear {:.2} %, speakers linear {:.2} %",
            100.0 * scores.official_linear,
            100.0 * scores.speaker_linear
        ));
        table.cells.push(Cell {
            row: name.clone(),
            seed: 0,
            fingerprint: baseline_fp.clone(),
            scores,
            pretrain_seconds: 0.0,
            eval_seconds: t.elapsed().as_secs_f64(),
            run_dir: None,
        });
        save(&table)?;
    }

    for &seed in &opts.seeds {
        for r in recipes {
            let mut at = r.clone();
            at.seed = seed;
            at.seeds = None;
            commands::absolutise(&mut at.data);
            let fingerprint = at.results_fingerprint();
            // The untrained encoder of this recipe at this seed.
            let random_name = format!("random init: {}", r.name);
            if !done(&table, &random_name, seed, &fingerprint)? {
                let t = Instant::now();
                let p = prepared(&mut plain, &data_recipe)?;
                let model = pipeline::build_model(&at, &p.train.sample_shape(), None, device)?;
                let x = embed_all(model.method.as_ref(), &p, eval.batch, device)?;
                let scores = score(&x, "learned", &c, n_speakers, eval);
                log(&format!(
                    "{random_name} seed {seed}: official linear {:.2} %, speakers linear {:.2} %",
                    100.0 * scores.official_linear,
                    100.0 * scores.speaker_linear
                ));
                table.cells.push(Cell {
                    row: random_name,
                    seed,
                    fingerprint: fingerprint.clone(),
                    scores,
                    pretrain_seconds: 0.0,
                    eval_seconds: t.elapsed().as_secs_f64(),
                    run_dir: None,
                });
                save(&table)?;
            }
            if done(&table, &r.name, seed, &fingerprint)? {
                continue;
            }
            let (report, loaded, run_dir) =
                super::seed_run::pretrain_and_load(&at, &r.name, seed, &opts.runs, &opts.run)?;
            let t = Instant::now();
            let x = embed_all(
                loaded.model.method.as_ref(),
                &loaded.prepared,
                eval.batch,
                device,
            )?;
            let scores = score(&x, "learned", &c, n_speakers, eval);
            log(&format!(
                "{} seed {seed}: official kNN {:.2} % linear {:.2} %, speakers kNN {:.2} % linear {:.2} % (pretraining {:.0} s)",
                r.name,
                100.0 * scores.official_knn,
                100.0 * scores.official_linear,
                100.0 * scores.speaker_knn,
                100.0 * scores.speaker_linear,
                report.summary.seconds
            ));
            table.cells.push(Cell {
                row: r.name.clone(),
                seed,
                fingerprint,
                scores,
                pretrain_seconds: report.summary.seconds,
                eval_seconds: t.elapsed().as_secs_f64(),
                run_dir: Some(run_dir),
            });
            save(&table)?;
        }
    }
    Ok(table)
}

/// The table in Markdown: one line per row, mean ± std over seeds.
pub fn format_table(t: &AudioTable) -> String {
    let mut out = format!(
        "FSDD-style audio table: {} training / {} test clips, {} speakers ({}); accuracy in %, mean ± std over seeds\n\n\
         | representation | seeds | official kNN | official linear | speaker-out kNN | speaker-out linear | pretraining s |\n\
         |---|---|---|---|---|---|---|\n",
        t.train_clips,
        t.test_clips,
        t.speakers.len(),
        t.speakers.join(", ")
    );
    for row in &t.rows {
        let cells: Vec<&Cell> = t.cells.iter().filter(|c| &c.row == row).collect();
        let col = |f: fn(&Scores) -> f64| {
            super::percent_cell(&cells.iter().map(|c| f(&c.scores)).collect::<Vec<_>>())
        };
        let secs: Vec<f64> = cells.iter().map(|c| c.pretrain_seconds).collect();
        out += &format!(
            "| {row} | {} | {} | {} | {} | {} | {} |\n",
            cells.len(),
            col(|s| s.official_knn),
            col(|s| s.official_linear),
            col(|s| s.speaker_knn),
            col(|s| s.speaker_linear),
            if secs.iter().all(|&s| s == 0.0) {
                "—".into()
            } else {
                format!("{:.0}", mean_std(&secs).0)
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfcc_statistics_are_mean_and_deviation_per_coefficient() {
        let frames = 4;
        // Two mel bins, constant over time in clip 0; alternating in clip 1.
        let set = AudioSet {
            root: "x".into(),
            paths: vec!["a".into(), "b".into()],
            log_mels: vec![
                vec![1.0; 2 * frames],
                vec![0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0],
            ],
            n_mels: 2,
            labels: Some(vec![0, 1]),
            classes: vec!["a".into(), "b".into()],
            speaker: vec![0, 0],
            speakers: vec!["s".into()],
            takes: vec![0, 0],
            seconds: 0.0,
        };
        let m = mfcc_stats(&set, 2);
        assert_eq!(m.size(), vec![2, 4]);
        let v: Vec<f32> = Vec::try_from(m.flatten(0, -1)).unwrap();
        // Clip 0: constant frames, so every deviation is 0.
        assert_eq!(v[1], 0.0);
        assert_eq!(v[3], 0.0);
        // Clip 1: c0 of frames [0,0] is 0, of [2,2] is 2·10/ln10·√2; its mean is half that.
        let high = 2.0 * 10.0 / std::f64::consts::LN_10 * 2f64.sqrt();
        assert!((v[4] as f64 - high / 2.0).abs() < 1e-3, "{}", v[4]);
        assert!(v[5] > 0.0);
    }
}
