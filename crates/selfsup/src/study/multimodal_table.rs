//! `selfsup multimodal`: a paired recipe (CLIP over several modalities) scored as its papers
//! score it. Per seed:
//! - zero-shot cross-modal retrieval: each test sample of one modality finds its nearest
//!   neighbour (cosine, in the shared space) among the other modality's test samples; top-1
//!   counts a neighbour of the same class, beside chance and beside the same model at its random
//!   initialisation;
//! - each encoder's kNN and linear probe on its own modality's split, beside the modality's
//!   unimodal recipe pretrained with its own method (the SSL counterpart), the encoder at random
//!   initialisation and the raw inputs.
//!
//! The table lives in `<runs>/table.json` (resumable: a seed's rows are kept, and refused when
//! made under other settings) and `<runs>/table.md`.
use super::seed_run::pretrain_and_load;
use crate::error::BadInputPolicy;
use crate::eval::knn::l2_normalise;
use crate::methods::Method;
use crate::recipe::Recipe;
use crate::run::folder::atomic_write;
use crate::run::pipeline::{self, Prepared, Protocol};
use crate::run::{commands, paired_data, RunOptions};
use crate::stats::mean_std;
use crate::views::ViewSource;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    pub query: String,
    pub gallery: String,
    /// Fraction of queries whose nearest gallery sample has their class.
    pub top1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub modality: String,
    pub knn: f64,
    pub linear: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub row: String,
    pub seed: u64,
    pub fingerprint: String,
    #[serde(default)]
    pub retrieval: Vec<Retrieval>,
    pub probes: Vec<Probe>,
    /// CLIP's learned temperature τ = 1 / exp(t) at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MultimodalTable {
    pub recipe: String,
    pub modalities: Vec<String>,
    pub train_sizes: Vec<usize>,
    pub test_sizes: Vec<usize>,
    pub seeds: Vec<u64>,
    /// Expected top-1 of a gallery sample picked at random: Σ_c p_query(c) · p_gallery(c).
    pub chance: Vec<Retrieval>,
    pub cells: Vec<Cell>,
}

pub struct MultimodalOptions {
    pub seeds: Vec<u64>,
    pub runs: PathBuf,
    pub run: RunOptions,
}

pub const CLIP_ROW: &str = "CLIP";
pub const RANDOM_ROW: &str = "CLIP at random initialisation";
pub const RAW_ROW: &str = "raw inputs";

fn unimodal_row(name: &str) -> String {
    format!("unimodal SSL: {name}")
}

/// `f` of the plain inputs of every sample of `source`, as f32 on the CPU.
fn embed_all(
    source: &dyn ViewSource,
    device: Device,
    f: impl Fn(&Tensor) -> Tensor,
) -> Result<Tensor> {
    Ok(pipeline::embed_with(source, source.len(), 256, device, f)?.to_kind(Kind::Float))
}

fn split_labels(p: &Prepared) -> Result<(Tensor, Tensor, i64)> {
    let test = p
        .test
        .as_ref()
        .context("the multimodal table needs a test split in every modality")?;
    let n_classes = p.train.n_classes().max(test.n_classes()) as i64;
    Ok((
        pipeline::labels(p.train.as_ref(), p.train.len())?,
        pipeline::labels(test.as_ref(), test.len())?,
        n_classes,
    ))
}

/// kNN and the linear probe of features `f` on modality `p`'s own split.
fn probe(
    name: &str,
    p: &Prepared,
    eval: &crate::recipe::EvalConfig,
    device: Device,
    features: &str,
    f: impl Fn(&Tensor) -> Tensor,
) -> Result<Probe> {
    let (ytr, yte, n_classes) = split_labels(p)?;
    let test = p.test.as_ref().expect("checked by split_labels");
    let a = embed_all(p.train.as_ref(), device, &f)?.flatten(1, -1);
    let b = embed_all(test.as_ref(), device, &f)?.flatten(1, -1);
    let r = pipeline::evaluate_features(
        features,
        &a,
        &ytr,
        &b,
        &yte,
        n_classes,
        eval,
        &[Protocol::Knn, Protocol::Linear],
    );
    Ok(Probe {
        modality: name.to_string(),
        knn: Protocol::Knn.accuracy_in(&r),
        linear: Protocol::Linear.accuracy_in(&r),
    })
}

