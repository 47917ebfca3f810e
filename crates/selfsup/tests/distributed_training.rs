//! Data-parallel pretraining over two processes (c10d's Gloo on loopback):
//! * SimCLR (on synthetic images and on 96 Fashion-MNIST images), MoCo v2 (its queue included),
//!   SwAV, NNCLR, DINO (its centre included), MAE, SimMIM and CAE in two
//!   processes end with the weights of one
//!   process training on the same global batch (to float tolerance: the sums run in another
//!   order);
//! * one process killed with SIGKILL stops the other with an error within a bounded time, and
//!   the run resumed from rank 0's checkpoint ends bit-identical to an uninterrupted one;
//! * a method whose objective is not written across ranks refuses to start.
//!
//! The test binary is its own worker: the parent starts it with torchrun's variables and
//! `SELFSUP_DIST_TRAIN` (the recipe) set, and only `training_worker` does anything then.
mod common;

use selfsup::error::BadInputPolicy;
use selfsup::run::commands::{self, PretrainArgs};
use selfsup::train::checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::Kind;

/// A fully connected encoder; SimCLR's has batch norm in the encoder and projector (synchronised
/// over the processes, `train.sync_batch_norm`'s default), the other methods none. SGD, not
/// Adam: a bias before batch norm has a gradient that is zero but for rounding, and Adam's
/// normalisation turns rounding that differs between the two runs into steps of size lr.
fn recipe(dir: &Path, method: &str) -> PathBuf {
    let (tri, trl) = common::write_idx(dir, "train", 96, 12, 1);
    recipe_on(dir, method, &tri, &trl, "")
}

/// The same recipe on the first 96 images of the real Fashion-MNIST training set.
fn fashion_mnist_recipe(dir: &Path, method: &str) -> Option<PathBuf> {
    let fmnist = common::shared_data()?.join("fashion_mnist");
    Some(recipe_on(
        dir,
        method,
        &fmnist.join("train-images-idx3-ubyte.gz"),
        &fmnist.join("train-labels-idx1-ubyte.gz"),
        "max_samples = 96\n",
    ))
}

