//! `report.html` of a run folder: one self-contained page (inline SVG drawn by `plotters`, no
//! script, nothing fetched) with what the run was, its training curves (loss, learning rate,
//! throughput, the collapse diagnostics, the online kNN monitor), the evaluation table — learned
//! beside raw — and a 2-D map of the test embeddings (their first two principal components)
//! coloured by label.
use super::commands::load_run;
use super::folder::RunFolder;
use super::pipeline;
use crate::error::BadInputPolicy;
use crate::recipe::Recipe;
use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Points of the embedding map at most (the first test samples).
const MAP_POINTS: usize = 5000;

/// Writes `<run>/report.html` and returns its path.
pub fn write_run_report(dir: &Path, device: Device) -> Result<PathBuf> {
    let run = RunFolder::open(dir)?;
    let recipe = Recipe::load(&run.recipe_path(), &[])?;
    let manifest: serde_json::Value = read_json(&dir.join("manifest.json")).unwrap_or_default();
    let metrics = read_metrics(&dir.join("metrics.jsonl"));
    let eval: serde_json::Value = read_json(&dir.join("eval.json")).unwrap_or_default();

    let mut html = String::new();
    html.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{}</style></head><body>\n",
        escape(&recipe.name),
        STYLE
    ));
    html.push_str(&format!("<h1>{}</h1>\n", escape(&recipe.name)));
    html.push_str(&about(&recipe, &manifest));

    html.push_str("<h2>Training</h2>\n");
    let charts: [(&str, &[&str]); 5] = [
        ("loss", &["loss"]),
        ("learning rate", &["lr"]),
        ("samples per second", &["samples_per_s"]),
        ("RankMe of the batch representations", &["rankme"]),
        ("online kNN accuracy (monitor)", &["monitor_knn_acc"]),
    ];
    let mut drawn = 0;
    for (title, keys) in charts {
        let points: Vec<(f64, f64)> = metrics
            .iter()
            .filter_map(|m| {
                let y = keys
                    .iter()
                    .find_map(|k| m.get(*k).and_then(|v| v.as_f64()))?;
                Some((m.get("step")?.as_f64()?, y))
            })
            .filter(|(_, y)| y.is_finite())
            .collect();
        if points.len() >= 2 {
            html.push_str(&line_chart(title, "step", &points)?);
            drawn += 1;
        }
    }
    if drawn == 0 {
        html.push_str("<p>No training curves: the run logged fewer than two metric lines.</p>\n");
    }

    html.push_str("<h2>Evaluation</h2>\n");
    html.push_str(&eval_table(&eval));

    html.push_str("<h2>Embeddings</h2>\n");
    match embedding_map(dir, &recipe, device) {
        Ok(Some((points, labels))) => {
            let what = if recipe.data.is_graph() {
                if recipe.data.is_graph_level() {
                    "graphs"
                } else {
                    "nodes"
                }
            } else {
                "test embeddings"
            };
            html.push_str(&scatter(&points, &labels, what)?)
        }
        Ok(None) => html.push_str("<p>No labelled test split to map.</p>\n"),
        Err(e) => html.push_str(&format!("<p>No map: {}</p>\n", escape(&format!("{e:#}")))),
    }
    html.push_str("</body></html>\n");

    let out = dir.join("report.html");
    let part = dir.join("report.html.part");
    std::fs::write(&part, html).with_context(|| part.display().to_string())?;
    std::fs::rename(&part, &out).with_context(|| out.display().to_string())?;
    Ok(out)
}

const STYLE: &str = "body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
td.n{text-align:right}svg{display:block;margin:1em 0}";

fn read_json(path: &Path) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Every parseable line of `metrics.jsonl` (a line cut short by a crash is left out).
fn read_metrics(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn about(recipe: &Recipe, manifest: &serde_json::Value) -> String {
    let field = |k: &str| {
        manifest.get(k).map_or("–".to_string(), |v| {
            v.to_string().trim_matches('"').to_string()
        })
    };
    let rows = [
        ("method", recipe.method.name().to_string()),
        ("encoder", field("encoder")),
        (
            "data",
            recipe
                .data
                .paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("seed", recipe.seed.to_string()),
        (
            "device, threads",
            format!("{}, {}", field("device"), field("threads")),
        ),
        (
            "selfsup, libtorch",
            format!(
                "{}, {}",
                field("selfsup_version"),
                field("libtorch_version")
            ),
        ),
        ("recipe hash", field("recipe_hash")),
    ];
    let mut s = String::from("<table>\n");
    for (k, v) in rows {
        s.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>\n", escape(&v)));
    }
    s.push_str("</table>\n");
    s
}

fn eval_table(eval: &serde_json::Value) -> String {
    let Some(records) = eval
        .get("records")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
    else {
        return "<p>Not evaluated (see <code>selfsup eval</code>).</p>\n".into();
    };
    let mut s = String::from(
        "<table>\n<tr><th>features</th><th>protocol</th><th>dim</th><th>train</th><th>test</th><th>accuracy</th></tr>\n",
    );
    for r in records {
        let text = |k: &str| {
            r.get(k).map_or(String::new(), |v| {
                v.to_string().trim_matches('"').to_string()
            })
        };
        let accuracy = r
            .get("accuracy")
            .and_then(|v| v.as_f64())
            .map_or("–".into(), |a| format!("{:.2} %", 100.0 * a));
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{accuracy}</td></tr>\n",
            escape(&text("features")),
            escape(&text("protocol")),
            text("dim"),
            text("train_size"),
            text("test_size")
        ));
    }
    s.push_str("</table>\n");
    s
}

