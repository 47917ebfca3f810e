//! The graph modality's [`Learner`]: full-batch on one graph (one step per epoch, as every
//! node-level paper trains), or mini-batches of small graphs (a disjoint union per step) for
//! graph-level data. The training loop itself is the trunk's ([`crate::train::trainer`]).
use crate::data::graph::{Graph, GraphSet};
use crate::encoders::graph::{readout, Pooling};
use crate::methods::{GraphMethod, Progress};
use crate::rng::{epoch_permutation, keyed, Stream};
use crate::train::learner::Learner;
use crate::train::precision::{with_precision, Precision};
use crate::views::graph::batch::GraphBatch;
use anyhow::{bail, Result};
use tch::{Device, Tensor};

/// The graph data of a recipe.
pub enum GraphData {
    /// One graph, node-level tasks.
    Nodes(Graph),
    /// A set of small labelled graphs, graph-level tasks.
    Graphs(GraphSet),
}

impl GraphData {
    pub fn name(&self) -> &str {
        match self {
            GraphData::Nodes(g) => &g.name,
            GraphData::Graphs(s) => &s.name,
        }
    }
    /// Width of the node features.
    pub fn num_features(&self) -> usize {
        match self {
            GraphData::Nodes(g) => g.num_features(),
            GraphData::Graphs(s) => s.num_features,
        }
    }
    /// blake3 of what was read (features, edges, labels, split), so a resumed run can tell it
    /// trains on the same graph — whatever else lies in the data folder.
    pub fn fingerprint(&self) -> String {
        fn graph(h: &mut blake3::Hasher, g: &Graph) {
            h.update(&(g.num_nodes as u64).to_le_bytes());
            h.update(&(g.features.cols as u64).to_le_bytes());
            for x in &g.features.indptr {
                h.update(&x.to_le_bytes());
            }
            for x in &g.features.indices {
                h.update(&x.to_le_bytes());
            }
            for x in &g.features.values {
                h.update(&x.to_le_bytes());
            }
            for [a, b] in &g.edges {
                h.update(&a.to_le_bytes());
                h.update(&b.to_le_bytes());
            }
            for y in &g.node_labels {
                h.update(&y.to_le_bytes());
            }
            if let Some(s) = &g.split {
                for part in [&s.train, &s.val, &s.test] {
                    h.update(&(part.len() as u64).to_le_bytes());
                    for i in part {
                        h.update(&(*i as u64).to_le_bytes());
                    }
                }
            }
        }
        let mut h = blake3::Hasher::new();
        match self {
            GraphData::Nodes(g) => graph(&mut h, g),
            GraphData::Graphs(s) => {
                for g in &s.graphs {
                    graph(&mut h, g);
                }
                for y in &s.labels {
                    h.update(&y.to_le_bytes());
                }
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }
    /// Labels of what the protocol scores: nodes (−1 where unknown) or graphs.
    pub fn labels(&self) -> &[i64] {
        match self {
            GraphData::Nodes(g) => &g.node_labels,
            GraphData::Graphs(s) => &s.labels,
        }
    }
}

/// Steps of a graph method over [`GraphData`]. Step `b` of epoch `e` draws from
/// `keyed(seed, Method, e, b, 0)`; mini-batches visit the graphs in a keyed order per epoch,
/// `batch_size` graphs a step, the last one possibly smaller.
pub struct GraphLearner<'a> {
    method: &'a dyn GraphMethod,
    name: &'static str,
    data: &'a GraphData,
    /// The whole graph on the device, built once (node-level data).
    full: Option<GraphBatch>,
    batch_size: usize,
    device: Device,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
    next: u64,
    last: Option<GraphBatch>,
    /// The forward pass's precision (`train.precision`); bf16 runs it under autocast.
    precision: Precision,
}

impl<'a> GraphLearner<'a> {
    pub fn new(
        method: &'a dyn GraphMethod,
        name: &'static str,
        data: &'a GraphData,
        batch_size: usize,
        device: Device,
    ) -> Self {
        let full = match data {
            GraphData::Nodes(g) => Some(GraphBatch::from_graph(g, device)),
            GraphData::Graphs(_) => None,
        };
        GraphLearner {
            method,
            name,
            data,
            full,
            batch_size: batch_size.max(1),
            device,
            seed: 0,
            epoch: 0,
            order: Vec::new(),
            next: 0,
            last: None,
            precision: Precision::Fp32,
        }
    }

