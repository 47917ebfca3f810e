//! A stack of [`GatConv`] layers with GraphMAE's conventions: hidden layers have `heads` heads of
//! `hidden` units each, concatenated; the last layer has `out_heads` heads of `out` units
//! (concatenated, or averaged when `concat_out` is off). An *encoding* stack keeps the activation
//! (and residual) on its last layer; a decoding stack ends linear.
use super::gat::{GatConv, GatConvConfig};
use super::{Activation, ActivationKind, NodeEncoder};
use crate::views::graph::message::EdgeIndex;
use crate::views::graph::sparse::NodeInput;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatConfig {
    #[serde(default = "two")]
    pub layers: usize,
    /// Units per head in hidden layers.
    pub hidden: i64,
    pub heads: i64,
    /// Units per head of the last layer.
    pub out: i64,
    pub out_heads: i64,
    #[serde(default)]
    pub activation: ActivationKind,
    #[serde(default)]
    pub feat_drop: f64,
    #[serde(default)]
    pub attn_drop: f64,
    #[serde(default = "slope")]
    pub negative_slope: f64,
    #[serde(default)]
    pub residual: bool,
    #[serde(default = "yes")]
    pub concat_out: bool,
}

fn two() -> usize {
    2
}
fn slope() -> f64 {
    0.2
}
fn yes() -> bool {
    true
}

#[derive(Debug)]
pub struct Gat {
    layers: Vec<GatConv>,
    concat_out: bool,
    out: i64,
}

impl Gat {
    pub fn new(p: &nn::Path, cfg: &GatConfig, in_dim: i64, encoding: bool) -> Self {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for i in 0..cfg.layers {
            let last = i + 1 == cfg.layers;
            let (units, heads) = if last {
                (cfg.out, cfg.out_heads)
            } else {
                (cfg.hidden, cfg.heads)
            };
            let lp = p / format!("layer{i}");
            let activation = (!last || encoding).then(|| Activation::new(&lp, cfg.activation));
            let conv = GatConv::new(
                &lp,
                GatConvConfig {
                    in_dim: d,
                    out: units,
                    heads,
                    feat_drop: cfg.feat_drop,
                    attn_drop: cfg.attn_drop,
                    negative_slope: cfg.negative_slope,
                    residual: cfg.residual && (!last || encoding),
                },
                activation,
            );
            layers.push(conv);
            d = units * heads;
        }
        let out = if cfg.concat_out {
            cfg.out * cfg.out_heads
        } else {
            cfg.out
        };
        Gat {
            layers,
            concat_out: cfg.concat_out,
            out,
        }
    }

    /// Embeddings of the nodes in `rows` (all when `None`); only the last layer is restricted,
    /// earlier layers need every node's state.
    pub fn forward_rows(
        &self,
        x: &NodeInput,
        edges: &EdgeIndex,
        rows: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let mut h: Option<NodeInput> = None;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = h.as_ref().unwrap_or(x);
            if i < last {
                h = Some(NodeInput::Dense(
                    layer.forward(input, edges, train).flatten(1, 2),
                ));
            } else {
                let o = layer.forward_rows(input, edges, rows, train);
                return if self.concat_out {
                    o.flatten(1, 2)
                } else {
                    o.mean_dim(1, false, o.kind())
                };
            }
        }
        unreachable!("a GAT has at least one layer (checked by the recipe)")
    }
}

impl NodeEncoder for Gat {
    fn forward(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Tensor {
        self.forward_rows(x, edges, None, train)
    }
    fn out_dim(&self) -> i64 {
        self.out
    }
}
