//! ParetoGNN (Ju et al., "Multi-task Self-supervised Graph Neural Networks Enable Stronger Task
//! Generalization", ICLR 2023): five pretext tasks on one encoder, combined each step by
//! multiple-gradient descent so that the step descends on every task at once.
//!
//! ```text
//! L_t for t in tasks:  reconstruction (GraphMAE-style), dgi (mutual information, DGI),
//!                      decorrelation (CCA-SSG-style), grace (InfoNCE between views), link
//! g_t = ∇_θ L_t / ‖∇_θ L_t‖             # θ: the shared encoder's parameters
//! α   = argmin_{α ∈ simplex} ‖Σ_t α_t g_t‖²   (Frank–Wolfe, `objectives::min_norm`)
//! loss = Σ_t α_t L_t                    # α held constant
//! ```
//! As the authors' code: task gradients over the shared encoder only, each divided by its L2
//! norm; GRACE views with 0.3 edge drop / feature mask and τ 0.1; reconstruction masks half of
//! the nodes, drops 35 % of the edges, decodes with one graph convolution and scores with the
//! scaled cosine error at α 3; link prediction scores `Linear(ReLU(Linear(ĥ_u)) ⊙ ReLU(Linear(ĥ_v)))`
//! of L2-normalised embeddings against uniformly drawn negatives. Differences: every task runs on
//! the whole graph (they sample subgraphs on large graphs) but GRACE's InfoNCE is taken over
//! `contrast_nodes` random nodes, link prediction draws `link_edges` positives per step (their
//! loader takes 10), and the combined loss reuses the step's forward passes (they run a second
//! forward on the same batch).
use super::graphmae::token_masked_input;
use super::GraphMethod;
use crate::encoders::graph::{self as encoders, NodeEncoder};
use crate::encoders::EncoderConfig;
use crate::objectives::graph::{decorrelation, dgi_bce, grace_loss, l2_normalise, scaled_cosine_error};
use crate::objectives::min_norm::min_norm_weights;
use crate::views::graph::batch::{dense_rows, GraphBatch};
use crate::views::graph::masking::{drop_edges, row_permutation, NodeMask};
use crate::views::graph::message::gcn_edge_weights;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Init, Kind, Reduction, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParetoTask {
    Reconstruction,
    Dgi,
    Decorrelation,
    Grace,
    Link,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskWeighting {
    /// Multiple-gradient descent (the paper).
    #[default]
    Mgda,
    /// Every task weighted 1/T (the ablation).
    Equal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParetoGnnConfig {
    pub tasks: Vec<ParetoTask>,
    pub weighting: TaskWeighting,
    /// Divide each task's gradient by its L2 norm before the min-norm problem.
    pub normalise_gradients: bool,
    /// Edge drop and feature-column mask of the two views (grace, decorrelation).
    pub drop_edge: f64,
    pub drop_feature: f64,
    pub tau: f64,
    /// Hidden width of GRACE's projection and of the link predictor.
    pub head_hidden: i64,
    /// λ of the decorrelation term.
    pub decorrelation_lambda: f64,
    /// Nodes masked by the reconstruction task, edges it drops, its cosine-error exponent.
    pub mask_rate: f64,
    pub reconstruction_drop_edge: f64,
    pub alpha: f64,
    /// Nodes the GRACE task's InfoNCE is computed over each step, drawn uniformly (0: all). Its
    /// cost is quadratic in this count; the authors' code contrasts k-hop subgraphs around 1,024
    /// seed nodes on large graphs.
    pub contrast_nodes: usize,
    /// Positive edges per step for link prediction (as many negatives), and its input dropout.
    pub link_edges: usize,
    pub link_feature_drop: f64,
}

impl Default for ParetoGnnConfig {
    fn default() -> Self {
        ParetoGnnConfig {
            tasks: vec![
                ParetoTask::Reconstruction,
                ParetoTask::Dgi,
                ParetoTask::Decorrelation,
                ParetoTask::Grace,
                ParetoTask::Link,
            ],
            weighting: TaskWeighting::Mgda,
            normalise_gradients: true,
            drop_edge: 0.3,
            drop_feature: 0.3,
            tau: 0.1,
            head_hidden: 512,
            decorrelation_lambda: 1e-3,
            mask_rate: 0.5,
            reconstruction_drop_edge: 0.35,
            alpha: 3.0,
            contrast_nodes: 1024,
            link_edges: 512,
            link_feature_drop: 0.4,
        }
    }
}

#[derive(Debug)]
pub struct ParetoGnn {
    cfg: ParetoGnnConfig,
    encoder: Box<dyn NodeEncoder>,
    /// The encoder's trainable tensors: the parameters the tasks share.
    shared: Vec<Tensor>,
    dgi_w: Tensor,
    dgi_b: Tensor,
    proj1: nn::Linear,
    proj2: nn::Linear,
    link1: nn::Linear,
    link2: nn::Linear,
    mask_token: Tensor,
    encoder_to_decoder: Tensor,
    decoder_w: Tensor,
    decoder_b: Tensor,
}

impl ParetoGnn {
    pub fn new(vs: &nn::VarStore, cfg: &ParetoGnnConfig, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Self> {
        let p = &vs.root();
        let encoder = encoders::build(encoder, &(p / "encoder"), in_dim)?;
        let shared = vs
            .variables()
            .into_iter()
            .filter(|(name, t)| name.starts_with("encoder.") && t.requires_grad())
            .map(|(_, t)| t)
            .collect();
        let d = encoder.out_dim();
        let h = cfg.head_hidden;
        let lin = |name: &str, i, o, bias| crate::torch_init::linear(p / name, i, o, bias);
        let glorot = |i: i64, o: i64| {
            let bound = (6.0 / (i + o) as f64).sqrt();
            Init::Uniform { lo: -bound, up: bound }
        };
        Ok(ParetoGnn {
            cfg: cfg.clone(),
            shared,
            dgi_w: p.var("dgi_weight", &[d, d], glorot(d * d, d)),
            dgi_b: p.var("dgi_bias", &[1], Init::Const(0.0)),
            proj1: lin("proj1", d, h, true),
            proj2: lin("proj2", h, d, true),
            link1: lin("link1", d, h, true),
            link2: lin("link2", h, 1, true),
            mask_token: p.var("mask_token", &[1, in_dim], Init::Const(0.0)),
            encoder_to_decoder: p.var("encoder_to_decoder", &[d, d], glorot(d, d)),
            decoder_w: p.var("decoder_weight", &[d, in_dim], glorot(d, in_dim)),
            decoder_b: p.var("decoder_bias", &[in_dim], Init::Const(0.0)),
            encoder,
        })
    }

    fn task_loss(&self, task: ParetoTask, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let c = &self.cfg;
        match task {
            ParetoTask::Dgi => {
                let perm = Tensor::from_slice(&row_permutation(b.num_nodes, rng)).to_device(b.device);
                let fake_input = b.input.permute_rows(&perm, &b.features);
                let h = self.encoder.forward(&b.input, &b.index, true);
                let fake = self.encoder.forward(&fake_input, &b.index, true);
                let s = h.mean_dim(0, false, Kind::Float).sigmoid();
                let ws = self.dgi_w.matmul(&s);
                dgi_bce(&(h.matmul(&ws) + &self.dgi_b), &(fake.matmul(&ws) + &self.dgi_b))
            }
            ParetoTask::Grace => {
                let mut view = || {
                    let (x, e) = b.dropped_view(c.drop_edge, c.drop_feature, rng);
                    self.encoder.forward(&x, &e, true).apply(&self.proj1).elu().apply(&self.proj2)
                };
                let (u, v) = (view(), view());
                if c.contrast_nodes > 0 && c.contrast_nodes < b.num_nodes {
                    let mut nodes = row_permutation(b.num_nodes, rng);
                    nodes.truncate(c.contrast_nodes);
                    let idx = Tensor::from_slice(&nodes).to_device(b.device);
                    grace_loss(&u.index_select(0, &idx), &v.index_select(0, &idx), c.tau)
                } else {
                    grace_loss(&u, &v, c.tau)
                }
            }
            ParetoTask::Decorrelation => {
                let mut view = || {
                    let (x, e) = b.dropped_view(c.drop_edge, c.drop_feature, rng);
                    self.encoder.forward(&x, &e, true)
                };
                let (z1, z2) = (view(), view());
                decorrelation(&z1, &z2, c.decorrelation_lambda)
            }
            ParetoTask::Reconstruction => {
                let mask = NodeMask::draw(b.num_nodes, c.mask_rate, 0.0, rng);
                let edges = b.with_edges(&drop_edges(&b.edges, c.reconstruction_drop_edge, rng));
                let x = token_masked_input(b, &mask, &self.mask_token);
                let masked = Tensor::from_slice(&mask.masked).to_device(b.device);
                let r = self
                    .encoder
                    .forward(&x, &edges, true)
                    .matmul(&self.encoder_to_decoder)
                    .index_fill(0, &masked, 0.0);
                let recon = edges.propagate(&r.matmul(&self.decoder_w), Some(&gcn_edge_weights(&edges)))
                    + &self.decoder_b;
                let target = dense_rows(&b.features, Some(&mask.masked), b.device);
                scaled_cosine_error(&recon.index_select(0, &masked), &target.to_kind(recon.kind()), c.alpha)
            }
            ParetoTask::Link => {
                let n = b.num_nodes as i64;
                let m = c.link_edges.min(b.edges.len());
                let mut ends = (Vec::with_capacity(2 * m), Vec::with_capacity(2 * m));
                for _ in 0..m {
                    let [u, v] = b.edges[rng.gen_range(0..b.edges.len())];
                    ends.0.push(u as i64);
                    ends.1.push(v as i64);
                }
                for _ in 0..m {
                    ends.0.push(rng.gen_range(0..n));
                    ends.1.push(rng.gen_range(0..n));
                }
                let x = b.input.dropout(c.link_feature_drop, true);
                let h = l2_normalise(&self.encoder.forward(&x, &b.index, true));
                let side = |idx: &[i64]| {
                    h.index_select(0, &Tensor::from_slice(idx).to_device(b.device)).apply(&self.link1).relu()
                };
                let logits = (side(&ends.0) * side(&ends.1)).apply(&self.link2).squeeze_dim(1);
                let labels = Tensor::cat(
                    &[Tensor::ones([m as i64], (logits.kind(), b.device)), Tensor::zeros([m as i64], (logits.kind(), b.device))],
                    0,
                );
                logits.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, Reduction::Mean)
            }
        }
    }

    /// The min-norm weights of the tasks' (normalised) shared-parameter gradients.
    fn mgda_weights(&self, losses: &[Tensor]) -> Vec<f64> {
        let flat: Vec<Tensor> = losses
            .iter()
            .map(|l| {
                let grads = Tensor::run_backward(&[l], &self.shared, true, false);
                let parts: Vec<Tensor> = grads
                    .iter()
                    .zip(&self.shared)
                    .map(|(g, p)| if g.defined() { g.flatten(0, -1) } else { p.zeros_like().flatten(0, -1) })
                    .collect();
                let g = Tensor::cat(&parts, 0).to_kind(Kind::Double);
                if self.cfg.normalise_gradients {
                    &g / g.norm().clamp_min(1e-12)
                } else {
                    g
                }
            })
            .collect();
        let t = flat.len();
        let mut gram = vec![0.0; t * t];
        for i in 0..t {
            for j in i..t {
                let v = flat[i].dot(&flat[j]).double_value(&[]);
                gram[i * t + j] = v;
                gram[j * t + i] = v;
            }
        }
        min_norm_weights(&gram, t)
    }
}

impl GraphMethod for ParetoGnn {
    fn loss(&self, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let losses: Vec<Tensor> = self.cfg.tasks.iter().map(|&t| self.task_loss(t, b, rng)).collect();
        let t = losses.len();
        let weights = if self.cfg.weighting == TaskWeighting::Mgda && t > 1 && losses[0].requires_grad() {
            self.mgda_weights(&losses)
        } else {
            vec![1.0 / t as f64; t]
        };
        losses
            .iter()
            .zip(&weights)
            .map(|(l, &w)| l * w)
            .reduce(|a, b| a + b)
            .expect("at least one task (checked by the recipe)")
    }

    fn embed(&self, b: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&b.input, &b.index, false).to_kind(Kind::Float)
    }
}

impl super::MethodSpec for ParetoGnnConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        if self.tasks.is_empty() {
            return Err(rules::RecipeError::NoTask {
                method: "pareto_gnn",
                tasks: "list some of reconstruction, dgi, decorrelation, grace, link in method.tasks",
            });
        }
        rules::probability("method.drop_edge", self.drop_edge)?;
        rules::probability("method.drop_feature", self.drop_feature)?;
        rules::temperature("method.tau", self.tau)?;
        rules::widths("method.head_hidden", [self.head_hidden])?;
        rules::non_negative("method.decorrelation_lambda", self.decorrelation_lambda)?;
        rules::probability("method.mask_rate", self.mask_rate)?;
        rules::probability("method.reconstruction_drop_edge", self.reconstruction_drop_edge)?;
        rules::positive("method.alpha", self.alpha)?;
        rules::widths("method.link_edges", [self.link_edges as i64])?;
        rules::probability("method.link_feature_drop", self.link_feature_drop)
    }
    fn build_graph(&self, vs: &nn::VarStore, encoder: &EncoderConfig, in_dim: i64) -> anyhow::Result<Box<dyn GraphMethod>> {
        Ok(Box::new(ParetoGnn::new(vs, self, encoder, in_dim)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::graph::gcn::GcnConfig;
    use crate::encoders::graph::ActivationKind;
    use crate::methods::graph_tests::random_graph;
    use crate::rng::{keyed, Stream};
    use tch::Device;

    #[test]
    fn the_combined_direction_descends_on_every_task() {
        // MGDA's guarantee: d = Σ α_t ĝ_t is the min-norm point of the hull, so ĝ_tᵀ d ≥ ‖d‖² for
        // every task t — no task's loss goes up to first order.
        tch::manual_seed(0);
        let g = random_graph(50, 20, 0.1, 5);
        let b = GraphBatch::from_graph(&g, Device::Cpu);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = EncoderConfig::Gcn(GcnConfig {
            dims: vec![16, 8],
            activation: ActivationKind::Prelu,
            dropout: 0.0,
            batch_norm: false,
        });
        let cfg = ParetoGnnConfig { head_hidden: 8, link_edges: 32, ..Default::default() };
        let m = ParetoGnn::new(&vs, &cfg, &enc, 20).unwrap();
        let mut rng = keyed(0, Stream::Method, 0, 0, 0);
        let losses: Vec<Tensor> = cfg.tasks.iter().map(|&t| m.task_loss(t, &b, &mut rng)).collect();
        let alpha = m.mgda_weights(&losses);
        assert!(alpha.iter().all(|&a| a >= 0.0) && (alpha.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let unit: Vec<Tensor> = losses
            .iter()
            .map(|l| {
                let gs = Tensor::run_backward(&[l], &m.shared, true, false);
                let parts: Vec<Tensor> = gs
                    .iter()
                    .zip(&m.shared)
                    .map(|(g, p)| if g.defined() { g.flatten(0, -1) } else { p.zeros_like().flatten(0, -1) })
                    .collect();
                let g = Tensor::cat(&parts, 0).to_kind(Kind::Double);
                &g / g.norm()
            })
            .collect();
        let d = unit.iter().zip(&alpha).map(|(g, &a)| g * a).reduce(|x, y| x + y).unwrap();
        let dd = d.dot(&d).double_value(&[]);
        for (t, g) in unit.iter().enumerate() {
            let gd = g.dot(&d).double_value(&[]);
            assert!(gd >= dd - 1e-4 * (1.0 + dd), "task {t}: ĝᵀd = {gd} < ‖d‖² = {dd}");
        }
    }
}
