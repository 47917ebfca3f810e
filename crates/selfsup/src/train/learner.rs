//! What the training loop drives: a modality's batches and its method, one step at a time. The
//! loop ([`super::trainer::train`]) owns the schedule, the optimiser, the non-finite guard,
//! early stopping, checkpoints and metrics; a learner only knows how to turn the next batch
//! into a loss and which hooks the method has around the optimiser step.
//!
//! [`ViewLearner`] serves every modality whose samples become views (images, tables); the
//! graph modality has its own learner (`crate::train::graph_learner`), full-batch on one graph or in
//! mini-batches of small graphs.
use super::memory_format::to_channels_last;
use super::precision::{with_precision, Precision};
use crate::distributed::{ProcessGroup, SyncScope};
use crate::methods::{Method, Progress, StepInput};
use crate::views::loader::{steps_per_epoch, BatchStream, Shard};
use crate::views::ViewSource;
use anyhow::{bail, Result};
use std::sync::Arc;
use tch::{Device, Tensor};

/// One modality's training steps.
pub trait Learner {
    /// The method's name, for messages.
    fn name(&self) -> &'static str;
    /// Optimiser steps per epoch (an error when the data holds less than one step).
    fn steps_per_epoch(&self) -> Result<u64>;
    /// Samples one step consumes, for the samples/s figure.
    fn samples_per_step(&self) -> usize;
    /// Whether one step is the whole data set (full-batch training, where early stopping on
    /// the training loss is defined).
    fn full_batch(&self) -> bool {
        false
    }
    /// Positions the learner at step `skip` of `epoch` (0 for a fresh epoch).
    fn start_epoch(&mut self, seed: u64, epoch: u64, skip: u64) -> Result<()>;
    /// The forward pass of the epoch's next step: its loss, or `None` when the epoch is done.
    /// With `poison`, the input is replaced by NaNs first (fault injection for the tests).
    fn next_loss(&mut self, progress: Progress, poison: bool) -> Result<Option<Tensor>>;
    /// After backward, before the optimiser step.
    fn before_update(&self, _progress: Progress) {}
    /// After an applied optimiser step (EMA targets, queues, centres).
    fn after_update(&self, _progress: Progress) {}
    /// Representations of the last step's batch (evaluation mode), for the collapse
    /// diagnostics in the metrics log.
    fn diagnostics(&self) -> Tensor;
}

/// Batches of views from a [`ViewSource`], built in loader threads, for a [`Method`].
pub struct ViewLearner<'a> {
    method: &'a dyn Method,
    source: Arc<dyn ViewSource>,
    device: Device,
    precision: Precision,
    /// Image batches go to the model in channels-last format.
    channels_last: bool,
    batch_size: usize,
    n_views: usize,
    workers: usize,
    prefetch: usize,
    stream: Option<BatchStream>,
    last_views: Vec<Tensor>,
    seed: u64,
    /// Data-parallel training: this rank's group; each step builds its share of the batch and
    /// the method computes its part of the loss across the ranks.
    group: Option<&'a ProcessGroup>,
    /// Batch norm over the global batch (`train.sync_batch_norm`).
    sync_batch_norm: bool,
}

