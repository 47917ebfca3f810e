//! `selfsup simcore-table`: does pretraining on the target data plus the part of an open-set pool
//! that resembles it (SimCore, `eval/coreset.rs`) beat pretraining on the target plus a random
//! part of the same size, or on the target alone?
//!
//! The target is the Fashion-MNIST training images of some classes (by default T-shirt, trouser,
//! pullover, dress, coat); the open-set pool is the training images of the other classes (sandal,
//! shirt, sneaker, bag, ankle boot) and, when given, scikit-learn's 1,797 8×8 handwritten digits
//! upsampled to 28×28. Per seed:
//!
//! 1. pretrain on the target alone — also SimCore's retrieval encoder, as in the paper;
//! 2. embed target and pool with it, select the coreset (budget, K centroids);
//! 3. pretrain on target ∪ coreset and on target ∪ a random pool subset of the coreset's size;
//! 4. score all three by a linear probe (and kNN) on the target classes: frozen features of the
//!    target training images, the target classes' test images.
//!
//! All three pretrain for the same number of steps (`--steps`), so a larger set is not a larger
//! budget. The selected pool ids go to `<runs>/coreset/seed<k>.tsv` (and the random ones to
//! `<runs>/random/seed<k>.tsv`); the table to `<runs>/simcore.json`.
use super::table_file;
use crate::data::ImageSet;
use crate::error::SkipReport;
use crate::eval::coreset::{simcore, CoresetConfig};
use crate::recipe::{DataConfig, Recipe};
use crate::run::folder::{atomic_write, RunFolder};
use crate::run::pipeline::{self, image_sources, Prepared, Protocol};
use crate::run::{commands, RunOptions};
use crate::stats::mean_std;
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Fashion-MNIST's class names (Xiao et al. 2017), in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

pub const ARMS: [&str; 3] = ["target", "target+simcore", "target+random"];

pub struct SimcoreOptions {
    pub seeds: Vec<u64>,
    pub target_classes: Vec<i64>,
    /// scikit-learn's `digits.csv.gz` (64 pixel values 0..16 and the label per row), added to
    /// the pool.
    pub digits: Option<PathBuf>,
    pub coreset: CoresetConfig,
    /// Pretraining steps of every arm.
    pub steps: u64,
    pub runs: PathBuf,
    pub run: RunOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub seed: u64,
    pub arm: String,
    pub linear: f64,
    pub knn: f64,
    pub pretrain_samples: usize,
    pub pretrain_seconds: f64,
    /// Pool samples added, by where they come from.
    pub composition: Vec<(String, usize)>,
    pub stopped_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimcoreTable {
    pub recipe: String,
    pub seeds: Vec<u64>,
    pub target_classes: Vec<String>,
    pub target_train: usize,
    pub target_test: usize,
    pub pool: usize,
    pub pool_composition: Vec<(String, usize)>,
    pub budget: usize,
    pub clusters: usize,
    pub steps: u64,
    pub cells: Vec<Cell>,
}

/// Images of `set` whose label passes `keep`, labels renumbered by `relabel`.
fn filter(set: &ImageSet, keep: impl Fn(i64) -> bool, relabel: impl Fn(i64) -> i64) -> ImageSet {
    let labels = set.labels.as_ref().expect("Fashion-MNIST has labels");
    let per = set.image_len();
    let mut pixels = Vec::new();
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if keep(l) {
            pixels.extend_from_slice(&set.pixels[i * per..(i + 1) * per]);
            out.push(relabel(l));
        }
    }
    ImageSet {
        pixels,
        len: out.len(),
        channels: set.channels,
        height: set.height,
        width: set.width,
        labels: Some(out),
        class_names: Vec::new(),
        sources: None,
    }
}

/// scikit-learn's digits (rows of 64 values 0..16 and a label), each upsampled bilinearly to
/// `size`×`size` grey levels 0..255 (bright strokes on black, as Fashion-MNIST's objects).
pub fn read_digits(path: &Path, size: u32) -> Result<(Vec<u8>, Vec<i64>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(path).with_context(|| format!("{}", path.display()))?,
    )
    .read_to_string(&mut text)
    .with_context(|| format!("{}: not gzipped text", path.display()))?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Vec<f64> = line
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}:{}: not a row of numbers", path.display(), n + 1))?;
        if v.len() != 65 || v[..64].iter().any(|&p| !(0.0..=16.0).contains(&p)) {
            bail!(
                "{}:{}: expected 64 pixel values in 0..16 and a label, got {} fields",
                path.display(),
                n + 1,
                v.len()
            );
        }
        let small = image::GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([(v[(y * 8 + x) as usize] * 255.0 / 16.0).round() as u8])
        });
        let big =
            image::imageops::resize(&small, size, size, image::imageops::FilterType::Triangle);
        pixels.extend_from_slice(big.as_raw());
        labels.push(v[64] as i64);
    }
    Ok((pixels, labels))
}

