//! D-SLA (Kim et al., "Graph Self-supervised Learning with Accurate Discrepancy Learning",
//! NeurIPS 2022): tell each graph from perturbed copies of itself, and keep the embedding
//! distances to those copies proportional to how much was edited.
//!
//! ```text
//! for each graph G of the batch: G_0 = mask(G), G_i = mask(edit(G, level i)), i = 1..k (+ strong)
//! h_i = mean_pool(f(G_i));  s_i = MLP(h_i)
//! L_GD     = CE(softmax(s_0, …, s_k), 0)                          # the original scores highest
//! L_edit   = mean_{i<j} (‖h_i − h_0‖/e_i − ‖h_j − h_0‖/e_j)²       # distance ∝ edit distance
//! L_margin = mean_{G'≠G, i} max(0, α + ‖h_0 − h_i‖ − ‖h_0 − h'_0‖)  # other graphs stay farther
//! loss = L_GD + λ1 L_edit + λ2 L_margin
//! ```
//! Defaults are the authors' molecular setting (3 candidates and a strong one, 3-hop edits of 20 %
//! per level, 80 % of the edited neighbourhood masked, λ1 0.7, λ2 0.5, α 5). Differences from
//! their code: a masked node's input row is zero (their atoms have a mask category), and an edge
//! deleted from a candidate is not added back to it, so the edit count is the true edit distance.
use super::GraphMethod;
use crate::encoders::graph::{self as encoders, readout, NodeEncoder, Pooling};
use crate::encoders::EncoderConfig;
use crate::objectives::dsla::{discrimination, edit_consistency, margin_to_other_graphs, pair_distance};
use crate::views::graph::batch::GraphBatch;
use crate::views::graph::perturb::{candidates, PerturbConfig};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DslaConfig {
    /// Perturbed candidates per graph (levels 1..=count).
    pub candidates: usize,
    /// Add a candidate edited over the whole graph at level `candidates + 1`.
    pub strong: bool,
    /// Radius of the edited neighbourhood around a uniformly drawn centre.
    pub hops: usize,
    /// Edges deleted (and as many added) per level, as a fraction of the neighbourhood's edges.
    pub edit_fraction: f64,
    /// Fraction of the neighbourhood's nodes masked in every candidate, the original included.
    pub mask_rate: f64,
    /// λ1, weight of the edit-distance loss.
    pub edit_weight: f64,
    /// λ2, weight of the margin loss.
    pub margin_weight: f64,
    /// α, the margin.
    pub margin: f64,
}

impl Default for DslaConfig {
    fn default() -> Self {
        DslaConfig {
            candidates: 3,
            strong: true,
            hops: 3,
            edit_fraction: 0.2,
            mask_rate: 0.8,
            edit_weight: 0.7,
            margin_weight: 0.5,
            margin: 5.0,
        }
    }
}

#[derive(Debug)]
pub struct Dsla {
    cfg: DslaConfig,
    encoder: Box<dyn NodeEncoder>,
    /// The score network D → D → ReLU → D → ReLU → 1.
    score: nn::Sequential,
}

impl Dsla {
    pub fn new(p: &nn::Path, cfg: &DslaConfig, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Self> {
        let encoder = encoders::build(encoder, &(p / "encoder"), in_dim)?;
        let d = encoder.out_dim();
        let lin = |name: &str, i, o| crate::torch_init::linear(p / name, i, o, true);
        let score = nn::seq()
            .add(lin("score1", d, d))
            .add_fn(|x| x.relu())
            .add(lin("score2", d, d))
            .add_fn(|x| x.relu())
            .add(lin("score3", d, 1));
        Ok(Dsla { cfg: cfg.clone(), encoder, score })
    }

    fn perturb_config(&self) -> PerturbConfig {
        PerturbConfig {
            hops: self.cfg.hops,
            count: self.cfg.candidates,
            strong: self.cfg.strong,
            edit_fraction: self.cfg.edit_fraction,
            mask_rate: self.cfg.mask_rate,
        }
    }
}

impl GraphMethod for Dsla {
    fn loss(&self, batch: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let cand = candidates(batch, &self.perturb_config(), rng);
        let (ids, graphs) = cand.batch.graphs.as_ref().expect("candidates are a batch of graphs");
        let h = self.encoder.forward(&cand.batch.input, &cand.batch.index, true);
        let pooled = readout(&h, ids, *graphs, Pooling::Mean);
        let c = cand.per_graph as i64;
        let b = graphs / c;
        // [C, B, D] → [B, C, D]: candidates of one graph side by side.
        let h = pooled.view([c, b, -1]).transpose(0, 1);
        let scores = h.apply(&self.score).view([b, c]);
        let h0 = h.select(1, 0);
        let perturbed = h.narrow(1, 1, c - 1);
        let distances = pair_distance(&(&perturbed - h0.unsqueeze(1)));
        let edits = Tensor::from_slice(&cand.edits.concat())
            .view([b, c - 1])
            .to_device(h.device())
            .to_kind(h.kind());
        let mut loss = discrimination(&scores)
            + edit_consistency(&distances, &edits) * self.cfg.edit_weight;
        if self.cfg.margin_weight > 0.0 && b >= 2 {
            // The strong candidate is left out of the margin, as in the reference.
            let k = self.cfg.candidates as i64;
            loss = loss
                + margin_to_other_graphs(&h0, &perturbed.narrow(1, 0, k), self.cfg.margin)
                    * self.cfg.margin_weight;
        }
        loss
    }

    fn embed(&self, batch: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&batch.input, &batch.index, false).to_kind(Kind::Float)
    }
}

impl super::MethodSpec for DslaConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::widths("method.candidates", [self.candidates as i64])?;
        rules::widths("method.hops", [self.hops as i64])?;
        rules::probability("method.mask_rate", self.mask_rate)?;
        rules::positive("method.edit_fraction", self.edit_fraction)?;
        rules::non_negative("method.edit_weight", self.edit_weight)?;
        rules::non_negative("method.margin_weight", self.margin_weight)?;
        rules::non_negative("method.margin", self.margin)
    }
    fn build_graph(&self, vs: &nn::VarStore, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Box<dyn GraphMethod>> {
        Ok(Box::new(Dsla::new(&vs.root(), self, encoder, in_dim)?))
    }
}
