//! The training loop. It knows nothing about any particular method: it asks the method for a loss
//! on a batch of views, and owns everything else (schedule, optimiser, NaN guard, checkpoints,
//! metrics, progress, interruption).
use super::checkpoint::{self, Loaded, TrainState};
use super::metrics::MetricsLog;
use super::optim::Optimizer;
use super::precision::with_precision;
use super::schedule::LrSchedule;
use crate::methods::{Method, Progress, StepInput};
use crate::recipe::{NanPolicy, Recipe};
use crate::views::loader::{steps_per_epoch, BatchStream};
use crate::views::ViewSource;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn::VarStore, Device};

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

/// A hook run at the end of selected epochs (the online kNN monitor); returns an accuracy.
pub type Monitor<'a> = dyn FnMut(&dyn Method, u64) -> Result<f64> + 'a;

pub struct TrainContext<'a> {
    pub recipe: &'a Recipe,
    pub vs: &'a VarStore,
    pub method: &'a dyn Method,
    pub source: Arc<dyn ViewSource>,
    pub device: Device,
    pub checkpoints: PathBuf,
    pub metrics_path: PathBuf,
    pub data_fingerprint: String,
    pub progress: bool,
    /// Set (e.g. by a signal handler) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    pub monitor: Option<&'a mut Monitor<'a>>,
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
}

