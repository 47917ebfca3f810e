//! The training loop, one for every modality. It knows nothing about any particular method or
//! data: it asks a [`Learner`] for the loss of the next step, and owns everything else
//! (schedule, optimiser, NaN guard, early stopping, checkpoints, metrics, progress,
//! interruption).
use super::checkpoint::{self, EarlyStopState, Loaded, TrainState};
use super::config::{NanPolicy, TrainConfig};
use super::learner::Learner;
use super::metrics::MetricsLog;
use super::optim::Optimizer;
use super::schedule::LrSchedule;
use crate::distributed::{data_parallel, ProcessGroup};
use crate::methods::Progress;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn::VarStore, Device, Tensor};

/// Why training stopped early on purpose.
#[derive(Debug, thiserror::Error)]
pub enum TrainStop {
    #[error(
        "interrupted at step {step}; checkpoint written to {checkpoint} (continue with --resume)"
    )]
    Interrupted { step: u64, checkpoint: PathBuf },
    #[error("non-finite loss or gradient at step {step} ({reason}); weights were not updated. The last good checkpoint is kept")]
    NonFinite { step: u64, reason: String },
}

/// A hook run at the end of selected epochs (the online kNN monitor): epoch → accuracy.
pub type Monitor<'a> = dyn FnMut(u64) -> Result<f64> + 'a;

pub struct TrainContext<'a> {
    pub train: &'a TrainConfig,
    pub seed: u64,
    /// [`crate::recipe::Recipe::training_hash`] of the recipe: a checkpoint of another is refused.
    pub training_hash: String,
    /// Run the monitor every N epochs (0: never).
    pub monitor_every: u64,
    pub vs: &'a VarStore,
    pub learner: &'a mut dyn Learner,
    pub device: Device,
    pub checkpoints: PathBuf,
    pub metrics_path: PathBuf,
    pub data_fingerprint: String,
    pub progress: bool,
    /// Set (e.g. by a signal handler) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    pub monitor: Option<&'a mut Monitor<'a>>,
    /// The caller holds [`crate::torch_rng::lock`] for the whole training (its method draws
    /// dropout masks from libtorch's generator); otherwise the loop takes it to restore the
    /// generator's state on resume.
    pub holds_generator_lock: bool,
    /// Data-parallel training: this process's group. Rank 0's weights are broadcast at the
    /// start, gradients are averaged over the ranks, the loss and the stop request are agreed
    /// on every step, and only rank 0 writes checkpoints and metrics.
    pub ranks: Option<&'a ProcessGroup>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub epochs_completed: u64,
    pub final_loss: Option<f64>,
    pub samples_per_s: f64,
    pub seconds: f64,
    pub nan_skips: u64,
    pub best_monitor: Option<(f64, u64)>,
    /// The monitor's figure at the last monitored epoch (reported beside the best one).
    pub final_monitor: Option<(f64, u64)>,
    /// Under early stopping: the epoch whose parameters were kept, and whether training stopped
    /// before its last epoch.
    pub kept_epoch: Option<u64>,
    pub stopped_early: bool,
}

/// Names of the loop's own tensors in a checkpoint's `optimizer.safetensors`, beside the
/// optimiser's buffers.
const GENERATOR_STATE: &str = "trainer.cpu_generator";
const BEST_PREFIX: &str = "trainer.best/";

/// Early stopping on the training loss of full-batch training: the loss of each epoch is that
/// of the parameters before its update, so the copy taken when it improves is exactly the
/// parameters that scored best (DGI's reference code does the same).
struct EarlyStop {
    patience: u64,
    best: Option<Vec<(String, Tensor)>>,
}

