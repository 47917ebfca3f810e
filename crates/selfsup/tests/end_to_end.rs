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
