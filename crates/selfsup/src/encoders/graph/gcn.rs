//! Graph convolution (GCN, Kipf & Welling 2017): `H' = σ(D^-1/2 (A+I) D^-1/2 H W + b)`, the
//! encoder of DGI (one layer, 512 units, PReLU) and GRACE (two layers).
use super::{Activation, ActivationKind, NodeEncoder};
use crate::views::graph::message::{gcn_edge_weights, EdgeIndex};
use crate::views::graph::sparse::NodeInput;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Init, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcnConfig {
    /// Output width of each layer, e.g. `[512]` (DGI) or `[256, 128]` (GRACE on Cora).
    pub dims: Vec<i64>,
    #[serde(default)]
    pub activation: ActivationKind,
    /// Dropout on each layer's input.
    #[serde(default)]
    pub dropout: f64,
    /// Batch norm between propagation and activation (BGRL's encoder).
    #[serde(default)]
    pub batch_norm: bool,
}

#[derive(Debug)]
struct GcnLayer {
    w: Tensor,
    b: Tensor,
    norm: Option<crate::torch_init::BatchNorm>,
    act: Activation,
}

#[derive(Debug)]
pub struct Gcn {
    layers: Vec<GcnLayer>,
    dropout: f64,
    out: i64,
}

impl Gcn {
    pub fn new(p: &nn::Path, cfg: &GcnConfig, in_dim: i64) -> Self {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for (i, &o) in cfg.dims.iter().enumerate() {
            let lp = p / format!("layer{i}");
            // Glorot-uniform weights and zero bias (the GCN paper's initialisation, used by DGI).
            let bound = (6.0 / (d + o) as f64).sqrt();
            let w = lp.var(
                "weight",
                &[d, o],
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            );
            let b = lp.var("bias", &[o], Init::Const(0.0));
            let act = Activation::new(&lp, cfg.activation);
            // BGRL uses PyG's BatchNorm with momentum 0.99 (running stats ≈ the last batch).
            let norm = cfg
                .batch_norm
                .then(|| crate::torch_init::batch_norm1d_with_momentum(&lp / "norm", o, 0.99));
            layers.push(GcnLayer { w, b, norm, act });
            d = o;
        }
        Gcn {
            layers,
            dropout: cfg.dropout,
            out: d,
        }
    }
}

impl NodeEncoder for Gcn {
    fn forward(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Tensor {
        let weights = gcn_edge_weights(edges);
        let mut h: Option<Tensor> = None;
        for layer in &self.layers {
            let xw = match &h {
                None => x.dropout(self.dropout, train).linear(&layer.w),
                Some(t) => crate::torch_dropout::dropout(t, self.dropout, train).matmul(&layer.w),
            };
            let mut z = edges.propagate(&xw, Some(&weights)) + &layer.b;
            if let Some(n) = &layer.norm {
                z = n.forward_t(&z, train);
            }
            h = Some(layer.act.apply(&z));
        }
        h.expect("a GCN has at least one layer (checked by the recipe)")
    }
    fn out_dim(&self) -> i64 {
        self.out
    }
}
