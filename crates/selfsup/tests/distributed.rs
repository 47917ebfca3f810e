//! Objectives (and batch norm) across ranks: two processes joined over loopback by c10d's Gloo, in float64, with
//! inputs that differ between the ranks, give the loss and (averaged over the ranks, as the
//! gradient all-reduce does) the parameter gradients of one process holding the whole batch, to
//! 1e-10 relative. Each objective is also run with the backward rule the popular Python tools
//! shipped (a gather whose backward keeps only this rank's slice, lightly #1528; an all-reduce
//! without backward, lightly #1977) and shown to fail there, so the check can fail.
//!
//! The test binary is its own worker: the parent starts it twice with torchrun's variables and
//! `SELFSUP_DIST_WORKER` set, and only `rank_worker` does anything then.
mod common;

use selfsup::distributed::{Alone, Collective, GradRule, ProcessGroup, SyncScope, WorldEnv};
use selfsup::objectives::info_nce::info_nce_in_batch_across;
use selfsup::objectives::swav::swav_loss_across;
use selfsup::objectives::{barlow_twins::barlow_twins_across, nt_xent::nt_xent_across};
use selfsup::objectives::{dino_loss, moco_queue_loss, normalized_mse};
use selfsup::objectives::{supcon::supcon_across, vicreg::vicreg_across};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

const WORLD: i64 = 2;
const ROWS: i64 = 6;
const IN: i64 = 5;
const OUT: i64 = 4;
const LABELS: [i64; 6] = [0, 1, 0, 2, 1, 0];

/// Deterministic, unequal rows: no two ranks see the same numbers.
fn inputs(view: i64) -> Tensor {
    let i = Tensor::arange(ROWS * IN, (Kind::Double, tch::Device::Cpu)).view([ROWS, IN]);
    ((&i * (0.37 + 0.11 * view as f64)).sin() * 1.5 + (&i * 0.05).cos() * (view as f64 + 0.5))
        .view([ROWS, IN])
}

fn weights() -> Tensor {
    let i = Tensor::arange(IN * OUT, (Kind::Double, tch::Device::Cpu)).view([IN, OUT]);
    ((i * 0.91).sin() * 0.8).set_requires_grad(true)
}

/// The objective on rows `rows` of the batch; returns the loss and dLoss/dW.
fn loss_and_grad(objective: &str, rows: (i64, i64), comm: &dyn Collective) -> (f64, Vec<f64>) {
    let w = weights();
    let (start, n) = rows;
    let z1 = inputs(0).narrow(0, start, n).matmul(&w);
    let z2 = inputs(1).narrow(0, start, n).matmul(&w);
    let labels = Tensor::from_slice(&LABELS).narrow(0, start, n);
    let loss = match objective {
        "nt_xent" => nt_xent_across(&z1, &z2, 0.5, comm),
        "supcon" => supcon_across(&[z1, z2], &labels, (0.1, 0.07), comm),
        "barlow_twins" => barlow_twins_across(&z1, &z2, 0.005, comm),
        "vicreg" => vicreg_across(&z1, &z2, (25.0, 25.0, 1.0), comm),
        // Batch norm over the global batch: rows normalised with every rank's statistics (the
        // one-process reference is tch's own batch norm over the whole batch), then a loss
        // that is not symmetric in the channels.
        "sync_batch_norm" => {
            let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let bn = selfsup::torch_init::batch_norm1d(vs.root() / "bn", OUT);
            vs.double();
            let y = if comm.world_size() > 1 {
                let scope = SyncScope::enter(comm);
                let y = bn.forward_t(&z1, true);
                scope.finish().map(|()| y)
            } else {
                Ok(bn.forward_t(&z1, true))
            };
            let weights = Tensor::arange(OUT, (Kind::Double, tch::Device::Cpu)) + 1.0;
            y.map(|y| {
                (y.sin() * weights)
                    .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                    .mean(Kind::Double)
            })
        }
        "info_nce_in_batch" => info_nce_in_batch_across(&z1, &z2, 0.2, comm),
        // Sinkhorn's codes over the whole batch (no gradient through them), then per-sample
        // cross-entropies: the sums inside Sinkhorn are what crosses ranks.
        "swav" => {
            let prototypes = (Tensor::arange(3 * OUT, (Kind::Double, tch::Device::Cpu)) * 0.77)
                .sin()
                .view([3, OUT]);
            let scores = [z1.matmul(&prototypes.tr()), z2.matmul(&prototypes.tr())];
            swav_loss_across(&scores, 2, (0.1, 0.05, 3), comm)
        }
        // Per-sample objectives: nothing crosses ranks but the gradient average.
        "dino" => {
            let center = (Tensor::arange(OUT, (Kind::Double, tch::Device::Cpu)) * 0.3).sin();
            Ok(dino_loss(
                &[z1.shallow_clone(), z2.shallow_clone()],
                &[z1.detach(), z2.detach()],
                &center,
                0.1,
                0.04,
            ))
        }
        "byol" => Ok(normalized_mse(&z1, &z2.detach())),
        "info_nce_queue" => {
            let queue = (Tensor::arange(8 * OUT, (Kind::Double, tch::Device::Cpu)) * 0.61)
                .cos()
                .view([8, OUT]);
            let unit = |z: &Tensor| z / z.norm_scalaropt_dim(2, [1i64].as_slice(), true);
            Ok(moco_queue_loss(
                &unit(&z1),
                &unit(&z2).detach(),
                &unit(&queue),
                0.2,
            ))
        }
        other => panic!("no objective {other}"),
    }
    .expect("the objective's collectives");
    loss.backward();
    let grad = Vec::<f64>::try_from(w.grad().reshape([-1])).unwrap();
    (loss.double_value(&[]), grad)
}

