//! Message-passing encoders: GCN, GAT, GIN — stacks of layers mapping node features to node
//! embeddings; graph-level embeddings come from a readout ([`readout`]).
pub mod gat;
pub mod gcn;
pub mod gin;

use crate::encoders::EncoderConfig;
use crate::views::graph::message::EdgeIndex;
use crate::views::graph::sparse::NodeInput;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Init, Kind, Tensor};

/// Non-linearity between layers. PReLU has one learnable slope per layer (PyTorch's `nn.PReLU()`
/// default, initial slope 0.25), as DGI and GraphMAE use.
#[derive(Debug)]
pub enum Activation {
    Relu,
    Elu,
    Prelu(Tensor),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    #[default]
    Prelu,
    Relu,
    Elu,
}

impl Activation {
    pub fn new(p: &nn::Path, kind: ActivationKind) -> Self {
        match kind {
            ActivationKind::Relu => Activation::Relu,
            ActivationKind::Elu => Activation::Elu,
            ActivationKind::Prelu => Activation::Prelu(p.var("prelu", &[1], Init::Const(0.25))),
        }
    }
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Elu => x.elu(),
            Activation::Prelu(w) => x.prelu(w),
        }
    }
}

/// Graph readout: node embeddings `[N, D]` of a batch of graphs → `[G, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    #[default]
    Sum,
    Mean,
    Max,
}

/// Pools node rows by graph: `batch[i]` is the graph of node `i` (`[N]` int64, values < `graphs`).
pub fn readout(x: &Tensor, batch: &Tensor, graphs: i64, pooling: Pooling) -> Tensor {
    let d = x.size()[1];
    let sum = || Tensor::zeros([graphs, d], (x.kind(), x.device())).index_add(0, batch, x);
    match pooling {
        Pooling::Sum => sum(),
        Pooling::Mean => {
            let ones = Tensor::ones([x.size()[0]], (Kind::Float, x.device()));
            let count =
                Tensor::zeros([graphs], (Kind::Float, x.device())).index_add(0, batch, &ones);
            sum() / count.clamp_min(1.0).unsqueeze(1)
        }
        Pooling::Max => {
            // A segment reduction over rows grouped by graph (batches list each graph's nodes
            // together; other orders are sorted first).
            let sorted = x.size()[0] < 2
                || batch
                    .diff(1, 0, None::<&Tensor>, None::<&Tensor>)
                    .ge(0)
                    .all()
                    .int64_value(&[])
                    != 0;
            let (x, batch) = if sorted {
                (x.shallow_clone(), batch.shallow_clone())
            } else {
                let order = batch.argsort(0, false);
                (x.index_select(0, &order), batch.index_select(0, &order))
            };
            let lengths = batch.bincount(None::<&Tensor>, graphs);
            Tensor::segment_reduce(
                &x,
                "max",
                Some(&lengths),
                None::<&Tensor>,
                None::<&Tensor>,
                0,
                false,
                // The reduction starts from this value in every segment.
                f64::NEG_INFINITY,
            )
            // A graph without nodes would stay -inf; make it 0 rather than poison a batch.
            .nan_to_num(0.0, 0.0, 0.0)
        }
    }
}

/// Any node encoder: features + edges → node embeddings `[N, D]`.
pub trait NodeEncoder: std::fmt::Debug + Send {
    fn forward(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Tensor;
    /// Width of the output embedding.
    fn out_dim(&self) -> i64;
}

pub mod gat_stack;

/// Builds the graph encoder of a recipe's `[encoder]` (gcn, gat or gin) for `in_dim` node
/// features.
pub fn build(cfg: &EncoderConfig, p: &nn::Path, in_dim: i64) -> Result<Box<dyn NodeEncoder>> {
    Ok(match cfg {
        EncoderConfig::Gcn(c) => Box::new(gcn::Gcn::new(p, c, in_dim)),
        EncoderConfig::Gat(c) => Box::new(gat_stack::Gat::new(p, c, in_dim, true)),
        EncoderConfig::Gin(c) => Box::new(gin::Gin::new(p, c, in_dim, true)),
        other => bail!(
            "encoder.kind = {}: graph methods need a graph encoder (gcn, gat or gin)",
            other.kind()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn readouts_pool_each_graphs_rows() {
        let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.]).reshape([3, 2]);
        let batch = Tensor::from_slice(&[0i64, 0, 1]);
        let v = |t: Tensor| Vec::<f32>::try_from(&t.flatten(0, 1)).unwrap();
        assert_eq!(v(readout(&x, &batch, 2, Pooling::Sum)), [4., 6., 5., 6.]);
        assert_eq!(v(readout(&x, &batch, 2, Pooling::Mean)), [2., 3., 5., 6.]);
        assert_eq!(v(readout(&x, &batch, 2, Pooling::Max)), [3., 4., 5., 6.]);
        // Rows not grouped by graph (row 0 in graph 1, rows 1–2 in graph 0), and a graph
        // without nodes (pooled to 0).
        let shuffled = Tensor::from_slice(&[1i64, 0, 0]);
        assert_eq!(
            v(readout(&x, &shuffled, 3, Pooling::Max)),
            [5., 6., 1., 2., 0., 0.]
        );
        // The gradient of a max goes to the row that holds it.
        let xg = x.copy().set_requires_grad(true);
        readout(&xg, &batch, 2, Pooling::Max)
            .sum(Kind::Float)
            .backward();
        assert_eq!(v(xg.grad()), [0., 0., 1., 1., 1., 1.]);
        let _ = Device::Cpu;
    }
}