pub fn train(mut ctx: TrainContext<'_>, resume: Option<Loaded>) -> Result<TrainSummary> {
    let r = ctx.recipe;
    let t = &r.train;
    let n = ctx.source.len();
    let spe = steps_per_epoch(n, t.batch_size);
    if spe == 0 {
        bail!(
            "the training set has {n} samples, fewer than one batch of {}",
            t.batch_size
        );
    }
    let total = t.epochs * spe;
    let schedule = LrSchedule {
        base_lr: t.optimizer.lr(),
        warmup_steps: (t.warmup_epochs * spe as f64).round() as u64,
        total_steps: total,
        decay: t.decay,
        final_lr: t.final_lr,
    };
    let mut opt = Optimizer::new(t.optimizer.clone(), ctx.vs);
    let mut st = TrainState {
        step: 0,
        epoch: 0,
        step_in_epoch: 0,
        optimizer_steps: 0,
        nan_skips: 0,
        recipe_hash: r.training_hash(),
        data_fingerprint: ctx.data_fingerprint.clone(),
        best_monitor: None,
        last_monitor: None,
    };
    if let Some(c) = resume {
        if c.state.recipe_hash != st.recipe_hash {
            bail!("{}: the checkpoint was trained with a different recipe (hash {} vs {}); refusing to resume", c.path.display(), c.state.recipe_hash, st.recipe_hash);
        }
        if c.state.data_fingerprint != st.data_fingerprint {
            bail!("{}: the checkpoint was trained on different data (fingerprint {} vs {}); refusing to resume", c.path.display(), c.state.data_fingerprint, st.data_fingerprint);
        }
        checkpoint::restore_model(ctx.vs, &c.model, &c.path)?;
        opt.load_state(c.optimizer, c.state.optimizer_steps)
            .with_context(|| format!("{}", c.path.display()))?;
        tracing::info!(
            "resuming from {} (epoch {}, step {})",
            c.path.display(),
            c.state.epoch,
            c.state.step
        );
        st = c.state;
    }
    let mut metrics = MetricsLog::open(&ctx.metrics_path, Some(st.step))?;
    let max_steps = t.max_steps.unwrap_or(u64::MAX);
    let n_views = ctx.method.n_views() + r.views.local_crops;
    let mask = ctx.method.mask_spec();
    if ctx.method.needs_labels() && ctx.source.label(0).is_none() {
        bail!(
            "{} is supervised and needs class labels for the training data (e.g. data.train_labels)",
            ctx.method.name()
        );
    }

    let bar = progress_bar(ctx.progress, total.min(max_steps), st.step);
    let started = Instant::now();
    let first_step = st.step;
    let (mut window_loss, mut window_n, mut window_start) = (0.0, 0u64, Instant::now());
    let mut last_loss = None;
    let save = |st: &TrainState, opt: &Optimizer| -> Result<PathBuf> {
        Ok(checkpoint::save(
            &ctx.checkpoints,
            ctx.vs,
            &opt.state_tensors(),
            st,
            t.keep_checkpoints,
        )?)
    };

    // Non-trainable state that forward passes change (batch-norm running statistics).
    let buffers: Vec<tch::Tensor> = ctx
        .vs
        .variables()
        .into_values()
        .filter(|v| !v.requires_grad())
        .collect();
    let fault_nan_step = crate::fault::step_of("nan-input-at");
    while st.epoch < t.epochs {
        let stream = BatchStream::new(
            ctx.source.clone(),
            r.seed,
            st.epoch,
            st.step_in_epoch,
            t.batch_size,
            n_views,
            mask.clone(),
            t.workers,
            t.prefetch,
        );
        for batch in stream {
            let mut views: Vec<tch::Tensor> = batch
                .views
                .iter()
                .map(|v| v.to_device(ctx.device))
                .collect();
            if fault_nan_step == Some(st.step) {
                views[0] = views[0].to_kind(tch::Kind::Float).fill(f64::NAN);
            }
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
            let labels = batch.labels.as_ref().map(|l| l.to_device(ctx.device));
            let masks: Vec<tch::Tensor> = batch
                .masks
                .iter()
                .map(|m| m.to_device(ctx.device))
                .collect();
            let input = StepInput {
                views: &views,
                labels: labels.as_ref(),
                masks: &masks,
                progress,
            };
            let loss = with_precision(t.precision, ctx.device, || ctx.method.loss(&input))?;
            loss.backward();
            ctx.method.before_update(progress);
            let norm = opt.grad_norm();
            let loss_v = f64::try_from(&loss)?;
            let norm_v = f64::try_from(&norm)?;
            if loss_v.is_finite() && norm_v.is_finite() {
                if let Some(c) = t.grad_clip {
                    opt.clip_grad_norm(&norm, c);
                }
                opt.step(lr);
                ctx.method.after_update(progress);
                st.optimizer_steps = opt.steps;
                window_loss += loss_v;
                window_n += 1;
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
            if st.step % t.log_every == 0 {
                let secs = window_start.elapsed().as_secs_f64();
                let mean = if window_n > 0 {
                    window_loss / window_n as f64
                } else {
                    f64::NAN
                };
                let sps = (t.log_every as usize * t.batch_size) as f64 / secs.max(1e-9);
                // Collapse diagnostics on this batch's representations (RankMe, normalised std).
                let z = tch::no_grad(|| ctx.method.embed(&views[0]));
                let c = crate::eval::collapse::collapse_stats(&z.to_device(tch::Device::Cpu));
                metrics.write(&json!({"step": st.step, "epoch": st.epoch, "loss": mean, "lr": lr, "samples_per_s": sps, "rankme": c.rankme, "normalised_std": c.normalised_std}))?;
                bar.set_message(format!("loss {mean:.4}  {sps:.0} samples/s"));
                (window_loss, window_n, window_start) = (0.0, 0, Instant::now());
            }
            if t.checkpoint_every > 0 && st.step % t.checkpoint_every == 0 {
                save(&st, &opt)?;
            }
            if ctx.stop.load(Ordering::SeqCst) {
                let path = save(&st, &opt)?;
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
        if st.step >= max_steps && st.step_in_epoch < spe {
            save(&st, &opt)?;
            break;
        }
        st.epoch += 1;
        st.step_in_epoch = 0;
        let every = r.eval.monitor_every;
        if every > 0 && st.epoch % every == 0 {
            if let Some(m) = ctx.monitor.as_mut() {
                let acc = m(ctx.method, st.epoch)?;
                st.last_monitor = Some((acc, st.epoch));
                if st.best_monitor.is_none_or(|(b, _)| acc > b) {
                    st.best_monitor = Some((acc, st.epoch));
                }
                metrics
                    .write(&json!({"step": st.step, "epoch": st.epoch, "monitor_knn_acc": acc}))?;
                bar.println(format!(
                    "epoch {}: online kNN accuracy {:.2}%",
                    st.epoch,
                    acc * 100.0
                ));
            }
        }
        save(&st, &opt)?;
        if st.step >= max_steps {
            break;
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let samples = (st.step - first_step) as f64 * t.batch_size as f64;
    Ok(TrainSummary {
        steps: st.step,
        epochs_completed: st.epoch,
        final_loss: last_loss,
        samples_per_s: samples / secs.max(1e-9),
        seconds: secs,
        nan_skips: st.nan_skips,
        best_monitor: st.best_monitor,
        final_monitor: st.last_monitor,
    })
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
