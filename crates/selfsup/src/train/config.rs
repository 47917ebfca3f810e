//! `[train]`: how long, in what batches, with which optimiser and schedule, and how the loop
//! guards, checkpoints and logs a run.
use super::optim::OptimizerConfig;
use super::schedule::Decay;
use crate::rules::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NanPolicy {
    /// Skip the update (at most `max_nan_skips` times in a run), log and count it.
    #[default]
    Skip,
    /// Stop with an error; the last checkpoint stays the last good state.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set (or give `steps` instead).
    #[serde(default)]
    pub epochs: u64,
    /// Train for exactly this many optimiser steps instead of a number of epochs: the last
    /// epoch stops part-way, and the schedule spans the steps (TS2Vec trains 200 or 600
    /// iterations whatever the data size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Samples per step (each contributes one view per method view); graphs per step for sets
    /// of small graphs (one graph is trained full-batch, one step per epoch).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub warmup_epochs: f64,
    #[serde(default)]
    pub decay: Decay,
    /// Learning rate reached at the end of a cosine decay.
    #[serde(default)]
    pub final_lr: f64,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    #[serde(default)]
    pub nan_policy: NanPolicy,
    #[serde(default = "default_max_nan_skips")]
    pub max_nan_skips: u64,
    /// Threads that build views (they share the cores with libtorch's threads).
    #[serde(default = "one")]
    pub workers: usize,
    /// Batches built ahead of the model (bounded queue).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Also checkpoint every N steps (0: only at the end of each epoch and on interrupt).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Checkpoint at the end of every N-th epoch (and at the end of training). Defaults to 1;
    /// full-batch graph training, one step per epoch, defaults to a twentieth of the epochs.
    #[serde(default)]
    pub checkpoint_every_epochs: Option<u64>,
    /// Early stopping for full-batch training: stop when the training loss has not improved
    /// for this many epochs and keep the parameters of the best epoch (DGI: patience 20).
    #[serde(default)]
    pub patience: Option<u64>,
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Stop after this many steps in total (smoke runs); the schedule still spans all epochs.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Use only the first N training samples.
    #[serde(default)]
    pub max_samples: Option<usize>,
    /// `fp32`, or `bf16`: the forward pass under bf16 autocast (train/precision.rs).
    #[serde(default)]
    pub precision: crate::train::precision::Precision,
    /// Convolution kernels and image batches in channels-last (NHWC) memory format
    /// (train/memory_format.rs): faster convolutions with oneDNN and cuDNN, most of all in bf16;
    /// same results up to float rounding.
    #[serde(default)]
    pub channels_last: bool,
    /// In a data-parallel run, batch norm normalises with the statistics of the whole global
    /// batch (SyncBatchNorm), as the multi-device runs of SimCLR, BYOL, SimSiam, Barlow Twins,
    /// VICReg, SwAV and DINO do; false: each process's share (DDP's default). No effect in one
    /// process. Written to the run's recipe only when false, so that recipes written before
    /// the field existed keep their hashes.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub sync_batch_norm: bool,
}

fn yes() -> bool {
    true
}
fn is_yes(b: &bool) -> bool {
    *b
}

fn default_batch_size() -> usize {
    32
}
fn default_max_nan_skips() -> u64 {
    10
}
fn one() -> usize {
    1
}
fn default_prefetch() -> usize {
    4
}
fn default_keep() -> usize {
    2
}
fn default_log_every() -> u64 {
    50
}

impl TrainConfig {
    /// The rules of `[train]`.
    pub fn validate(&self) -> R {
        let t = self;
        match (t.epochs, t.steps) {
            (0, None) | (_, Some(0)) => return Err(RecipeError::ZeroEpochs),
            (0, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(RecipeError::EpochsAndSteps),
        }
        let lr = t.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(RecipeError::LearningRateNotPositive(lr));
        }
        non_negative("train.optimizer.weight_decay", t.optimizer.weight_decay())?;
        match &t.optimizer {
            OptimizerConfig::Sgd { momentum, .. } | OptimizerConfig::Lars { momentum, .. } => {
                if !(0.0..1.0).contains(momentum) {
                    return Err(RecipeError::MomentumOutOfRange(*momentum));
                }
            }
            OptimizerConfig::Adam { betas, eps, .. }
            | OptimizerConfig::Adamw { betas, eps, .. } => {
                if !betas.iter().all(|b| (0.0..1.0).contains(b)) {
                    return Err(RecipeError::BetasOutOfRange(*betas));
                }
                non_negative("train.optimizer.eps", *eps)?;
            }
        }
        if let OptimizerConfig::Lars {
            trust_coefficient, ..
        } = &t.optimizer
        {
            non_negative("train.optimizer.trust_coefficient", *trust_coefficient)?;
        }
        non_negative("train.warmup_epochs", t.warmup_epochs)?;
        if t.steps.is_none() && t.warmup_epochs > t.epochs as f64 {
            return Err(RecipeError::WarmupTooLong {
                warmup: t.warmup_epochs,
                epochs: t.epochs,
            });
        }
        non_negative("train.final_lr", t.final_lr)?;
        if let Some(c) = t.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(RecipeError::GradClipNotPositive(c));
            }
        }
        for (field, n) in [
            ("train.batch_size", t.batch_size),
            ("train.workers", t.workers),
            ("train.prefetch", t.prefetch),
            ("train.keep_checkpoints", t.keep_checkpoints),
            ("train.max_samples", t.max_samples.unwrap_or(1)),
        ] {
            if n == 0 {
                return Err(RecipeError::ZeroCount { field });
            }
        }
        if t.log_every == 0 {
            return Err(RecipeError::ZeroCount {
                field: "train.log_every",
            });
        }
        for (field, n) in [
            ("train.max_steps", t.max_steps),
            ("train.checkpoint_every_epochs", t.checkpoint_every_epochs),
            ("train.patience", t.patience),
        ] {
            if n == Some(0) {
                return Err(RecipeError::ZeroCount { field });
            }
        }
        Ok(())
    }
}
