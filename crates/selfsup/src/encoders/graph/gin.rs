//! Graph isomorphism network (GIN, Xu et al. 2019) as GraphMAE builds it for graph
//! classification: each layer is `MLP((1+ε)·h_i + Σ_{j∈N(i)} h_j)` with a two-layer MLP
//! (Linear → norm → activation → Linear), followed — in hidden layers, and in the last layer of an
//! encoding stack — by norm and activation; ε = 0 (not learnt); dropout on each layer's input.
use super::{Activation, ActivationKind, NodeEncoder};
use crate::views::graph::message::EdgeIndex;
use crate::views::graph::sparse::NodeInput;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GinConfig {
    pub layers: usize,
    pub hidden: i64,
    /// Output width of the last layer (defaults to `hidden`).
    #[serde(default)]
    pub out: Option<i64>,
    #[serde(default)]
    pub activation: ActivationKind,
    #[serde(default)]
    pub dropout: f64,
    /// Batch norm inside and after the MLPs (GraphMAE's graph-level setting).
    #[serde(default = "yes")]
    pub batch_norm: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug)]
struct GinLayer {
    lin1: nn::Linear,
    norm1: Option<crate::torch_init::BatchNorm>,
    act1: Activation,
    lin2: nn::Linear,
    /// Norm and activation applied to the MLP's output (absent on a decoder's last layer).
    post: Option<(Option<crate::torch_init::BatchNorm>, Activation)>,
}

#[derive(Debug)]
pub struct Gin {
    layers: Vec<GinLayer>,
    dropout: f64,
    out: i64,
}

impl Gin {
    pub fn new(p: &nn::Path, cfg: &GinConfig, in_dim: i64, encoding: bool) -> Self {
        let out = cfg.out.unwrap_or(cfg.hidden);
        let mut layers = Vec::new();
        let mut d = in_dim;
        for i in 0..cfg.layers {
            let last = i + 1 == cfg.layers;
            let o = if last { out } else { cfg.hidden };
            let lp = p / format!("layer{i}");
            let bn = |name: &str, width: i64| {
                cfg.batch_norm
                    .then(|| crate::torch_init::batch_norm1d(&lp / name, width))
            };
            let post = (!last || encoding).then(|| {
                (
                    bn("norm2", o),
                    Activation::new(&(&lp / "act2"), cfg.activation),
                )
            });
            layers.push(GinLayer {
                lin1: crate::torch_init::linear(&lp / "lin1", d, cfg.hidden, true),
                norm1: bn("norm1", cfg.hidden),
                act1: Activation::new(&(&lp / "act1"), cfg.activation),
                lin2: crate::torch_init::linear(&lp / "lin2", cfg.hidden, o, true),
                post,
            });
            d = o;
        }
        Gin {
            layers,
            dropout: cfg.dropout,
            out,
        }
    }

    /// Every layer's output (the last is the embedding).
    pub fn forward_all(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Vec<Tensor> {
        let mut h = x.to_dense();
        let mut outs = Vec::new();
        for layer in &self.layers {
            let hd = crate::torch_dropout::dropout(&h, self.dropout, train);
            // ε = 0: the node itself plus the sum over its neighbours.
            let agg = &hd + edges.scatter_sum(&edges.gather_src(&hd));
            let mut z = agg.apply(&layer.lin1);
            if let Some(n) = &layer.norm1 {
                z = z.apply_t(n, train);
            }
            z = layer.act1.apply(&z).apply(&layer.lin2);
            if let Some((norm, act)) = &layer.post {
                if let Some(n) = norm {
                    z = n.forward_t(&z, train);
                }
                z = act.apply(&z);
            }
            outs.push(z.shallow_clone());
            h = z;
        }
        outs
    }
}

impl NodeEncoder for Gin {
    fn forward(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Tensor {
        self.forward_all(x, edges, train)
            .pop()
            .expect("a GIN has at least one layer (checked by the recipe)")
    }
    fn out_dim(&self) -> i64 {
        self.out
    }
}
