//! A series recipe over many UCR sets, as TS2Vec's Table 1 reports it: for each set, one fresh
//! pretraining per seed (an ordinary run folder) scored by the recipe's protocol (the SVM when
//! `eval.svm`, else the linear probe), beside the raw-series SVM, 1-NN Euclidean and 1-NN DTW of
//! the same code and the published per-set figures; at the bottom, mean accuracy and average
//! rank over the sets.
//!
//! The table lives in its runs folder: `table.json` is rewritten after every (set, seed) cell,
//! so an interrupted table continues where it stopped when the same command is run again —
//! finished cells are read back (refused if their recipe's settings changed), an interrupted
//! pretraining continues from its last checkpoint, the rest are run.
use crate::recipe::{DataConfig, Recipe};
use crate::run::commands::{self, RunOptions};
use crate::run::folder::{atomic_write, RunFolder};
use crate::run::pipeline::EvalRecord;
use crate::stats::{mean, std_population};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The published columns of the reference file, in its order.
pub const PUBLISHED: [&str; 6] = [
    "ts2vec",
    "t_loss",
    "ts_tcc",
    "tnc",
    "dtw_1nn",
    "inceptiontime",
];

/// Published per-set accuracies (fractions): set → column → figure.
pub type Published = BTreeMap<String, BTreeMap<String, f64>>;

/// Reads a tab-separated file with a `dataset` column and one column per method; an empty
/// field is a figure that was not published.
pub fn read_published(path: &Path) -> Result<Published> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{}: empty", path.display()))?;
    let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
    if columns.first() != Some(&"dataset") {
        bail!("{}:1: the first column must be `dataset`", path.display());
    }
    let mut out = Published::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() > columns.len() {
            bail!(
                "{}:{}: {} fields, the header has {}",
                path.display(),
                i + 1,
                fields.len(),
                columns.len()
            );
        }
        let mut row = BTreeMap::new();
        for (c, f) in columns.iter().zip(&fields).skip(1) {
            if f.is_empty() {
                continue;
            }
            let v: f64 = f.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}:{}: column {c}: {f:?} is not a number",
                    path.display(),
                    i + 1
                )
            })?;
            row.insert(c.to_string(), v);
        }
        out.insert(fields[0].to_string(), row);
    }
    Ok(out)
}

/// One (set, seed) pretraining and its scores (fractions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub set: String,
    pub seed: u64,
    /// [`Recipe::results_fingerprint`] of the cell's recipe.
    pub fingerprint: String,
    /// The headline protocol's accuracy on the learned representation.
    pub accuracy: f64,
    /// Every record of the run's evaluation (learned, and raw for the first seed).
    pub records: Vec<EvalRecord>,
    pub pretrain_seconds: f64,
    pub eval_seconds: f64,
}

/// The whole table so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Table {
    pub recipe: String,
    pub protocol: String,
    pub seeds: Vec<u64>,
    pub cells: Vec<Cell>,
}

/// What to run.
pub struct UcrTableOptions {
    pub sets: Vec<String>,
    pub seeds: Vec<u64>,
    /// The table's folder: `table.json`, `table.md` and one run folder per cell,
    /// `<runs>/<set>/seed<k>`.
    pub runs: PathBuf,
    pub run: RunOptions,
    /// Only read the finished cells back (to look at a table another process is running).
    pub finished_only: bool,
}

fn headline(recipe: &Recipe) -> &'static str {
    if recipe.eval.svm {
        "svm"
    } else {
        "linear-probe"
    }
}

fn find(records: &[EvalRecord], features: &str, prefix: &str) -> Option<f64> {
    records
        .iter()
        .find(|r| r.features == features && r.protocol.starts_with(prefix))
        .map(|r| r.accuracy)
}

/// The recipe of one cell: the set, the seed, and the raw baselines only with the first seed
/// (they do not depend on it).
fn cell_recipe(recipe: &Recipe, set: &str, seed: u64, first: bool) -> Result<Recipe> {
    let mut r = recipe.clone();
    match &mut r.data {
        DataConfig::Ucr { name, .. } => *name = set.to_string(),
        _ => bail!("selfsup ucr-table runs series recipes (data.format = \"ucr\")"),
    }
    r.name = format!("{}-{set}", recipe.name);
    r.seed = seed;
    r.seeds = None;
    r.eval.raw_baseline = first && recipe.eval.raw_baseline;
    commands::absolutise(&mut r.data);
    Ok(r)
}

