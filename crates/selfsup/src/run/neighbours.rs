//! `selfsup neighbors`: similarity search in a run's learned space (or in exported embeddings).
//! The memory is what the kNN protocol votes with — a sample run's training split, every node
//! (or graph) of a graph run, or the `--train` file — and the queries are test samples, or
//! members of the memory itself (then never their own neighbour).
use super::commands::{load_run, read_embeddings, Split};
use super::folder::RunFolder;
use super::pipeline;
use crate::backend;
use crate::error::BadInputPolicy;
use crate::eval::neighbours::{cosine_neighbours, label_agreement};
use crate::recipe::Recipe;
use crate::views::ViewSource;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Tensor};

/// A request that cannot be answered: a query row outside the queries, or `k` outside what the
/// memory holds (a usage error, not bad data).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Where the embeddings come from.
pub enum NeighbourSource {
    /// A run folder's latest checkpoint; queries from `split` (graph runs: every node or graph).
    Run { dir: PathBuf, split: Split },
    /// Exported embeddings: the memory and the queries (the same file: queries from the memory).
    Files { memory: PathBuf, queries: PathBuf },
    /// Image files of one's own as queries, embedded by an image run, among its training split.
    RunWithImages { dir: PathBuf, images: Vec<PathBuf> },
}

/// One query and its neighbours, most similar first.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Row of the query in its split.
    pub query: i64,
    pub label: Option<i64>,
    /// (memory row, cosine similarity, label).
    pub neighbours: Vec<(i64, f32, Option<i64>)>,
}

/// Neighbours of the queries asked for, and label agreement over every query with a label.
#[derive(Debug, Clone, Serialize)]
pub struct NeighbourReport {
    /// What the memory and the queries are, in words.
    pub memory: String,
    pub queries: String,
    pub k: usize,
    /// Over every labelled query: how often the nearest neighbour has its label (the
    /// 1-nearest-neighbour accuracy), and how often any of the k does.
    pub top1_agreement: f64,
    pub k_agreement: f64,
    pub labelled_queries: usize,
    pub results: Vec<QueryResult>,
    /// The queries asked for and their neighbours as a table of images (image runs only).
    #[serde(skip)]
    pub image_grid: Option<String>,
}

/// Embeddings and labels of the memory and the queries, and whether the queries are the memory.
struct Spaces {
    memory: Tensor,
    memory_labels: Vec<i64>,
    queries: Tensor,
    query_labels: Vec<i64>,
    same: bool,
    memory_name: String,
    query_name: String,
    /// A sample run's memory and query samples, to draw them.
    samples: Option<(Arc<dyn ViewSource>, Arc<dyn ViewSource>)>,
}

fn labels_of(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.to_kind(tch::Kind::Int64).to_device(Device::Cpu)).unwrap_or_default()
}

