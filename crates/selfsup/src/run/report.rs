//! `report.html` of a run folder: one self-contained page (inline SVG drawn by `plotters`,
//! images inlined as PNG data, no script, nothing fetched) with what the run was, its training
//! curves (loss, learning rate, throughput, the collapse diagnostics, the online kNN monitor),
//! the evaluation table — learned beside raw — a 2-D map of the test embeddings (their first two
//! principal components) coloured by label, and for images a gallery of test images beside their
//! nearest training images in the learned space.
use super::charts::{escape, image_tag, page, svg_chart, Series};
use super::commands::{load_run, LoadedRun};
use super::embedding_map::{map_2d, Map2d, MapMethod};
use super::folder::RunFolder;
use super::pipeline;
use crate::error::BadInputPolicy;
use crate::eval::neighbours::cosine_neighbours;
use crate::recipe::Recipe;
use crate::views::ViewSource;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Points of the embedding map at most (the first test samples).
const MAP_POINTS: usize = 5000;
/// The gallery: this many test images, each with its nearest training images among the first
/// [`GALLERY_MEMORY`] (a bound on the report's time; `selfsup neighbors` searches them all).
const GALLERY_QUERIES: usize = 8;
const GALLERY_K: usize = 6;
const GALLERY_MEMORY: usize = 10_000;

