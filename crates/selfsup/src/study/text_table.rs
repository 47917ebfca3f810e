//! `selfsup text-table`: text recipes (one per method) pretrained at one equal compute budget,
//! once per seed, and scored three ways:
//!
//! * SST-2, SentEval-style: a logistic-regression probe on the frozen sentence representations,
//!   fitted on the training sentences and scored on the dev set (GLUE's test labels are hidden);
//! * SST-2 fine-tuned: encoder and a linear head trained together on the training sentences,
//!   scored on dev;
//! * SMS spam, macro-F1 with 1 %, 10 % and 100 % of the training labels (a stratified subset per
//!   seed), by a probe on the frozen representations; the messages are split once, stratified,
//!   80 % train / 20 % test (the collection has no official split).
//!
//! Beside them, by the same code: TF-IDF features (word n-grams; word and character n-grams)
//! with logistic regression, and each recipe's encoder at its random initialisation with the
//! same tokenizer (its fine-tuning is training from scratch).
//!
//! The budget: with `budget_minutes`, every recipe first runs a short calibration (its first
//! `CALIBRATION_STEPS` steps, timed) and then pretrains for as many steps as fit the budget at
//! that speed, so each method gets the same wall-clock minutes on this machine rather than the
//! same number of steps — a method with cheaper steps (RTS's binary head) takes more of them.
//!
//! The table lives in `<runs>/table.json`, rewritten after every cell; running the command
//! again continues it.
use crate::data::text::{TextFile, TextFormat, TextSet};
use crate::error::BadInputPolicy;
use crate::eval::f1::macro_f1;
use crate::eval::fine_tune::{fine_tune, FineTuneConfig};
use crate::eval::label_fraction::stratified_subset;
use crate::eval::linear_probe::{fit_linear_probe, LinearProbeConfig};
use crate::eval::tfidf::{SparseLogistic, Tfidf, TfidfConfig};
use crate::recipe::{DataConfig, Recipe};
use crate::run::folder::atomic_write;
use crate::run::pipeline::{self, Prepared};
use crate::run::{commands, RunOptions};
use crate::stats::mean_std;
use crate::views::text::TextViews;
use crate::views::ViewSource;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Steps of the timed calibration run of each recipe.
pub const CALIBRATION_STEPS: u64 = 60;
/// The label fractions of the SMS columns.
pub const SMS_FRACTIONS: [f64; 3] = [0.01, 0.1, 1.0];

/// The figures of one representation (fractions; NaN where not measured).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    pub sst2_probe: f64,
    pub sst2_fine_tuned: f64,
    /// Macro-F1 at [`SMS_FRACTIONS`].
    pub sms_f1: Vec<f64>,
    pub dim: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub row: String,
    pub seed: u64,
    pub fingerprint: String,
    pub scores: Scores,
    pub pretrain_steps: u64,
    pub pretrain_seconds: f64,
    pub eval_seconds: f64,
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TextTable {
    pub seeds: Vec<u64>,
    pub rows: Vec<String>,
    pub cells: Vec<Cell>,
    pub budget_minutes: Option<f64>,
    /// Seconds per pretraining step measured by each recipe's calibration.
    pub step_seconds: Vec<(String, f64)>,
    pub pretraining_texts: usize,
    pub sst2_train: usize,
    pub sst2_dev: usize,
    pub sms_train: usize,
    pub sms_test: usize,
    pub fine_tune: String,
}

pub struct TextTableOptions {
    pub seeds: Vec<u64>,
    pub runs: PathBuf,
    pub run: RunOptions,
    /// Equal wall-clock pretraining per recipe; none: each recipe's own `train` settings.
    pub budget_minutes: Option<f64>,
    pub fine_tune: FineTuneConfig,
    /// The SMS spam collection (`label<TAB>message` lines).
    pub sms: PathBuf,
}

