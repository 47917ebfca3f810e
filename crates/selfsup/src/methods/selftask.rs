//! SelfTask-GNN's pretext tasks (Jin et al., "Self-supervised Learning on Graphs: Deep Insights
//! and New Direction", 2020), trained without labels: each task is one linear head on the node
//! embeddings (on `|h_i − h_j|` for pairs), and the loss is their weighted sum.
//!
//! ```text
//! h = f(A', X)                         # A' = A minus the masked edges when edge masking is on
//! L_prop = CE(W_p h_i, degree_class_i)                       over every node
//! L_dist = CE(W_d |h_i − h_j|, hop_class(i, j))              4000 pairs per class {1,2,3,≥4}
//! L_sim  = MSE(W_s |h_i − h_j|, cos(x_i, x_j))               5000 pairs: k most / least / random
//! L_edge = CE(W_e |h_i − h_j|, [masked edge | non-edge])     10 % of the edges, as many non-edges
//! loss = λ_prop L_prop + λ_dist L_dist + λ_sim L_sim + λ_edge L_edge
//! ```
//! The authors train these jointly with the supervised loss on the labelled nodes; here they are
//! a pretraining objective on their own (the paper's "two-stage" setting), scored by the
//! recipe's protocol on the frozen encoder. Their Distance2Clusters task (METIS clusters) and
//! the label-based SelfTask variants (ContextLabel) are not built.
use super::GraphMethod;
use crate::encoders::graph::{self as encoders, NodeEncoder};
use crate::encoders::EncoderConfig;
use crate::views::graph::batch::GraphBatch;
use crate::views::graph::pretext::{index_tensor, PretextTargets, DISTANCE_CUTOFF};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;
use tch::{nn, Kind, Reduction, Tensor};

/// Seed of the generator behind the pretext targets' random draws.
const TARGET_SEED: u64 = 0x5e1f_7a5c;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfTaskConfig {
    /// λ of the node-property (degree class) task; 0 turns it off.
    pub node_property: f64,
    /// λ of the pairwise-distance task.
    pub pairwise_distance: f64,
    /// λ of the pairwise attribute-similarity task.
    pub attr_similarity: f64,
    /// λ of the edge-mask task.
    pub edge_mask: f64,
    /// Pairs drawn per distance class each step (reference: 4000).
    pub pairs_per_class: usize,
    /// Similarity pairs drawn each step (reference: 5000).
    pub similarity_pairs: usize,
    /// k most / least / random-rank similar partners per node (reference: 3).
    pub similarity_k: usize,
    /// Fraction of the undirected edges masked (reference: 0.1).
    pub edge_mask_rate: f64,
}

/// The authors' Cora weights (their `configs.py`): property 5, distance 20, similarity 100,
/// edge mask 10.
impl Default for SelfTaskConfig {
    fn default() -> Self {
        SelfTaskConfig {
            node_property: 5.0,
            pairwise_distance: 20.0,
            attr_similarity: 100.0,
            edge_mask: 10.0,
            pairs_per_class: 4000,
            similarity_pairs: 5000,
            similarity_k: 3,
            edge_mask_rate: 0.1,
        }
    }
}

#[derive(Debug)]
pub struct SelfTask {
    cfg: SelfTaskConfig,
    encoder: Box<dyn NodeEncoder>,
    property_head: nn::Linear,
    distance_head: nn::Linear,
    similarity_head: nn::Linear,
    edge_head: nn::Linear,
    /// Targets of the last graph seen, with the `(nodes, edges)` they were computed for: a
    /// node-level run sees one graph every step, so they are computed once.
    targets: RefCell<Option<((usize, usize), PretextTargets)>>,
}

impl SelfTask {
    pub fn new(p: &nn::Path, cfg: &SelfTaskConfig, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Self> {
        let encoder = encoders::build(encoder, &(p / "encoder"), in_dim)?;
        let d = encoder.out_dim();
        let lin = |name: &str, o| crate::torch_init::linear(p / name, d, o, true);
        Ok(SelfTask {
            cfg: cfg.clone(),
            property_head: lin("property_head", 3),
            distance_head: lin("distance_head", DISTANCE_CUTOFF as i64 + 1),
            similarity_head: lin("similarity_head", 1),
            edge_head: lin("edge_head", 2),
            encoder,
            targets: RefCell::new(None),
        })
    }

    /// The targets of `b`'s graph, computed when the graph differs from the last one seen.
    fn targets(&self, b: &GraphBatch) -> std::cell::Ref<'_, PretextTargets> {
        let key = (b.num_nodes, b.edges.len());
        let mut cache = self.targets.borrow_mut();
        if cache.as_ref().map(|(k, _)| *k) != Some(key) {
            // The targets' one random draw (the similarity task's random ranks) comes from a
            // fixed generator, not the step's: they are a function of the graph alone, so a run
            // resumed from a checkpoint rebuilds the very targets it trained on.
            let mut fixed = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(TARGET_SEED);
            *cache = Some((key, PretextTargets::new(b, self.cfg.similarity_k, &mut fixed)));
        }
        drop(cache);
        std::cell::Ref::map(self.targets.borrow(), |c| &c.as_ref().expect("just filled").1)
    }
}

