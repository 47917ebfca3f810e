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
//! L_clus = MSE(W_c h_i, 1/hops(i, centre_1..k))              every node, k cluster centres
//! loss = λ_prop L_prop + λ_dist L_dist + λ_sim L_sim + λ_edge L_edge + λ_clus L_clus
//! ```
//! Two settings: a pretraining objective on its own (the paper's "two-stage" setting, scored on
//! the frozen encoder by the recipe's protocol), or added to the supervised loss of the
//! labelled nodes (the paper's joint training: `[eval.graph] protocol = "joint"`). The
//! Distance2Clusters centres come from a Voronoi partition instead of METIS
//! (`views/graph/cluster_distance.rs`). The label-based SelfTask variants (ContextLabel) are
//! not built.
use super::GraphMethod;
use crate::encoders::graph::{self as encoders, NodeEncoder};
use crate::encoders::EncoderConfig;
use crate::views::graph::batch::GraphBatch;
use crate::views::graph::message::EdgeIndex;
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
    /// λ of Distance2Clusters (the authors' Cora weight is 100; 0 here by default).
    pub cluster_distance: f64,
    /// Clusters of Distance2Clusters (the authors': 10 on Cora and CiteSeer, 30 on PubMed).
    pub clusters: usize,
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
/// edge mask 10; Distance2Clusters off (their Cora weight: 100, with 10 clusters).
impl Default for SelfTaskConfig {
    fn default() -> Self {
        SelfTaskConfig {
            node_property: 5.0,
            pairwise_distance: 20.0,
            attr_similarity: 100.0,
            edge_mask: 10.0,
            cluster_distance: 0.0,
            clusters: 10,
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
    /// Made only when Distance2Clusters is on, so that runs without it draw the same initial
    /// weights as before it existed.
    cluster_head: Option<nn::Linear>,
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
            cluster_head: (cfg.cluster_distance > 0.0).then(|| lin("cluster_head", cfg.clusters as i64)),
            encoder,
            targets: RefCell::new(None),
        })
    }

    fn clusters(&self) -> usize {
        if self.cluster_head.is_some() {
            self.cfg.clusters
        } else {
            0
        }
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
            *cache = Some((key, PretextTargets::new(b, self.cfg.similarity_k, self.clusters(), &mut fixed)));
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

impl SelfTask {
    /// One training-mode forward pass (on the graph minus the masked edges when edge masking
    /// is on) and, with `with_task`, the weighted sum of the task losses on its embeddings.
    fn step(&self, b: &GraphBatch, rng: &mut ChaCha8Rng, with_task: bool) -> (Tensor, Option<EdgeIndex>, Option<Tensor>) {
        let c = &self.cfg;
        let masked_edges = (with_task && c.edge_mask > 0.0).then(|| mask_edges(b, c.edge_mask_rate, rng));
        let edges = masked_edges.as_ref().map(|(kept, _, _)| b.with_edges(kept));
        let h = self.encoder.forward(&b.input, edges.as_ref().unwrap_or(&b.index), true);
        if !with_task {
            return (h, edges, None);
        }
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
        if let Some(head) = self.cluster_head.as_ref().filter(|_| t.clusters > 0) {
            let k = t.clusters as i64;
            let pred = h.apply(head).narrow(1, 0, k);
            let target = Tensor::from_slice(&t.centre_distance).view([-1, k]).to_device(h.device()).to_kind(pred.kind());
            loss = loss + pred.mse_loss(&target, Reduction::Mean) * c.cluster_distance;
        }
        (h, edges, Some(loss))
    }
}

impl GraphMethod for SelfTask {
    fn loss(&self, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        self.step(b, rng, true).2.expect("the task's loss")
    }

    fn embed(&self, b: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&b.input, &b.index, false).to_kind(Kind::Float)
    }

    fn joint_step(&self, b: &GraphBatch, rng: &mut ChaCha8Rng, with_task: bool) -> Option<super::JointStep> {
        let (hidden, edges, loss) = self.step(b, rng, with_task);
        Some(super::JointStep { hidden, edges, loss })
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
            ("method.cluster_distance", self.cluster_distance),
        ] {
            rules::non_negative(field, w)?;
        }
        if self.node_property + self.pairwise_distance + self.attr_similarity + self.edge_mask + self.cluster_distance <= 0.0 {
            return Err(crate::rules::RecipeError::NoTask {
                method: "selftask",
                tasks: "give method.node_property, pairwise_distance, attr_similarity, edge_mask or cluster_distance a weight > 0",
            });
        }
        rules::probability("method.edge_mask_rate", self.edge_mask_rate)?;
        rules::widths("method.pairs_per_class", [self.pairs_per_class as i64])?;
        rules::widths("method.similarity_pairs", [self.similarity_pairs as i64])?;
        rules::widths("method.similarity_k", [self.similarity_k as i64])?;
        rules::widths("method.clusters", [self.clusters as i64])
    }
    fn build_graph(&self, vs: &nn::VarStore, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Box<dyn GraphMethod>> {
        Ok(Box::new(SelfTask::new(&vs.root(), self, encoder, in_dim)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::graph::gcn::GcnConfig;
    use crate::methods::graph_tests::random_graph;
    use crate::rng::{keyed, Stream};
    use tch::Device;

    #[test]
    fn the_cluster_task_is_the_weighted_mse_to_the_centre_distances() {
        let g = random_graph(30, 12, 0.2, 4);
        let b = GraphBatch::from_graph(&g, Device::Cpu);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = SelfTaskConfig {
            node_property: 0.0,
            pairwise_distance: 0.0,
            attr_similarity: 0.0,
            edge_mask: 0.0,
            cluster_distance: 3.0,
            clusters: 5,
            ..Default::default()
        };
        let enc = EncoderConfig::Gcn(GcnConfig {
            dims: vec![8],
            activation: Default::default(),
            dropout: 0.0,
            batch_norm: false,
        });
        let m = SelfTask::new(&vs.root(), &cfg, &enc, 12).unwrap();
        let loss = m.loss(&b, &mut keyed(0, Stream::Method, 0, 0, 0)).double_value(&[]);
        // Directly: the centres and hop distances from the graph, the head on the embeddings.
        let mut adjacency = vec![Vec::new(); g.num_nodes];
        for &[a, c] in &g.edges {
            adjacency[a as usize].push(c);
        }
        let centres = crate::views::graph::cluster_distance::cluster_centres(&adjacency, 5);
        let d = crate::views::graph::cluster_distance::inverse_distances_to_centres(&adjacency, &centres);
        let h = m.embed(&b);
        let pred = Vec::<f32>::try_from(h.apply(m.cluster_head.as_ref().unwrap()).flatten(0, 1)).unwrap();
        let mse = pred.iter().zip(&d).map(|(p, t)| f64::from(p - t).powi(2)).sum::<f64>() / d.len() as f64;
        assert!((loss - 3.0 * mse).abs() < 1e-4 * loss.max(1.0), "{loss} vs {}", 3.0 * mse);
    }

    #[test]
    fn joint_steps_give_embeddings_and_the_task_loss_only_when_asked() {
        let g = random_graph(25, 10, 0.3, 6);
        let b = GraphBatch::from_graph(&g, Device::Cpu);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = EncoderConfig::Gcn(GcnConfig {
            dims: vec![6],
            activation: Default::default(),
            dropout: 0.0,
            batch_norm: false,
        });
        let cfg = SelfTaskConfig {
            pairs_per_class: 10,
            similarity_pairs: 10,
            ..Default::default()
        };
        let m = SelfTask::new(&vs.root(), &cfg, &enc, 10).unwrap();
        let mut rng = keyed(1, Stream::Method, 0, 0, 0);
        let with = m.joint_step(&b, &mut rng, true).unwrap();
        assert_eq!(with.hidden.size(), [25, 6]);
        // Edge masking is on by default: the step's embeddings use the graph without the masked edges.
        assert!(with.edges.is_some() && with.loss.is_some());
        let plain = m.joint_step(&b, &mut rng, false).unwrap();
        assert!(plain.edges.is_none() && plain.loss.is_none());
        // Without dropout, the plain step is the inference embedding.
        assert!(plain.hidden.allclose(&m.embed(&b), 1e-6, 1e-6, false));
    }
}

