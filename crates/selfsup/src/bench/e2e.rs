//! `selfsup bench e2e`: one whole pretraining run — data, views, training, frozen kNN and linear
//! probe — by selfsup and by the PyTorch + torchvision reference pipeline
//! (`shared/bench/torch_e2e_reference.py`), seed by seed and interleaved (ours, reference, ours,
//! …), so that a drift of the machine hits both engines alike.
//!
//! Both sides run as child processes, so each reports the peak memory of its own run. Each side
//! also times its model step alone on batches drawn beforehand (20 steps after 3 warm-up steps,
//! forward + backward + Adam, no data loading), which shows how much of the model's speed the
//! whole pipeline keeps. The reference's settings are derived from the recipe; recipes the
//! reference cannot express (other methods, optimisers or schedules) are refused.
use crate::encoders::EncoderConfig;
use crate::methods::{MethodConfig, Progress, StepInput};
use crate::recipe::{DataConfig, Recipe};
use crate::stats::mean_std;
use crate::train::optim::{Optimizer, OptimizerConfig};
use crate::train::schedule::Decay;
use crate::views::loader::BatchStream;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The reference script's fixed encoder (its docstring, MODEL).
pub const REFERENCE_WIDTHS: [i64; 4] = [32, 64, 128, 256];

pub struct E2eArgs {
    /// The `selfsup` binary that runs our side.
    pub exe: PathBuf,
    pub recipe: PathBuf,
    /// Recipe overrides for both sides (`key=value`, as `--set`).
    pub overrides: Vec<String>,
    /// Seeds `0..seeds`.
    pub seeds: u64,
    /// Python with torch and torchvision (none: ours only).
    pub python: Option<PathBuf>,
    pub script: PathBuf,
    pub threads: usize,
    /// The reference's DataLoader worker processes (its default is 2).
    pub reference_workers: usize,
    /// Stop each run after this many steps (smoke runs; the figures then cover these steps).
    pub max_steps: Option<u64>,
    /// Timed model-only steps (0 skips the model-only measurement).
    pub model_steps: usize,
    /// Run folders of our side go under here.
    pub work_dir: PathBuf,
}

/// One run of one engine.
#[derive(Debug, Clone, Serialize)]
pub struct E2eRun {
    pub engine: String,
    pub seed: u64,
    /// Pairs trained per second over the training loop (data, forward, backward, update; ours
    /// also writes its checkpoints inside this time).
    pub pairs_per_s: f64,
    /// Pairs per second of the model step alone on pre-drawn batches (mean over the timed steps).
    pub model_only_pairs_per_s: Option<f64>,
    pub train_s: f64,
    /// Peak resident memory of the run's process, MiB (the reference: its main process).
    pub peak_rss_mib: f64,
    /// The reference only: the largest of its finished children (DataLoader workers), MiB. Forked
    /// children share copy-on-write pages with the parent, so this is not extra memory.
    pub peak_rss_child_mib: Option<f64>,
    pub knn_acc: Option<f64>,
    pub linear_acc: Option<f64>,
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub recipe: PathBuf,
    pub overrides: Vec<String>,
    pub reference_args: Vec<String>,
    pub runs: Vec<E2eRun>,
    /// Mean end-to-end pairs/s of ours over the reference's (> 1: ours is faster).
    pub ratio: Option<f64>,
}