/// The pool: `images` with a name per sample saying where it comes from.
struct Pool {
    images: ImageSet,
    origin: Vec<String>,
}

fn composition(pool: &Pool, ids: &[usize]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for &i in ids {
        let o = &pool.origin[i];
        match counts.iter_mut().find(|(n, _)| n == o) {
            Some(c) => c.1 += 1,
            None => counts.push((o.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
}

/// Target ∪ the pool samples `ids`, unlabelled.
fn union(target: &ImageSet, pool: &Pool, ids: &[usize]) -> ImageSet {
    let per = target.image_len();
    let mut pixels = target.pixels.clone();
    for &i in ids {
        pixels.extend_from_slice(&pool.images.pixels[i * per..(i + 1) * per]);
    }
    ImageSet {
        pixels,
        len: target.len + ids.len(),
        channels: target.channels,
        height: target.height,
        width: target.width,
        labels: None,
        class_names: Vec::new(),
        sources: None,
    }
}

fn write_ids(path: &Path, pool: &Pool, ids: &[usize], sim: Option<&[f64]>) -> Result<()> {
    let mut s = String::from("pool_index\torigin\tsimilarity\n");
    for (k, &i) in ids.iter().enumerate() {
        let v = sim.map_or(String::new(), |s| format!("{:.5}", s[k]));
        s.push_str(&format!("{i}\t{}\t{v}\n", pool.origin[i]));
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    atomic_write(path, s.as_bytes())
}

pub fn run_simcore_table(
    recipe: &Recipe,
    opts: &SimcoreOptions,
    log: impl Fn(&str),
) -> Result<SimcoreTable> {
    let DataConfig::Idx {
        train_images,
        train_labels: Some(train_labels),
        test_images: Some(test_images),
        test_labels: Some(test_labels),
    } = &recipe.data
    else {
        bail!("simcore-table needs a labelled IDX recipe (Fashion-MNIST)");
    };
    let train = crate::data::idx::load_idx(train_images, Some(train_labels))?;
    let test = crate::data::idx::load_idx(test_images, Some(test_labels))?;
    let classes = opts.target_classes.clone();
    if classes.is_empty() || classes.iter().any(|&c| !(0..10).contains(&c)) {
        bail!("target classes must be Fashion-MNIST labels 0..9, got {classes:?}");
    }
    let rank = |l: i64| classes.iter().position(|&c| c == l).unwrap_or(0) as i64;
    let target = Arc::new(filter(&train, |l| classes.contains(&l), rank));
    let target_test = Arc::new(filter(&test, |l| classes.contains(&l), rank));
    let others = filter(&train, |l| !classes.contains(&l), |l| l);
    let mut origin: Vec<String> = others
        .labels
        .as_ref()
        .unwrap()
        .iter()
        .map(|&l| FASHION_CLASSES[l as usize].to_string())
        .collect();
    let mut pool_images = others;
    if let Some(p) = &opts.digits {
        let (pixels, labels) = read_digits(p, train.width as u32)?;
        pool_images.pixels.extend(pixels);
        pool_images.len += labels.len();
        origin.extend(labels.iter().map(|_| "digit (sklearn 8×8)".to_string()));
    }
    pool_images.labels = None;
    let pool = Pool {
        images: pool_images,
        origin,
    };
    let out = opts.runs.join("simcore.json");
    let mut table: SimcoreTable =
        table_file::saved(Some(&out), true, "simcore-table")?.unwrap_or_default();
    table.recipe = recipe.name.clone();
    table.seeds = opts.seeds.clone();
    table.target_classes = classes
        .iter()
        .map(|&c| FASHION_CLASSES[c as usize].into())
        .collect();
    table.target_train = target.len;
    table.target_test = target_test.len;
    table.pool = pool.images.len;
    table.pool_composition = composition(&pool, &(0..pool.images.len).collect::<Vec<_>>());
    table.budget = opts.coreset.budget;
    table.clusters = opts.coreset.clusters;
    table.steps = opts.steps;

    let mut r = recipe.clone();
    r.train.epochs = 0;
    r.train.steps = Some(opts.steps);
    r.train.max_samples = None;
    r.eval.raw_baseline = false;
    let (tr_views, te_views) = image_sources(target.clone(), Some(target_test.clone()), &r);
    let pool_src = Arc::new(pool.images.clone());
    let (pool_views, _) = image_sources(pool_src, None, &r);
    let te_views = te_views.expect("a test split");
    let prepared = |pretrain: Option<ImageSet>, name: &str| Prepared {
        train: tr_views.clone(),
        test: Some(te_views.clone()),
        pretrain: pretrain.map(|s| image_sources(Arc::new(s), None, &r).0),
        tokenizer: None,
        skipped: SkipReport::default(),
        fingerprint: name.to_string(),
    };
    for &seed in &opts.seeds {
        let have =
            |t: &SimcoreTable, arm: &str| t.cells.iter().any(|c| c.seed == seed && c.arm == arm);
        if ARMS.iter().all(|a| have(&table, a)) {
            continue;
        }
        let mut rs = r.clone();
        rs.seed = seed;
        // 1. The target alone; its encoder retrieves the coreset.
        let pretrain = |arm: &str, p: Prepared| -> Result<(commands::LoadedRun, f64)> {
            let dir = opts.runs.join(arm).join(format!("seed{seed}"));
            let mut run = opts.run.clone();
            run.run_dir = Some(dir.clone());
            run.resume = RunFolder::exists(&dir);
            run.evaluate = false;
            let t = std::time::Instant::now();
            commands::pretrain_prepared(rs.clone(), p, &dir, &run)
                .with_context(|| format!("{arm}, seed {seed} ({})", dir.display()))?;
            let secs = t.elapsed().as_secs_f64();
            let loaded = commands::load_run(
                &dir,
                &[],
                opts.run.device,
                crate::error::BadInputPolicy::Fail,
            )?;
            Ok((loaded, secs))
        };
        let score = |loaded: &commands::LoadedRun| -> Result<(f64, f64)> {
            let recs = pipeline::evaluate(
                loaded.model.method.as_ref(),
                &prepared(None, "score"),
                &rs.eval,
                &[Protocol::Knn, Protocol::Linear],
                opts.run.device,
            )?;
            let get = |p: &str| {
                recs.iter()
                    .find(|e| e.protocol.starts_with(p) && e.features == "learned")
                    .map(|e| e.accuracy)
                    .with_context(|| format!("no {p} record"))
            };
            Ok((get("linear-probe")?, get("knn")?))
        };
        let fp = |arm: &str, ids: &[usize]| {
            let mut h = blake3::Hasher::new();
            for i in ids {
                h.update(&(*i as u64).to_le_bytes());
            }
            format!(
                "simcore-table {arm} classes {classes:?} pool {} ids {}",
                pool.images.len,
                &h.finalize().to_hex()[..16]
            )
        };
        let (alone, secs) = pretrain("target", prepared(None, &fp("target", &[])))?;
        if !have(&table, "target") {
            let (linear, knn) = score(&alone)?;
            table.cells.push(Cell {
                seed,
                arm: "target".into(),
                linear,
                knn,
                pretrain_samples: target.len,
                pretrain_seconds: secs,
                composition: Vec::new(),
                stopped_by: None,
            });
            table_file::save(Some(&out), &table)?;
        }
        // 2. The coreset, and a random subset of its size.
        let method = alone.model.method.as_ref();
        let batch = rs.eval.batch;
        let zx = pipeline::embed(
            method,
            tr_views.as_ref(),
            tr_views.len(),
            batch,
            opts.run.device,
        )?;
        let zu = pipeline::embed(
            method,
            pool_views.as_ref(),
            pool_views.len(),
            batch,
            opts.run.device,
        )?;
        let mut cfg = opts.coreset.clone();
        cfg.seed = seed;
        let core = simcore(&zx, &zu, &cfg)?;
        write_ids(
            &opts.runs.join("coreset").join(format!("seed{seed}.tsv")),
            &pool,
            &core.selected,
            Some(&core.similarity),
        )?;
        let mut random: Vec<usize> = (0..pool.images.len).collect();
        random.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7a4d_0a11));
        random.truncate(core.selected.len());
        write_ids(
            &opts.runs.join("random").join(format!("seed{seed}.tsv")),
            &pool,
            &random,
            None,
        )?;
        log(&format!(
            "seed {seed}: coreset of {} ({}, {} rounds): {:?}",
            core.selected.len(),
            core.stopped_by,
            core.round_scores.len(),
            composition(&pool, &core.selected)
        ));
        drop(alone);
        // 3. Target ∪ coreset and target ∪ random, at the same number of steps.
        for (arm, ids) in [
            ("target+simcore", &core.selected),
            ("target+random", &random),
        ] {
            if have(&table, arm) {
                continue;
            }
            let (loaded, secs) = pretrain(
                arm,
                prepared(Some(union(&target, &pool, ids)), &fp(arm, ids)),
            )?;
            let (linear, knn) = score(&loaded)?;
            log(&format!(
                "seed {seed}, {arm}: linear {:.2}%, kNN {:.2}%",
                linear * 100.0,
                knn * 100.0
            ));
            table.cells.push(Cell {
                seed,
                arm: arm.into(),
                linear,
                knn,
                pretrain_samples: target.len + ids.len(),
                pretrain_seconds: secs,
                composition: composition(&pool, ids),
                stopped_by: (arm == "target+simcore").then(|| core.stopped_by.clone()),
            });
            table_file::save(Some(&out), &table)?;
        }
    }
    Ok(table)
}

/// The table as Markdown.
pub fn format_table(t: &SimcoreTable) -> String {
    let mut s = format!(
        "SimCore on `{}`: target = Fashion-MNIST {} ({} training / {} test images); pool of {} ({}); \
         coreset budget {}, K = {}; every arm pretrains {} steps. Linear probe and kNN on the target classes, \
         mean ± std over seeds {:?}\n\n",
        t.recipe,
        t.target_classes.join(", "),
        t.target_train,
        t.target_test,
        t.pool,
        t.pool_composition.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", "),
        t.budget,
        t.clusters,
        t.steps,
        t.seeds
    );
    s.push_str("| pretraining data | linear probe % | Δ vs target alone | kNN % | samples |\n|---|---|---|---|---|\n");
    for arm in ARMS {
        let cells: Vec<&Cell> = t.cells.iter().filter(|c| c.arm == arm).collect();
        if cells.is_empty() {
            continue;
        }
        let lin: Vec<f64> = cells.iter().map(|c| c.linear * 100.0).collect();
        let knn: Vec<f64> = cells.iter().map(|c| c.knn * 100.0).collect();
        let deltas: Vec<f64> = cells
            .iter()
            .filter_map(|c| {
                let base = t
                    .cells
                    .iter()
                    .find(|b| b.seed == c.seed && b.arm == "target")?;
                Some((c.linear - base.linear) * 100.0)
            })
            .collect();
        let (lm, ls) = mean_std(&lin);
        let (km, ks) = mean_std(&knn);
        let delta = if arm == "target" {
            "–".into()
        } else {
            let (dm, ds) = mean_std(&deltas);
            format!("{dm:+.2} ± {ds:.2}")
        };
        s.push_str(&format!(
            "| {arm} | {lm:.2} ± {ls:.2} | {delta} | {km:.2} ± {ks:.2} | {} |\n",
            cells[0].pretrain_samples
        ));
    }
    s.push_str("\nPool samples added (per seed):\n\n");
    for c in t.cells.iter().filter(|c| c.arm != "target") {
        s.push_str(&format!(
            "- seed {}, {}: {}{}\n",
            c.seed,
            c.arm,
            c.composition
                .iter()
                .map(|(n, k)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            c.stopped_by
                .as_ref()
                .map_or(String::new(), |b| format!(" (stopped by {b})"))
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_read_and_upsampled() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digits.csv.gz");
        let mut row: Vec<String> = (0..64)
            .map(|i| if i == 27 { "16".into() } else { "0".into() })
            .collect();
        row.push("7".into());
        let text = format!("{}\n", row.join(","));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        let (pixels, labels) = read_digits(&p, 28).unwrap();
        assert_eq!(labels, vec![7]);
        assert_eq!(pixels.len(), 28 * 28);
        // The one lit pixel (row 3, column 3 of 8) lands near (3.5 · 3.5) of 28: bright there,
        // dark in the corners.
        assert!(pixels[12 * 28 + 12] > 100, "{}", pixels[12 * 28 + 12]);
        assert_eq!(pixels[0], 0);
        // A bad row names the file and line.
        std::fs::write(&p, {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, b"1,2,3\n").unwrap();
            gz.finish().unwrap()
        })
        .unwrap();
        let e = read_digits(&p, 28).unwrap_err().to_string();
        assert!(e.contains("digits.csv.gz:1"), "{e}");
    }

    #[test]
    fn shared_digits_read_as_published() {
        let Some(dir) = crate::data::shared_data("sklearn_small") else {
            return;
        };
        let (pixels, labels) = read_digits(&dir.join("digits.csv.gz"), 28).unwrap();
        assert_eq!(labels.len(), 1797);
        assert_eq!(pixels.len(), 1797 * 784);
        let zeros = labels.iter().filter(|&&l| l == 0).count();
        assert_eq!(zeros, 178);
    }
}