/// Top-1 class agreement of each query's nearest gallery sample (rows unit-normalised here).
pub fn retrieval_top1(query: &Tensor, qy: &Tensor, gallery: &Tensor, gy: &Tensor) -> f64 {
    let sim = l2_normalise(query).matmul(&l2_normalise(gallery).tr());
    let nearest = sim.argmax(1, false);
    let got = gy.index_select(0, &nearest);
    f64::try_from(got.eq_tensor(qy).to_kind(Kind::Double).mean(Kind::Double)).unwrap_or(f64::NAN)
}

/// Σ_c p_query(c) · p_gallery(c): the top-1 of a gallery sample drawn at random.
pub fn chance_top1(qy: &Tensor, gy: &Tensor, n_classes: i64) -> f64 {
    let freq = |y: &Tensor| {
        y.bincount(None::<Tensor>, n_classes).to_kind(Kind::Double) / y.size()[0] as f64
    };
    f64::try_from((freq(qy) * freq(gy)).sum(Kind::Double)).unwrap_or(f64::NAN)
}

/// Retrieval in every direction between the modalities' test sets, in the method's shared space.
fn retrieval(
    method: &dyn Method,
    names: &[String],
    parts: &[Prepared],
    device: Device,
) -> Result<Vec<Retrieval>> {
    let mut z = Vec::new();
    let mut y = Vec::new();
    for (m, p) in parts.iter().enumerate() {
        let test = p
            .test
            .as_ref()
            .context("the multimodal table needs test splits")?;
        z.push(embed_all(test.as_ref(), device, |x| {
            method.shared_embedding(m, x).expect("a multimodal method")
        })?);
        y.push(split_labels(p)?.1);
    }
    let mut out = Vec::new();
    for q in 0..parts.len() {
        for g in 0..parts.len() {
            if q != g {
                out.push(Retrieval {
                    query: names[q].clone(),
                    gallery: names[g].clone(),
                    top1: retrieval_top1(&z[q], &y[q], &z[g], &y[g]),
                });
            }
        }
    }
    Ok(out)
}

fn clip_probes(
    method: &dyn Method,
    names: &[String],
    parts: &[Prepared],
    eval: &crate::recipe::EvalConfig,
    device: Device,
) -> Result<Vec<Probe>> {
    (0..parts.len())
        .map(|m| {
            probe(&names[m], &parts[m], eval, device, "learned", |x| {
                method.embed_modality(m, x)
            })
        })
        .collect()
}

