//! Pretraining loops for graph methods: full-batch on one graph (one step per epoch, as every
//! node-level paper does), or mini-batches of many small graphs.
use super::batch::GraphBatch;
use super::methods::GraphMethod;
use crate::data::graph::{Graph, GraphSet};
use crate::rng::{epoch_permutation, keyed, Stream};
use crate::train::optim::{Optimizer, OptimizerConfig};
use crate::train::schedule::{Decay, LrSchedule};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{nn::VarStore, Device, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTrainConfig {
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub warmup_epochs: usize,
    /// `cosine`: GraphMAE's per-epoch factor ½(1 + cos(π e / E)); `constant` otherwise.
    #[serde(default)]
    pub decay: Decay,
    /// Stop when the training loss has not improved for this many epochs and restore the
    /// parameters of the best epoch (DGI's early stopping, patience 20).
    #[serde(default)]
    pub patience: Option<usize>,
    /// Graphs per step for graph-level data (ignored for one graph).
    #[serde(default = "batch")]
    pub batch_size: usize,
}

fn batch() -> usize {
    32
}

/// What a pretraining run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    /// Mean loss of each epoch.
    pub losses: Vec<f64>,
    /// Epoch whose parameters were kept (the last, or the best under early stopping).
    pub kept_epoch: usize,
    pub seconds: f64,
}

impl GraphTrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("train.epochs must be at least 1");
        }
        if self.optimizer.lr() <= 0.0 {
            bail!("train.optimizer.lr must be positive");
        }
        if self.batch_size == 0 {
            bail!("train.batch_size must be at least 1");
        }
        if self.patience == Some(0) {
            bail!("train.patience must be at least 1 when set");
        }
        Ok(())
    }

    fn schedule(&self, steps_per_epoch: usize) -> LrSchedule {
        LrSchedule {
            base_lr: self.optimizer.lr(),
            warmup_steps: (self.warmup_epochs * steps_per_epoch) as u64,
            total_steps: (self.epochs * steps_per_epoch) as u64,
            decay: self.decay,
            final_lr: 0.0,
        }
    }
}

/// Early stopping on the training loss, keeping a copy of the best parameters.
struct BestKeeper {
    patience: Option<usize>,
    best: f64,
    best_epoch: usize,
    wait: usize,
    saved: Option<Vec<(String, Tensor)>>,
}

impl BestKeeper {
    /// Records `loss` of the parameters as they are now; true when training should stop.
    fn observe(&mut self, epoch: usize, loss: f64, vs: &VarStore) -> bool {
        let Some(patience) = self.patience else {
            return false;
        };
        if loss < self.best {
            self.best = loss;
            self.best_epoch = epoch;
            self.wait = 0;
            let _g = tch::no_grad_guard();
            self.saved = Some(
                vs.variables()
                    .into_iter()
                    .map(|(k, v)| (k, v.copy()))
                    .collect(),
            );
            false
        } else {
            self.wait += 1;
            self.wait >= patience
        }
    }

    fn restore(&self, vs: &VarStore) {
        if let Some(saved) = &self.saved {
            let vars = vs.variables();
            let _g = tch::no_grad_guard();
            for (k, v) in saved {
                if let Some(t) = vars.get(k) {
                    let mut t = t.shallow_clone();
                    t.copy_(v);
                }
            }
        }
    }
}

fn step(
    method: &mut dyn GraphMethod,
    opt: &mut Optimizer,
    loss: &Tensor,
    lr: f64,
    progress: f64,
) -> Result<()> {
    opt.zero_grad();
    loss.backward();
    let norm = opt.grad_norm().double_value(&[]);
    if !norm.is_finite() {
        bail!("non-finite gradient (norm {norm}); the step was not applied");
    }
    opt.step(lr);
    method.after_step(progress);
    Ok(())
}

