//! The HTML report of a table command's results file: what the table measured, a bar chart per
//! figure (mean over seeds with ± std error bars; selfsup's pretrained rows, its baselines and
//! the published figures in three colours) and the table as the command printed it. Written
//! next to the file (`compare.json` → `compare.html`) at the end of the command, or by
//! `selfsup report FILE`.
use super::audio_table::AudioTable;
use super::compare::CompareReport;
use super::few_labels::FewLabelsTable;
use super::graph_table::GraphRunResult;
use super::multimodal_table::MultimodalTable;
use super::simcore_table::SimcoreTable;
use super::tabular::TabReport;
use super::text_table::TextTable;
use super::ucr_table::{self, Table as UcrTable};
use crate::run::charts::{bar_chart, bar_legend, escape, page, Bar, BarKind};
use crate::stats::mean_std;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One chart: its caption, the unit of its axis and its bars, top to bottom.
pub struct Chart {
    pub caption: String,
    pub unit: String,
    pub bars: Vec<Bar>,
}

/// A table's report before it is drawn.
pub struct TablePage {
    pub title: String,
    /// What was measured, in a sentence or two.
    pub about: String,
    pub charts: Vec<Chart>,
    /// The table as the command prints it.
    pub text: String,
}

/// The page as HTML.
pub fn render(p: &TablePage) -> Result<String> {
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n",
        escape(&p.title),
        escape(&p.about)
    );
    body.push_str(bar_legend());
    for c in &p.charts {
        body.push_str(&bar_chart(&c.caption, &c.unit, &c.bars)?);
    }
    body.push_str(&format!(
        "<h2>The table</h2>\n<pre>{}</pre>\n",
        escape(&p.text)
    ));
    Ok(page(&p.title, &body))
}

/// Where the report of a results file goes: beside it, as `.html`.
pub fn report_path(json: &Path) -> PathBuf {
    json.with_extension("html")
}

/// Reads a table command's results file, recognises which command wrote it, and writes its
/// report beside it. `reference` holds the published UCR accuracies (for `ucr-table` files).
pub fn write_table_report(json: &Path, reference: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(json).with_context(|| json.display().to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", json.display()))?;
    let has = |k: &str| v.get(k).is_some();
    let page = if v.is_array() {
        graph_page(&parse::<Vec<GraphRunResult>>(&v, json)?)
    } else if has("budget") && has("protocols") {
        compare_page(&parse(&v, json)?)
    } else if has("metric") && has("split") {
        tabular_page(&parse(&v, json)?)
    } else if has("speakers") {
        audio_page(&parse(&v, json)?)
    } else if has("sms_train") {
        text_page(&parse(&v, json)?)
    } else if has("fractions") && has("sam_rho") {
        few_labels_page(&parse(&v, json)?)
    } else if has("target_classes") {
        simcore_page(&parse(&v, json)?)
    } else if has("modalities") && has("chance") {
        multimodal_page(&parse(&v, json)?)
    } else if has("cells") && has("protocol") {
        let published = ucr_table::read_published(reference)
            .with_context(|| format!("the published UCR figures for {}", json.display()))?;
        ucr_page(&parse(&v, json)?, &published)
    } else {
        bail!(
            "{}: not a run folder nor the results file of a table command (compare, graph, tabular, ucr-table, audio-table, text-table, few-labels, simcore-table, multimodal)",
            json.display()
        )
    };
    let out = report_path(json);
    crate::run::folder::atomic_write(&out, render(&page)?.as_bytes())?;
    Ok(out)
}

/// The results file as the command's type (a file of an older version may no longer read).
fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value, json: &Path) -> Result<T> {
    serde_json::from_value(v.clone()).with_context(|| {
        format!(
            "{}: not readable as the table it looks like",
            json.display()
        )
    })
}

/// Selfsup's baselines by their row names; every other row is a pretrained encoder.
fn kind_of(name: &str) -> BarKind {
    let n = name.to_lowercase();
    let baselines = [
        "control:",
        "raw",
        "random init",
        "mfcc",
        "tf-idf",
        "gbdt",
        "1-nn",
        "untrained",
    ];
    // The arms measured against: the plain fine-tuning, the target data alone.
    if n == "baseline"
        || n == "target"
        || n.contains("at random initialisation")
        || baselines.iter().any(|b| n.starts_with(b))
    {
        BarKind::Baseline
    } else {
        BarKind::Ours
    }
}