fn recipe_on(dir: &Path, method: &str, tri: &Path, trl: &Path, train_extra: &str) -> PathBuf {
    let method_table = match method {
        "simclr" => "name = \"simclr\"\ntemperature = 0.5\nprojector = [{ dim = 16, batch_norm = true, relu = true }, { dim = 8 }]",
        // A queue smaller than the 18 steps' keys, so that it wraps; both directions.
        "moco_v2" => "name = \"moco_v2\"\nqueue_size = 64\nsymmetric = true\nprojector = [{ dim = 16, batch_norm = false, relu = true }, { dim = 8 }]",
        // A small head; the centre (a model variable) must move with every rank's teacher rows.
        "dino" => "name = \"dino\"\nhidden = 32\nbottleneck = 16\nout_dim = 64\nwarmup_teacher_epochs = 1.0",
        "nnclr" => "name = \"nnclr\"\nsupport_size = 64",
        "swav" => "name = \"swav\"\nprototypes = 12\nprojector = [{ dim = 16, batch_norm = false, relu = true }, { dim = 8 }]",
        "mae" => "name = \"mae\"\nmask_ratio = 0.75\ndecoder_dim = 16\ndecoder_depth = 1\ndecoder_heads = 2\nnorm_pix_loss = true",
        "simmim" => "name = \"simmim\"\nmask_ratio = 0.5",
        "cae" => "name = \"cae\"\nmask_ratio = 0.5\nregressor_depth = 1\ndecoder_depth = 1\nheads = 2",
        other => &format!("name = \"{other}\""),
    };
    let text = format!(
        r#"name = "tiny-dp"
seed = 7
[data]
format = "idx"
train_images = "{}"
train_labels = "{}"
[views.image]
crop_scale = [0.5, 1.0]
blur_kernel = 3
mean = [0.3]
std = [0.3]
[encoder]
{}
[method]
{method_table}
[train]
{train_extra}{}
batch_size = 16
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 1e-4 }}
warmup_epochs = 1.0
decay = "cosine"
log_every = 2
checkpoint_every = 2
workers = 1
"#,
        tri.display(),
        trl.display(),
        // OBoW reads a convolutional encoder's feature maps.
        if method == "obow" {
            "kind = \"small_cnn\"\nwidths = [4, 8]".to_string()
        } else if ["mae", "simmim", "cae"].contains(&method) {
            "kind = \"vit\"\npatch = 4\ndim = 16\ndepth = 2\nheads = 2\npositions = \"sincos\"\npooling = \"cls\"".to_string()
        } else {
            format!(
                "kind = \"mlp\"\ndims = [32, 16]\nbatch_norm = {}",
                method == "simclr"
            )
        },
        // NNCLR's nearest neighbour is a discrete choice: rounding that differs between the
        // runs flips one after a few steps and the runs part. Two steps still use a support
        // set filled from both ranks.
        if method == "nnclr" {
            "steps = 2"
        } else {
            "epochs = 3"
        },
    );
    let p = dir.join(format!("{method}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn args(recipe: &Path, run: &Path, resume: bool) -> PretrainArgs {
    PretrainArgs {
        recipe: recipe.to_path_buf(),
        overrides: Vec::new(),
        run_dir: Some(run.to_path_buf()),
        resume,
        device: tch::Device::Cpu,
        threads: 1,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// Runs only as a child of the tests below.
#[test]
fn training_worker() {
    let Ok(recipe) = std::env::var("SELFSUP_DIST_TRAIN") else {
        return;
    };
    let run = PathBuf::from(std::env::var("SELFSUP_DIST_RUN").unwrap());
    let resume = std::env::var("SELFSUP_DIST_RESUME").is_ok();
    if let Err(e) = commands::pretrain(args(Path::new(&recipe), &run, resume)) {
        let rank = std::env::var("RANK").unwrap();
        let out = run.with_extension(format!("rank{rank}.err"));
        std::fs::write(out, format!("{e:#}")).unwrap();
        std::process::exit(1);
    }
}

fn start_ranks(recipe: &Path, run: &Path, resume: bool, fault: Option<&str>) -> Vec<Child> {
    let port = common::free_port();
    (0..2)
        .map(|rank| {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["training_worker", "--exact", "--test-threads=1"])
                .env("SELFSUP_DIST_TRAIN", recipe)
                .env("SELFSUP_DIST_RUN", run)
                .env("SELFSUP_DIST_TIMEOUT", "60")
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if resume {
                c.env("SELFSUP_DIST_RESUME", "1");
            }
            if let Some(f) = fault {
                c.env("SELFSUP_FAULT", f);
            }
            c.spawn().unwrap()
        })
        .collect()
}

/// Waits (bounded) for a child; its success.
fn finish(c: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s.success();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("a worker did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn final_weights(run: &Path) -> (u64, Vec<(String, Vec<f32>)>) {
    let c = checkpoint::load_latest(&run.join("checkpoints"))
        .unwrap()
        .expect("a checkpoint");
    let mut model: Vec<(String, Vec<f32>)> = c
        .model
        .into_iter()
        .map(|(n, t)| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
            (n, v)
        })
        .collect();
    model.sort_by(|a, b| a.0.cmp(&b.0));
    (c.state.step, model)
}

#[test]
fn simclr_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "simclr"), "simclr");
}

/// The same on real images: 96 Fashion-MNIST training images (under `CI=true` the shared data
/// must be there).
#[test]
fn simclr_on_fashion_mnist_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let Some(recipe) = fashion_mnist_recipe(dir.path(), "simclr") else {
        return;
    };
    two_processes_train_like_one(dir.path(), &recipe, "simclr");
}

/// MoCo's queue (part of the checkpoint's model variables) must hold every rank's keys.
#[test]
fn moco_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "moco_v2"), "moco_v2");
}

/// SwAV's codes must come from a Sinkhorn over every rank's samples.
#[test]
fn swav_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "swav"), "swav");
}

/// NNCLR's support set (a model variable) must hold every rank's projections.
#[test]
fn nnclr_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "nnclr"), "nnclr");
}