/// The four Fashion-MNIST files as the reference script reads them.
const REFERENCE_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// A folder with the four `*-ubyte.gz` files the reference script reads: `dir` itself when it
/// has them (Debian's package), else gzipped copies of the data root's decompressed files, made
/// once in the temporary folder (keyed by the files' path, size and modification time).
fn reference_data_dir(dir: &Path) -> Result<PathBuf> {
    if REFERENCE_FILES
        .iter()
        .all(|f| dir.join(format!("{f}.gz")).is_file())
    {
        return Ok(dir.to_path_buf());
    }
    let mut key = blake3::Hasher::new();
    for f in REFERENCE_FILES {
        let p = dir.join(f);
        let m = std::fs::metadata(&p).map_err(|_| {
            anyhow::anyhow!(
                "the PyTorch reference pipeline needs {} or {}.gz (the recipe's training images \
                 are in {})",
                p.display(),
                p.display(),
                dir.display()
            )
        })?;
        key.update(p.display().to_string().as_bytes());
        key.update(&m.len().to_le_bytes());
        key.update(format!("{:?}", m.modified().ok()).as_bytes());
    }
    let out = std::env::temp_dir().join(format!(
        "selfsup-reference-fmnist-{}",
        &key.finalize().to_hex()[..16]
    ));
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    for f in REFERENCE_FILES {
        let gz = out.join(format!("{f}.gz"));
        if gz.is_file() {
            continue;
        }
        // A name of its own per writer: two benchmarks (or tests) may make the copies at once;
        // the last rename wins, with the same bytes.
        static WRITER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let part = out.join(format!("{f}.gz.{}-{n}.part", std::process::id()));
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&part).with_context(|| part.display().to_string())?,
            flate2::Compression::fast(),
        );
        std::io::copy(&mut std::fs::File::open(dir.join(f))?, &mut enc)?;
        enc.finish()?;
        std::fs::rename(&part, &gz)?;
    }
    Ok(out)
}

/// The reference script's command-line arguments for this recipe and seed.
pub fn reference_args(
    r: &Recipe,
    threads: usize,
    workers: usize,
    max_steps: Option<u64>,
) -> Result<Vec<String>> {
    let method = match &r.method {
        MethodConfig::Simclr(_) => "simclr",
        MethodConfig::BarlowTwins(_) => "barlow",
        m => bail!(
            "the PyTorch reference pipeline has SimCLR and Barlow Twins only, not {}",
            m.name()
        ),
    };
    if r.train.precision != crate::train::precision::Precision::Fp32 || r.train.channels_last {
        bail!(
            "the PyTorch reference pipeline trains in fp32 with NCHW tensors only; the recipe sets \
             train.precision = bf16 or train.channels_last (compare bf16 on the model steps: \
             `selfsup bench w1 w2 w3 --precision fp32,bf16`)"
        );
    }
    let DataConfig::Idx { train_images, .. } = &r.data else {
        bail!("the PyTorch reference pipeline reads Fashion-MNIST IDX files only");
    };
    let dir = reference_data_dir(train_images.parent().unwrap_or(Path::new(".")))?;
    let t = &r.train;
    let OptimizerConfig::Adam {
        lr, weight_decay, ..
    } = t.optimizer
    else {
        bail!("the PyTorch reference pipeline trains with Adam only");
    };
    if weight_decay != 0.0 || t.warmup_epochs != 0.0 || t.decay != Decay::Constant {
        bail!("the PyTorch reference pipeline has no weight decay, warm-up or decay; the recipe sets one");
    }
    let mut a: Vec<String> = vec![
        "--method".into(),
        method.into(),
        "--epochs".into(),
        t.epochs.to_string(),
        "--batch".into(),
        t.batch_size.to_string(),
        "--lr".into(),
        lr.to_string(),
        "--seed".into(),
        r.seed.to_string(),
        "--threads".into(),
        threads.to_string(),
        "--workers".into(),
        workers.to_string(),
        "--data".into(),
        dir.display().to_string(),
        "--knn-k".into(),
        r.eval.knn_k.to_string(),
        "--knn-t".into(),
        r.eval.knn_temperature.to_string(),
        "--probe-iters".into(),
        r.eval.probe_iters.to_string(),
        "--probe-wd".into(),
        r.eval.probe_weight_decay.to_string(),
        "--no-raw".into(),
    ];
    if let Some(n) = max_steps {
        a.extend(["--max-steps".into(), n.to_string()]);
    }
    Ok(a)
}

/// Whether our recipe's model is the reference's (its encoder is fixed); a comparison with a
/// different encoder is still run, but flagged.
pub fn same_encoder_as_reference(r: &Recipe) -> bool {
    matches!(&r.encoder, EncoderConfig::SmallCnn { widths } if widths[..] == REFERENCE_WIDTHS[..])
}

