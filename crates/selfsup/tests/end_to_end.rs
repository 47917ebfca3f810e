//! The whole pipeline on small synthetic data: pretrain, evaluate beside the raw baseline, export.
mod common;

use selfsup::error::BadInputPolicy;
use selfsup::run::commands::{self, PretrainArgs, Split};
use selfsup::run::pipeline::Protocol;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[test]
fn pretrain_evaluate_and_embed() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::tiny_image_recipe(dir.path(), "simclr", "monitor_every = 1");
    let run = dir.path().join("run");
    let report = commands::pretrain(PretrainArgs {
        recipe,
        overrides: vec![],
        run_dir: Some(run.clone()),
        resume: false,
        device: tch::Device::Cpu,
        threads: 2,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: true,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    })
    .unwrap();
    // kNN and linear probe on learned features and on raw pixels.
    assert_eq!(report.eval.len(), 4);
    for r in &report.eval {
        assert!(
            r.accuracy.is_finite() && (0.0..=1.0).contains(&r.accuracy),
            "{r:?}"
        );
        assert_eq!((r.train_size, r.test_size), (96, 40));
    }
    // The classes are quadrant squares: the raw linear probe separates them.
    let raw_linear = report
        .eval
        .iter()
        .find(|r| r.features == "raw" && r.protocol.starts_with("linear"))
        .unwrap();
    assert!(raw_linear.accuracy > 0.9, "{raw_linear:?}");
    for f in [
        "recipe.toml",
        "manifest.json",
        "metrics.jsonl",
        "eval.json",
        "checkpoints/latest",
    ] {
        assert!(run.join(f).exists(), "{f} missing from the run folder");
    }
    // eval.json keeps the test embeddings' collapse diagnostics beside the figures.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let collapse = report.test_collapse.as_ref().unwrap();
    assert_eq!(saved["test_collapse"]["dim"], 8);
    assert_eq!(
        saved["test_collapse"]["rankme"].as_f64().unwrap(),
        collapse.rankme
    );
    assert!((1.0..=8.0).contains(&collapse.rankme), "{collapse:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], 7);
    assert!(manifest["data_fingerprint"].as_str().unwrap().len() == 16);
    for k in [
        "peak_rss_mib_after_training",
        "peak_rss_mib_after_evaluation",
    ] {
        let mib = manifest[k].as_f64().unwrap();
        assert!(mib > 10.0, "{k} = {mib}");
    }
    // The online monitor logged one kNN figure per epoch.
    let metrics = selfsup::train::metrics::read(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics
            .iter()
            .filter(|m| m.get("monitor_knn_acc").is_some())
            .count(),
        3
    );

    let records = commands::eval_run(&run, &[], &[Protocol::Knn], tch::Device::Cpu, 2).unwrap();
    assert_eq!(records.len(), 2);
    let learned_knn = report
        .eval
        .iter()
        .find(|r| r.features == "learned" && r.protocol.starts_with("knn"))
        .unwrap();
    assert_eq!(
        records[0].accuracy, learned_knn.accuracy,
        "evaluating the saved run reproduces the figure"
    );

    let out = dir.path().join("emb.npy");
    let (n, d) = commands::embed_run(&run, &out, Split::Test, tch::Device::Cpu, 2).unwrap();
    assert_eq!((n, d), (40, 8));
    let back = tch::Tensor::read_npy(&out).unwrap();
    assert_eq!(back.size(), vec![40, 8]);
}

/// `train.precision = "bf16"`: the forward passes run under bf16 autocast, the weights stay fp32,
/// and training still lowers nothing to NaN; the loss is logged as usual.
#[test]
fn bf16_autocast_trains() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::tiny_image_recipe(dir.path(), "simclr", "");
    let run = dir.path().join("run");
    let report = commands::pretrain(PretrainArgs {
        recipe,
        overrides: vec!["train.precision=\"bf16\"".into()],
        run_dir: Some(run.clone()),
        resume: false,
        device: tch::Device::Cpu,
        threads: 2,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    })
    .unwrap();
    assert_eq!(report.summary.nan_skips, 0);
    let loss = report.summary.final_loss.unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let saved = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(saved.contains("precision = \"bf16\""), "{saved}");
    assert!(!selfsup::train::precision::autocast_enabled(tch::Device::Cpu).unwrap());
}

/// Time series: a UCR folder of two classes (a rising and a falling ramp, with noise), pretrained
/// with a 1-D CNN on series views, evaluated beside the raw series, and exported.
#[test]
fn series_pretrain_evaluate_and_embed() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for (split, n) in [("TRAIN", 48), ("TEST", 24)] {
        let mut s = String::new();
        for i in 0..n {
            let class = i % 2;
            let values: Vec<String> = (0..32)
                .map(|t| {
                    let ramp = if class == 0 {
                        t as f64
                    } else {
                        31.0 - t as f64
                    } / 16.0;
                    format!("{:.4}", ramp + rng.gen_range(-0.2..0.2))
                })
                .collect();
            s.push_str(&format!("{}\t{}\n", class + 1, values.join("\t")));
        }
        std::fs::write(dir.path().join(format!("RAMP_{split}.tsv")), s).unwrap();
    }
    let recipe = dir.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
name = "series"
[data]
format = "ucr"
path = {:?}
name = "RAMP"
[views.series]
crop_scale = [0.8, 1.0]
permute_segments = 3
[encoder]
kind = "cnn1d"
widths = [8, 8]
kernel = 3
[method]
name = "simclr"
projector = [{{ dim = 8, batch_norm = true, relu = true }}, {{ dim = 8 }}]
[train]
epochs = 2
batch_size = 16
optimizer = {{ name = "adam", lr = 1e-3 }}
log_every = 1
[eval]
knn_k = 5
"#,
            dir.path()
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let report = commands::pretrain(PretrainArgs {
        recipe,
        overrides: vec![],
        run_dir: Some(run.clone()),
        resume: false,
        device: tch::Device::Cpu,
        threads: 1,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: true,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    })
    .unwrap();
    assert_eq!(
        report.summary.steps, 6,
        "48 series in batches of 16, 2 epochs"
    );
    assert_eq!(report.eval.len(), 4);
    for r in &report.eval {
        assert_eq!((r.train_size, r.test_size), (48, 24), "{r:?}");
    }
    let raw = report
        .eval
        .iter()
        .find(|r| r.features == "raw" && r.protocol.starts_with("linear"))
        .unwrap();
    assert_eq!(
        (raw.dim, raw.accuracy),
        (32, 1.0),
        "ramps are linearly separable"
    );
    let (n, d) = commands::embed_run(
        &run,
        &dir.path().join("e.npy"),
        Split::Test,
        tch::Device::Cpu,
        1,
    )
    .unwrap();
    assert_eq!((n, d), (24, 8));
}