/// `|h_i − h_j|` of the pairs `(left, right)`.
fn pair_features(h: &Tensor, left: &[i64], right: &[i64]) -> Tensor {
    let d = h.device();
    (h.index_select(0, &index_tensor(left, d)) - h.index_select(0, &index_tensor(right, d))).abs()
}

fn cross_entropy(logits: &Tensor, classes: &[i64]) -> Tensor {
    let y = index_tensor(classes, logits.device());
    logits.cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)
}

/// The edge-mask draw: `(kept directed edges, masked pairs, non-edge pairs)`, both pair lists
/// unordered, as many non-edges as masked edges.
fn mask_edges(b: &GraphBatch, rate: f64, rng: &mut ChaCha8Rng) -> (Vec<[u32; 2]>, Vec<(u32, u32)>, Vec<(u32, u32)>) {
    let mut undirected: Vec<(u32, u32)> = b.edges.iter().filter(|e| e[0] < e[1]).map(|e| (e[0], e[1])).collect();
    undirected.shuffle(rng);
    let k = ((undirected.len() as f64) * rate).round() as usize;
    let masked: Vec<(u32, u32)> = undirected[..k].to_vec();
    let gone: HashSet<(u32, u32)> = masked.iter().copied().collect();
    let kept = b.edges.iter().copied().filter(|e| !gone.contains(&(e[0].min(e[1]), e[0].max(e[1])))).collect();
    let present: HashSet<(u32, u32)> = b.edges.iter().map(|e| (e[0], e[1])).collect();
    let n = b.num_nodes as u32;
    let mut negatives = Vec::with_capacity(k);
    for _ in 0..50 * k + 100 {
        if negatives.len() == k || n < 2 {
            break;
        }
        let (x, y) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if x != y && !present.contains(&(x, y)) {
            negatives.push((x.min(y), x.max(y)));
        }
    }
    (kept, masked, negatives)
}

impl GraphMethod for SelfTask {
    fn loss(&self, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let c = &self.cfg;
        let masked_edges = (c.edge_mask > 0.0).then(|| mask_edges(b, c.edge_mask_rate, rng));
        let h = match &masked_edges {
            Some((kept, _, _)) => self.encoder.forward(&b.input, &b.with_edges(kept), true),
            None => self.encoder.forward(&b.input, &b.index, true),
        };
        let mut loss = h.zeros_like().sum(Kind::Float);
        if let Some((_, pos, neg)) = &masked_edges {
            let (l, r): (Vec<i64>, Vec<i64>) =
                pos.iter().chain(neg).map(|&(a, b)| (a as i64, b as i64)).unzip();
            let y: Vec<i64> = (0..pos.len()).map(|_| 1).chain((0..neg.len()).map(|_| 0)).collect();
            if !y.is_empty() {
                let logits = pair_features(&h, &l, &r).apply(&self.edge_head);
                loss = loss + cross_entropy(&logits, &y) * c.edge_mask;
            }
        }
        let t = self.targets(b);
        let distance = (c.pairwise_distance > 0.0).then(|| t.distance_batch(c.pairs_per_class, rng));
        let similarity = (c.attr_similarity > 0.0).then(|| t.similarity_batch(c.similarity_pairs, rng));
        if c.node_property > 0.0 {
            loss = loss + cross_entropy(&h.apply(&self.property_head), &t.degree_class) * c.node_property;
        }
        if let Some((l, r, y)) = distance.filter(|d| !d.0.is_empty()) {
            let logits = pair_features(&h, &l, &r).apply(&self.distance_head);
            loss = loss + cross_entropy(&logits, &y) * c.pairwise_distance;
        }
        if let Some((l, r, s)) = similarity.filter(|s| !s.0.is_empty()) {
            let pred = pair_features(&h, &l, &r).apply(&self.similarity_head).squeeze_dim(1);
            let target = Tensor::from_slice(&s).to_device(h.device()).to_kind(pred.kind());
            loss = loss + pred.mse_loss(&target, Reduction::Mean) * c.attr_similarity;
        }
        loss
    }

    fn embed(&self, b: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&b.input, &b.index, false).to_kind(Kind::Float)
    }
}

impl super::MethodSpec for SelfTaskConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        for (field, w) in [
            ("method.node_property", self.node_property),
            ("method.pairwise_distance", self.pairwise_distance),
            ("method.attr_similarity", self.attr_similarity),
            ("method.edge_mask", self.edge_mask),
        ] {
            rules::non_negative(field, w)?;
        }
        if self.node_property + self.pairwise_distance + self.attr_similarity + self.edge_mask <= 0.0 {
            return Err(crate::rules::RecipeError::NoTask {
                method: "selftask",
                tasks: "give method.node_property, pairwise_distance, attr_similarity or edge_mask a weight > 0",
            });
        }
        rules::probability("method.edge_mask_rate", self.edge_mask_rate)?;
        rules::widths("method.pairs_per_class", [self.pairs_per_class as i64])?;
        rules::widths("method.similarity_pairs", [self.similarity_pairs as i64])?;
        rules::widths("method.similarity_k", [self.similarity_k as i64])
    }
    fn build_graph(&self, vs: &nn::VarStore, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Box<dyn GraphMethod>> {
        Ok(Box::new(SelfTask::new(&vs.root(), self, encoder, in_dim)?))
    }
}
