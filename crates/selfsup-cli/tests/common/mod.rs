//! Shared by the binary's crash, resume and numerics tests (each test crate uses a part).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary in `dir` with one thread: (exit code, stdout, stderr).
pub fn selfsup(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_selfsup"))
        .args(args)
        .args(["--threads", "1"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A checkpoint's variables as `f32` values, in name order.
pub fn sorted_values(model: Vec<(String, tch::Tensor)>) -> Vec<(String, Vec<f32>)> {
    let mut m: Vec<(String, Vec<f32>)> = model
        .into_iter()
        .map(|(k, t)| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Float)).unwrap();
            (k, v)
        })
        .collect();
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}

/// `selfsup pretrain <recipe>` in `dir`, one thread, no evaluation, into run folder `run`.
pub fn pretrain_command(dir: &Path, recipe: &str, run: &str, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_selfsup"));
    c.args([
        "pretrain",
        recipe,
        "--quiet",
        "--no-eval",
        "--threads",
        "1",
        "--run-dir",
        run,
    ])
    .current_dir(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if resume {
        c.arg("--resume");
    }
    c
}

pub fn run_to_end(dir: &Path, recipe: &str, run: &str, resume: bool) {
    let out = pretrain_command(dir, recipe, run, resume).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Step of the checkpoint `latest` names, if any.
pub fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).ok()?;
    name.trim().strip_prefix("step-")?.parse().ok()
}

/// blake3 over every variable of the newest valid checkpoint, in name order.
pub fn weights_hash(run: &Path) -> String {
    let c = selfsup::train::checkpoint::load_latest(&run.join("checkpoints"))
        .unwrap()
        .expect("a checkpoint");
    let mut h = blake3::Hasher::new();
    for (name, v) in sorted_values(c.model) {
        h.update(name.as_bytes());
        for x in v {
            h.update(&x.to_le_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

/// Waits until the run has checkpointed step `step` (or the child ended); true if still running.
pub fn wait_for_step(child: &mut Child, run: &Path, step: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if latest_step(run).is_some_and(|s| s >= step) {
            return true;
        }
        assert!(Instant::now() < deadline, "no progress to step {step}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `n` grey 12×12 images of `classes` classes, class c bright in the c-th vertical band (plus
/// noise drawn with `seed`), as uncompressed IDX image and label files.
pub fn write_idx(dir: &Path, images: &str, labels: &str, n: usize, classes: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    const SIDE: usize = 12;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut img = vec![0u8, 0, 8, 3];
    for d in [n, SIDE, SIDE] {
        img.extend((d as u32).to_be_bytes());
    }
    let mut lab = vec![0u8, 0, 8, 1];
    lab.extend((n as u32).to_be_bytes());
    let band = SIDE / classes.max(1);
    for i in 0..n {
        let class = i % classes;
        lab.push(class as u8);
        for _ in 0..SIDE {
            for x in 0..SIDE {
                let bright = x / band.max(1) == class;
                img.push(if bright { 160 } else { 40 } + rng.gen_range(0..60));
            }
        }
    }
    std::fs::write(dir.join(images), img).unwrap();
    std::fs::write(dir.join(labels), lab).unwrap();
}

/// A TU-format set of 24 four-node graphs: class 1 a triangle with a tail, class -1 a path; node
/// labels cycle through 0, 1, 2.
pub fn write_tu(root: &Path) {
    let dir = root.join("TOY");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, mut ind, mut labels, mut nodes) =
        (String::new(), String::new(), String::new(), String::new());
    for g in 0..24usize {
        let base = 4 * g + 1; // TU node ids start at 1
        let triangle = g % 2 == 0;
        let mut edges = vec![(0, 1), (1, 2), (2, 3)];
        if triangle {
            edges.push((0, 2));
        }
        for (s, t) in edges {
            a.push_str(&format!(
                "{}, {}\n{}, {}\n",
                base + s,
                base + t,
                base + t,
                base + s
            ));
        }
        for k in 0..4 {
            ind.push_str(&format!("{}\n", g + 1));
            nodes.push_str(&format!("{}\n", (g + k) % 3));
        }
        labels.push_str(if triangle { "1\n" } else { "-1\n" });
    }
    for (suffix, text) in [
        ("A", a),
        ("graph_indicator", ind),
        ("graph_labels", labels),
        ("node_labels", nodes),
    ] {
        std::fs::write(dir.join(format!("TOY_{suffix}.txt")), text).unwrap();
    }
}

/// A recipe on the IDX files `write_idx` makes (train.idx / test.idx with their labels): a small
/// CNN, one epoch, batch 16, Adam; `method` is its `[method]` table.
pub fn idx_recipe(name: &str, method: &str) -> String {
    format!(
        r#"
name = "{name}"
[data]
format = "idx"
train_images = "train.idx"
train_labels = "train-labels.idx"
test_images = "test.idx"
test_labels = "test-labels.idx"
[encoder]
kind = "small_cnn"
widths = [4, 8]
{method}
[train]
epochs = 1
batch_size = 16
optimizer = {{ name = "adam", lr = 1e-3 }}
[eval]
knn_k = 5
probe_iters = 50
"#
    )
}

/// A tiny labelled image set in `dir` (96 training and 144 test images, 6 classes) and a SimCLR
/// recipe `s.toml` on it (run folder `runs/s`).
pub fn tiny_simclr(dir: &Path) {
    write_idx(dir, "train.idx", "train-labels.idx", 96, 6, 1);
    write_idx(dir, "test.idx", "test-labels.idx", 144, 6, 2);
    let simclr = "[method]\nname = \"simclr\"\nprojector = [{ dim = 8 }]";
    std::fs::write(dir.join("s.toml"), idx_recipe("s", simclr)).unwrap();
}
