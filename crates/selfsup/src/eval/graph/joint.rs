//! Joint training with labels, SelfTask-GNN's main setting (Jin et al. 2020, `train_ssl.py`):
//! a method's encoder and a GCN output layer are trained together on the labelled training
//! nodes' cross-entropy plus λ times the method's own loss, both on the same forward pass; the
//! test accuracy is read at the epoch of best validation accuracy. λ = 0 is the supervised
//! control: the same network from the same initial weights, without the task.
//!
//! ```text
//! h = f(A', X)                                    # A' = A minus the step's masked edges, if any
//! logits = Â' · dropout(h) · W + b                # the GCN output layer
//! loss = CE(logits[train], y[train]) + λ · L_task(h)
//! ```
use super::{select_best, BestEpoch};
use crate::data::graph::{Graph, NodeSplit};
use crate::methods::GraphMethod;
use crate::rng::{keyed, Stream};
use crate::rules;
use crate::views::graph::batch::GraphBatch;
use crate::views::graph::message::{gcn_edge_weights, EdgeIndex};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Reduction, Tensor};

/// Key tag of the joint-training stream (see the module note of `eval::graph`).
const TAG_JOINT: u64 = 0x6772_6576_0006;

/// `[eval.graph] protocol = "joint"`. Defaults: the authors' `scripts/basic/run.sh` (200
/// epochs, lr 0.01, weight decay 5e-4, dropout 0.5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointConfig {
    /// λ, the weight of the method's loss (0: the supervised control).
    pub ssl_weight: f64,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Adam's L2 weight decay on every parameter (encoder, task heads, output layer).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Dropout on the output layer's input.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

fn default_lr() -> f64 {
    0.01
}
fn default_weight_decay() -> f64 {
    5e-4
}
fn default_epochs() -> usize {
    200
}
fn default_dropout() -> f64 {
    0.5
}

impl JointConfig {
    /// The protocol's name as printed beside every figure.
    pub fn describe(&self) -> String {
        format!(
            "public split, joint training with labels (task weight {}; {} Adam epochs, lr {}, wd {}, dropout {}), test acc at best val",
            self.ssl_weight, self.epochs, self.lr, self.weight_decay, self.dropout
        )
    }