fn spaces(source: &NeighbourSource, device: Device) -> Result<Spaces> {
    match source {
        NeighbourSource::Files { memory, queries } => {
            let (m, ym) = read_embeddings(memory)?;
            let same = memory == queries;
            let (q, yq) = if same {
                (m.shallow_clone(), ym.shallow_clone())
            } else {
                read_embeddings(queries)?
            };
            if q.size()[1] != m.size()[1] {
                return Err(crate::error::DataError::format(
                    queries,
                    format!(
                        "{} dimensions, the memory {} has {}",
                        q.size()[1],
                        memory.display(),
                        m.size()[1]
                    ),
                )
                .into());
            }
            Ok(Spaces {
                memory_labels: labels_of(&ym),
                query_labels: labels_of(&yq),
                memory: m,
                queries: q,
                same,
                memory_name: memory.display().to_string(),
                query_name: queries.display().to_string(),
                samples: None,
            })
        }
        NeighbourSource::RunWithImages { dir, images } => image_queries(dir, images, device),
        NeighbourSource::Run { dir, split } => {
            let recipe = Recipe::load(&RunFolder::open(dir)?.recipe_path(), &[])?;
            if recipe.data.is_graph() {
                let (e, labels) = crate::run::graph::run_embeddings(dir, recipe, device)?;
                return Ok(Spaces {
                    memory: e.shallow_clone(),
                    queries: e,
                    memory_labels: labels.clone(),
                    query_labels: labels,
                    same: true,
                    memory_name: "every node or graph of the run's data".into(),
                    query_name: "the same".into(),
                    samples: None,
                });
            }
            let r = load_run(dir, &[], device, BadInputPolicy::Fail)?;
            let embed = |s: &dyn crate::views::ViewSource| -> Result<(Tensor, Vec<i64>)> {
                let n = s.len();
                let e =
                    pipeline::embed(r.model.method.as_ref(), s, n, r.recipe.eval.batch, device)?;
                let y = pipeline::labels(s, n)
                    .map(|t| labels_of(&t))
                    .unwrap_or_else(|_| vec![-1; n]);
                Ok((e.to_device(Device::Cpu), y))
            };
            let (memory, memory_labels) = embed(r.prepared.train.as_ref())?;
            let train = r.prepared.train.clone();
            let (queries, query_labels, same) = match split {
                Split::Train => (memory.shallow_clone(), memory_labels.clone(), true),
                Split::Test => {
                    let test = r
                        .prepared
                        .test
                        .as_ref()
                        .context("the run's recipe has no test split")?;
                    let (q, y) = embed(test.as_ref())?;
                    (q, y, false)
                }
            };
            let query_samples = match split {
                Split::Train => train.clone(),
                Split::Test => r.prepared.test.clone().context("no test split")?,
            };
            Ok(Spaces {
                memory,
                memory_labels,
                queries,
                query_labels,
                same,
                memory_name: "the run's training split".into(),
                query_name: if same {
                    "the training split"
                } else {
                    "the test split"
                }
                .into(),
                samples: Some((train, query_samples)),
            })
        }
    }
}

/// A run's training split as the memory, and image files as the queries: each decoded,
/// converted to the run's channels and resized to its input size, then given the plain
/// (evaluation) treatment of the recipe's images before the encoder sees it.
fn image_queries(dir: &std::path::Path, images: &[PathBuf], device: Device) -> Result<Spaces> {
    let recipe = Recipe::load(&RunFolder::open(dir)?.recipe_path(), &[])?;
    let r = (!recipe.data.is_graph())
        .then(|| load_run(dir, &[], device, BadInputPolicy::Fail))
        .transpose()?;
    let shape = r
        .as_ref()
        .map_or(Vec::new(), |r| r.prepared.train.sample_shape());
    let (Some(r), [c, h, w]) = (r, &shape[..]) else {
        return Err(BadRequest(format!(
            "--query takes image files, and {} is not an image run; export its embeddings with `selfsup embed` and search them with --memory/--queries",
            dir.display()
        ))
        .into());
    };
    let (c, h, w) = (*c, *h, *w);
    if !(c == 1 || c == 3) {
        return Err(BadRequest(format!(
            "--query: the run's inputs have {c} channels, not an image's 1 or 3"
        ))
        .into());
    }
    let opts = crate::data::image_folder::ImageFolderOptions {
        size: Some([h as usize, w as usize]),
        channels: Some(c as usize),
        ..Default::default()
    };
    let mut pixels = Vec::new();
    for path in images {
        pixels.extend(crate::data::image_folder::read_one(path, &opts, &mut None)?);
    }
    let set = crate::data::ImageSet {
        pixels,
        len: images.len(),
        channels: c as usize,
        height: h as usize,
        width: w as usize,
        labels: None,
        class_names: Vec::new(),
        sources: None,
    };
    let (queries, _) = pipeline::image_sources(Arc::new(set), None, &r.recipe);
    let embed = |s: &dyn ViewSource| {
        pipeline::embed(
            r.model.method.as_ref(),
            s,
            s.len(),
            r.recipe.eval.batch,
            device,
        )
        .map(|e| e.to_device(Device::Cpu))
    };
    let train = r.prepared.train.clone();
    let memory = embed(train.as_ref())?;
    let memory_labels = pipeline::labels(train.as_ref(), train.len())
        .map(|t| labels_of(&t))
        .unwrap_or_else(|_| vec![-1; train.len()]);
    Ok(Spaces {
        memory,
        memory_labels,
        queries: embed(queries.as_ref())?,
        query_labels: vec![-1; images.len()],
        same: false,
        memory_name: "the run's training split".into(),
        query_name: images
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        samples: Some((train, queries)),
    })
}

