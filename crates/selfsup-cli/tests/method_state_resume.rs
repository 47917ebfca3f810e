//! Methods with state outside the gradient (MoCo v2's key encoder and queue, DINO's teacher and
//! centre, with multi-crop views): SIGKILL at 5 random steps (20 with `SELFSUP_KILL_POINTS=20`), then `--resume`, must end
//! bit-identical to an uninterrupted run — which holds only if that state is checkpointed and
//! restored exactly.
mod common;

use common::{latest_step, run_to_end, wait_for_step, weights_hash};
use rand::{Rng, SeedableRng};
use std::path::Path;

const IMAGES: usize = 96;

fn write_idx(dir: &Path) {
    common::write_idx(dir, "images.idx", "labels.idx", IMAGES, 2, 5);
}

const COMMON: &str = r#"
seed = 4
[data]
format = "idx"
train_images = "images.idx"
train_labels = "labels.idx"
[encoder]
kind = "small_cnn"
widths = [4, 8]
[train]
epochs = 4
batch_size = 16
optimizer = { name = "adam", lr = 1e-3 }
checkpoint_every = 1
keep_checkpoints = 3
"#;

const MOCO: &str = r#"
[method]
name = "moco_v2"
queue_size = 40
symmetric = true
projector = [{ dim = 16, relu = true }, { dim = 8 }]
"#;

const DINO: &str = r#"
[views]
local_crops = 2
[views.local]
size = [8, 8]
crop_scale = [0.1, 0.5]
[method]
name = "dino"
hidden = 16
bottleneck = 8
out_dim = 32
warmup_teacher_epochs = 2.0
freeze_last_layer_epochs = 1.0
"#;

const STEPS: u64 = 4 * (IMAGES / 16) as u64;

fn kill_and_resume_matches_uninterrupted(name: &str, method: &str, state: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path());
    let recipe = format!("{name}.toml");
    std::fs::write(
        dir.path().join(&recipe),
        format!("name = \"{name}\"\n{COMMON}{method}"),
    )
    .unwrap();
    run_to_end(dir.path(), &recipe, "full", false);
    let full = dir.path().join("full");
    // The state exists in the checkpoint and moved away from its initial value.
    let c = selfsup::train::checkpoint::load_latest(&full.join("checkpoints"))
        .unwrap()
        .unwrap();
    for s in state {
        let (_, t) = c
            .model
            .iter()
            .find(|(n, _)| n.starts_with(s))
            .unwrap_or_else(|| panic!("{name}: no {s}* in the checkpoint"));
        assert!(
            f64::try_from(t.abs().sum(tch::Kind::Float)).unwrap() > 0.0,
            "{name}: {s} is all zero"
        );
    }
    let expect = weights_hash(&full);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(name.len() as u64);
    // 5 kill points per method (20 with SELFSUP_KILL_POINTS=20), as for the two-view methods.
    let n: usize = std::env::var("SELFSUP_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut points: Vec<u64> = (0..n).map(|_| rng.gen_range(2..STEPS - 2)).collect();
    points.sort_unstable();
    let run = dir.path().join("killed");
    for (i, &p) in points.iter().enumerate() {
        let mut child = common::pretrain_command(dir.path(), &recipe, "killed", i > 0)
            .spawn()
            .unwrap();
        let alive = wait_for_step(&mut child, &run, p);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(alive, "{name}: the run ended before step {p}");
    }
    run_to_end(dir.path(), &recipe, "killed", true);
    assert_eq!(latest_step(&run), Some(STEPS));
    assert_eq!(
        weights_hash(&run),
        expect,
        "{name}: resumed weights and state differ from the uninterrupted run"
    );
}

#[test]
fn moco_v2_key_encoder_and_queue_survive_sigkill() {
    kill_and_resume_matches_uninterrupted(
        "moco",
        MOCO,
        &[
            "method.teacher.encoder.",
            "method.queue.rows",
            "method.queue.next",
        ],
    );
}

#[test]
fn dino_teacher_and_centre_survive_sigkill() {
    kill_and_resume_matches_uninterrupted("dino", DINO, &["method.teacher.head.", "method.center"]);
}