/// Masked-image modelling: each rank hides its own samples' patches (masks keyed by sample).
#[test]
fn mae_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "mae"), "mae");
}

#[test]
fn cae_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "cae"), "cae");
}

#[test]
fn simmim_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "simmim"), "simmim");
}

/// DINO's centre (a model variable) must be the mean over every rank's teacher outputs.
#[test]
fn dino_in_two_processes_trains_like_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_train_like_one(dir.path(), &recipe(dir.path(), "dino"), "dino");
}

fn two_processes_train_like_one(dir: &Path, recipe: &Path, method: &str) {
    let one = dir.join("one");
    commands::pretrain(args(recipe, &one, false)).unwrap();
    let two = dir.join("two");
    for mut c in start_ranks(recipe, &two, false, None) {
        assert!(finish(&mut c, Duration::from_secs(300)), "a rank failed");
    }
    let (s1, w1) = final_weights(&one);
    let (s2, w2) = final_weights(&two);
    let steps = if method == "nnclr" { 2 } else { 18 };
    assert_eq!((s1, s2), (steps, steps));
    let mut worst: (f32, &str) = (0.0, "");
    for ((n1, a), (n2, b)) in w1.iter().zip(&w2) {
        assert_eq!(n1, n2);
        let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        if diff / scale > worst.0 {
            worst = (diff / scale, n1);
        }
    }
    assert!(
        worst.0 < 1e-4,
        "{method}: two processes ended {:e} (relative, in {}) from one",
        worst.0,
        worst.1
    );
    // And training did move the weights (the comparison is not of two initialisations).
    let first = checkpoint::load_latest(&one.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert!(first.state.step > 0);
    let manifest = std::fs::read_to_string(two.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"processes\": 2"), "{manifest}");
    // Only rank 0 wrote the metrics, once per logged step.
    let lines = std::fs::read_to_string(two.join("metrics.jsonl")).unwrap();
    let logged = lines.lines().filter(|l| l.contains("\"loss\"")).count() as u64;
    assert_eq!(logged, steps / 2);
}

#[test]
fn a_killed_rank_stops_the_other_and_the_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "simclr");
    let full = dir.path().join("full");
    for mut c in start_ranks(&recipe, &full, false, None) {
        assert!(finish(&mut c, Duration::from_secs(300)));
    }
    // Slow steps, so that rank 1 can be killed part-way (after rank 0's checkpoint of step 6).
    let cut = dir.path().join("cut");
    let mut ranks = start_ranks(&recipe, &cut, false, Some("slow-step:150"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cut
        .join("checkpoints")
        .join(checkpoint::dir_name(6))
        .exists()
    {
        assert!(Instant::now() < deadline, "no checkpoint of step 6");
        std::thread::sleep(Duration::from_millis(10));
    }
    ranks[1].kill().unwrap(); // SIGKILL
    ranks[1].wait().unwrap();
    let killed = Instant::now();
    assert!(
        !finish(&mut ranks[0], Duration::from_secs(90)),
        "rank 0 went on alone"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "{:?}",
        killed.elapsed()
    );
    let err = std::fs::read_to_string(cut.with_extension("rank0.err")).unwrap();
    assert!(err.contains("failed"), "{err}");
    let (stopped_at, _) = final_weights(&cut);
    assert!(stopped_at < 18, "the run was not cut ({stopped_at})");
    for mut c in start_ranks(&recipe, &cut, true, None) {
        assert!(finish(&mut c, Duration::from_secs(300)));
    }
    let (s_full, w_full) = final_weights(&full);
    let (s_cut, w_cut) = final_weights(&cut);
    assert_eq!((s_full, s_cut), (18, 18));
    assert!(
        w_full == w_cut,
        "the resumed run differs from the uninterrupted one"
    );
}

#[test]
fn a_method_without_a_cross_rank_objective_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "obow");
    let run = dir.path().join("obow");
    for mut c in start_ranks(&recipe, &run, false, None) {
        assert!(!finish(&mut c, Duration::from_secs(120)));
    }
    let err = std::fs::read_to_string(run.with_extension("rank0.err")).unwrap();
    assert!(err.contains("does not train across processes"), "{err}");
}
