//! The NaN guard seen from the binary: a corrupt batch (NaN inputs, injected with
//! `SELFSUP_FAULT=nan-input-at:N`) never reaches the weights nor the batch-norm statistics.
mod common;

use std::path::Path;
use std::process::Command;

const RECIPE: &str = r#"
name = "nan"
seed = 5
[data]
format = "csv"
train = "train.csv"
options = { header = true, label = "y" }
[encoder]
kind = "mlp"
dims = [16]
batch_norm = true
[method]
name = "barlow_twins"
projector = [{ dim = 8, batch_norm = true, relu = true }, { dim = 8 }]
[train]
epochs = 2
batch_size = 16
optimizer = { name = "adam", lr = 1e-3 }
checkpoint_every = 1
keep_checkpoints = 100
"#;

fn setup(dir: &Path) {
    let mut s = String::from("a,b,c,y\n");
    for i in 0..64 {
        s.push_str(&format!("{},{},{},{}\n", i % 7, (i * 3) % 5, i % 2, i % 2));
    }
    std::fs::write(dir.join("train.csv"), s).unwrap();
    std::fs::write(dir.join("r.toml"), RECIPE).unwrap();
}

fn run(dir: &Path, fault: &str, sets: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_selfsup"));
    c.args([
        "pretrain",
        "r.toml",
        "--quiet",
        "--no-eval",
        "--threads",
        "1",
        "--run-dir",
        "run",
    ])
    .env("SELFSUP_FAULT", fault)
    .current_dir(dir);
    for s in sets {
        c.args(["--set", s]);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every variable (weights and buffers) of the checkpoint of `step`, in name order.
fn variables(dir: &Path, step: u64) -> Vec<(String, Vec<f32>)> {
    let c = selfsup::train::checkpoint::load(&dir.join(format!(
        "run/checkpoints/{}",
        selfsup::train::checkpoint::dir_name(step)
    )))
    .unwrap();
    common::sorted_values(c.model)
}

#[test]
fn skip_policy_leaves_weights_and_batch_norm_statistics_untouched() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (code, err) = run(dir.path(), "nan-input-at:5", &["train.nan_policy=\"skip\""]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("step 5"), "the skip is logged: {err}");
    // The checkpoint after the bad step (step counter 6) holds exactly the state of step 5.
    let before = variables(dir.path(), 5);
    let after = variables(dir.path(), 6);
    assert!(before.iter().any(|(k, _)| k.contains("running_mean")));
    assert_eq!(before, after, "the corrupt batch changed the model");
    // The step after it trains normally again.
    assert_ne!(after, variables(dir.path(), 7));
    for (k, v) in variables(dir.path(), 8) {
        assert!(v.iter().all(|x| x.is_finite()), "{k} is not finite");
    }
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"event\":\"non_finite\""), "{metrics}");
}

/// The same for methods with state outside the gradient: a skipped step changes neither the EMA
/// target, the queue, the centre nor the support set.
#[test]
fn skip_policy_leaves_method_state_untouched() {
    for method in [
        r#"method={ name = "moco_v2", queue_size = 24, projector = [{ dim = 8 }] }"#,
        r#"method={ name = "byol", projector = [{ dim = 8 }], predictor = [{ dim = 8 }] }"#,
        r#"method={ name = "dino", hidden = 8, bottleneck = 4, out_dim = 16 }"#,
        r#"method={ name = "nnclr", support_size = 24, projector = [{ dim = 8 }], predictor = [{ dim = 8 }] }"#,
    ] {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let (code, err) = run(
            dir.path(),
            "nan-input-at:5",
            &["train.nan_policy=\"skip\"", method],
        );
        assert_eq!(code, 0, "{method}: {err}");
        let before = variables(dir.path(), 5);
        assert!(
            before.iter().any(|(k, _)| k.contains("teacher")
                || k.contains("queue")
                || k.contains("support")),
            "{method}: no state variables"
        );
        assert_eq!(
            before,
            variables(dir.path(), 6),
            "{method}: the corrupt batch changed it"
        );
        assert_ne!(
            variables(dir.path(), 6),
            variables(dir.path(), 7),
            "{method}"
        );
    }
}

#[test]
fn stop_policy_exits_with_a_message_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (code, err) = run(dir.path(), "nan-input-at:5", &["train.nan_policy=\"stop\""]);
    assert_ne!(code, 0);
    assert!(
        err.contains("non-finite loss or gradient at step 5"),
        "{err}"
    );
    let latest = selfsup::train::checkpoint::load_latest(&dir.path().join("run/checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(
        latest.state.step, 5,
        "the last good checkpoint is the one before the bad step"
    );
    for (k, v) in common::sorted_values(latest.model) {
        assert!(v.iter().all(|x| x.is_finite()), "{k}");
    }
}