/// Our model step alone: the recipe's model and optimiser on `batches` batches drawn beforehand
/// (seed + 1, so the run itself is unaffected), 3 warm-up steps, then `steps` timed steps.
pub fn model_only_rate(recipe: &Recipe, steps: usize, batches: usize) -> Result<f64> {
    let prepared = crate::run::pipeline::prepare_data(
        recipe,
        crate::error::BadInputPolicy::Fail,
        recipe.train.max_samples,
        Some(1),
    )?;
    let model = crate::run::pipeline::build_model(
        recipe,
        &prepared.train.sample_shape(),
        prepared.train.feature_spans().as_deref(),
        tch::Device::Cpu,
    )?;
    let t = &recipe.train;
    let drawn: Vec<_> = BatchStream::new(
        prepared.pretraining(),
        recipe.seed + 1,
        0,
        0,
        t.batch_size,
        model.method.n_views() + recipe.views.local_crops,
        model.method.mask_spec(),
        t.workers,
        t.prefetch,
    )
    .take(batches.max(1))
    .collect();
    let mut opt = Optimizer::new(t.optimizer.clone(), &model.vs);
    let lr = t.optimizer.lr();
    let mut step = |i: usize| {
        let b = &drawn[i % drawn.len()];
        let input = StepInput {
            views: &b.views,
            labels: b.labels.as_ref(),
            masks: &b.masks,
            progress: Progress {
                step: i as u64,
                total_steps: (steps + 3) as u64,
                steps_per_epoch: drawn.len() as u64,
            },
            seed: recipe.seed,
        };
        opt.zero_grad();
        let loss = model.method.loss(&input);
        loss.backward();
        opt.step(lr);
        model.method.after_update(input.progress);
    };
    for i in 0..3 {
        step(i);
    }
    let started = Instant::now();
    for i in 0..steps.max(1) {
        step(3 + i);
    }
    Ok((steps.max(1) * t.batch_size) as f64 / started.elapsed().as_secs_f64())
}

fn run_ours(args: &E2eArgs, seed: u64, model_only: Option<f64>) -> Result<E2eRun> {
    let dir = args.work_dir.join(format!("ours-seed{seed}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let mut cmd = Command::new(&args.exe);
    cmd.arg("--threads")
        .arg(args.threads.to_string())
        .arg("pretrain")
        .arg(&args.recipe)
        .arg("--run-dir")
        .arg(&dir)
        .arg("--quiet")
        .args(["--set", &format!("seed={seed}")])
        .args(["--set", "eval.raw_baseline=false"]);
    for o in &args.overrides {
        cmd.args(["--set", o]);
    }
    if let Some(n) = args.max_steps {
        cmd.args(["--set", &format!("train.max_steps={n}")]);
    }
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {}", args.exe.display()))?;
    let wall_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{} pretrain failed ({}):\n{}",
            args.exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |name: &str| -> Result<serde_json::Value> {
        let p = dir.join(name);
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}", p.display()))
    };
    let manifest = read("manifest.json")?;
    let eval = read("eval.json").ok();
    let acc = |prefix: &str| -> Option<f64> {
        eval.as_ref()?["records"].as_array()?.iter().find(|r| {
            r["features"] == "learned"
                && r["protocol"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(prefix))
        })?["accuracy"]
            .as_f64()
    };
    let train = &manifest["train"];
    Ok(E2eRun {
        engine: "selfsup".into(),
        seed,
        pairs_per_s: train["samples_per_s"]
            .as_f64()
            .context("manifest without train.samples_per_s")?,
        model_only_pairs_per_s: model_only,
        train_s: train["seconds"].as_f64().unwrap_or(f64::NAN),
        peak_rss_mib: manifest["peak_rss_mib_after_evaluation"]
            .as_f64()
            .or_else(|| manifest["peak_rss_mib_after_training"].as_f64())
            .unwrap_or(0.0),
        peak_rss_child_mib: None,
        knn_acc: acc("knn"),
        linear_acc: acc("linear"),
        wall_s,
    })
}

fn run_reference(python: &Path, script: &Path, ref_args: &[String], seed: u64) -> Result<E2eRun> {
    let started = Instant::now();
    let out = Command::new(python)
        .arg(script)
        .args(ref_args)
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            python.display(),
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_reference(
        &String::from_utf8_lossy(&out.stdout),
        seed,
        started.elapsed().as_secs_f64(),
    )
}

/// The reference's final JSON line (its docstring: one JSON line on stdout).
pub fn parse_reference(stdout: &str, seed: u64, wall_s: f64) -> Result<E2eRun> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the reference printed no JSON line")?;
    let v: serde_json::Value = serde_json::from_str(line).context("the reference's JSON line")?;
    let learned = &v["learned"];
    Ok(E2eRun {
        engine: "pytorch".into(),
        seed,
        pairs_per_s: v["e2e_pairs_per_s"]
            .as_f64()
            .context("the reference's JSON has no e2e_pairs_per_s")?,
        model_only_pairs_per_s: v["model_only"]["pairs_per_s"].as_f64(),
        train_s: v["train_s"].as_f64().unwrap_or(f64::NAN),
        peak_rss_mib: v["peak_rss_mib"].as_f64().unwrap_or(0.0),
        peak_rss_child_mib: v["peak_rss_largest_child_mib"].as_f64(),
        knn_acc: learned["knn_acc"].as_f64(),
        linear_acc: learned["linear_acc"].as_f64(),
        wall_s: v["wall_s"].as_f64().unwrap_or(wall_s),
    })
}