impl<'a> ViewLearner<'a> {
    /// `local_crops` extra views follow the method's global ones; `workers` loader threads keep
    /// `prefetch` batches ready.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: &'a dyn Method,
        source: Arc<dyn ViewSource>,
        device: Device,
        precision: Precision,
        batch_size: usize,
        local_crops: usize,
        workers: usize,
        prefetch: usize,
    ) -> Result<Self> {
        if method.needs_labels() && source.label(0).is_none() {
            bail!(
                "{} is supervised and needs class labels for the training data (e.g. data.train_labels)",
                method.name()
            );
        }
        Ok(ViewLearner {
            n_views: method.n_views() + local_crops,
            method,
            source,
            device,
            precision,
            channels_last: false,
            batch_size,
            workers,
            prefetch,
            stream: None,
            last_views: Vec::new(),
            seed: 0,
            group: None,
            sync_batch_norm: false,
        })
    }

    /// Trains as one rank of `group`: the global batch (`batch_size`) is split over the ranks;
    /// with `sync_batch_norm`, batch norm uses the global batch's statistics.
    pub fn across_ranks(mut self, group: &'a ProcessGroup, sync_batch_norm: bool) -> Result<Self> {
        let w = group.world_size();
        if !self.method.trains_across_ranks() {
            bail!(
                "{} does not train across processes yet (docs/distributed.md lists the methods \
                 that do); run it in one process",
                self.method.name()
            );
        }
        if self.batch_size % w != 0 {
            bail!(
                "train.batch_size = {} is the global batch and must divide evenly over {w} \
                 processes",
                self.batch_size
            );
        }
        self.group = Some(group);
        self.sync_batch_norm = sync_batch_norm;
        Ok(self)
    }

    fn shard(&self) -> Shard {
        self.group.map_or(Shard::WHOLE, |g| Shard {
            rank: g.rank(),
            world: g.world_size(),
        })
    }

    /// Hands 4-D (image) views to the model in channels-last memory format.
    pub fn with_channels_last(mut self, on: bool) -> Self {
        self.channels_last = on;
        self
    }
}

impl Learner for ViewLearner<'_> {
    fn name(&self) -> &'static str {
        self.method.name()
    }
    fn steps_per_epoch(&self) -> Result<u64> {
        let n = self.source.len();
        let spe = steps_per_epoch(n, self.batch_size);
        if spe == 0 {
            bail!(
                "the training set has {n} samples, fewer than one batch of {}",
                self.batch_size
            );
        }
        Ok(spe)
    }
    fn samples_per_step(&self) -> usize {
        self.batch_size
    }
    fn start_epoch(&mut self, seed: u64, epoch: u64, skip: u64) -> Result<()> {
        self.seed = seed;
        self.stream = Some(BatchStream::sharded(
            self.source.clone(),
            seed,
            epoch,
            skip,
            (self.batch_size, self.n_views, self.method.mask_spec()),
            self.shard(),
            self.workers,
            self.prefetch,
        ));
        Ok(())
    }
    fn next_loss(&mut self, progress: Progress, poison: bool) -> Result<Option<Tensor>> {
        let Some(batch) = self.stream.as_mut().and_then(|s| s.next()) else {
            self.stream = None;
            return Ok(None);
        };
        // A file that no longer decodes (a streamed image folder) stops training, naming it.
        if let Some(e) = self.source.take_errors().into_iter().next() {
            return Err(anyhow::Error::new(e).context("reading the training data"));
        }
        let device = self.device;
        let mut views: Vec<Tensor> = batch
            .views
            .iter()
            .map(|v| {
                let v = v.to_device(device);
                if self.channels_last {
                    to_channels_last(&v)
                } else {
                    v
                }
            })
            .collect();
        if poison {
            views[0] = views[0].to_kind(tch::Kind::Float).fill(f64::NAN);
        }
        let labels = batch.labels.as_ref().map(|l| l.to_device(device));
        let masks: Vec<Tensor> = batch.masks.iter().map(|m| m.to_device(device)).collect();
        let input = StepInput {
            views: &views,
            labels: labels.as_ref(),
            masks: &masks,
            progress,
            seed: self.seed,
        };
        let method = self.method;
        let loss = match self.group {
            None => with_precision(self.precision, device, || method.loss(&input))?,
            Some(g) => {
                let scope = self.sync_batch_norm.then(|| SyncScope::enter(g));
                let loss = with_precision(self.precision, device, || method.loss_across(&input, g));
                scope.map_or(Ok(()), SyncScope::finish)?;
                loss??
            }
        };
        self.last_views = views;
        Ok(Some(loss))
    }
    fn before_update(&self, progress: Progress) {
        self.method.before_update(progress)
    }
    fn after_update(&self, progress: Progress) {
        self.method.after_update(progress)
    }
    fn diagnostics(&self) -> Tensor {
        tch::no_grad(|| self.method.embed(&self.last_views[0]))
    }
}