/// Runs (or reads back) every cell, saving the table after each.
pub fn run_ucr_table(
    recipe: &Recipe,
    opts: &UcrTableOptions,
    mut log: impl FnMut(&str),
) -> Result<Table> {
    std::fs::create_dir_all(&opts.runs).with_context(|| format!("{}", opts.runs.display()))?;
    let state = opts.runs.join("table.json");
    let mut table: Table = if state.exists() {
        let text = std::fs::read_to_string(&state)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a table of `selfsup ucr-table`", state.display()))?
    } else {
        Table::default()
    };
    table.recipe = recipe.name.clone();
    table.protocol = headline(recipe).into();
    table.seeds = opts.seeds.clone();
    let first_seed = opts.seeds.first().copied().unwrap_or(0);
    // Seed by seed, so that an interrupted table has whole columns of sets.
    for &seed in &opts.seeds {
        for set in &opts.sets {
            let r = cell_recipe(recipe, set, seed, seed == first_seed)?;
            let fingerprint = r.results_fingerprint();
            if let Some(c) = table.cells.iter().find(|c| &c.set == set && c.seed == seed) {
                if c.fingerprint != fingerprint {
                    bail!(
                        "{}: the cell {set} / seed {seed} was made with other settings than \
                         this recipe's now; choose another --runs folder (nothing was changed)",
                        state.display()
                    );
                }
                continue;
            }
            if opts.finished_only {
                continue;
            }
            let run_dir = opts.runs.join(set).join(format!("seed{seed}"));
            let resume = RunFolder::exists(&run_dir);
            let mut run = opts.run.clone();
            run.run_dir = Some(run_dir.clone());
            run.resume = resume;
            run.evaluate = true;
            let t = Instant::now();
            let report = commands::pretrain_recipe(r.clone(), &run)
                .with_context(|| format!("{set}, seed {seed} ({})", run_dir.display()))?;
            let accuracy = find(&report.eval, "learned", headline(recipe)).with_context(|| {
                format!("{}: no {} record", run_dir.display(), headline(recipe))
            })?;
            let total = t.elapsed().as_secs_f64();
            log(&format!(
                "{set} seed {seed}: {:.2} %  (pretraining {:.1} s, {} steps{})",
                100.0 * accuracy,
                report.summary.seconds,
                report.summary.steps,
                if resume { ", resumed" } else { "" }
            ));
            table.cells.push(Cell {
                set: set.clone(),
                seed,
                fingerprint,
                accuracy,
                records: report.eval.clone(),
                pretrain_seconds: report.summary.seconds,
                eval_seconds: total - report.summary.seconds,
            });
            atomic_write(&state, serde_json::to_string_pretty(&table)?.as_bytes())?;
        }
    }
    Ok(table)
}

/// One row of the printed table (fractions).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub set: String,
    pub per_seed: Vec<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub raw_svm: Option<f64>,
    pub raw_euclidean: Option<f64>,
    pub raw_dtw: Option<f64>,
    pub published: BTreeMap<String, f64>,
}