    /// Runs each step's forward pass in `precision` (fp32 by default).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The batch of step `b` of the current epoch.
    fn batch(&self, b: u64) -> Option<GraphBatch> {
        let GraphData::Graphs(set) = self.data else {
            return None;
        };
        let start = b as usize * self.batch_size;
        if start >= self.order.len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.order.len());
        let graphs: Vec<&Graph> = self.order[start..end]
            .iter()
            .map(|&i| &set.graphs[i])
            .collect();
        Some(GraphBatch::from_graphs(&graphs, self.device))
    }
}

impl Learner for GraphLearner<'_> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn steps_per_epoch(&self) -> Result<u64> {
        match self.data {
            GraphData::Nodes(_) => Ok(1),
            GraphData::Graphs(set) => {
                if set.graphs.is_empty() {
                    bail!("{}: no graphs to pretrain on", set.name);
                }
                Ok(set.graphs.len().div_ceil(self.batch_size) as u64)
            }
        }
    }
    fn samples_per_step(&self) -> usize {
        match self.data {
            GraphData::Nodes(g) => g.num_nodes,
            GraphData::Graphs(_) => self.batch_size,
        }
    }
    fn full_batch(&self) -> bool {
        self.full.is_some()
    }
    fn start_epoch(&mut self, seed: u64, epoch: u64, skip: u64) -> Result<()> {
        self.seed = seed;
        self.epoch = epoch;
        self.next = skip;
        if let GraphData::Graphs(set) = self.data {
            self.order = epoch_permutation(seed, epoch, set.graphs.len());
        }
        Ok(())
    }
    fn next_loss(&mut self, _progress: Progress, poison: bool) -> Result<Option<Tensor>> {
        let b = self.next;
        let mut rng = keyed(self.seed, Stream::Method, self.epoch, b, 0);
        let loss = match &self.full {
            Some(full) => {
                if b > 0 {
                    return Ok(None);
                }
                with_precision(self.precision, self.device, || {
                    self.method.loss(full, &mut rng)
                })?
            }
            None => {
                let Some(batch) = self.batch(b) else {
                    return Ok(None);
                };
                let loss = with_precision(self.precision, self.device, || {
                    self.method.loss(&batch, &mut rng)
                })?;
                self.last = Some(batch);
                loss
            }
        };
        self.next += 1;
        // Fault injection: a non-finite loss, as a NaN in the features would give.
        Ok(Some(if poison { loss * f64::NAN } else { loss }))
    }
    fn after_update(&self, progress: Progress) {
        // The fraction of training done after this step (BGRL's EMA schedule).
        self.method
            .after_step((progress.step + 1) as f64 / progress.total_steps.max(1) as f64)
    }
    fn diagnostics(&self) -> Tensor {
        match (&self.full, &self.last) {
            (Some(b), _) | (None, Some(b)) => self.method.embed(b),
            (None, None) => Tensor::zeros([0, 0], (tch::Kind::Float, self.device)),
        }
    }
}

/// What a graph run's protocol scores: node embeddings of the whole graph, or graph embeddings
/// (node embeddings pooled per graph) of the whole set.
pub fn embed_data(
    method: &dyn GraphMethod,
    data: &GraphData,
    pooling: Pooling,
    batch_size: usize,
    device: Device,
) -> Tensor {
    match data {
        GraphData::Nodes(g) => method.embed(&GraphBatch::from_graph(g, device)),
        GraphData::Graphs(set) => embed_graphs(method, set, pooling, batch_size, device),
    }
}

/// Graph embeddings `[G, D]`: node embeddings pooled per graph, graphs in set order.
pub fn embed_graphs(
    method: &dyn GraphMethod,
    set: &GraphSet,
    pooling: Pooling,
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
        parts.push(readout(&nodes, owner, *count, pooling));
    }
    Tensor::cat(&parts, 0)
}