    /// The rules of `[eval.graph]` under this protocol.
    pub fn validate(&self) -> rules::R {
        rules::non_negative("eval.graph.ssl_weight", self.ssl_weight)?;
        rules::positive("eval.graph.lr", self.lr)?;
        rules::non_negative("eval.graph.weight_decay", self.weight_decay)?;
        rules::widths("eval.graph.epochs", [self.epochs as i64])?;
        rules::probability("eval.graph.dropout", self.dropout)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JointResult {
    pub best: BestEpoch,
    pub final_test: f64,
    /// The last epoch's training loss (cross-entropy plus the weighted task loss).
    pub final_loss: f64,
}

/// The output layer: Â · dropout(h) · W + b over `edges` (with self-loops).
struct OutputLayer {
    w: Tensor,
    b: Tensor,
}

impl OutputLayer {
    fn forward(&self, h: &Tensor, edges: &EdgeIndex, dropout: f64, train: bool) -> Tensor {
        let hw = h.dropout(dropout, train).matmul(&self.w);
        edges.propagate(&hw, Some(&gcn_edge_weights(edges))) + &self.b
    }
}

fn accuracy(logits: &Tensor, index: &Tensor, labels: &Tensor) -> f64 {
    let predicted = logits.index_select(0, index).argmax(1, false);
    predicted
        .eq_tensor(labels)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

fn part(nodes: &[usize], labels: &[i64], what: &str, device: Device) -> Result<(Tensor, Tensor)> {
    ensure!(
        !nodes.is_empty(),
        "joint training: the {what} split is empty"
    );
    let mut y = Vec::with_capacity(nodes.len());
    for &v in nodes {
        let label = *labels
            .get(v)
            .with_context(|| format!("joint training: {what} node {v} is out of range"))?;
        ensure!(label >= 0, "joint training: {what} node {v} has no label");
        y.push(label);
    }
    let index: Vec<i64> = nodes.iter().map(|&v| v as i64).collect();
    Ok((
        Tensor::from_slice(&index).to_device(device),
        Tensor::from_slice(&y).to_device(device),
    ))
}

/// Trains `method` (its parameters in `vs`, as built) jointly with a fresh output layer on
/// `g`'s labels; every random draw of the task comes from a stream keyed by `seed`, dropout
/// from libtorch's generator (the caller holds it).
pub fn train_joint(
    method: &dyn GraphMethod,
    vs: &nn::VarStore,
    g: &Graph,
    split: &NodeSplit,
    cfg: &JointConfig,
    seed: u64,
    device: Device,
) -> Result<JointResult> {
    ensure!(cfg.epochs >= 1, "joint training needs at least one epoch");
    let classes = g.node_labels.iter().copied().max().unwrap_or(-1) + 1;
    ensure!(classes >= 2, "joint training needs at least two classes");
    let (train_idx, train_y) = part(&split.train, &g.node_labels, "train", device)?;
    let (val_idx, val_y) = part(&split.val, &g.node_labels, "validation", device)?;
    let (test_idx, test_y) = part(&split.test, &g.node_labels, "test", device)?;
    let batch = GraphBatch::from_graph(g, device);
    let mut rng = keyed(seed, Stream::Eval, TAG_JOINT, 0, 0);
    let probe = method
        .joint_step(&batch, &mut rng, false)
        .context("this method has no joint training with labels (built for selftask)")?;
    let width = probe.hidden.size()[1];
    drop(probe);

    // Glorot-uniform weights and a zero bias, as the GCN layers.
    let head_vs = nn::VarStore::new(device);
    let bound = (6.0 / (width + classes) as f64).sqrt();
    let out = OutputLayer {
        w: head_vs.root().var(
            "weight",
            &[width, classes],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        ),
        b: head_vs.root().var("bias", &[classes], nn::Init::Const(0.0)),
    };
    // torch.optim.Adam over both parameter sets: L2 decay added to the gradient.
    let adam = nn::Adam {
        wd: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt_model = adam.build(vs, cfg.lr)?;
    let mut opt_head = adam.build(&head_vs, cfg.lr)?;

    let with_task = cfg.ssl_weight > 0.0;
    let (mut val_accs, mut test_accs) = (Vec::new(), Vec::new());
    let mut final_loss = f64::NAN;
    for _ in 0..cfg.epochs {
        let step = method
            .joint_step(&batch, &mut rng, with_task)
            .context("joint step")?;
        let edges = step.edges.as_ref().unwrap_or(&batch.index);
        let logits = out.forward(&step.hidden, edges, cfg.dropout, true);
        let ce = logits
            .index_select(0, &train_idx)
            .cross_entropy_loss::<Tensor>(&train_y, None, Reduction::Mean, -100, 0.0);
        let loss = match step.loss {
            Some(task) if with_task => ce + task * cfg.ssl_weight,
            _ => ce,
        };
        ensure!(
            loss.isfinite().all().int64_value(&[]) == 1,
            "joint training: the loss is not finite"
        );
        final_loss = loss.double_value(&[]);
        opt_model.zero_grad();
        opt_head.zero_grad();
        loss.backward();
        opt_model.step();
        opt_head.step();

        let _g = tch::no_grad_guard();
        let h = method.embed(&batch);
        let logits = out.forward(&h, &batch.index, cfg.dropout, false);
        val_accs.push(accuracy(&logits, &val_idx, &val_y));
        test_accs.push(accuracy(&logits, &test_idx, &test_y));
    }
    let best = select_best(&val_accs, &test_accs).context("joint training: no epoch scored")?;
    Ok(JointResult {
        best,
        final_test: *test_accs.last().expect("epochs ≥ 1"),
        final_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::graph::CsrMatrix;
    use crate::encoders::graph::gcn::GcnConfig;
    use crate::encoders::EncoderConfig;
    use crate::methods::{build_graph, selftask::SelfTaskConfig, MethodConfig};

    /// Two communities of 30 nodes, dense inside, one bridge; features are noisy community
    /// indicators, so a GCN learns the labels from a handful of training nodes.
    fn two_communities() -> (Graph, NodeSplit) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 60;
        let mut edges = Vec::new();
        for a in 0..n as u32 {
            for b in 0..n as u32 {
                if a != b && (a < 30) == (b < 30) && rng.gen_bool(0.15) {
                    edges.push([a, b]);
                    edges.push([b, a]);
                }
            }
        }
        edges.push([29, 30]);
        edges.push([30, 29]);
        edges.sort_unstable();
        edges.dedup();
        let mut dense = vec![0f32; n * 8];
        for v in 0..n {
            let c = usize::from(v >= 30);
            dense[v * 8 + c] = if rng.gen_bool(0.4) { 1.0 } else { 0.0 };
            dense[v * 8 + 2 + rng.gen_range(0..6)] = 1.0;
        }
        let split = NodeSplit {
            train: vec![0, 1, 2, 30, 31, 32],
            val: (10..20).chain(40..50).collect(),
            test: (20..30).chain(50..60).collect(),
        };
        let g = Graph {
            name: "two-communities".into(),
            num_nodes: n,
            features: CsrMatrix::from_dense(n, 8, &dense),
            edges,
            node_labels: (0..n).map(|v| i64::from(v >= 30)).collect(),
            num_classes: 2,
            split: Some(split.clone()),
        };
        (g, split)
    }

    fn run(ssl_weight: f64, epochs: usize) -> JointResult {
        let (g, split) = two_communities();
        let _lock = crate::torch_rng::lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let method = MethodConfig::SelfTask(SelfTaskConfig {
            pairs_per_class: 50,
            similarity_pairs: 100,
            ..Default::default()
        });
        let encoder = EncoderConfig::Gcn(GcnConfig {
            dims: vec![16],
            activation: crate::encoders::graph::ActivationKind::Relu,
            dropout: 0.0,
            batch_norm: false,
        });
        let m = build_graph(&method, &encoder, &vs, 8).unwrap();
        let cfg = JointConfig {
            ssl_weight,
            lr: 0.01,
            weight_decay: 5e-4,
            epochs,
            dropout: 0.5,
        };
        train_joint(m.as_ref(), &vs, &g, &split, &cfg, 3, Device::Cpu).unwrap()
    }

    #[test]
    fn joint_training_learns_the_labels_with_and_without_the_task() {
        for weight in [0.0, 0.05] {
            let r = run(weight, 60);
            assert!(r.best.val >= 0.9, "λ {weight}: {r:?}");
            assert!(r.best.test >= 0.85, "λ {weight}: {r:?}");
            assert!(r.final_loss.is_finite());
        }
    }

    #[test]
    fn the_task_changes_training_and_runs_repeat_exactly() {
        let a = run(0.05, 5);
        assert_eq!(a, run(0.05, 5));
        assert_ne!(a.final_loss, run(0.0, 5).final_loss);
    }
}