/// Writes `<run>/report.html` and returns its path.
pub fn write_run_report(dir: &Path, device: Device) -> Result<PathBuf> {
    let run = RunFolder::open(dir)?;
    let recipe = Recipe::load(&run.recipe_path(), &[])?;
    let manifest: serde_json::Value = read_json(&dir.join("manifest.json")).unwrap_or_default();
    let metrics = read_metrics(&dir.join("metrics.jsonl"));
    let eval: serde_json::Value = read_json(&dir.join("eval.json")).unwrap_or_default();

    let mut html = format!("<h1>{}</h1>\n", escape(&recipe.name));
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
    // A sample run is loaded once, for the map and the gallery.
    let loaded =
        (!recipe.data.is_graph()).then(|| load_run(dir, &[], device, BadInputPolicy::Fail));
    let embedded = match &loaded {
        None => crate::run::graph::run_embeddings(dir, recipe.clone(), device).map(Some),
        Some(Ok(r)) => test_embeddings(r, device),
        Some(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
    };
    match embedded.and_then(|e| e.map(|(e, y)| map_2d(&e, &y, MAP_POINTS)).transpose()) {
        Ok(Some(Some(map))) => {
            let what = if recipe.data.is_graph() {
                if recipe.data.is_graph_level() {
                    "graphs"
                } else {
                    "nodes"
                }
            } else {
                "test embeddings"
            };
            html.push_str(&scatter(&map, what)?)
        }
        Ok(_) => html.push_str("<p>No labelled test split to map.</p>\n"),
        Err(e) => html.push_str(&format!("<p>No map: {}</p>\n", escape(&format!("{e:#}")))),
    }
    if let Some(Ok(r)) = &loaded {
        match gallery(r, device) {
            Ok(Some(g)) => html.push_str(&g),
            Ok(None) => {}
            Err(e) => html.push_str(&format!(
                "<p>No gallery: {}</p>\n",
                escape(&format!("{e:#}"))
            )),
        }
    }

    let out = dir.join("report.html");
    let part = dir.join("report.html.part");
    std::fs::write(&part, page(&recipe.name, &html)).with_context(|| part.display().to_string())?;
    std::fs::rename(&part, &out).with_context(|| out.display().to_string())?;
    Ok(out)
}

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

fn line_chart(title: &str, x_desc: &str, points: &[(f64, f64)]) -> Result<String> {
    svg_chart((720, 300), title, points, (x_desc, ""), Series::Line)
}

fn scatter(map: &Map2d, what: &str) -> Result<String> {
    let (caption, axes) = match map.how {
        MapMethod::Tsne { perplexity } => (
            format!(
                "t-SNE (perplexity {perplexity}, Barnes-Hut, from the PCA map) of {} {what}, coloured by label",
                map.points.len()
            ),
            ("t-SNE 1", "t-SNE 2"),
        ),
        MapMethod::Pca => (
            format!(
                "first two principal components of {} {what}, coloured by label",
                map.points.len()
            ),
            ("PC 1", "PC 2"),
        ),
    };
    svg_chart(
        (720, 600),
        &caption,
        &map.points,
        axes,
        Series::ByLabel(&map.labels),
    )
}

/// The first [`MAP_POINTS`] test embeddings of a sample run and their labels (`None` without a
/// labelled test split).
fn test_embeddings(r: &LoadedRun, device: Device) -> Result<Option<(Tensor, Vec<i64>)>> {
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
    Ok(Some((e.to_device(Device::Cpu), Vec::<i64>::try_from(&y)?)))
}

/// For image runs: the first [`GALLERY_QUERIES`] test images, each beside its nearest training
/// images (cosine in the learned space), marked by whether their label agrees. `None` for
/// inputs that are not images, or without a test split.
fn gallery(r: &LoadedRun, device: Device) -> Result<Option<String>> {
    let train = r.prepared.train.as_ref();
    let Some(test) = r.prepared.test.as_ref() else {
        return Ok(None);
    };
    let shape = train.sample_shape();
    if shape.len() != 3 || !(shape[0] == 1 || shape[0] == 3) {
        return Ok(None);
    }
    let n_memory = train.len().min(GALLERY_MEMORY);
    let n_queries = test.len().min(GALLERY_QUERIES);
    let k = GALLERY_K.min(n_memory);
    if n_queries == 0 || k == 0 {
        return Ok(None);
    }
    let embed = |s: &dyn ViewSource, n| {
        pipeline::embed(r.model.method.as_ref(), s, n, r.recipe.eval.batch, device)
            .map(|e| e.to_device(Device::Cpu))
    };
    let memory = embed(train, n_memory)?;
    let queries = embed(test.as_ref(), n_queries)?;
    let found = cosine_neighbours(&memory, &queries, k, None).map_err(anyhow::Error::msg)?;
    let rows: Vec<GalleryRow> = (0..n_queries)
        .map(|q| GalleryRow {
            query: q,
            neighbours: found.index[q]
                .iter()
                .zip(&found.similarity[q])
                .map(|(&j, &c)| (j as usize, c))
                .collect(),
        })
        .collect();
    let caption = format!(
        "The first {n_queries} test images (left) and their {k} nearest among the first {n_memory} training images, by cosine similarity of the learned representations; green: same label, red: another."
    );
    Ok(image_grid(test.as_ref(), train, &rows, &caption))
}

/// One query of a grid and its neighbours: (memory row, cosine similarity), most similar first.
pub struct GalleryRow {
    pub query: usize,
    pub neighbours: Vec<(usize, f32)>,
}

/// An HTML table of images: per row the query, then its neighbours with their similarity and
/// label; `None` when the samples are not images.
pub fn image_grid(
    queries: &dyn ViewSource,
    memory: &dyn ViewSource,
    rows: &[GalleryRow],
    caption: &str,
) -> Option<String> {
    let shape = memory.sample_shape();
    let picture = |s: &dyn ViewSource, i: usize, what: &str| {
        let mut x = vec![0f32; s.sample_len()];
        s.make_plain(i, &mut x);
        image_tag(&x, &shape, what)
    };
    let label = |s: &dyn ViewSource, i| s.label(i).map_or("–".into(), |l| l.to_string());
    let mut html = format!("<p>{}</p>\n<table>\n", escape(caption));
    for row in rows {
        let q = row.query;
        html.push_str(&format!(
            "<tr><td>{}test {q}<br>label {}</td>",
            picture(queries, q, &format!("test {q}"))?,
            label(queries, q)
        ));
        for &(j, c) in &row.neighbours {
            let class = match (queries.label(q), memory.label(j)) {
                (Some(a), Some(b)) if a == b => " class=\"hit\"",
                (Some(_), Some(_)) => " class=\"miss\"",
                _ => "",
            };
            html.push_str(&format!(
                "<td{class}>{}train {j}<br>label {}<br>cos {c:.3}</td>",
                picture(memory, j, &format!("train {j}"))?,
                label(memory, j)
            ));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    Some(html)
}
