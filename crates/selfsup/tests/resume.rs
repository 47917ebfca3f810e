//! Exact resume: a run interrupted and resumed from its checkpoint ends with weights bit-identical
//! (blake3 of every variable) to an uninterrupted run with the same seed and thread count (CPU).
mod common;

use selfsup::error::BadInputPolicy;
use selfsup::run::commands::{self, PretrainArgs};
use selfsup::train::checkpoint;
use selfsup::train::trainer::TrainStop;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn args(
    recipe: &Path,
    run: &Path,
    resume: bool,
    overrides: &[&str],
    stop: Arc<AtomicBool>,
) -> PretrainArgs {
    PretrainArgs {
        recipe: recipe.to_path_buf(),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        run_dir: Some(run.to_path_buf()),
        resume,
        device: tch::Device::Cpu,
        threads: 2,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: false,
        progress: false,
        stop,
    }
}

/// blake3 over every variable of the newest checkpoint, in name order.
fn weights_hash(run: &Path) -> String {
    let c = checkpoint::load_latest(&run.join("checkpoints"))
        .unwrap()
        .unwrap();
    let mut h = blake3::Hasher::new();
    let mut model = c.model;
    model.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in model {
        h.update(name.as_bytes());
        let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Float)).unwrap();
        for x in v {
            h.update(&x.to_le_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

fn resumes_exactly(method: &str) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::tiny_image_recipe(dir.path(), method, "");
    let no_stop = || Arc::new(AtomicBool::new(false));

    let full = dir.path().join("full");
    let s = commands::pretrain(args(&recipe, &full, false, &[], no_stop())).unwrap();
    assert_eq!(s.summary.steps, 18); // 3 epochs × 96/16

    // Interrupted mid-epoch (step 4 of epoch 0) by the step limit, then again mid-epoch 1 by the stop
    // flag (what SIGINT sets), then resumed to the end.
    let part = dir.path().join("part");
    commands::pretrain(args(
        &recipe,
        &part,
        false,
        &["train.max_steps=4"],
        no_stop(),
    ))
    .unwrap();
    let stop = Arc::new(AtomicBool::new(true));
    let e = commands::pretrain(args(&recipe, &part, true, &[], stop))
        .err()
        .expect("stop flag interrupts");
    assert!(
        matches!(
            e.downcast_ref::<TrainStop>(),
            Some(TrainStop::Interrupted { step: 5, .. })
        ),
        "{e:#}"
    );
    let r = commands::pretrain(args(&recipe, &part, true, &[], no_stop())).unwrap();
    assert_eq!(r.summary.steps, 18);

    assert_eq!(
        weights_hash(&full),
        weights_hash(&part),
        "{method}: resumed weights differ"
    );
    // The metric history reads as one run: the same logged steps, once each.
    let steps = |run: &Path| -> Vec<u64> {
        selfsup::train::metrics::read(&run.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .filter(|v| v.get("loss").is_some())
            .map(|v| v["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps(&full), steps(&part));
}

#[test]
fn simclr_resume_is_bit_identical() {
    resumes_exactly("simclr");
}

#[test]
fn barlow_twins_resume_is_bit_identical() {
    resumes_exactly("barlow_twins");
}

#[test]
fn a_different_recipe_is_refused_on_resume_and_a_used_folder_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::tiny_image_recipe(dir.path(), "simclr", "");
    let run = dir.path().join("run");
    let no_stop = || Arc::new(AtomicBool::new(false));
    commands::pretrain(args(
        &recipe,
        &run,
        false,
        &["train.max_steps=2"],
        no_stop(),
    ))
    .unwrap();
    let e = commands::pretrain(args(
        &recipe,
        &run,
        true,
        &["method.temperature=0.1"],
        no_stop(),
    ))
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("refusing to resume"), "{e:#}");
    let e = commands::pretrain(args(&recipe, &run, false, &[], no_stop()))
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("--resume"), "{e:#}");
}
