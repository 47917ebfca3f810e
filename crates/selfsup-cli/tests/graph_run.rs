//! Graph runs are ordinary runs: `selfsup pretrain` on a graph recipe writes a run folder like
//! an image run's, SIGKILL at random steps followed by `--resume` ends with weights bit-identical
//! to an uninterrupted run (dropout masks included: libtorch's generator state is checkpointed),
//! and `selfsup embed --run` exports the graph embeddings.
mod common;

use common::{latest_step, wait_for_step, weights_hash};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// GraphMAE with a GIN encoder that drops out 30 % of its inputs, on the toy TU set: 24 graphs
/// in batches of 4, so an epoch is 6 steps and a kill can land inside one.
const RECIPE: &str = r#"
name = "toy-graph-run"
seed = 5

[data]
format = "tu"
path = "data"
name = "TOY"

[encoder]
kind = "gin"
layers = 2
hidden = 16
dropout = 0.3

[method]
name = "graphmae"
mask_rate = 0.5
replace_rate = 0.2
alpha = 2.0

[train]
epochs = 15
batch_size = 4
optimizer = { name = "adam", lr = 0.005 }
checkpoint_every = 1
keep_checkpoints = 3

[eval.graph]
protocol = "graph_cv"
folds = 3
"#;

const TOTAL_STEPS: u64 = 15 * 6;

fn setup(dir: &Path) {
    // The data in a folder of its own: the data fingerprint covers every file under it.
    common::write_tu(&dir.join("data"));
    std::fs::write(dir.join("toy.toml"), RECIPE).unwrap();
}

#[test]
fn a_graph_run_writes_a_run_folder_and_exports_its_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let args = ["pretrain", "toy.toml", "--run-dir", "r", "--quiet"];
    let (code, out, err) = common::selfsup(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fold stratified CV"), "{out}");
    let run = dir.path().join("r");
    for f in ["recipe.toml", "manifest.json", "metrics.jsonl", "eval.json"] {
        assert!(run.join(f).exists(), "{f}");
    }
    assert_eq!(latest_step(&run), Some(TOTAL_STEPS));
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let features: Vec<&str> = eval["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["features"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["learned", "raw"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["method"], "graphmae");
    assert_eq!(manifest["seed"], 5);

    let (code, out, err) = common::selfsup(&["embed", "--run", "r", "--out", "e.npy"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("24 ×"), "{out}");
    let e = tch::Tensor::read_npy(dir.path().join("e.npy")).unwrap();
    let l = tch::Tensor::read_npy(dir.path().join("e.labels.npy")).unwrap();
    assert_eq!(e.size()[0], 24);
    assert_eq!(l.size(), vec![24]);

    // A finished run is not trained again by mistake, and --on-bad-input=skip is refused for
    // graphs rather than ignored.
    let (code, _, err) = common::selfsup(&args, dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let skip = [
        "pretrain",
        "toy.toml",
        "--run-dir",
        "s",
        "--quiet",
        "--on-bad-input",
        "skip",
    ];
    let (code, _, err) = common::selfsup(&skip, dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("cannot skip"), "{err}");
}

#[test]
fn a_graph_run_killed_at_random_steps_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    common::run_to_end(dir.path(), "toy.toml", "full", false);
    let expect = weights_hash(&dir.path().join("full"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut targets: Vec<u64> = (0..3).map(|_| rng.gen_range(1..TOTAL_STEPS - 2)).collect();
    targets.sort_unstable();
    targets.dedup();
    let run = dir.path().join("killed");
    for (i, &t) in targets.iter().enumerate() {
        // Graph steps are quick: a 30 ms pause in every checkpoint write (weights untouched)
        // gives the kill time to land mid-run.
        let mut child = common::pretrain_command(dir.path(), "toy.toml", "killed", i > 0)
            .env("SELFSUP_FAULT", "slow-checkpoint:30")
            .spawn()
            .unwrap();
        let alive = wait_for_step(&mut child, &run, t);
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            alive,
            "the run ended before step {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    common::run_to_end(dir.path(), "toy.toml", "killed", true);
    assert_eq!(latest_step(&run), Some(TOTAL_STEPS));
    assert_eq!(
        weights_hash(&run),
        expect,
        "resumed weights differ from the uninterrupted run"
    );
}