/// Full-batch pretraining on one graph: epoch `e` draws its randomness from
/// `keyed(seed, Method, e, …)`.
pub fn pretrain_node_level(
    method: &mut dyn GraphMethod,
    vs: &VarStore,
    batch: &GraphBatch,
    cfg: &GraphTrainConfig,
    seed: u64,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<TrainReport> {
    cfg.validate()?;
    let start = Instant::now();
    let mut opt = Optimizer::new(cfg.optimizer.clone(), vs);
    let schedule = cfg.schedule(1);
    let mut keeper = BestKeeper {
        patience: cfg.patience,
        best: f64::INFINITY,
        best_epoch: 0,
        wait: 0,
        saved: None,
    };
    let mut losses = Vec::new();
    for epoch in 0..cfg.epochs {
        let mut rng = keyed(seed, Stream::Method, epoch as u64, 0, 0);
        let loss = method.loss(batch, &mut rng);
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            bail!("non-finite loss {value} at epoch {epoch}; the step was not applied");
        }
        losses.push(value);
        on_epoch(epoch, value);
        // DGI checks the loss of the current parameters before stepping, so the saved copy is
        // exactly the parameters that scored best.
        if keeper.observe(epoch, value, vs) {
            break;
        }
        let progress = (epoch + 1) as f64 / cfg.epochs as f64;
        step(
            method,
            &mut opt,
            &loss,
            schedule.lr_at(epoch as u64),
            progress,
        )?;
    }
    keeper.restore(vs);
    let epochs_run = losses.len();
    Ok(TrainReport {
        epochs_run,
        kept_epoch: if keeper.saved.is_some() {
            keeper.best_epoch
        } else {
            epochs_run.saturating_sub(1)
        },
        losses,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mini-batch pretraining on a set of graphs: each epoch visits all graphs in a keyed order,
/// `batch_size` graphs (a disjoint union) per step, the last batch possibly smaller.
pub fn pretrain_graph_level(
    method: &mut dyn GraphMethod,
    vs: &VarStore,
    set: &GraphSet,
    cfg: &GraphTrainConfig,
    seed: u64,
    device: Device,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<TrainReport> {
    cfg.validate()?;
    if set.graphs.is_empty() {
        bail!("{}: no graphs to pretrain on", set.name);
    }
    let start = Instant::now();
    let mut opt = Optimizer::new(cfg.optimizer.clone(), vs);
    let steps_per_epoch = set.graphs.len().div_ceil(cfg.batch_size);
    let schedule = cfg.schedule(steps_per_epoch);
    let total = (cfg.epochs * steps_per_epoch) as f64;
    let mut losses = Vec::new();
    let mut global = 0u64;
    for epoch in 0..cfg.epochs {
        let order = epoch_permutation(seed, epoch as u64, set.graphs.len());
        let mut sum = 0.0;
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let graphs: Vec<&Graph> = chunk.iter().map(|&i| &set.graphs[i]).collect();
            let batch = GraphBatch::from_graphs(&graphs, device);
            let mut rng = keyed(seed, Stream::Method, epoch as u64, b as u64, 0);
            let loss = method.loss(&batch, &mut rng);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bail!(
                    "non-finite loss {value} at epoch {epoch}, batch {b}; the step was not applied"
                );
            }
            sum += value;
            global += 1;
            step(
                method,
                &mut opt,
                &loss,
                schedule.lr_at(global - 1),
                global as f64 / total,
            )?;
        }
        let mean = sum / steps_per_epoch as f64;
        losses.push(mean);
        on_epoch(epoch, mean);
    }
    Ok(TrainReport {
        epochs_run: cfg.epochs,
        kept_epoch: cfg.epochs - 1,
        losses,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Graph embeddings `[G, D]`: node embeddings pooled per graph, graphs in set order.
pub fn embed_graphs(
    method: &dyn GraphMethod,
    set: &GraphSet,
    pooling: super::encoders::Pooling,
    batch_size: usize,
    device: Device,
) -> Tensor {
    let mut parts = Vec::new();
    let idx: Vec<usize> = (0..set.graphs.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let graphs: Vec<&Graph> = chunk.iter().map(|&i| &set.graphs[i]).collect();
        let batch = GraphBatch::from_graphs(&graphs, device);
        let nodes = method.embed(&batch);
        let (owner, count) = batch.graphs.as_ref().expect("from_graphs sets the owners");
        parts.push(super::encoders::readout(&nodes, owner, *count, pooling));
    }
    Tensor::cat(&parts, 0)
}
