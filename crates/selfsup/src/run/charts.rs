//! The drawing parts of selfsup's HTML pages (a run's `report.html`, a table's report, the
//! `neighbors` grid): the page frame, inline SVG charts drawn by `plotters` (lines, labelled
//! points, bars with error bars) and images inlined as PNG data, so that a page needs nothing
//! beside itself.
use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// The style every page shares.
const STYLE: &str = "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
td.n{text-align:right}svg{display:block;margin:1em 0}\
img.px{image-rendering:pixelated;width:64px;height:64px;display:block}\
td.hit{background:#e3f4e3}td.miss{background:#f8e0e0}pre{background:#f6f6f6;padding:8px;overflow-x:auto}";

/// A whole page around `body`: one file, no script, nothing fetched.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

/// What a chart shows.
pub enum Series<'x> {
    /// One line through the points.
    Line,
    /// A point per row, coloured by its label, with a legend.
    ByLabel(&'x [i64]),
}

/// An SVG of `size` with a caption, axes spanning `points` and their descriptions, and the
/// points drawn as `series`.
pub fn svg_chart(
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

/// Who a bar's figure comes from: it decides the colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// Measured by selfsup for a pretrained encoder.
    Ours,
    /// Measured by selfsup without pretraining (raw inputs, random init, a classical model).
    Baseline,
    /// A figure from a paper, not measured here.
    Published,
}

/// One bar: a mean, its spread over seeds (drawn as an error bar of ± `std`) when there is one.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub std: Option<f64>,
    pub kind: BarKind,
}

/// The colour of error bars (a near-black of its own, so that a test can count them).
const WHISKER: RGBColor = RGBColor(34, 34, 34);

/// Horizontal bars (one row per bar, so long names stay readable) with ± std error bars, on an
/// axis that starts near the lowest bar rather than at 0, so that differences of a point show.
pub fn bar_chart(caption: &str, x_desc: &str, bars: &[Bar]) -> Result<String> {
    let finite: Vec<&Bar> = bars.iter().filter(|b| b.mean.is_finite()).collect();
    if finite.is_empty() {
        return Ok(String::new());
    }
    let lo = finite
        .iter()
        .map(|b| b.mean - b.std.unwrap_or(0.0))
        .fold(f64::INFINITY, f64::min);
    let hi = finite
        .iter()
        .map(|b| b.mean + b.std.unwrap_or(0.0))
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.15).max(0.5);
    let x = (lo - pad)..(hi + pad);
    let n = bars.len();
    let height = (90 + 30 * n as u32).max(200);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let names: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(300)
            .build_cartesian_2d(x.clone(), 0f64..n as f64)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| {
                // Labels sit at the bar centres (i + 0.5), counted from the top.
                let i = *y - 0.5;
                if (i - i.round()).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                let row = n as i64 - 1 - i.round() as i64;
                names
                    .get(row as usize)
                    .map(|s| s.chars().take(45).collect())
                    .unwrap_or_default()
            })
            .draw()
            .map_err(drawing)?;
        for (i, b) in bars.iter().enumerate() {
            if !b.mean.is_finite() {
                continue;
            }
            let y = (n - 1 - i) as f64;
            let colour = match b.kind {
                BarKind::Ours => RGBColor(66, 114, 196),
                BarKind::Baseline => RGBColor(160, 160, 160),
                BarKind::Published => RGBColor(230, 150, 60),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x.start, y + 0.15), (b.mean, y + 0.85)],
                    colour.filled(),
                )))
                .map_err(drawing)?;
            if let Some(s) = b.std.filter(|s| *s > 0.0) {
                let c = y + 0.5;
                let whisker = [
                    vec![(b.mean - s, c), (b.mean + s, c)],
                    vec![(b.mean - s, c - 0.2), (b.mean - s, c + 0.2)],
                    vec![(b.mean + s, c - 0.2), (b.mean + s, c + 0.2)],
                ];
                chart
                    .draw_series(
                        whisker
                            .into_iter()
                            .map(|p| PathElement::new(p, WHISKER.stroke_width(1))),
                    )
                    .map_err(drawing)?;
            }
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg + "\n")
}

