//! Crash consistency of the binary: SIGKILL at random steps, a crash in the middle of writing a
//! checkpoint, SIGINT/SIGTERM — each followed by `--resume` must end with final weights
//! bit-identical (blake3 over every variable) to an uninterrupted run with the same seed and
//! thread count. `SELFSUP_KILL_POINTS=20` runs the longer variant (5 kill points by default).
mod common;

use common::{latest_step, wait_for_step, weights_hash};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Child, Command};

const RECIPE: &str = r#"
name = "kill"
seed = 3
[data]
format = "csv"
train = "train.csv"
options = { header = true, label = "y" }
[encoder]
kind = "mlp"
dims = [32, 16]
[method]
name = "barlow_twins"
projector = [{ dim = 16, batch_norm = true, relu = true }, { dim = 16 }]
[train]
epochs = 12
batch_size = 16
optimizer = { name = "adam", lr = 1e-3 }
checkpoint_every = 1
keep_checkpoints = 3
"#;

/// A 256-row table with 6 numeric features and two classes.
fn write_data(dir: &Path) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut s = String::from("a,b,c,d,e,f,y\n");
    for i in 0..256 {
        let class = i % 2;
        let row: Vec<String> = (0..6)
            .map(|k| {
                format!(
                    "{:.4}",
                    rng.gen::<f64>() + if k < 3 { class as f64 } else { 0.0 }
                )
            })
            .collect();
        s.push_str(&format!(
            "{},{}\n",
            row.join(","),
            if class == 0 { "no" } else { "yes" }
        ));
    }
    std::fs::write(dir.join("train.csv"), s).unwrap();
    std::fs::write(dir.join("r.toml"), RECIPE).unwrap();
}

fn command(dir: &Path, run: &str, resume: bool) -> Command {
    common::pretrain_command(dir, "r.toml", run, resume)
}

fn run_to_end(dir: &Path, run: &str, resume: bool) {
    common::run_to_end(dir, "r.toml", run, resume)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Every directory with a final name in `checkpoints/` is a complete, loadable checkpoint.
fn no_partial_checkpoint_has_a_final_name(run: &Path) {
    let root = run.join("checkpoints");
    for name in selfsup::train::checkpoint::list(&root) {
        selfsup::train::checkpoint::load(&root.join(&name))
            .unwrap_or_else(|e| panic!("{name} carries a final name but does not load: {e}"));
    }
}

fn reference(dir: &Path) -> String {
    run_to_end(dir, "full", false);
    weights_hash(&dir.join("full"))
}

const TOTAL_STEPS: u64 = 12 * 16;

#[test]
fn sigkill_at_random_steps_then_resume_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let expect = reference(dir.path());
    let points: usize = std::env::var("SELFSUP_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(points as u64);
    let mut targets: Vec<u64> = (0..points)
        .map(|_| rng.gen_range(1..TOTAL_STEPS - 2))
        .collect();
    targets.sort_unstable();
    let run = dir.path().join("killed");
    let mut kills = 0;
    for (i, &t) in targets.iter().enumerate() {
        let mut child = command(dir.path(), "killed", i > 0).spawn().unwrap();
        if wait_for_step(&mut child, &run, t) {
            // SIGKILL: no handler runs, whatever was being written stays half-written.
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        no_partial_checkpoint_has_a_final_name(&run);
    }
    assert_eq!(
        kills, points,
        "every kill point was reached while the run was alive"
    );
    run_to_end(dir.path(), "killed", true);
    assert_eq!(latest_step(&run), Some(TOTAL_STEPS));
    assert_eq!(
        weights_hash(&run),
        expect,
        "resumed weights differ from the uninterrupted run"
    );
}

#[test]
fn a_crash_while_writing_a_checkpoint_leaves_the_previous_one_valid() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let expect = reference(dir.path());
    let run = dir.path().join("crashed");
    let out = command(dir.path(), "crashed", false)
        .env("SELFSUP_FAULT", "abort-in-checkpoint:40")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the injected crash happened");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("aborting while writing the checkpoint of step 40"),
        "{err}"
    );
    // The half-written checkpoint exists only under its temporary name.
    assert!(run.join("checkpoints/.tmp-step-00000040").exists());
    assert!(!run.join("checkpoints/step-00000040").exists());
    assert_eq!(latest_step(&run), Some(39));
    no_partial_checkpoint_has_a_final_name(&run);
    run_to_end(dir.path(), "crashed", true);
    assert_eq!(weights_hash(&run), expect);
}

#[test]
fn sigint_and_sigterm_checkpoint_and_exit_75_then_resume_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let expect = reference(dir.path());
    let run = dir.path().join("sig");
    for (i, sig) in ["-INT", "-TERM"].iter().enumerate() {
        let mut child = command(dir.path(), "sig", i > 0).spawn().unwrap();
        let target = 30 * (i as u64 + 1);
        assert!(
            wait_for_step(&mut child, &run, target),
            "run ended before step {target}"
        );
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(75), "{sig}");
        assert!(latest_step(&run).unwrap() >= target);
        no_partial_checkpoint_has_a_final_name(&run);
    }
    run_to_end(dir.path(), "sig", true);
    assert_eq!(weights_hash(&run), expect);
}

#[test]
fn a_second_sigint_exits_130_at_once_and_the_last_checkpoint_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    // Every checkpoint write pauses 1.5 s, so the checkpoint that honours the first signal is
    // still being written when the second one arrives 0.3 s later, however fast the machine.
    let run = dir.path().join("twice");
    let mut child = command(dir.path(), "twice", false)
        .env("SELFSUP_FAULT", "slow-checkpoint:1500")
        .spawn()
        .unwrap();
    assert!(wait_for_step(&mut child, &run, 2));
    let pid = child.id();
    let ok = Command::new("sh")
        .args([
            "-c",
            &format!("kill -INT {pid}; sleep 0.3; kill -INT {pid}"),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "second SIGINT");
    no_partial_checkpoint_has_a_final_name(&run);
    assert!(
        selfsup::train::checkpoint::load_latest(&run.join("checkpoints"))
            .unwrap()
            .is_some()
    );
}