impl EarlyStop {
    /// Records `loss` of the current parameters; true when training should stop.
    fn observe(&mut self, st: &mut EarlyStopState, epoch: u64, loss: f64, vs: &VarStore) -> bool {
        if st.best_loss.is_none_or(|best| loss < best) {
            st.best_loss = Some(loss);
            st.best_epoch = epoch;
            st.wait = 0;
            let _g = tch::no_grad_guard();
            let mut vars: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.copy()))
                .collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            self.best = Some(vars);
            false
        } else {
            st.wait += 1;
            st.wait >= self.patience
        }
    }
    /// Puts the best parameters back into `vs`.
    fn restore(&self, vs: &VarStore) {
        if let Some(best) = &self.best {
            let vars = vs.variables();
            let _g = tch::no_grad_guard();
            for (k, v) in best {
                if let Some(t) = vars.get(k) {
                    t.shallow_clone().copy_(v);
                }
            }
        }
    }
}

pub fn train(mut ctx: TrainContext<'_>, resume: Option<Loaded>) -> Result<TrainSummary> {
    let t = ctx.train;
    let spe = ctx.learner.steps_per_epoch()?;
    if t.patience.is_some() && !ctx.learner.full_batch() {
        bail!(
            "train.patience: early stopping is defined for full-batch training (one graph, one \
             step per epoch); {} trains in mini-batches here",
            ctx.learner.name()
        );
    }
    // With `train.steps`, the last epoch stops part-way once the steps are done.
    let epochs = t.steps.map_or(t.epochs, |s| s.div_ceil(spe));
    let total = t.steps.unwrap_or(epochs * spe);
    let schedule = LrSchedule {
        base_lr: t.optimizer.lr(),
        warmup_steps: (t.warmup_epochs * spe as f64).round() as u64,
        total_steps: total,
        decay: t.decay,
        final_lr: t.final_lr,
    };
    // Epoch-end checkpoints: every epoch, or for one-step epochs about twenty in a run.
    let checkpoint_epochs =
        t.checkpoint_every_epochs
            .unwrap_or(if spe == 1 { (epochs / 20).max(1) } else { 1 });
    let mut opt = Optimizer::new(t.optimizer.clone(), ctx.vs);
    let mut st = TrainState {
        step: 0,
        epoch: 0,
        step_in_epoch: 0,
        optimizer_steps: 0,
        nan_skips: 0,
        recipe_hash: ctx.training_hash.clone(),
        data_fingerprint: ctx.data_fingerprint.clone(),
        best_monitor: None,
        last_monitor: None,
        early_stop: t.patience.map(|_| EarlyStopState::default()),
    };
    let mut early = t.patience.map(|patience| EarlyStop {
        patience,
        best: None,
    });
    if let Some(c) = resume {
        st = resume_from(c, &ctx, &st, &mut opt, &mut early)?;
    }
    let leader = ctx.ranks.is_none_or(|g| g.rank() == 0);
    if let Some(g) = ctx.ranks {
        data_parallel::broadcast_variables(g, ctx.vs)?;
    }
    let mut metrics = if leader {
        MetricsLog::open(&ctx.metrics_path, Some(st.step))?
    } else {
        MetricsLog::silent()
    };
    let max_steps = t.max_steps.unwrap_or(u64::MAX);

    let bar = progress_bar(ctx.progress, total.min(max_steps), st.step);
    let started = Instant::now();
    let first_step = st.step;
    let mut window = LossWindow::new();
    let mut last_loss = None;
    let mut saved_at = None;

    // Non-trainable state that forward passes change (batch-norm running statistics).
    let buffers: Vec<tch::Tensor> = ctx
        .vs
        .variables()
        .into_values()
        .filter(|v| !v.requires_grad())
        .collect();
    let fault_nan_step = crate::fault::step_of("nan-input-at");
    let fault_step_pause = crate::fault::step_of("slow-step").map(std::time::Duration::from_millis);
    let stopped = |st: &TrainState| st.early_stop.as_ref().is_some_and(|e| e.stopped);
    while st.epoch < epochs && !stopped(&st) {
        ctx.learner
            .start_epoch(ctx.seed, st.epoch, st.step_in_epoch)?;
        while st.step < total {
            let lr = schedule.lr_at(st.step);
            opt.zero_grad();
            // A forward pass in training mode updates batch-norm running statistics; keep a copy
            // so that a bad batch cannot leave NaNs there either.
            let buffers_before: Vec<(tch::Tensor, tch::Tensor)> = buffers
                .iter()
                .map(|b| (b.shallow_clone(), b.copy()))
                .collect();
            let progress = Progress {
                step: st.step,
                total_steps: total,
                steps_per_epoch: spe,
            };
            let Some(loss) = ctx
                .learner
                .next_loss(progress, fault_nan_step == Some(st.step))?
            else {
                break;
            };
            let (loss_v, stop_now) = agree(ctx.ranks, f64::try_from(&loss)?, &ctx.stop)?;
            if let (Some(e), Some(es)) = (early.as_mut(), st.early_stop.as_mut()) {
                // Judged on the parameters before this epoch's update, as DGI does.
                if loss_v.is_finite() && e.observe(es, st.epoch, loss_v, ctx.vs) {
                    es.stopped = true;
                    break;
                }
            }
            loss.backward();
            if let Some(g) = ctx.ranks {
                data_parallel::average_gradients(g, ctx.vs)?;
            }
            ctx.learner.before_update(progress);
            let norm = opt.grad_norm();
            let norm_v = f64::try_from(&norm)?;
            if loss_v.is_finite() && norm_v.is_finite() {
                if let Some(c) = t.grad_clip {
                    opt.clip_grad_norm(&norm, c);
                }
                opt.step(lr);
                ctx.learner.after_update(progress);
                if let Some(g) = ctx.ranks {
                    data_parallel::broadcast_buffers(g, ctx.vs)?;
                }
                st.optimizer_steps = opt.steps;
                window.add(loss_v);
                last_loss = Some(loss_v);
            } else {
                tch::no_grad(|| {
                    for (b, before) in &buffers_before {
                        b.shallow_clone().copy_(before);
                    }
                });
                st.nan_skips += 1;
                let reason = format!("loss {loss_v}, gradient norm {norm_v}");
                metrics.write(&json!({"step": st.step, "epoch": st.epoch, "event": "non_finite", "reason": reason}))?;
                if t.nan_policy == NanPolicy::Stop || st.nan_skips > t.max_nan_skips {
                    bar.abandon();
                    return Err(TrainStop::NonFinite {
                        step: st.step,
                        reason: format!("{reason}; {} skipped so far", st.nan_skips),
                    }
                    .into());
                }
                tracing::warn!(
                    "step {}: {reason}; update skipped ({} of at most {})",
                    st.step,
                    st.nan_skips,
                    t.max_nan_skips
                );
            }
            st.step += 1;
            st.step_in_epoch += 1;
            bar.inc(1);
            if let Some(pause) = fault_step_pause {
                std::thread::sleep(pause);
            }
            if st.step % t.log_every == 0 {
                let samples = t.log_every as usize * ctx.learner.samples_per_step();
                let (mean, sps, line) = window.flush(&st, lr, samples, ctx.learner.diagnostics());
                metrics.write(&line)?;
                bar.set_message(format!("loss {mean:.4}  {sps:.0} samples/s"));
            }
            if t.checkpoint_every > 0 && st.step % t.checkpoint_every == 0 {
                save(&ctx, &st, &opt, &early, &mut saved_at)?;
            }
            if stop_now {
                let path = save(&ctx, &st, &opt, &early, &mut saved_at)?;
                bar.abandon();
                metrics
                    .write(&json!({"step": st.step, "epoch": st.epoch, "event": "interrupted"}))?;
                return Err(TrainStop::Interrupted {
                    step: st.step,
                    checkpoint: path,
                }
                .into());
            }
            if st.step >= max_steps {
                break;
            }
        }
        if stopped(&st) {
            break;
        }
        if st.step >= max_steps && st.step_in_epoch < spe {
            save(&ctx, &st, &opt, &early, &mut saved_at)?;
            break;
        }
        st.epoch += 1;
        st.step_in_epoch = 0;
        let every = ctx.monitor_every;
        if every > 0 && st.epoch % every == 0 {
            if let Some(m) = ctx.monitor.as_mut() {
                let acc = m(st.epoch)?;
                st.record_monitor(acc);
                metrics
                    .write(&json!({"step": st.step, "epoch": st.epoch, "monitor_knn_acc": acc}))?;
                bar.println(format!(
                    "epoch {}: online kNN accuracy {:.2}%",
                    st.epoch,
                    acc * 100.0
                ));
            }
        }
        if st.epoch % checkpoint_epochs == 0 || st.epoch == epochs {
            save(&ctx, &st, &opt, &early, &mut saved_at)?;
        }
        if st.step >= max_steps {
            break;
        }
    }
    let mut kept_epoch = None;
    let finished = stopped(&st) || st.epoch >= epochs;
    if let (Some(e), Some(es), true) = (early.as_ref(), st.early_stop.as_ref(), finished) {
        // Training is over (not paused by max_steps): the model becomes the best epoch's.
        e.restore(ctx.vs);
        kept_epoch = e.best.as_ref().map(|_| es.best_epoch);
        metrics.write(&json!({"step": st.step, "epoch": st.epoch, "event": "kept_best", "stopped_early": es.stopped, "kept_epoch": es.best_epoch, "best_loss": es.best_loss}))?;
        save(&ctx, &st, &opt, &early, &mut saved_at)?;
    }
    // The last state is always on disk: what evaluation, export and a resume read.
    if saved_at != Some(st.step) {
        save(&ctx, &st, &opt, &early, &mut saved_at)?;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let samples = (st.step - first_step) as f64 * ctx.learner.samples_per_step() as f64;
    Ok(TrainSummary {
        steps: st.step,
        epochs_completed: st.epoch,
        final_loss: last_loss,
        samples_per_s: samples / secs.max(1e-9),
        seconds: secs,
        nan_skips: st.nan_skips,
        best_monitor: st.best_monitor,
        final_monitor: st.last_monitor,
        kept_epoch,
        stopped_early: stopped(&st),
    })
}

/// Checks that checkpoint `c` belongs to this recipe and data, restores the model, the
/// optimiser, libtorch's generator and early stopping's best parameters from it, and returns its
/// loop state.
fn resume_from(
    c: Loaded,
    ctx: &TrainContext<'_>,
    st: &TrainState,
    opt: &mut Optimizer,
    early: &mut Option<EarlyStop>,
) -> Result<TrainState> {
    if c.state.recipe_hash != st.recipe_hash {
        bail!("{}: the checkpoint was trained with a different recipe (hash {} vs {}); refusing to resume", c.path.display(), c.state.recipe_hash, st.recipe_hash);
    }
    if c.state.data_fingerprint != st.data_fingerprint {
        bail!("{}: the checkpoint was trained on different data (fingerprint {} vs {}); refusing to resume", c.path.display(), c.state.data_fingerprint, st.data_fingerprint);
    }
    checkpoint::restore_model(ctx.vs, &c.model, &c.path)?;
    let (own, optimizer): (Vec<_>, Vec<_>) = c
        .optimizer
        .into_iter()
        .partition(|(k, _)| k.starts_with("trainer."));
    opt.load_state(optimizer, c.state.optimizer_steps)
        .with_context(|| format!("{}", c.path.display()))?;
    let mut best = Vec::new();
    for (k, v) in own {
        if k == GENERATOR_STATE {
            let bytes =
                Vec::<u8>::try_from(&v).with_context(|| format!("{}: {k}", c.path.display()))?;
            let _lock = (!ctx.holds_generator_lock).then(crate::torch_rng::lock);
            crate::torch_rng::set_cpu_state(&bytes)
                .with_context(|| format!("{}", c.path.display()))?;
        } else if let Some(name) = k.strip_prefix(BEST_PREFIX) {
            best.push((name.to_string(), v));
        }
    }
    if let Some(e) = early.as_mut() {
        e.best = (!best.is_empty()).then_some(best);
    }
    tracing::info!(
        "resuming from {} (epoch {}, step {})",
        c.path.display(),
        c.state.epoch,
        c.state.step
    );
    let mut st = c.state;
    if early.is_some() && st.early_stop.is_none() {
        st.early_stop = Some(EarlyStopState::default());
    }
    Ok(st)
}

/// The step's loss and whether to stop after it, agreed by every rank: the mean of the ranks'
/// losses (non-finite if any is, so every rank skips the same updates) and a stop requested
/// on any rank.
fn agree(ranks: Option<&ProcessGroup>, loss: f64, stop: &AtomicBool) -> Result<(f64, bool)> {
    let stop = stop.load(Ordering::SeqCst);
    let Some(g) = ranks else {
        return Ok((loss, stop));
    };
    let mut t = Tensor::from_slice(&[loss, if stop { 1.0 } else { 0.0 }]);
    g.all_reduce_sum_(&mut t)?;
    let v = Vec::<f64>::try_from(&t)?;
    Ok((v[0] / g.world_size() as f64, v[1] > 0.0))
}

/// Writes a checkpoint of the model, the optimiser's buffers, the loop state, libtorch's
/// generator state and early stopping's best parameters.
fn save(
    ctx: &TrainContext<'_>,
    st: &TrainState,
    opt: &Optimizer,
    early: &Option<EarlyStop>,
    saved_at: &mut Option<u64>,
) -> Result<PathBuf> {
    let mut tensors = opt.state_tensors();
    if let Ok(state) = crate::torch_rng::cpu_state() {
        tensors.push((GENERATOR_STATE.to_string(), Tensor::from_slice(&state)));
    }
    if let Some(best) = early.as_ref().and_then(|e| e.best.as_ref()) {
        for (k, v) in best {
            tensors.push((format!("{BEST_PREFIX}{k}"), v.shallow_clone()));
        }
    }
    *saved_at = Some(st.step);
    if ctx.ranks.is_some_and(|g| g.rank() != 0) {
        // Rank 0 writes for every rank (they hold the same weights and optimiser state).
        return Ok(ctx.checkpoints.clone());
    }
    Ok(checkpoint::save(
        &ctx.checkpoints,
        ctx.vs,
        &tensors,
        st,
        ctx.train.keep_checkpoints,
    )?)
}

/// The losses of the steps since the last metrics line.
struct LossWindow {
    sum: f64,
    n: u64,
    start: Instant,
}

impl LossWindow {
    fn new() -> Self {
        LossWindow {
            sum: 0.0,
            n: 0,
            start: Instant::now(),
        }
    }
    fn add(&mut self, loss: f64) {
        self.sum += loss;
        self.n += 1;
    }
    /// The window's mean loss and samples/s, and its metrics line (with lr and the collapse
    /// diagnostics — RankMe, normalised std — of the last batch's representations `z`); then a
    /// new window.
    fn flush(
        &mut self,
        st: &TrainState,
        lr: f64,
        samples: usize,
        z: Tensor,
    ) -> (f64, f64, serde_json::Value) {
        let secs = self.start.elapsed().as_secs_f64();
        let mean = if self.n > 0 {
            self.sum / self.n as f64
        } else {
            f64::NAN
        };
        let sps = samples as f64 / secs.max(1e-9);
        let c = crate::stats::collapse::collapse_stats(&z.to_device(tch::Device::Cpu));
        *self = LossWindow::new();
        let line = json!({"step": st.step, "epoch": st.epoch, "loss": mean, "lr": lr, "samples_per_s": sps, "rankme": c.rankme, "normalised_std": c.normalised_std});
        (mean, sps, line)
    }
}

fn progress_bar(enabled: bool, total: u64, done: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps  {msg}  ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(done);
    bar
}

/// Installs SIGINT/SIGTERM handling: the first signal sets the returned flag (the loop finishes
/// its step, checkpoints and exits); a second SIGINT/SIGTERM exits at once with status 130.
pub fn install_signal_handlers() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first so that it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}