pub fn run_multimodal_table(
    recipe: &Recipe,
    opts: &MultimodalOptions,
    mut log: impl FnMut(&str),
) -> Result<MultimodalTable> {
    if !recipe.data.is_paired() {
        bail!(
            "{}: selfsup multimodal runs paired recipes (data.format = \"paired\")",
            recipe.name
        );
    }
    std::fs::create_dir_all(&opts.runs).with_context(|| format!("{}", opts.runs.display()))?;
    let state = opts.runs.join("table.json");
    let mut table: MultimodalTable = if state.exists() {
        serde_json::from_str(&std::fs::read_to_string(&state)?)
            .with_context(|| format!("{}: not a table of `selfsup multimodal`", state.display()))?
    } else {
        MultimodalTable::default()
    };
    let device = opts.run.device;
    let mut data_recipe = recipe.clone();
    commands::absolutise(&mut data_recipe.data);
    let parts = paired_data::modality_data(&data_recipe, BadInputPolicy::Fail)?;
    let names: Vec<String> = recipe.modalities().iter().map(|m| m.name.clone()).collect();
    table.recipe = recipe.name.clone();
    table.modalities = names.clone();
    table.train_sizes = parts.iter().map(|p| p.train.len()).collect();
    table.test_sizes = parts
        .iter()
        .map(|p| p.test.as_ref().map_or(0, |t| t.len()))
        .collect();
    table.seeds = opts.seeds.clone();
    table.chance = Vec::new();
    for q in 0..parts.len() {
        for g in 0..parts.len() {
            if q != g {
                let (_, qy, n) = split_labels(&parts[q])?;
                let (_, gy, _) = split_labels(&parts[g])?;
                table.chance.push(Retrieval {
                    query: names[q].clone(),
                    gallery: names[g].clone(),
                    top1: chance_top1(&qy, &gy, n),
                });
            }
        }
    }
    let done = |table: &MultimodalTable, row: &str, seed: u64, fp: &str| -> Result<bool> {
        let saved = table.cells.iter().find(|c| c.row == row && c.seed == seed);
        super::table_file::cell_done(saved.map(|c| c.fingerprint.as_str()), &state, row, seed, fp)
    };
    let save =
        |t: &MultimodalTable| atomic_write(&state, serde_json::to_string_pretty(t)?.as_bytes());
    let fp = recipe.results_fingerprint();

    // The raw inputs, once.
    if !done(&table, RAW_ROW, 0, &fp)? {
        let t = Instant::now();
        let probes = (0..parts.len())
            .map(|m| {
                probe(&names[m], &parts[m], &recipe.eval, device, "raw", |x| {
                    x.shallow_clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        table.cells.push(Cell {
            row: RAW_ROW.into(),
            seed: 0,
            fingerprint: fp.clone(),
            retrieval: Vec::new(),
            probes,
            temperature: None,
            seconds: t.elapsed().as_secs_f64(),
        });
        save(&table)?;
    }
    // Each modality's own recipe, its unimodal SSL counterpart (read once, checked up front).
    let mut unimodal = Vec::new();
    for (k, modality) in recipe.modalities().iter().enumerate() {
        if let Some(path) = &modality.recipe {
            let uni = Recipe::load(path, &[])
                .with_context(|| format!("the unimodal recipe of {}", modality.name))?;
            unimodal.push((k, uni));
        }
    }
    for &seed in &opts.seeds {
        let mut r = recipe.clone();
        r.seed = seed;
        if !done(&table, RANDOM_ROW, seed, &fp)? {
            let t = Instant::now();
            // The same initialisation as the CLIP run of this seed, left untrained.
            let shapes: Vec<Vec<i64>> = parts.iter().map(|p| p.train.sample_shape()).collect();
            let model = paired_data::build_paired_model(&r, &shapes, device)?;
            let m = model.method.as_ref();
            table.cells.push(Cell {
                row: RANDOM_ROW.into(),
                seed,
                fingerprint: fp.clone(),
                retrieval: retrieval(m, &names, &parts, device)?,
                probes: clip_probes(m, &names, &parts, &recipe.eval, device)?,
                temperature: None,
                seconds: t.elapsed().as_secs_f64(),
            });
            save(&table)?;
        }
        if !done(&table, CLIP_ROW, seed, &fp)? {
            let t = Instant::now();
            log(&format!("{} seed {seed}: pretraining CLIP", recipe.name));
            let (_, loaded, _) = pretrain_and_load(&r, &recipe.name, seed, &opts.runs, &opts.run)?;
            let m = loaded.model.method.as_ref();
            let temperature = loaded
                .model
                .vs
                .variables()
                .get("method.log_scale")
                .map(|t| (-f64::try_from(t).unwrap_or(f64::NAN)).exp());
            table.cells.push(Cell {
                row: CLIP_ROW.into(),
                seed,
                fingerprint: fp.clone(),
                retrieval: retrieval(m, &names, &parts, device)?,
                probes: clip_probes(m, &names, &parts, &recipe.eval, device)?,
                temperature,
                seconds: t.elapsed().as_secs_f64(),
            });
            save(&table)?;
        }
        for &(k, ref uni) in &unimodal {
            let mut uni = uni.clone();
            uni.seed = seed;
            let row = unimodal_row(&uni.name);
            let ufp = uni.results_fingerprint();
            if done(&table, &row, seed, &ufp)? {
                continue;
            }
            let t = Instant::now();
            log(&format!(
                "{} seed {seed}: pretraining {}",
                recipe.name, uni.name
            ));
            let (_, loaded, _) = pretrain_and_load(&uni, &uni.name, seed, &opts.runs, &opts.run)?;
            let m = loaded.model.method.as_ref();
            let p = probe(&names[k], &parts[k], &recipe.eval, device, "learned", |x| {
                m.embed(x)
            })?;
            table.cells.push(Cell {
                row,
                seed,
                fingerprint: ufp,
                retrieval: Vec::new(),
                probes: vec![p],
                temperature: None,
                seconds: t.elapsed().as_secs_f64(),
            });
            save(&table)?;
        }
    }
    Ok(table)
}

fn cell_text(values: &[f64]) -> String {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    super::percent_cell(&v)
}

impl MultimodalTable {
    /// The rows' names, in the order their first cells were made.
    pub fn rows(&self) -> Vec<String> {
        let mut rows: Vec<String> = Vec::new();
        for c in &self.cells {
            if !rows.contains(&c.row) {
                rows.push(c.row.clone());
            }
        }
        rows
    }
}

/// The table as Markdown: one row per model, retrieval in every direction, then each modality's
/// kNN and linear probe; mean ± sample std over seeds, in percent.
pub fn format_table(t: &MultimodalTable) -> String {
    let mut directions = Vec::new();
    for q in &t.modalities {
        for g in &t.modalities {
            if q != g {
                directions.push((q.clone(), g.clone()));
            }
        }
    }
    let mut s = format!(
        "# {}: cross-modal retrieval and probes\n\nseeds {:?}; train / test samples: {}\n\n| model |",
        t.recipe,
        t.seeds,
        t.modalities
            .iter()
            .zip(t.train_sizes.iter().zip(&t.test_sizes))
            .map(|(m, (a, b))| format!("{m} {a} / {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (q, g) in &directions {
        s += &format!(" {q} → {g} top-1 |");
    }
    for m in &t.modalities {
        s += &format!(" {m} kNN | {m} linear |");
    }
    s += "\n|---|";
    s += &"---|".repeat(directions.len() + 2 * t.modalities.len());
    s.push('\n');
    for row in &t.rows() {
        let cells: Vec<&Cell> = t.cells.iter().filter(|c| &c.row == row).collect();
        s += &format!("| {row} |");
        for (q, g) in &directions {
            let v: Vec<f64> = cells
                .iter()
                .flat_map(|c| {
                    c.retrieval
                        .iter()
                        .filter(|r| &r.query == q && &r.gallery == g)
                })
                .map(|r| r.top1)
                .collect();
            s += &format!(" {} |", cell_text(&v));
        }
        for m in &t.modalities {
            let p: Vec<&Probe> = cells
                .iter()
                .flat_map(|c| c.probes.iter().filter(|p| &p.modality == m))
                .collect();
            let knn: Vec<f64> = p.iter().map(|p| p.knn).collect();
            let lin: Vec<f64> = p.iter().map(|p| p.linear).collect();
            s += &format!(" {} | {} |", cell_text(&knn), cell_text(&lin));
        }
        s.push('\n');
    }
    s += "| chance |";
    for (q, g) in &directions {
        let v: Vec<f64> = t
            .chance
            .iter()
            .filter(|r| &r.query == q && &r.gallery == g)
            .map(|r| r.top1)
            .collect();
        s += &format!(" {} |", cell_text(&v));
    }
    s += &" |".repeat(2 * t.modalities.len());
    s.push('\n');
    let temps: Vec<f64> = t.cells.iter().filter_map(|c| c.temperature).collect();
    if !temps.is_empty() {
        let (m, sd) = mean_std(&temps);
        s += &format!("\nCLIP's learned temperature at the end: {m:.4} ± {sd:.4} (started at the recipe's).\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retrieval_finds_the_nearest_gallery_sample_by_cosine() {
        let q = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0, -1.0, -1.0]).view([3, 2]);
        let qy = Tensor::from_slice(&[0i64, 1, 1]);
        // Gallery: a long vector along x (class 0), along y (class 1), and along -x (class 1).
        let g = Tensor::from_slice(&[5.0f32, 0.1, 0.0, 1.0, -1.0, 0.0]).view([3, 2]);
        let gy = Tensor::from_slice(&[0i64, 1, 1]);
        // Query 0 → x (right), query 1 → y (right), query 2 at (-1,-1) is nearer -x (class 1): right.
        assert!((retrieval_top1(&q, &qy, &g, &gy) - 1.0).abs() < 1e-12);
        let wrong = Tensor::from_slice(&[1i64, 0, 0]);
        assert!(retrieval_top1(&q, &wrong, &g, &gy).abs() < 1e-12);
    }

    #[test]
    fn chance_is_the_overlap_of_the_class_frequencies() {
        let qy = Tensor::from_slice(&[0i64, 0, 1, 1]);
        let gy = Tensor::from_slice(&[0i64, 1, 1, 1]);
        // ½·¼ + ½·¾ = ½.
        assert!((chance_top1(&qy, &gy, 2) - 0.5).abs() < 1e-12);
        let uniform = Tensor::arange(10, (Kind::Int64, Device::Cpu));
        assert!((chance_top1(&uniform, &uniform, 10) - 0.1).abs() < 1e-12);
    }
}
