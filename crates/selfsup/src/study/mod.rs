//! Tables of runs: several recipes and seeds, each an ordinary run, summarised as the papers
//! report them. Every table rewrites its `--out` after each seed and resumes from it, refusing
//! saved rows made under other settings.
pub mod audio_table;
pub mod compare;
pub mod few_labels;
pub mod graph_table;
pub mod multimodal_table;
pub mod seed_run;
pub mod self_pretrain;
pub mod simcore_table;
pub mod table_file;
pub mod table_report;
pub mod tabular;
pub mod text_table;
pub mod ucr_table;

/// A table cell: `mean ± std` in percent over seeds' fractions (one value: no ±; none: —).
pub(crate) fn percent_cell(values: &[f64]) -> String {
    match values.len() {
        0 => "—".into(),
        1 => format!("{:.2}", 100.0 * values[0]),
        _ => {
            let (m, s) = crate::stats::mean_std(values);
            format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
        }
    }
}