/// A bar of the mean ± std of `values` (the std only with two or more).
fn bar(label: impl Into<String>, values: &[f64], kind: BarKind) -> Bar {
    let (m, s) = mean_std(values);
    Bar {
        label: label.into(),
        mean: m,
        std: (values.len() > 1).then_some(s),
        kind,
    }
}

fn percent(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    v.into_iter()
        .filter(|x| x.is_finite())
        .map(|x| 100.0 * x)
        .collect()
}

fn compare_page(r: &CompareReport) -> TablePage {
    let chart = |caption: &str, pick: fn(&super::compare::SeedScore) -> f64| Chart {
        caption: caption.into(),
        unit: "test accuracy %".into(),
        bars: r
            .rows
            .iter()
            .map(|row| {
                bar(
                    &row.name,
                    &percent(row.scores.iter().map(pick)),
                    kind_of(&row.name),
                )
            })
            .collect(),
    };
    TablePage {
        title: "Image methods at an equal budget".into(),
        about: format!(
            "selfsup compare: {}; protocols {}.",
            r.budget,
            r.protocols.join(", ")
        ),
        charts: vec![chart("linear probe", |s| s.linear), chart("kNN", |s| s.knn)],
        text: super::compare::format_report(r),
    }
}

fn graph_page(results: &[GraphRunResult]) -> TablePage {
    let mut charts: Vec<Chart> = Vec::new();
    for r in results {
        let caption = format!("{} — {}", r.dataset, r.protocol);
        let i = match charts.iter().position(|c| c.caption == caption) {
            Some(i) => i,
            None => {
                charts.push(Chart {
                    caption,
                    unit: "test accuracy %".into(),
                    bars: vec![bar(
                        "raw node features",
                        &[r.raw_features],
                        BarKind::Baseline,
                    )],
                });
                charts.len() - 1
            }
        };
        let scores: Vec<f64> = r.seeds.iter().map(|s| s.accuracy).collect();
        charts[i].bars.push(bar(
            format!("{} ({} seeds)", r.method, scores.len()),
            &scores,
            BarKind::Ours,
        ));
        if let Some(p) = &r.paper {
            charts[i].bars.push(Bar {
                label: format!("{}, published ({})", r.method, p.source),
                mean: p.mean,
                std: Some(p.std),
                kind: BarKind::Published,
            });
        }
    }
    TablePage {
        title: "Graph methods beside their papers".into(),
        about: "selfsup graph: each recipe pretrained once per seed and scored by its protocol, beside the raw node features and the paper's figure.".into(),
        charts,
        text: super::graph_table::format_results(results),
    }
}

fn tabular_page(r: &TabReport) -> TablePage {
    let accuracy = r.metric == "accuracy";
    let scale = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|x| if accuracy { 100.0 * x } else { *x })
            .collect()
    };
    TablePage {
        title: "Tables: pretrained representations beside raw features and trees".into(),
        about: format!("selfsup tabular, {}; {}.", r.split, r.protocol),
        charts: vec![Chart {
            caption: if accuracy {
                "test accuracy (higher is better)".into()
            } else {
                "test RMSE (lower is better)".into()
            },
            unit: if accuracy { "accuracy %" } else { "RMSE" }.into(),
            bars: r
                .rows
                .iter()
                .map(|row| bar(&row.name, &scale(&row.per_seed), kind_of(&row.name)))
                .collect(),
        }],
        text: super::tabular::format_report(r),
    }
}

