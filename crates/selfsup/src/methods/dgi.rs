//! Deep Graph Infomax (Veličković et al., ICLR 2019): tell real nodes from nodes of a corrupted
//! graph (features shuffled across nodes) given a summary of the real graph.
//!
//! ```text
//! h  = encoder(A, x);  h̃ = encoder(A, x[perm])
//! s  = σ(mean_i h_i)
//! D(h_i, s) = h_iᵀ W s + b
//! loss = BCE(D(h, s) → 1, D(h̃, s) → 0)
//! ```
use super::GraphMethod;
use crate::views::graph::batch::GraphBatch;
use crate::encoders::EncoderConfig;
use crate::encoders::graph::{self as encoders, NodeEncoder};
use crate::views::graph::masking::row_permutation;
use crate::objectives::graph::dgi_bce;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Init, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DgiConfig {}

#[derive(Debug)]
pub struct Dgi {
    encoder: Box<dyn NodeEncoder>,
    /// Bilinear discriminator weight `[D, D]` and bias.
    w: Tensor,
    b: Tensor,
}

impl Dgi {
    pub fn new(
        p: &nn::Path,
        _cfg: &DgiConfig,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Self> {
        let encoder = encoders::build(encoder, &(p / "encoder"), in_dim)?;
        let d = encoder.out_dim();
        // nn.Bilinear's [1, D, D] weight, Xavier-uniform with PyTorch's fans (D·D in, D out).
        let bound = (6.0 / (d * d + d) as f64).sqrt();
        let w = p.var(
            "disc_weight",
            &[d, d],
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let b = p.var("disc_bias", &[1], Init::Const(0.0));
        Ok(Dgi { encoder, w, b })
    }

    fn discriminate(&self, h: &Tensor, s: &Tensor) -> Tensor {
        h.matmul(&self.w.matmul(s)) + &self.b
    }
}

impl GraphMethod for Dgi {
    fn loss(&self, batch: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let perm =
            Tensor::from_slice(&row_permutation(batch.num_nodes, rng)).to_device(batch.device);
        let corrupted = batch.input.permute_rows(&perm, &batch.features);
        let h = self.encoder.forward(&batch.input, &batch.index, true);
        let h_fake = self.encoder.forward(&corrupted, &batch.index, true);
        let s = h.mean_dim(0, false, Kind::Float).sigmoid();
        dgi_bce(&self.discriminate(&h, &s), &self.discriminate(&h_fake, &s))
    }

    fn embed(&self, batch: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&batch.input, &batch.index, false)
    }
}

impl super::MethodSpec for DgiConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        // DGI has no settings of its own (its encoder and protocol carry them).
        Ok(())
    }
    fn build_graph(
        &self,
        vs: &nn::VarStore,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Box<dyn super::GraphMethod>> {
        Ok(Box::new(Dgi::new(&vs.root(), self, encoder, in_dim)?))
    }
}