/// The SMS spam collection in the registry's data root.
pub fn default_sms_path() -> Result<PathBuf> {
    let reg = crate::datasets::Registry::builtin();
    let d = reg.get("sms-spam").context("sms-spam is in the registry")?;
    let dir = crate::datasets::DataRoot::from_env().dir_of(d);
    crate::datasets::resolve::DatasetUse {
        dataset: d.clone(),
        dir: dir.clone(),
    }
    .require()?;
    Ok(dir.join("SMSSpamCollection"))
}

/// SMS messages split once, stratified: 80 % train, 20 % test.
struct Sms {
    train: TextSet,
    test: TextSet,
}

fn read_sms(path: &std::path::Path) -> Result<Sms> {
    let file = TextFile {
        text: crate::data::text::Column::Index(1),
        label: Some(crate::data::text::Column::Index(0)),
        ..TextFile::new(path, TextFormat::Tsv)
    };
    let d = crate::data::text::load_text(&file, None, &[], BadInputPolicy::Fail)?;
    let labels = d.train.labels.clone().context("SMS labels")?;
    let train_idx = stratified_subset(&labels, 0.8, 0).map_err(anyhow::Error::msg)?;
    let mut is_train = vec![false; labels.len()];
    train_idx.iter().for_each(|&i| is_train[i] = true);
    let test_idx: Vec<usize> = (0..labels.len()).filter(|&i| !is_train[i]).collect();
    Ok(Sms {
        train: d.train.subset(&train_idx),
        test: d.train.subset(&test_idx),
    })
}

/// Macro-F1 of a probe fitted on a stratified `fraction` of the training rows (subset drawn
/// with `seed`).
fn sms_scores(
    train: &Tensor,
    ytr: &[i64],
    test: &Tensor,
    yte: &[i64],
    seed: u64,
) -> Result<Vec<f64>> {
    let cfg = LinearProbeConfig::default();
    SMS_FRACTIONS
        .iter()
        .map(|&f| {
            let idx = stratified_subset(ytr, f, seed).map_err(anyhow::Error::msg)?;
            let i = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let y = Tensor::from_slice(ytr).index_select(0, &i);
            let probe = fit_linear_probe(&train.index_select(0, &i), &y, 2, &cfg);
            let pred: Vec<i64> = Vec::try_from(probe.predict(test))?;
            Ok(macro_f1(&pred, yte, 2))
        })
        .collect()
}

/// The TF-IDF baseline's scores at `seed` (the SMS subsets depend on it; the SST-2 accuracy,
/// which does not, is computed once and kept in `sst_accuracy`).
fn tfidf_scores(
    cfg: &TfidfConfig,
    sst: &(TextSet, TextSet),
    sms: &Sms,
    seed: u64,
    sst_accuracy: &mut Option<f64>,
    fine_tune_labels: f64,
) -> Result<Scores> {
    let fit = |train: &TextSet, test: &TextSet, idx: &[usize]| -> Result<Vec<i64>> {
        let texts: Vec<String> = idx.iter().map(|&i| train.texts[i].clone()).collect();
        let y: Vec<i64> = idx
            .iter()
            .map(|&i| train.labels.as_ref().expect("labelled")[i])
            .collect();
        let t = Tfidf::fit(&texts, cfg);
        // scikit-learn's default C = 1 on the summed loss: wd = 1 / N on the mean.
        let m = SparseLogistic::fit(
            &t.transform(&texts),
            t.n_features(),
            &y,
            2,
            1.0 / texts.len() as f64,
            500,
        );
        Ok(m.predict(&t.transform(&test.texts)))
    };
    let acc = match *sst_accuracy {
        Some(a) => a,
        None => {
            let pred = fit(&sst.0, &sst.1, &(0..sst.0.len()).collect::<Vec<_>>())?;
            let yd = sst.1.labels.as_ref().context("dev labels")?;
            let a = pred.iter().zip(yd).filter(|(a, b)| a == b).count() as f64 / yd.len() as f64;
            *sst_accuracy = Some(a);
            a
        }
    };
    // The fine-tuning column: TF-IDF fitted on the same labelled subset as the fine-tuning.
    let acc_subset = if fine_tune_labels < 1.0 {
        let ys = sst.0.labels.as_ref().context("labels")?;
        let idx = stratified_subset(ys, fine_tune_labels, seed).map_err(anyhow::Error::msg)?;
        let pred = fit(&sst.0, &sst.1, &idx)?;
        let yd = sst.1.labels.as_ref().context("dev labels")?;
        pred.iter().zip(yd).filter(|(a, b)| a == b).count() as f64 / yd.len() as f64
    } else {
        acc
    };
    let ytr = sms.train.labels.as_ref().context("labels")?;
    let yte = sms.test.labels.as_ref().context("labels")?;
    let mut f1 = Vec::new();
    for &f in &SMS_FRACTIONS {
        let idx = stratified_subset(ytr, f, seed).map_err(anyhow::Error::msg)?;
        f1.push(macro_f1(&fit(&sms.train, &sms.test, &idx)?, yte, 2));
    }
    Ok(Scores {
        sst2_probe: acc,
        sst2_fine_tuned: acc_subset,
        sms_f1: f1,
        dim: 0,
    })
}