fn ucr_page(t: &UcrTable, published: &ucr_table::Published) -> TablePage {
    let mut sets: Vec<String> = t.cells.iter().map(|c| c.set.clone()).collect();
    sets.sort();
    sets.dedup();
    let rows = ucr_table::rows(t, &sets, published);
    let done: Vec<&ucr_table::Row> = rows.iter().filter(|r| r.mean.is_some()).collect();
    let n = done.len();
    let mean_of = |f: &dyn Fn(&ucr_table::Row) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = done.iter().map(|r| f(r)).collect();
        v.filter(|v| !v.is_empty())
            .map(|v| 100.0 * v.iter().sum::<f64>() / v.len() as f64)
    };
    // selfsup's mean over the sets, per seed (its spread is the seeds' spread of that mean).
    let per_seed: Vec<f64> = t
        .seeds
        .iter()
        .filter_map(|&s| {
            let v: Option<Vec<f64>> = done
                .iter()
                .map(|r| {
                    t.cells
                        .iter()
                        .find(|c| c.set == r.set && c.seed == s)
                        .map(|c| c.accuracy)
                })
                .collect();
            v.map(|v| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect();
    let mut bars = vec![bar(
        format!("{} (selfsup)", t.recipe),
        &per_seed,
        BarKind::Ours,
    )];
    let baselines: [(&str, &dyn Fn(&ucr_table::Row) -> Option<f64>); 3] = [
        ("raw series, RBF SVM", &|r| r.raw_svm),
        ("raw series, 1-NN Euclidean", &|r| r.raw_euclidean),
        ("raw series, 1-NN DTW", &|r| r.raw_dtw),
    ];
    for (name, f) in baselines {
        if let Some(m) = mean_of(f) {
            bars.push(bar(name, &[m], BarKind::Baseline));
        }
    }
    let mut columns: Vec<&String> = done.iter().flat_map(|r| r.published.keys()).collect();
    columns.sort();
    columns.dedup();
    for col in columns {
        if let Some(m) = mean_of(&|r| r.published.get(col).copied()) {
            bars.push(bar(format!("{col}, published"), &[m], BarKind::Published));
        }
    }
    TablePage {
        title: format!("{} over {n} UCR sets", t.recipe),
        about: format!(
            "selfsup ucr-table, {}; mean accuracy over the {n} sets every column has, seeds {:?}.",
            t.protocol, t.seeds
        ),
        charts: vec![Chart {
            caption: format!("mean test accuracy over {n} UCR sets"),
            unit: "accuracy %".into(),
            bars,
        }],
        text: ucr_table::format_table(t, &rows),
    }
}

/// Per row of an audio or text table, the figure `pick` over its seeds.
fn by_row<C>(
    rows: &[String],
    cells: &[C],
    row_of: fn(&C) -> &str,
    pick: &dyn Fn(&C) -> f64,
) -> Vec<Bar> {
    rows.iter()
        .map(|name| {
            let v = percent(cells.iter().filter(|c| row_of(c) == name).map(pick));
            bar(name, &v, kind_of(name))
        })
        .collect()
}

fn audio_page(t: &AudioTable) -> TablePage {
    let row_of: fn(&super::audio_table::Cell) -> &str = |c| &c.row;
    let chart = |caption: &str, pick: &dyn Fn(&super::audio_table::Cell) -> f64| Chart {
        caption: caption.into(),
        unit: "accuracy %".into(),
        bars: by_row(&t.rows, &t.cells, row_of, pick),
    };
    TablePage {
        title: "Spoken digits: audio representations".into(),
        about: format!(
            "selfsup audio-table: {} training and {} test clips, {} speakers, seeds {:?}.",
            t.train_clips,
            t.test_clips,
            t.speakers.len(),
            t.seeds
        ),
        charts: vec![
            chart("leave-one-speaker-out, linear probe", &|c| {
                c.scores.speaker_linear
            }),
            chart("leave-one-speaker-out, kNN", &|c| c.scores.speaker_knn),
            chart("official split, linear probe", &|c| {
                c.scores.official_linear
            }),
            chart("official split, kNN", &|c| c.scores.official_knn),
        ],
        text: super::audio_table::format_table(t),
    }
}

fn multimodal_page(t: &MultimodalTable) -> TablePage {
    use super::multimodal_table::{format_table, Cell};
    let rows = t.rows();
    let row_of: fn(&Cell) -> &str = |c| &c.row;
    let mut charts = Vec::new();
    for chance in &t.chance {
        let (q, g) = (chance.query.clone(), chance.gallery.clone());
        let with: Vec<String> = rows
            .iter()
            .filter(|r| {
                t.cells
                    .iter()
                    .any(|c| &c.row == *r && c.retrieval.iter().any(|x| x.query == q))
            })
            .cloned()
            .collect();
        let pick = move |c: &Cell| {
            c.retrieval
                .iter()
                .find(|x| x.query == q && x.gallery == g)
                .map_or(f64::NAN, |x| x.top1)
        };
        let mut bars = by_row(&with, &t.cells, row_of, &pick);
        bars.push(bar("chance", &percent([chance.top1]), BarKind::Baseline));
        charts.push(Chart {
            caption: format!("{} → {} retrieval, top-1", chance.query, chance.gallery),
            unit: "% of queries".into(),
            bars,
        });
    }
    for m in &t.modalities {
        let with: Vec<String> = rows
            .iter()
            .filter(|r| {
                t.cells
                    .iter()
                    .any(|c| &c.row == *r && c.probes.iter().any(|p| &p.modality == m))
            })
            .cloned()
            .collect();
        let pick = |c: &Cell| {
            c.probes
                .iter()
                .find(|p| &p.modality == m)
                .map_or(f64::NAN, |p| p.linear)
        };
        charts.push(Chart {
            caption: format!("{m} encoder, linear probe"),
            unit: "accuracy %".into(),
            bars: by_row(&with, &t.cells, row_of, &pick),
        });
    }
    TablePage {
        title: format!("{}: across modalities", t.recipe),
        about: format!(
            "selfsup multimodal: modalities {:?}, seeds {:?}.",
            t.modalities, t.seeds
        ),
        charts,
        text: format_table(t),
    }
}

fn text_page(t: &TextTable) -> TablePage {
    let row_of: fn(&super::text_table::Cell) -> &str = |c| &c.row;
    let mut charts = vec![
        Chart {
            caption: "SST-2 dev, frozen probe".into(),
            unit: "accuracy %".into(),
            bars: by_row(&t.rows, &t.cells, row_of, &|c| c.scores.sst2_probe),
        },
        Chart {
            caption: format!("SST-2 dev, fine-tuned ({})", t.fine_tune),
            unit: "accuracy %".into(),
            bars: by_row(&t.rows, &t.cells, row_of, &|c| c.scores.sst2_fine_tuned),
        },
    ];
    for (i, f) in super::text_table::SMS_FRACTIONS.iter().enumerate() {
        charts.push(Chart {
            caption: format!("SMS spam macro-F1, {}% of the labels", f * 100.0),
            unit: "macro-F1 %".into(),
            bars: by_row(&t.rows, &t.cells, row_of, &move |c| {
                c.scores.sms_f1.get(i).copied().unwrap_or(f64::NAN)
            }),
        });
    }
    TablePage {
        title: "Text representations".into(),
        about: format!(
            "selfsup text-table: {} pretraining texts, seeds {:?}.",
            t.pretraining_texts, t.seeds
        ),
        charts,
        text: super::text_table::format_table(t),
    }
}

fn few_labels_page(t: &FewLabelsTable) -> TablePage {
    let charts = t
        .fractions
        .iter()
        .map(|&f| {
            let mut arms: Vec<&str> = Vec::new();
            for c in t.cells.iter().filter(|c| c.fraction == f) {
                if !arms.contains(&c.arm.as_str()) {
                    arms.push(&c.arm);
                }
            }
            Chart {
                caption: format!("fine-tuning with {}% of the labels", f * 100.0),
                unit: "test accuracy %".into(),
                bars: arms
                    .into_iter()
                    .map(|arm| {
                        let v = percent(
                            t.cells
                                .iter()
                                .filter(|c| c.fraction == f && c.arm == arm)
                                .map(|c| c.accuracy),
                        );
                        bar(arm, &v, kind_of(arm))
                    })
                    .collect(),
            }
        })
        .collect();
    TablePage {
        title: format!("Few labels on top of {}", t.recipe),
        about: format!(
            "selfsup few-labels: {} fine-tuning steps per arm at batch {}; self-training: {}; seeds {:?}.",
            t.steps, t.batch, t.self_training, t.seeds
        ),
        charts,
        text: super::few_labels::format_table(t),
    }
}

fn simcore_page(t: &SimcoreTable) -> TablePage {
    let mut arms: Vec<&str> = Vec::new();
    for c in &t.cells {
        if !arms.contains(&c.arm.as_str()) {
            arms.push(&c.arm);
        }
    }
    let chart = |caption: &str, pick: fn(&super::simcore_table::Cell) -> f64| Chart {
        caption: caption.into(),
        unit: "accuracy % on the target classes".into(),
        bars: arms
            .iter()
            .map(|&arm| {
                let v = percent(t.cells.iter().filter(|c| c.arm == arm).map(pick));
                bar(arm, &v, kind_of(arm))
            })
            .collect(),
    };
    TablePage {
        title: "SimCore: pretraining data from an open-set pool".into(),
        about: format!(
            "selfsup simcore-table: target {} ({} training images), pool of {}, budget {}, {} steps per run, seeds {:?}.",
            t.target_classes.join(", "),
            t.target_train,
            t.pool,
            t.budget,
            t.steps,
            t.seeds
        ),
        charts: vec![
            chart("linear probe", |c| c.linear),
            chart("kNN", |c| c.knn),
        ],
        text: super::simcore_table::format_table(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of committed results file draws: its charts, one bar per row.
    #[test]
    fn the_committed_results_files_get_their_reports() {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/results");
        let dir = tempfile::tempdir().unwrap();
        // (file, charts, bars in the first chart)
        let files = [
            ("compare-fmnist-8ep-2026-12-04/compare.json", 2, 13),
            ("graph-2026-11-29/graphmae-cora-seeds6-12.json", 1, 3),
            ("tabular-vime-adult.json", 1, 3),
            ("audio-fsdd-2026-12-07/table.json", 4, 9),
            ("text-sst2-2026-12-07/table.json", 5, 8),
            ("few-labels-2026-12-07/few-labels.json", 2, 5),
            ("few-labels-2026-12-07/simcore.json", 2, 3),
            // Two retrieval charts (CLIP, random init, chance) and two probe charts.
            ("multimodal-av-digits-2026-12-07/table.json", 4, 3),
        ];
        for (file, charts, bars) in files {
            let json = dir.path().join(file.replace('/', "_"));
            std::fs::copy(results.join(file), &json).unwrap();
            let page =
                std::fs::read_to_string(write_table_report(&json, Path::new("")).unwrap()).unwrap();
            assert_eq!(page.matches("<svg").count(), charts, "{file}");
            let first = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap()];
            let drawn = ["#4272C4", "#A0A0A0", "#E6963C"]
                .iter()
                .map(|c| first.matches(c).count())
                .sum::<usize>();
            assert_eq!(drawn, bars, "{file}");
        }
    }

    #[test]
    fn a_ucr_table_is_drawn_beside_the_published_means() {
        let t: UcrTable = serde_json::from_value(serde_json::json!({
            "recipe": "ts2vec", "protocol": "svm", "seeds": [0, 1],
            "cells": [
                {"set": "A", "seed": 0, "fingerprint": "f", "accuracy": 0.9, "records": [], "pretrain_seconds": 1.0, "eval_seconds": 1.0},
                {"set": "A", "seed": 1, "fingerprint": "f", "accuracy": 0.8, "records": [], "pretrain_seconds": 1.0, "eval_seconds": 1.0},
                {"set": "B", "seed": 0, "fingerprint": "f", "accuracy": 0.7, "records": [], "pretrain_seconds": 1.0, "eval_seconds": 1.0},
                {"set": "B", "seed": 1, "fingerprint": "f", "accuracy": 0.7, "records": [], "pretrain_seconds": 1.0, "eval_seconds": 1.0}
            ]
        }))
        .unwrap();
        let mut published = ucr_table::Published::new();
        for (set, v) in [("A", 0.95), ("B", 0.75)] {
            published.insert(set.into(), [("ts2vec".to_string(), v)].into());
        }
        let page = ucr_page(&t, &published);
        let bars = &page.charts[0].bars;
        // Seed means over the two sets: 80 and 75 → 77.5 ± 3.54; published mean 85.
        assert_eq!(bars[0].kind, BarKind::Ours);
        assert!((bars[0].mean - 77.5).abs() < 1e-9);
        assert!((bars[0].std.unwrap() - 3.5355).abs() < 1e-3);
        let p = bars.iter().find(|b| b.kind == BarKind::Published).unwrap();
        assert!((p.mean - 85.0).abs() < 1e-9, "{}", p.mean);
    }

    #[test]
    fn baselines_are_told_from_pretrained_rows_by_name() {
        for b in [
            "control: raw inputs",
            "raw features + MLP",
            "random init: tera",
            "MFCC statistics (20 coefficients)",
            "TF-IDF word",
            "GBDT (forust) on raw features",
            "baseline",
            "target",
        ] {
            assert_eq!(kind_of(b), BarKind::Baseline, "{b}");
        }
        for o in ["simclr", "t-jepa + MLP", "self-training", "target+simcore"] {
            assert_eq!(kind_of(o), BarKind::Ours, "{o}");
        }
    }
}
