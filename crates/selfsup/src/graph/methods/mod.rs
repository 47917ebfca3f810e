//! Graph self-supervised methods, one file each, registered in [`build`].
pub mod bgrl;
pub mod dgi;
pub mod grace;
pub mod graphmae;
#[cfg(test)]
mod graphmae_reference_test;

use super::batch::GraphBatch;
use super::encoders::GraphEncoderConfig;
use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// A graph pretraining method.
pub trait GraphMethod: std::fmt::Debug {
    /// The loss of one step on `batch`; every random draw comes from `rng`.
    fn loss(&mut self, batch: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor;
    /// Node embeddings `[N, D]` of the un-augmented batch, inference mode, no gradient.
    fn embed(&self, batch: &GraphBatch) -> Tensor;
    /// Called after each optimiser step with the training progress in [0, 1] (EMA targets).
    fn after_step(&mut self, _progress: f64) {}
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum GraphMethodConfig {
    Graphmae(graphmae::GraphMaeConfig),
    Dgi(dgi::DgiConfig),
    Grace(grace::GraceConfig),
    Bgrl(bgrl::BgrlConfig),
}

impl GraphMethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            GraphMethodConfig::Graphmae(_) => "graphmae",
            GraphMethodConfig::Dgi(_) => "dgi",
            GraphMethodConfig::Grace(_) => "grace",
            GraphMethodConfig::Bgrl(_) => "bgrl",
        }
    }
}