/// The `k` nearest memory rows of the queries `rows` (all queries when empty, then only the
/// agreement figures are kept), by cosine similarity.
pub fn neighbours(
    source: &NeighbourSource,
    rows: &[i64],
    k: usize,
    device: Device,
    threads: usize,
) -> Result<NeighbourReport> {
    backend::set_threads(threads);
    let s = spaces(source, device)?;
    let n_queries = s.queries.size()[0];
    if let Some(bad) = rows.iter().find(|&&i| i < 0 || i >= n_queries) {
        return Err(BadRequest(format!(
            "--index {bad}: the queries ({}) have rows 0 to {}",
            s.query_name,
            n_queries - 1
        ))
        .into());
    }
    let all: Vec<i64> = (0..n_queries).collect();
    let exclude = s.same.then_some(&all[..]);
    let found = cosine_neighbours(&s.memory, &s.queries, k, exclude).map_err(BadRequest)?;
    // Agreement over the labelled queries.
    let labelled: Vec<usize> = (0..n_queries as usize)
        .filter(|&i| s.query_labels[i] >= 0)
        .collect();
    let sub = crate::eval::neighbours::Neighbours {
        index: labelled.iter().map(|&i| found.index[i].clone()).collect(),
        similarity: labelled
            .iter()
            .map(|&i| found.similarity[i].clone())
            .collect(),
    };
    let ys: Vec<i64> = labelled.iter().map(|&i| s.query_labels[i]).collect();
    let (top1, all_k) = label_agreement(&sub, &s.memory_labels, &ys);
    let label = |v: i64| (v >= 0).then_some(v);
    let results = rows
        .iter()
        .map(|&q| QueryResult {
            query: q,
            label: label(s.query_labels[q as usize]),
            neighbours: found.index[q as usize]
                .iter()
                .zip(&found.similarity[q as usize])
                .map(|(&j, &c)| (j, c, label(s.memory_labels[j as usize])))
                .collect(),
        })
        .collect::<Vec<QueryResult>>();
    let image_grid = s.samples.as_ref().and_then(|(memory, queries)| {
        let rows: Vec<super::report::GalleryRow> = results
            .iter()
            .map(|r| super::report::GalleryRow {
                query: r.query as usize,
                neighbours: r.neighbours.iter().map(|&(j, c, _)| (j as usize, c)).collect(),
            })
            .collect();
        let caption = format!(
            "Queries from {} (left) and their {k} nearest in {}, by cosine similarity of the learned representations; green: same label, red: another.",
            s.query_name, s.memory_name
        );
        (!rows.is_empty())
            .then(|| super::report::image_grid(queries.as_ref(), memory.as_ref(), &rows, &caption))
            .flatten()
    });
    Ok(NeighbourReport {
        memory: s.memory_name,
        queries: s.query_name,
        k,
        top1_agreement: top1,
        k_agreement: all_k,
        labelled_queries: labelled.len(),
        results,
        image_grid,
    })
}

/// The report as a person reads it.
pub fn format_report(r: &NeighbourReport) -> String {
    let mut out = String::new();
    for q in &r.results {
        out.push_str(&format!(
            "query {} (label {}):\n",
            q.query,
            q.label.map_or("-".into(), |l| l.to_string())
        ));
        for (rank, (j, c, l)) in q.neighbours.iter().enumerate() {
            out.push_str(&format!(
                "  {:>3}. row {:>7}  cosine {:+.4}  label {}\n",
                rank + 1,
                j,
                c,
                l.map_or("-".into(), |l| l.to_string())
            ));
        }
    }
    out.push_str(&format!(
        "memory: {}; queries: {}; k = {}\n",
        r.memory, r.queries, r.k
    ));
    if r.labelled_queries > 0 {
        out.push_str(&format!(
            "label agreement over {} labelled queries: nearest {:.2} %, all {} {:.2} %\n",
            r.labelled_queries,
            100.0 * r.top1_agreement,
            r.k,
            100.0 * r.k_agreement
        ));
    }
    out
}
