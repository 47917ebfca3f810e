//! `selfsup data inspect RECIPE`: what a recipe's data resolves to, read exactly as a run would
//! read it, before any training — counts, shapes, classes and their balance, non-finite inputs,
//! skipped samples; for graphs nodes, edges, features and the split.
use super::pipeline;
use crate::error::BadInputPolicy;
use crate::recipe::Recipe;
use crate::train::graph_learner::GraphData;
use crate::views::ViewSource;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// One split of a sample data set.
#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub split: String,
    pub samples: usize,
    /// One model input's shape (`[C, H, W]`, `[D]` or `[channels, length]`).
    pub shape: Vec<i64>,
    /// Samples per class label; empty when the data has no labels.
    pub classes: BTreeMap<i64, usize>,
    pub unlabelled: usize,
    /// Model inputs holding a NaN or infinite value.
    pub non_finite_samples: usize,
}

/// What the data of a recipe is.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub recipe: String,
    /// The named dataset and its folder, when the recipe names one.
    pub dataset: Option<(String, String)>,
    pub paths: Vec<String>,
    pub splits: Vec<SplitSummary>,
    /// Tables: features, of which categorical.
    pub table_features: Option<(usize, usize)>,
    /// Graphs, in words (nodes, edges, features, split).
    pub graph: Option<String>,
    pub skipped: usize,
    pub skipped_examples: Vec<String>,
    pub fingerprint: String,
}

fn split_summary(name: &str, s: &dyn ViewSource) -> SplitSummary {
    let mut classes = BTreeMap::new();
    let mut unlabelled = 0;
    let mut non_finite = 0;
    let mut buf = vec![0f32; s.sample_len()];
    for i in 0..s.len() {
        match s.label(i) {
            Some(y) => *classes.entry(y).or_insert(0) += 1,
            None => unlabelled += 1,
        }
        s.make_plain(i, &mut buf);
        non_finite += usize::from(buf.iter().any(|x| !x.is_finite()));
    }
    SplitSummary {
        split: name.into(),
        samples: s.len(),
        shape: s.sample_shape(),
        classes,
        unlabelled,
        non_finite_samples: non_finite,
    }
}

fn histogram(labels: &[i64]) -> BTreeMap<i64, usize> {
    let mut h = BTreeMap::new();
    for &y in labels.iter().filter(|&&y| y >= 0) {
        *h.entry(y).or_insert(0) += 1;
    }
    h
}

/// Reads the recipe's data as a run would (`policy` for unreadable samples) and summarises it.
pub fn inspect(recipe: &Recipe, policy: BadInputPolicy) -> Result<DataSummary> {
    let mut summary = DataSummary {
        recipe: recipe.name.clone(),
        dataset: recipe
            .dataset
            .as_ref()
            .map(|d| (d.dataset.name.clone(), d.dir.display().to_string())),
        paths: recipe
            .data
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        splits: Vec::new(),
        table_features: None,
        graph: None,
        skipped: 0,
        skipped_examples: Vec::new(),
        fingerprint: String::new(),
    };
    if recipe.data.is_graph() {
        let data = super::graph::load_data(recipe)?;
        let (words, labels): (String, &[i64]) = match &data {
            GraphData::Nodes(g) => {
                let split = g.split.as_ref().map_or("no split".to_string(), |s| {
                    format!(
                        "split {} / {} / {} (train / val / test)",
                        s.train.len(),
                        s.val.len(),
                        s.test.len()
                    )
                });
                (
                    format!(
                        "one graph: {} nodes, {} directed edges, {} features ({} stored), {} classes; {split}",
                        g.num_nodes,
                        g.edges.len(),
                        g.num_features(),
                        g.features.indices.len(),
                        g.num_classes
                    ),
                    &g.node_labels,
                )
            }
            GraphData::Graphs(s) => {
                let nodes: usize = s.graphs.iter().map(|g| g.num_nodes).sum();
                let edges: usize = s.graphs.iter().map(|g| g.edges.len()).sum();
                let n = s.graphs.len().max(1) as f64;
                (
                    format!(
                        "{} graphs, {:.1} nodes and {:.1} directed edges on average, {} node features, {} classes",
                        s.graphs.len(),
                        nodes as f64 / n,
                        edges as f64 / n,
                        s.num_features,
                        s.num_classes
                    ),
                    &s.labels,
                )
            }
        };
        summary.graph = Some(words);
        let labels = labels.to_vec();
        summary.splits.push(SplitSummary {
            split: "all".into(),
            samples: labels.len(),
            shape: Vec::new(),
            unlabelled: labels.iter().filter(|&&y| y < 0).count(),
            classes: histogram(&labels),
            non_finite_samples: 0,
        });
        return Ok(summary);
    }
    let prepared = pipeline::prepare_data(
        recipe,
        policy,
        recipe.train.max_samples,
        recipe.eval.max_test_samples,
    )?;
    summary
        .splits
        .push(split_summary("train", prepared.train.as_ref()));
    if let Some(t) = &prepared.test {
        summary.splits.push(split_summary("test", t.as_ref()));
    }
    summary.table_features = prepared
        .train
        .feature_spans()
        .map(|s| (s.len(), s.iter().filter(|f| f.categorical).count()));
    summary.skipped = prepared.skipped.skipped;
    summary.skipped_examples = prepared.skipped.examples.clone();
    summary.fingerprint = prepared.fingerprint.clone();
    Ok(summary)
}

/// The summary as a person reads it.
pub fn format_summary(s: &DataSummary) -> String {
    let mut out = format!("recipe {}\n", s.recipe);
    if let Some((name, dir)) = &s.dataset {
        out.push_str(&format!("dataset {name} in {dir}\n"));
    }
    out.push_str(&format!("reads {}\n", s.paths.join(", ")));
    if let Some(g) = &s.graph {
        out.push_str(&format!("{g}\n"));
    }
    if let Some((n, c)) = s.table_features {
        out.push_str(&format!("{n} features, {c} of them categorical\n"));
    }
    for sp in &s.splits {
        out.push_str(&format!("{}: {} samples", sp.split, sp.samples));
        if !sp.shape.is_empty() {
            out.push_str(&format!(", input shape {:?}", sp.shape));
        }
        if sp.non_finite_samples > 0 {
            out.push_str(&format!(
                ", {} with NaN or infinite values",
                sp.non_finite_samples
            ));
        }
        if sp.classes.is_empty() {
            out.push_str(", no labels\n");
            continue;
        }
        let labelled: usize = sp.classes.values().sum();
        let (lo, hi) = (
            sp.classes.values().min().copied().unwrap_or(0),
            sp.classes.values().max().copied().unwrap_or(0),
        );
        out.push_str(&format!(
            ", {} classes (smallest {lo}, largest {hi}{})\n  ",
            sp.classes.len(),
            if sp.unlabelled > 0 {
                format!("; {} unlabelled", sp.unlabelled)
            } else {
                String::new()
            }
        ));
        let per: Vec<String> = sp
            .classes
            .iter()
            .map(|(c, n)| {
                format!(
                    "{c}: {n} ({:.1} %)",
                    100.0 * *n as f64 / labelled.max(1) as f64
                )
            })
            .collect();
        out.push_str(&per.join(", "));
        out.push('\n');
    }
    if s.skipped > 0 {
        out.push_str(&format!(
            "skipped {} samples; first: {}\n",
            s.skipped,
            s.skipped_examples.join("; ")
        ));
    }
    if !s.fingerprint.is_empty() {
        out.push_str(&format!(
            "data fingerprint {}\n",
            &s.fingerprint[..s.fingerprint.len().min(16)]
        ));
    }
    out
}