/// Runs only as a child of `across_ranks` (the variable names its objective).
#[test]
fn rank_worker() {
    let Ok(objective) = std::env::var("SELFSUP_DIST_WORKER") else {
        return;
    };
    let env = WorldEnv::from_process()
        .unwrap()
        .expect("torchrun variables");
    let out = std::env::var("SELFSUP_DIST_OUT").unwrap();
    let mut group = match ProcessGroup::gloo(&env, Duration::from_secs(20)) {
        Ok(g) => g,
        Err(e) => {
            std::fs::write(format!("{out}/rank{}.err", env.rank), format!("{e:#}")).unwrap();
            return;
        }
    };
    if objective == "vanish" {
        // Rank 1 leaves after the rendezvous; rank 0's next collective must fail, not hang.
        if env.rank == 1 {
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut t = Tensor::ones([4], (Kind::Double, tch::Device::Cpu));
        let err = group
            .all_reduce_sum_(&mut t)
            .expect_err("a collective without a peer");
        std::fs::write(format!("{out}/rank0.err"), format!("{err:#}")).unwrap();
        return;
    }
    if std::env::var("SELFSUP_DIST_RULE").as_deref() == Ok("local") {
        group.set_grad_rule(GradRule::LocalOnly);
    }
    let n = ROWS / WORLD;
    let (loss, grad) = loss_and_grad(&objective, (env.rank as i64 * n, n), &group);
    let text: Vec<String> = std::iter::once(loss)
        .chain(grad)
        .map(|x| x.to_string())
        .collect();
    std::fs::write(format!("{out}/rank{}.txt", env.rank), text.join("\n")).unwrap();
}

/// Starts `world` workers on `objective` and waits for them (bounded).
fn run_workers(objective: &str, rule: &str, world: i64, dir: &Path) {
    let port = common::free_port();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            Command::new(std::env::current_exe().unwrap())
                .args(["rank_worker", "--exact", "--test-threads=1", "--nocapture"])
                .env("SELFSUP_DIST_WORKER", objective)
                .env("SELFSUP_DIST_RULE", rule)
                .env("SELFSUP_DIST_OUT", dir)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for mut c in children {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "{objective}: a worker failed ({status})");
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("{objective}: a worker hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Largest difference relative to the largest magnitude of `want`.
fn relative(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// (loss, gradient) averaged over the ranks, and the one-process whole-batch pair.
fn across_ranks(objective: &str, rule: &str) -> ((f64, Vec<f64>), (f64, Vec<f64>)) {
    let dir = tempfile::tempdir().unwrap();
    run_workers(objective, rule, WORLD, dir.path());
    let mut loss = 0.0;
    let mut grad = vec![0.0; (IN * OUT) as usize];
    for r in 0..WORLD {
        let text = std::fs::read_to_string(dir.path().join(format!("rank{r}.txt"))).unwrap();
        let v: Vec<f64> = text.lines().map(|l| l.parse().unwrap()).collect();
        loss += v[0] / WORLD as f64;
        for (g, x) in grad.iter_mut().zip(&v[1..]) {
            *g += x / WORLD as f64;
        }
    }
    ((loss, grad), loss_and_grad(objective, (0, ROWS), &Alone))
}

fn assert_equivalent(objective: &str) {
    assert_equal_to_one_batch(objective);
    // The known-buggy backward must be caught by the same comparison.
    let ((_, bad), (_, want_grad)) = across_ranks(objective, "local");
    let db = relative(&bad, &want_grad);
    assert!(
        db > 1e-3,
        "{objective}: the rank-local backward passed ({db:e})"
    );
}

fn assert_equal_to_one_batch(objective: &str) {
    let ((loss, grad), (want_loss, want_grad)) = across_ranks(objective, "all-reduce");
    let dl = relative(&[loss], &[want_loss]);
    let dg = relative(&grad, &want_grad);
    assert!(
        dl <= 1e-10,
        "{objective}: loss {loss} vs {want_loss} ({dl:e})"
    );
    assert!(
        dg <= 1e-10,
        "{objective}: gradient differs by {dg:e} relative"
    );
}

#[test]
fn nt_xent_across_ranks_equals_one_batch() {
    assert_equivalent("nt_xent");
}

#[test]
fn supcon_across_ranks_equals_one_batch() {
    assert_equivalent("supcon");
}

#[test]
fn barlow_twins_across_ranks_equals_one_batch() {
    assert_equivalent("barlow_twins");
}

#[test]
fn vicreg_across_ranks_equals_one_batch() {
    assert_equivalent("vicreg");
}

#[test]
fn info_nce_in_batch_across_ranks_equals_one_batch() {
    assert_equivalent("info_nce_in_batch");
}

/// The codes carry no gradient, so there is no backward rule to get wrong; a Sinkhorn that
/// normalised over this rank's samples only would give other codes, and so another loss.
#[test]
fn swav_across_ranks_equals_one_batch() {
    assert_equal_to_one_batch("swav");
}

/// DINO's loss with a given centre (the centre's update across ranks is checked by training in
/// `tests/distributed_training.rs`).
#[test]
fn dino_across_ranks_equals_one_batch() {
    assert_equal_to_one_batch("dino");
}

#[test]
fn sync_batch_norm_across_ranks_equals_one_batch() {
    assert_equivalent("sync_batch_norm");
}

/// No collective in the loss (so no buggy backward to show): the ranks' mean is the whole
/// batch's because each rank's loss is the mean of its own samples' terms.
#[test]
fn byol_across_ranks_equals_one_batch() {
    assert_equal_to_one_batch("byol");
}

#[test]
fn info_nce_with_a_queue_across_ranks_equals_one_batch() {
    assert_equal_to_one_batch("info_nce_queue");
}

#[test]
fn a_lost_peer_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    run_workers("vanish", "all-reduce", WORLD, dir.path());
    let msg = std::fs::read_to_string(dir.path().join("rank0.err")).unwrap();
    assert!(msg.contains("all-reduce failed"), "{msg}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_missing_peer_times_out_with_a_clear_error() {
    // World size 2 but only rank 0 started: the rendezvous must give up after its timeout.
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["rank_worker", "--exact", "--test-threads=1"])
        .env("SELFSUP_DIST_WORKER", "nt_xent")
        .env("SELFSUP_DIST_OUT", dir.path())
        .env("RANK", "0")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let msg = std::fs::read_to_string(dir.path().join("rank0.err")).unwrap();
    assert!(msg.contains("could not join the group"), "{msg}");
}