pub fn bench_e2e(args: &E2eArgs, log: impl Fn(&str)) -> Result<E2eReport> {
    let base = Recipe::load(&args.recipe, &args.overrides)?;
    if !same_encoder_as_reference(&base) {
        log(&format!(
            "e2e: the recipe's encoder is not the reference's CNN {REFERENCE_WIDTHS:?}; the engines train different models"
        ));
    }
    let mut report = E2eReport {
        recipe: args.recipe.clone(),
        overrides: args.overrides.clone(),
        reference_args: Vec::new(),
        runs: Vec::new(),
        ratio: None,
    };
    if args.python.is_some() {
        // Refuse a recipe the reference cannot run before spending time on our side.
        reference_args(&base, args.threads, args.reference_workers, args.max_steps)?;
    }
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    for seed in 0..args.seeds.max(1) {
        let mut recipe = base.clone();
        recipe.seed = seed;
        let model_only = if args.model_steps > 0 {
            Some(model_only_rate(&recipe, args.model_steps, 20)?)
        } else {
            None
        };
        let ours = run_ours(args, seed, model_only)?;
        log(&format_run(&ours));
        report.runs.push(ours);
        if let Some(py) = &args.python {
            let ref_args = reference_args(
                &recipe,
                args.threads,
                args.reference_workers,
                args.max_steps,
            )?;
            let theirs = run_reference(py, &args.script, &ref_args, seed)?;
            log(&format_run(&theirs));
            report.runs.push(theirs);
            report.reference_args = ref_args;
        }
    }
    let mean_rate = |engine: &str| {
        let v: Vec<f64> = report
            .runs
            .iter()
            .filter(|r| r.engine == engine)
            .map(|r| r.pairs_per_s)
            .collect();
        (!v.is_empty()).then(|| mean_std(&v).0)
    };
    report.ratio = mean_rate("selfsup")
        .zip(mean_rate("pytorch"))
        .map(|(a, b)| a / b);
    Ok(report)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |a| format!("{:.2}", 100.0 * a))
}

fn format_run(r: &E2eRun) -> String {
    format!(
        "{:<8} seed {:>2}: {:>7.1} pairs/s end to end, {:>7} model only, train {:>6.1}s, peak RSS {:>5.0} MiB{}, kNN {} %, linear {} %, wall {:.0}s",
        r.engine,
        r.seed,
        r.pairs_per_s,
        r.model_only_pairs_per_s.map_or("–".into(), |m| format!("{m:.1}")),
        r.train_s,
        r.peak_rss_mib,
        r.peak_rss_child_mib.map_or(String::new(), |c| format!(" (largest child {c:.0})")),
        pct(r.knn_acc),
        pct(r.linear_acc),
        r.wall_s
    )
}