/// Builds the method (with its encoder) under `p` for `in_dim` input features.
pub fn build(
    cfg: &GraphMethodConfig,
    encoder: &GraphEncoderConfig,
    p: &nn::Path,
    in_dim: i64,
) -> Result<Box<dyn GraphMethod>> {
    Ok(match cfg {
        GraphMethodConfig::Graphmae(c) => Box::new(graphmae::GraphMae::new(p, c, encoder, in_dim)?),
        GraphMethodConfig::Dgi(c) => Box::new(dgi::Dgi::new(p, c, encoder, in_dim)),
        GraphMethodConfig::Grace(c) => Box::new(grace::Grace::new(p, c, encoder, in_dim)),
        GraphMethodConfig::Bgrl(c) => Box::new(bgrl::Bgrl::new(p, c, encoder, in_dim)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::graph::{CsrMatrix, Graph, GraphSet};
    use crate::graph::encoders::gat_stack::GatConfig;
    use crate::graph::encoders::gcn::GcnConfig;
    use crate::graph::encoders::gin::GinConfig;
    use crate::graph::encoders::{ActivationKind, Pooling};
    use crate::rng::{keyed, Stream};
    use tch::{nn::VarStore, Device, Kind};

    /// A random graph with sparse (or dense-ish) non-negative features.
    pub(crate) fn random_graph(n: usize, f: usize, density: f64, seed: u64) -> Graph {
        use rand::Rng;
        let mut rng = keyed(seed, Stream::Eval, 0, 0, 0);
        let dense: Vec<f32> = (0..n * f)
            .map(|_| {
                if rng.gen::<f64>() < density {
                    rng.gen::<f32>()
                } else {
                    0.0
                }
            })
            .collect();
        let mut edges = Vec::new();
        for i in 0..n as u32 {
            for _ in 0..2 {
                edges.push([i, rng.gen_range(0..n as u32)]);
            }
        }
        let mut g = Graph {
            name: "random".into(),
            num_nodes: n,
            features: CsrMatrix::from_dense(n, f, &dense),
            edges,
            node_labels: (0..n as i64).map(|i| i % 3).collect(),
            num_classes: 3,
            split: None,
        };
        g.canonicalise_edges();
        g
    }

    fn gat() -> GraphEncoderConfig {
        GraphEncoderConfig::Gat(GatConfig {
            layers: 2,
            hidden: 4,
            heads: 2,
            out: 4,
            out_heads: 2,
            activation: ActivationKind::Prelu,
            feat_drop: 0.2,
            attn_drop: 0.1,
            negative_slope: 0.2,
            residual: true,
            concat_out: true,
        })
    }
    fn gcn(batch_norm: bool) -> GraphEncoderConfig {
        GraphEncoderConfig::Gcn(GcnConfig {
            dims: vec![8, 6],
            activation: ActivationKind::Prelu,
            dropout: 0.1,
            batch_norm,
        })
    }
    fn gin() -> GraphEncoderConfig {
        GraphEncoderConfig::Gin(GinConfig {
            layers: 2,
            hidden: 8,
            out: None,
            activation: ActivationKind::Prelu,
            dropout: 0.2,
            batch_norm: true,
        })
    }

    /// Forward + backward once: the loss is finite and every trainable tensor gets a gradient.
    fn smoke(
        method: &GraphMethodConfig,
        encoder: &GraphEncoderConfig,
        batch: &GraphBatch,
        in_dim: i64,
    ) {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let mut m = build(method, encoder, &vs.root(), in_dim).unwrap();
        let loss = m.loss(batch, &mut keyed(0, Stream::Method, 0, 0, 0));
        assert!(loss.double_value(&[]).is_finite(), "{}", method.name());
        loss.backward();
        for (name, t) in vs.variables() {
            if t.requires_grad() {
                let g = t.grad();
                assert!(g.defined(), "{}: no gradient reached {name}", method.name());
                assert!(g.isfinite().all().int64_value(&[]) == 1, "{name}");
            }
        }
        m.after_step(0.5);
        let emb = m.embed(batch);
        assert_eq!(emb.size()[0], batch.num_nodes as i64);
        assert!(emb.isfinite().all().int64_value(&[]) == 1);
        let _ = Kind::Float;
    }

    #[test]
    fn every_node_level_method_runs_forward_and_backward() {
        let g = random_graph(40, 30, 0.03, 1);
        let b = GraphBatch::from_graph(&g, Device::Cpu);
        assert!(matches!(
            b.input,
            crate::graph::sparse::NodeInput::Sparse(_)
        ));
        let mae = GraphMethodConfig::Graphmae(graphmae::GraphMaeConfig {
            mask_rate: 0.5,
            replace_rate: 0.2,
            alpha: 2.0,
            decoder_heads: 1,
        });
        smoke(&mae, &gat(), &b, 30);
        smoke(
            &GraphMethodConfig::Dgi(dgi::DgiConfig {}),
            &gcn(false),
            &b,
            30,
        );
        smoke(&GraphMethodConfig::Dgi(dgi::DgiConfig {}), &gat(), &b, 30);
        let grace = GraphMethodConfig::Grace(grace::GraceConfig {
            tau: 0.5,
            drop_edge: [0.2, 0.4],
            drop_feature: [0.3, 0.4],
            proj_hidden: 8,
        });
        smoke(&grace, &gcn(false), &b, 30);
        let bgrl = GraphMethodConfig::Bgrl(bgrl::BgrlConfig {
            drop_edge: [0.2, 0.3],
            drop_feature: [0.3, 0.2],
            predictor_hidden: 16,
            base_momentum: 0.99,
        });
        smoke(&bgrl, &gcn(true), &b, 30);
    }

    #[test]
    fn graphmae_runs_on_a_batch_of_small_graphs_with_gin() {
        let graphs: Vec<Graph> = (0..5)
            .map(|i| random_graph(6 + i, 5, 0.4, 10 + i as u64))
            .collect();
        let refs: Vec<&Graph> = graphs.iter().collect();
        let b = GraphBatch::from_graphs(&refs, Device::Cpu);
        assert!(matches!(b.input, crate::graph::sparse::NodeInput::Dense(_)));
        let mae = GraphMethodConfig::Graphmae(graphmae::GraphMaeConfig {
            mask_rate: 0.75,
            replace_rate: 0.1,
            alpha: 2.0,
            decoder_heads: 1,
        });
        smoke(&mae, &gin(), &b, 5);
        // Pretraining + pooled embeddings over a set.
        let set = GraphSet {
            name: "set".into(),
            labels: (0..5).map(|i| i % 2).collect(),
            graphs,
            num_classes: 2,
            label_values: vec![0, 1],
            num_features: 5,
        };
        let vs = VarStore::new(Device::Cpu);
        let mut m = build(&mae, &gin(), &vs.root(), 5).unwrap();
        let cfg = crate::graph::train::GraphTrainConfig {
            epochs: 2,
            optimizer: crate::train::optim::OptimizerConfig::Adam {
                lr: 1e-3,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0,
            },
            warmup_epochs: 0,
            decay: Default::default(),
            patience: None,
            batch_size: 2,
        };
        let r = crate::graph::train::pretrain_graph_level(
            m.as_mut(),
            &vs,
            &set,
            &cfg,
            0,
            Device::Cpu,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(r.losses.len(), 2);
        let emb = crate::graph::train::embed_graphs(m.as_ref(), &set, Pooling::Sum, 2, Device::Cpu);
        assert_eq!(emb.size(), vec![5, 8]);
    }

    #[test]
    fn graphmae_rejects_a_gcn_encoder() {
        let vs = VarStore::new(Device::Cpu);
        let mae = GraphMethodConfig::Graphmae(graphmae::GraphMaeConfig {
            mask_rate: 0.5,
            replace_rate: 0.0,
            alpha: 2.0,
            decoder_heads: 1,
        });
        assert!(build(&mae, &gcn(false), &vs.root(), 4).is_err());
    }
}