/// The rows of `sets`, in that order.
pub fn rows(table: &Table, sets: &[String], published: &Published) -> Vec<Row> {
    sets.iter()
        .map(|set| {
            let cells: Vec<&Cell> = table.cells.iter().filter(|c| &c.set == set).collect();
            let per_seed: Vec<f64> = cells.iter().map(|c| c.accuracy).collect();
            let raw = |p: &str| cells.iter().find_map(|c| find(&c.records, "raw", p));
            Row {
                set: set.clone(),
                mean: (!per_seed.is_empty()).then(|| mean(&per_seed)),
                std: (!per_seed.is_empty()).then(|| std_population(&per_seed)),
                per_seed,
                raw_svm: raw("svm"),
                raw_euclidean: raw("1nn-euclidean"),
                raw_dtw: raw("1nn-dtw"),
                published: published.get(set).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// Average ranks (1 = best; ties share the mean of their places) of each column over the rows
/// where every column has a figure, and the number of such rows.
pub fn average_ranks(columns: &[Vec<Option<f64>>]) -> (Vec<f64>, usize) {
    let n_rows = columns.first().map_or(0, |c| c.len());
    let mut sums = vec![0.0; columns.len()];
    let mut used = 0;
    for i in 0..n_rows {
        let vals: Option<Vec<f64>> = columns.iter().map(|c| c[i]).collect();
        let Some(vals) = vals else { continue };
        used += 1;
        for (j, v) in vals.iter().enumerate() {
            let better = vals.iter().filter(|w| *w > v).count() as f64;
            let equal = vals.iter().filter(|w| *w == v).count() as f64;
            sums[j] += better + (equal + 1.0) / 2.0;
        }
    }
    (sums.iter().map(|s| s / used.max(1) as f64).collect(), used)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.2}", 100.0 * v))
}

/// The Markdown table: per set, ours (mean ± std over seeds), the raw-series baselines of the
/// same code, the published figures, and ours − published TS2Vec; then means and ranks.
pub fn format_table(table: &Table, rows: &[Row]) -> String {
    let mut s = format!(
        "Recipe `{}`, protocol `{}`, seeds {:?}; accuracy in %.\n\n\
         | dataset | ours | raw SVM | 1-NN ED | 1-NN DTW | TS2Vec (pub.) | T-Loss (pub.) | TNC (pub.) | DTW (pub.) | ours − TS2Vec |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        table.recipe, table.protocol, table.seeds
    );
    for r in rows {
        let ours = match (r.mean, r.std) {
            (Some(m), Some(sd)) if r.per_seed.len() > 1 => {
                format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
            }
            (Some(m), _) => format!("{:.2}", 100.0 * m),
            _ => "—".into(),
        };
        let p = |k: &str| r.published.get(k).copied();
        let delta = match (r.mean, p("ts2vec")) {
            (Some(m), Some(t)) => format!("{:+.2}", 100.0 * (m - t)),
            _ => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {ours} | {} | {} | {} | {} | {} | {} | {} | {delta} |\n",
            r.set,
            pct(r.raw_svm),
            pct(r.raw_euclidean),
            pct(r.raw_dtw),
            pct(p("ts2vec")),
            pct(p("t_loss")),
            pct(p("tnc")),
            pct(p("dtw_1nn")),
        ));
    }
    // Means and ranks over the sets where every column has a figure.
    let columns: Vec<(&str, Vec<Option<f64>>)> = vec![
        ("ours", rows.iter().map(|r| r.mean).collect()),
        ("raw SVM", rows.iter().map(|r| r.raw_svm).collect()),
        ("1-NN ED", rows.iter().map(|r| r.raw_euclidean).collect()),
        ("1-NN DTW", rows.iter().map(|r| r.raw_dtw).collect()),
        (
            "TS2Vec (pub.)",
            rows.iter()
                .map(|r| r.published.get("ts2vec").copied())
                .collect(),
        ),
        (
            "T-Loss (pub.)",
            rows.iter()
                .map(|r| r.published.get("t_loss").copied())
                .collect(),
        ),
        (
            "TNC (pub.)",
            rows.iter()
                .map(|r| r.published.get("tnc").copied())
                .collect(),
        ),
        (
            "DTW (pub.)",
            rows.iter()
                .map(|r| r.published.get("dtw_1nn").copied())
                .collect(),
        ),
    ];
    let only: Vec<Vec<Option<f64>>> = columns.iter().map(|(_, c)| c.clone()).collect();
    let (ranks, used) = average_ranks(&only);
    let means: Vec<String> = only
        .iter()
        .map(|c| {
            let v: Vec<f64> = (0..c.len())
                .filter(|&i| only.iter().all(|col| col[i].is_some()))
                .filter_map(|i| c[i])
                .collect();
            if v.is_empty() {
                "—".into()
            } else {
                format!("{:.2}", 100.0 * mean(&v))
            }
        })
        .collect();
    s.push_str(&format!(
        "| **mean over {used} sets** | {} | |\n",
        means.join(" | ")
    ));
    let ranks: Vec<String> = ranks.iter().map(|r| format!("{r:.2}")).collect();
    s.push_str(&format!("| **average rank** | {} | |\n", ranks.join(" | ")));
    let pre: f64 = table.cells.iter().map(|c| c.pretrain_seconds).sum();
    let all: f64 = table
        .cells
        .iter()
        .map(|c| c.pretrain_seconds + c.eval_seconds)
        .sum();
    s.push_str(&format!(
        "\n{} cells; pretraining {:.1} min, pretraining and evaluation {:.1} min in all.\n",
        table.cells.len(),
        pre / 60.0,
        all / 60.0
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties_and_skip_incomplete_rows() {
        let cols = vec![
            vec![Some(0.9), Some(0.5), None],
            vec![Some(0.8), Some(0.5), Some(1.0)],
            vec![Some(0.7), Some(0.6), Some(0.0)],
        ];
        let (r, used) = average_ranks(&cols);
        assert_eq!(used, 2);
        // Row 1: ranks 1, 2, 3. Row 2: 0.6 first, the two 0.5 share places 2 and 3.
        assert_eq!(
            r,
            vec![(1.0 + 2.5) / 2.0, (2.0 + 2.5) / 2.0, (3.0 + 1.0) / 2.0]
        );
    }

    #[test]
    fn the_published_file_is_read_with_its_gaps_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ref.tsv");
        std::fs::write(&p, "dataset\tts2vec\tts_tcc\nA\t0.5\t\nB\t0.25\t0.75\n").unwrap();
        let r = read_published(&p).unwrap();
        assert_eq!(r["A"].get("ts2vec"), Some(&0.5));
        assert_eq!(r["A"].get("ts_tcc"), None);
        assert_eq!(r["B"]["ts_tcc"], 0.75);
        std::fs::write(&p, "dataset\tts2vec\nA\tx\n").unwrap();
        let e = read_published(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("ts2vec"), "{e}");
    }

    #[test]
    fn the_shipped_reference_file_has_every_published_column() {
        let dir = crate::data::shared_data("../bench");
        let Some(dir) = dir else { return };
        let r = read_published(&dir.join("ucr_reference_accuracy.tsv")).unwrap();
        assert_eq!(r.len(), 52);
        let ts2vec: Vec<f64> = r
            .values()
            .filter_map(|row| row.get("ts2vec").copied())
            .collect();
        assert_eq!(ts2vec.len(), 52);
        // The figure: the published TS2Vec mean over these sets is 0.8816.
        assert!((mean(&ts2vec) - 0.8816).abs() < 5e-5, "{}", mean(&ts2vec));
    }
}