/// Per-run lines, then per engine the mean ± std over seeds, then the ratio.
pub fn format_report(rep: &E2eReport) -> String {
    let mut s = String::new();
    for r in &rep.runs {
        s.push_str(&format_run(r));
        s.push('\n');
    }
    for engine in ["selfsup", "pytorch"] {
        let runs: Vec<&E2eRun> = rep.runs.iter().filter(|r| r.engine == engine).collect();
        if runs.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&E2eRun) -> Option<f64>| -> String {
            let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            if v.is_empty() {
                return "–".into();
            }
            let (m, sd) = mean_std(&v);
            format!("{m:.2} ± {sd:.2}")
        };
        let keep = runs
            .iter()
            .filter_map(|r| r.model_only_pairs_per_s.map(|m| r.pairs_per_s / m))
            .collect::<Vec<_>>();
        s.push_str(&format!(
            "{engine:<8} mean over {} seed(s): {} pairs/s end to end ({} model only; end to end / model only {}), peak RSS {} MiB, kNN {} %, linear {} %\n",
            runs.len(),
            col(&|r| Some(r.pairs_per_s)),
            col(&|r| r.model_only_pairs_per_s),
            if keep.is_empty() { "–".into() } else { format!("{:.2}", mean_std(&keep).0) },
            col(&|r| Some(r.peak_rss_mib)),
            col(&|r| r.knn_acc.map(|a| 100.0 * a)),
            col(&|r| r.linear_acc.map(|a| 100.0 * a)),
        ));
    }
    if let Some(x) = rep.ratio {
        s.push_str(&format!(
            "end-to-end pairs/s, selfsup / pytorch (means over seeds): {x:.2}×\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quickstart() -> Recipe {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/quickstart.toml");
        Recipe::load(&p, &["encoder.widths=[32,64,128,256]".into()]).unwrap()
    }

    #[test]
    fn reference_arguments_follow_the_recipe() {
        let r = quickstart();
        assert!(same_encoder_as_reference(&r));
        match reference_args(&r, 2, 2, Some(5)) {
            Ok(a) => {
                let joined = a.join(" ");
                for part in [
                    "--method simclr",
                    "--epochs 1",
                    "--batch 256",
                    "--lr 0.001",
                    "--seed 0",
                    "--threads 2",
                    "--workers 2",
                    "--knn-k 200",
                    "--knn-t 0.1",
                    "--probe-iters 500",
                    "--probe-wd 0.0001",
                    "--no-raw",
                    "--max-steps 5",
                ] {
                    assert!(joined.contains(part), "{part} missing from {joined}");
                }
            }
            // Machines without the Fashion-MNIST files: the refusal names the missing file.
            Err(e) => assert!(format!("{e}").contains("ubyte.gz"), "{e}"),
        }
    }

    #[test]
    fn recipes_the_reference_cannot_express_are_refused() {
        let mut r = quickstart();
        r.train.warmup_epochs = 1.0;
        let e = reference_args(&r, 2, 2, None).unwrap_err();
        assert!(format!("{e}").contains("warm-up") || format!("{e}").contains("ubyte.gz"));
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/fmnist/byol.toml");
        let byol = Recipe::load(&p, &[]).unwrap();
        let e = reference_args(&byol, 2, 2, None).unwrap_err();
        assert!(format!("{e}").contains("not byol"), "{e}");
        // A bf16 recipe is refused, not timed against an fp32 reference.
        let mut bf16 = quickstart();
        bf16.train.precision = crate::train::precision::Precision::Bf16;
        let e = reference_args(&bf16, 2, 2, None).unwrap_err();
        assert!(format!("{e}").contains("fp32"), "{e}");
        assert!(!same_encoder_as_reference(&byol));
    }

    #[test]
    fn the_reference_json_line_is_parsed() {
        let out = "noise\n{\"e2e_pairs_per_s\": 87.5, \"model_only\": {\"pairs_per_s\": 117.0}, \"train_s\": 685.0, \"peak_rss_mib\": 1400.5, \"peak_rss_largest_child_mib\": 900.0, \"learned\": {\"knn_acc\": 0.78, \"linear_acc\": 0.86}, \"wall_s\": 800.0}\n";
        let r = parse_reference(out, 3, 1.0).unwrap();
        assert_eq!(r.seed, 3);
        assert_eq!(r.pairs_per_s, 87.5);
        assert_eq!(r.model_only_pairs_per_s, Some(117.0));
        assert_eq!(r.peak_rss_child_mib, Some(900.0));
        assert_eq!((r.knn_acc, r.linear_acc), (Some(0.78), Some(0.86)));
        assert_eq!(r.wall_s, 800.0);
        assert!(parse_reference("no json here", 0, 1.0).is_err());
    }
}