/// Frozen-representation scores of `method` with the tokenizer its data was encoded with.
fn frozen_scores(
    method: &dyn crate::methods::Method,
    p: &Prepared,
    sst: &(TextSet, TextSet),
    sms: &Sms,
    seed: u64,
    recipe: &Recipe,
    device: Device,
) -> Result<Scores> {
    let batch = recipe.eval.batch;
    let tok = p.tokenizer.as_ref().context("text data has a tokenizer")?;
    // Embedded shortest first (little padding per batch), rows put back in order after.
    let embed = |s: &TextSet| -> Result<Tensor> {
        let v = TextViews::from_set(s, tok)?;
        let order = v.by_length();
        let x = pipeline::embed(method, &v.reordered(&order), v.len(), batch, device)?
            .to_kind(Kind::Float);
        let mut back = vec![0i64; order.len()];
        order
            .iter()
            .enumerate()
            .for_each(|(k, &i)| back[i] = k as i64);
        Ok(x.index_select(0, &Tensor::from_slice(&back)))
    };
    let (a, b) = (embed(&sst.0)?, embed(&sst.1)?);
    let labels = |s: &TextSet| -> Result<Tensor> {
        Ok(Tensor::from_slice(s.labels.as_deref().context("labelled")?))
    };
    let (ya, yb) = (labels(&sst.0)?, labels(&sst.1)?);
    let probe = fit_linear_probe(&a, &ya, 2, &LinearProbeConfig::default());
    let (xs, xt) = (embed(&sms.train)?, embed(&sms.test)?);
    Ok(Scores {
        sst2_probe: probe.accuracy(&b, &yb),
        sst2_fine_tuned: f64::NAN,
        sms_f1: sms_scores(
            &xs,
            sms.train.labels.as_deref().context("labels")?,
            &xt,
            sms.test.labels.as_deref().context("labels")?,
            seed,
        )?,
        dim: a.size()[1],
    })
}

/// Fine-tunes the model (in place) on SST-2's training sentences; accuracy on dev.
fn fine_tuned(
    model: &pipeline::Model,
    p: &Prepared,
    cfg: &FineTuneConfig,
    seed: u64,
    device: Device,
) -> Result<f64> {
    let test = p.test.as_ref().context("a dev set")?;
    let cfg = FineTuneConfig {
        seed,
        ..cfg.clone()
    };
    let r = fine_tune(
        model.method.encoder(),
        &model.vs,
        p.train.clone(),
        test.as_ref(),
        test.len(),
        2,
        &cfg,
        device,
    )?;
    Ok(r.test_accuracy)
}

/// Points a text recipe at a saved tokenizer.
fn with_tokenizer(recipe: &mut Recipe, file: &std::path::Path) {
    if let DataConfig::Text { tokenizer, .. } = &mut recipe.data {
        tokenizer.file = Some(file.to_path_buf());
    }
}