fn drawing<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

fn range(v: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let lo = v.clone().fold(f64::INFINITY, f64::min);
    let hi = v.fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-9 * hi.abs().max(1.0));
    (lo - pad)..(hi + pad)
}

/// What a chart of the report shows.
enum Series<'x> {
    /// One line through the points.
    Line,
    /// A point per row, coloured by its label, with a legend.
    ByLabel(&'x [i64]),
}

/// An SVG of `size` with a caption, axes spanning `points` and their descriptions, and the
/// points drawn as `series`.
fn svg_chart(
    size: (u32, u32),
    caption: &str,
    points: &[(f64, f64)],
    (x_desc, y_desc): (&str, &str),
    series: Series,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(
                range(points.iter().map(|p| p.0)),
                range(points.iter().map(|p| p.1)),
            )
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(drawing)?;
        match series {
            Series::Line => {
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
                    .map_err(drawing)?;
            }
            Series::ByLabel(labels) => {
                let mut classes: Vec<i64> = labels.to_vec();
                classes.sort_unstable();
                classes.dedup();
                for c in classes {
                    let colour = Palette99::pick(c.max(0) as usize).to_rgba();
                    chart
                        .draw_series(
                            points
                                .iter()
                                .zip(labels)
                                .filter(|(_, &y)| y == c)
                                .map(|(&p, _)| Circle::new(p, 2, colour.filled())),
                        )
                        .map_err(drawing)?
                        .label(format!("class {c}"))
                        .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
                }
                chart
                    .configure_series_labels()
                    .border_style(BLACK)
                    .background_style(WHITE.mix(0.8))
                    .draw()
                    .map_err(drawing)?;
            }
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg + "\n")
}

fn line_chart(title: &str, x_desc: &str, points: &[(f64, f64)]) -> Result<String> {
    svg_chart((720, 300), title, points, (x_desc, ""), Series::Line)
}

fn scatter(points: &[(f64, f64)], labels: &[i64], what: &str) -> Result<String> {
    let caption = format!(
        "first two principal components of {} {what}, coloured by label",
        points.len()
    );
    svg_chart(
        (720, 600),
        &caption,
        points,
        ("PC 1", "PC 2"),
        Series::ByLabel(labels),
    )
}

/// The labelled test embeddings (at most [`MAP_POINTS`]) projected on their first two principal
/// components; graph runs map every labelled node or graph.
fn embedding_map(
    dir: &Path,
    recipe: &Recipe,
    device: Device,
) -> Result<Option<(Vec<(f64, f64)>, Vec<i64>)>> {
    let (e, labels): (Tensor, Vec<i64>) = if recipe.data.is_graph() {
        crate::run::graph::run_embeddings(dir, recipe.clone(), device)?
    } else {
        let r = load_run(dir, &[], device, BadInputPolicy::Fail)?;
        let Some(test) = r.prepared.test.as_ref() else {
            return Ok(None);
        };
        let n = test.len().min(MAP_POINTS);
        let Ok(y) = pipeline::labels(test.as_ref(), n) else {
            return Ok(None);
        };
        let e = pipeline::embed(
            r.model.method.as_ref(),
            test.as_ref(),
            n,
            r.recipe.eval.batch,
            device,
        )?;
        (e.to_device(Device::Cpu), Vec::<i64>::try_from(&y)?)
    };
    let keep: Vec<i64> = (0..labels.len() as i64)
        .filter(|&i| labels[i as usize] >= 0)
        .take(MAP_POINTS)
        .collect();
    if keep.len() < 3 {
        return Ok(None);
    }
    let x = e
        .to_kind(Kind::Double)
        .index_select(0, &Tensor::from_slice(&keep));
    let x = &x - x.mean_dim([0i64].as_slice(), true, Kind::Double);
    // Principal axes: eigenvectors of XᵀX with the two largest eigenvalues (eigh sorts ascending).
    let (_, vectors) = x.tr().matmul(&x).linalg_eigh("L");
    let d = vectors.size()[1];
    let axes = vectors
        .narrow(1, (d - 2).max(0), d.min(2))
        .flip([1i64].as_slice());
    let p = x.matmul(&axes);
    let p: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(&p)?;
    let points = p
        .iter()
        .map(|r| (r[0], *r.get(1).unwrap_or(&0.0)))
        .collect();
    let labels = keep.iter().map(|&i| labels[i as usize]).collect();
    Ok(Some((points, labels)))
}