/// The legend of [`bar_chart`]'s colours, as a line of HTML.
pub fn bar_legend() -> &'static str {
    "<p><span style=\"color:#4272c4\">■</span> selfsup, pretrained · \
     <span style=\"color:#a0a0a0\">■</span> selfsup, without pretraining · \
     <span style=\"color:#e6963c\">■</span> published figure · error bars: ± one standard deviation over seeds</p>\n"
}

/// A `[C, H, W]` input (C = 1 or 3, any scale) as an `<img>` holding its PNG, stretched to its
/// own range of values so that normalised inputs show; `None` for any other shape.
pub fn image_tag(x: &[f32], shape: &[i64], title: &str) -> Option<String> {
    use base64::Engine;
    let [c, h, w] = *shape else { return None };
    if !(c == 1 || c == 3) || h < 2 || w < 2 || x.len() != (c * h * w) as usize {
        return None;
    }
    let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let (h, w, plane) = (h as usize, w as usize, (h * w) as usize);
    let mut png = std::io::Cursor::new(Vec::new());
    let byte = |v: f32| ((v - lo) * scale).clamp(0.0, 255.0) as u8;
    let written = if c == 1 {
        image::GrayImage::from_raw(w as u32, h as u32, x.iter().map(|&v| byte(v)).collect())?
            .write_to(&mut png, image::ImageFormat::Png)
    } else {
        // Channels first in the model's input, interleaved in the picture.
        let rgb = (0..plane)
            .flat_map(|p| (0..3).map(move |ch| ch * plane + p))
            .map(|i| byte(x[i]))
            .collect();
        image::RgbImage::from_raw(w as u32, h as u32, rgb)?
            .write_to(&mut png, image::ImageFormat::Png)
    };
    written.ok()?;
    Some(format!(
        "<img class=\"px\" alt=\"{0}\" title=\"{0}\" src=\"data:image/png;base64,{1}\">",
        escape(title),
        base64::engine::general_purpose::STANDARD.encode(png.into_inner())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_draw_one_rectangle_each_and_whiskers_only_with_a_spread() {
        let bars = [
            Bar {
                label: "simclr".into(),
                mean: 84.9,
                std: Some(0.3),
                kind: BarKind::Ours,
            },
            Bar {
                label: "raw inputs".into(),
                mean: 81.2,
                std: None,
                kind: BarKind::Baseline,
            },
            Bar {
                label: "paper".into(),
                mean: 85.0,
                std: Some(0.0),
                kind: BarKind::Published,
            },
        ];
        let svg = bar_chart("accuracy", "%", &bars).unwrap();
        // Plotters draws the background and each bar as <rect>; the one spread has 3 lines.
        let fills = ["#4272C4", "#A0A0A0", "#E6963C"];
        for f in fills {
            assert_eq!(svg.matches(f).count(), 1, "{f} in {svg}");
        }
        assert_eq!(svg.matches("stroke=\"#222222\"").count(), 3, "{svg}");
        assert!(svg.contains("simclr") && svg.contains("raw inputs"));
        assert!(bar_chart("nothing", "%", &[]).unwrap().is_empty());
    }

    #[test]
    fn images_become_png_data_and_other_shapes_none() {
        let x: Vec<f32> = (0..16).map(|v| v as f32 - 8.0).collect();
        let tag = image_tag(&x, &[1, 4, 4], "a <b>").unwrap();
        assert!(tag.starts_with("<img class=\"px\" alt=\"a &lt;b&gt;\""));
        use base64::Engine;
        let data = tag.split("base64,").nth(1).unwrap().trim_end_matches("\">");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        // The lowest value is black, the highest white.
        assert_eq!((back.width(), back.height()), (4, 4));
        assert_eq!(back.get_pixel(0, 0)[0], 0);
        assert_eq!(back.get_pixel(3, 3)[0], 255);
        let rgb: Vec<f32> = (0..3 * 4).map(|v| v as f32).collect();
        assert!(image_tag(&rgb, &[3, 2, 2], "rgb").is_some());
        assert!(image_tag(&x, &[16], "a row").is_none());
        assert!(image_tag(&x, &[2, 2, 4], "two channels").is_none());
    }
}