/// Runs (or reads back) every cell, saving the table after each.
pub fn run_text_table(
    recipes: &[Recipe],
    opts: &TextTableOptions,
    mut log: impl FnMut(&str),
) -> Result<TextTable> {
    let Some(first) = recipes.first() else {
        bail!("give at least one text recipe");
    };
    for r in recipes {
        if !matches!(r.data, DataConfig::Text { .. }) {
            bail!(
                "{}: selfsup text-table runs text recipes (data.format = \"text\")",
                r.name
            );
        }
        if r.data != first.data {
            bail!(
                "{} and {} read different data; the table compares methods on the same text",
                first.name,
                r.name
            );
        }
    }
    std::fs::create_dir_all(&opts.runs).with_context(|| format!("{}", opts.runs.display()))?;
    let state = opts.runs.join("table.json");
    let mut table: TextTable = if state.exists() {
        serde_json::from_str(&std::fs::read_to_string(&state)?)
            .with_context(|| format!("{}: not a table of `selfsup text-table`", state.display()))?
    } else {
        TextTable::default()
    };
    let device = opts.run.device;
    let mut data_recipe = first.clone();
    commands::absolutise(&mut data_recipe.data);
    // One tokenizer for every run and baseline of the table, trained once and saved (training
    // one is not bit-reproducible from one training to the next).
    let tokenizer = opts.runs.join("tokenizer.json");
    let plain = if tokenizer.exists() {
        with_tokenizer(&mut data_recipe, &tokenizer);
        pipeline::prepare_data(&data_recipe, BadInputPolicy::Fail, None, None)?
    } else {
        let p = pipeline::prepare_data(&data_recipe, BadInputPolicy::Fail, None, None)?;
        p.tokenizer
            .as_ref()
            .context("text data has a tokenizer")?
            .save(&tokenizer)?;
        with_tokenizer(&mut data_recipe, &tokenizer);
        p
    };
    let sms = read_sms(&opts.sms)?;
    let DataConfig::Text { train, test, .. } = &data_recipe.data else {
        unreachable!("checked above")
    };
    let test = test
        .as_ref()
        .context("the text table needs SST-2's dev set as data.test")?;
    let sst_sets = {
        let d = crate::data::text::load_text(train, Some(test), &[], BadInputPolicy::Fail)?;
        (d.train, d.test.context("dev")?)
    };
    table.seeds = opts.seeds.clone();
    table.budget_minutes = opts.budget_minutes;
    table.pretraining_texts = plain.pretraining().len();
    table.sst2_train = sst_sets.0.len();
    table.sst2_dev = sst_sets.1.len();
    table.sms_train = sms.train.len();
    table.sms_test = sms.test.len();
    let ft = &opts.fine_tune;
    table.fine_tune = format!(
        "{:.0} % of SST-2's training labels (stratified, per seed), AdamW lr {} wd {}, {} epoch(s), batch {}, {}; \
         TF-IDF's fine-tuned column is its classifier fitted on the same labels",
        100.0 * ft.label_fraction,
        ft.lr,
        ft.weight_decay,
        ft.epochs,
        ft.batch,
        if ft.cosine { "cosine decay" } else { "constant lr" }
    );
    let tfidf = [TfidfConfig::words(), TfidfConfig::words_and_chars()];
    // One random-initialisation row per distinct encoder: recipes with the same encoder and
    // seed start from the same weights (the encoder is built first), so one row stands for all.
    let mut random_of: Vec<String> = Vec::new();
    let mut random_rows: Vec<String> = Vec::new();
    for r in recipes {
        let same = recipes
            .iter()
            .position(|q| q.encoder == r.encoder)
            .expect("itself");
        let row = format!(
            "random init: {} (as in {})",
            r.encoder.kind(),
            recipes[same].name
        );
        if !random_rows.contains(&row) {
            random_rows.push(row.clone());
        }
        random_of.push(row);
    }
    table.rows = recipes.iter().map(|r| r.name.clone()).collect();
    table.rows.extend(random_rows.iter().cloned());
    table.rows.extend(tfidf.iter().map(|c| c.describe()));
    let n_model_rows = recipes.len() + random_rows.len();
    let mut tfidf_sst: Vec<Option<f64>> = vec![None; tfidf.len()];

    let done = |table: &TextTable, row: &str, seed: u64, fingerprint: &str| -> Result<bool> {
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
        |table: &TextTable| atomic_write(&state, serde_json::to_string_pretty(table)?.as_bytes());
    let ft_fp = format!("{:?}", opts.fine_tune);

    // Equal budget: each recipe's pace, measured once.
    let mut steps_for: Vec<Option<u64>> = vec![None; recipes.len()];
    if let Some(minutes) = opts.budget_minutes {
        for (k, r) in recipes.iter().enumerate() {
            let secs = match table.step_seconds.iter().find(|(n, _)| n == &r.name) {
                Some((_, s)) => *s,
                None => {
                    let mut at = r.clone();
                    commands::absolutise(&mut at.data);
                    with_tokenizer(&mut at, &tokenizer);
                    at.train.epochs = 0;
                    at.train.steps = Some(10 * CALIBRATION_STEPS);
                    at.train.max_steps = Some(CALIBRATION_STEPS);
                    let dir = opts.runs.join("calibration").join(&r.name);
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)?;
                    }
                    let mut run = opts.run.clone();
                    run.run_dir = Some(dir);
                    run.resume = false;
                    run.evaluate = false;
                    let rep = commands::pretrain_recipe(at, &run)?;
                    let s = rep.summary.seconds / rep.summary.steps.max(1) as f64;
                    log(&format!(
                        "{}: {:.3} s per step (calibration, {} steps)",
                        r.name, s, rep.summary.steps
                    ));
                    table.step_seconds.push((r.name.clone(), s));
                    save(&table)?;
                    s
                }
            };
            steps_for[k] = Some(((minutes * 60.0) / secs).floor().max(1.0) as u64);
        }
    }

    for &seed in &opts.seeds {
        for (k, c) in tfidf.iter().enumerate() {
            let name = &table.rows[n_model_rows + k];
            let fp = format!("{}-{:?}", first.results_fingerprint(), c);
            if done(&table, name, seed, &fp)? {
                continue;
            }
            let t = Instant::now();
            let scores = tfidf_scores(
                c,
                &sst_sets,
                &sms,
                seed,
                &mut tfidf_sst[k],
                opts.fine_tune.label_fraction,
            )?;
            log(&format!(
                "{name} seed {seed}: SST-2 {:.2} %, SMS F1 {:?}",
                100.0 * scores.sst2_probe,
                scores.sms_f1
            ));
            table.cells.push(Cell {
                row: name.clone(),
                seed,
                fingerprint: fp,
                scores,
                pretrain_steps: 0,
                pretrain_seconds: 0.0,
                eval_seconds: t.elapsed().as_secs_f64(),
                run_dir: None,
            });
            save(&table)?;
        }
        for (k, r) in recipes.iter().enumerate() {
            let mut at = r.clone();
            at.seed = seed;
            at.seeds = None;
            commands::absolutise(&mut at.data);
            with_tokenizer(&mut at, &tokenizer);
            if let Some(s) = steps_for[k] {
                at.train.epochs = 0;
                at.train.steps = Some(s);
                at.train.max_steps = None;
            }
            let fingerprint = format!("{}-{ft_fp}", at.results_fingerprint());
            let random_fp = format!(
                "{:?}-{}-{seed}-{ft_fp}",
                at.encoder,
                first.results_fingerprint()
            );
            let random_name = random_of[k].clone();
            if !done(&table, &random_name, seed, &random_fp)? {
                let t = Instant::now();
                let model = pipeline::build_model(&at, &plain.train.sample_shape(), None, device)?;
                let mut scores = frozen_scores(
                    model.method.as_ref(),
                    &plain,
                    &sst_sets,
                    &sms,
                    seed,
                    &at,
                    device,
                )?;
                scores.sst2_fine_tuned = fine_tuned(&model, &plain, &opts.fine_tune, seed, device)?;
                log(&format!(
                    "{random_name} seed {seed}: SST-2 probe {:.2} %, from scratch {:.2} %, SMS F1 {:?}",
                    100.0 * scores.sst2_probe,
                    100.0 * scores.sst2_fine_tuned,
                    scores.sms_f1
                ));
                table.cells.push(Cell {
                    row: random_name,
                    seed,
                    fingerprint: random_fp,
                    scores,
                    pretrain_steps: 0,
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
            let mut scores = frozen_scores(
                loaded.model.method.as_ref(),
                &loaded.prepared,
                &sst_sets,
                &sms,
                seed,
                &at,
                device,
            )?;
            scores.sst2_fine_tuned = fine_tuned(
                &loaded.model,
                &loaded.prepared,
                &opts.fine_tune,
                seed,
                device,
            )?;
            log(&format!(
                "{} seed {seed}: SST-2 probe {:.2} %, fine-tuned {:.2} %, SMS F1 {:?} ({} steps, {:.0} s)",
                r.name,
                100.0 * scores.sst2_probe,
                100.0 * scores.sst2_fine_tuned,
                scores.sms_f1,
                report.summary.steps,
                report.summary.seconds
            ));
            table.cells.push(Cell {
                row: r.name.clone(),
                seed,
                fingerprint,
                scores,
                pretrain_steps: report.summary.steps,
                pretrain_seconds: report.summary.seconds,
                eval_seconds: t.elapsed().as_secs_f64(),
                run_dir: Some(run_dir),
            });
            save(&table)?;
        }
    }
    Ok(table)
}

/// [`super::percent_cell`] of the measured values (NaN: not measured).
fn cell_text(values: &[f64]) -> String {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    super::percent_cell(&v)
}

/// The table in Markdown: one line per row, mean ± std over seeds.
pub fn format_table(t: &TextTable) -> String {
    let budget = match t.budget_minutes {
        Some(m) => format!("{m} min of pretraining per run"),
        None => "each recipe's own training length".into(),
    };
    let mut out = format!(
        "Text table: pretraining on {} texts (SST-2 train + corpora), {budget}; SST-2 {} train / {} dev; \
         SMS {} train / {} test. Accuracy and macro-F1 in %, mean ± std over seeds. Fine-tuning: {}.\n\n\
         | representation | seeds | SST-2 probe | SST-2 fine-tuned | SMS F1 1 % | SMS F1 10 % | SMS F1 100 % | pretraining steps | pretraining s |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        t.pretraining_texts, t.sst2_train, t.sst2_dev, t.sms_train, t.sms_test, t.fine_tune
    );
    for row in &t.rows {
        let cells: Vec<&Cell> = t.cells.iter().filter(|c| &c.row == row).collect();
        let col = |f: &dyn Fn(&Scores) -> f64| {
            cell_text(&cells.iter().map(|c| f(&c.scores)).collect::<Vec<_>>())
        };
        let secs: Vec<f64> = cells.iter().map(|c| c.pretrain_seconds).collect();
        let steps: Vec<f64> = cells.iter().map(|c| c.pretrain_steps as f64).collect();
        let plain = |v: &[f64]| {
            if v.iter().all(|&s| s == 0.0) {
                "—".to_string()
            } else {
                format!("{:.0}", mean_std(v).0)
            }
        };
        out += &format!(
            "| {row} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cells.len(),
            col(&|s| s.sst2_probe),
            col(&|s| s.sst2_fine_tuned),
            col(&|s| s.sms_f1.first().copied().unwrap_or(f64::NAN)),
            col(&|s| s.sms_f1.get(1).copied().unwrap_or(f64::NAN)),
            col(&|s| s.sms_f1.get(2).copied().unwrap_or(f64::NAN)),
            plain(&steps),
            plain(&secs),
        );
    }
    out
}
