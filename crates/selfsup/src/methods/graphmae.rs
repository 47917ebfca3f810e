//! GraphMAE (Hou et al., KDD 2022): mask node features, encode, re-mask, decode the features back,
//! score with the scaled cosine error on the masked nodes.
//!
//! ```text
//! mask = draw(mask_rate, replace_rate)            # token nodes ← [MASK], noise nodes ← random rows
//! h    = encoder(A, x̃)                            # GAT (nodes) or GIN (graphs)
//! r    = h W_e2d;  r[masked] = 0                  # re-mask before the decoder
//! x̂    = decoder(A, r)                            # one GAT/GIN layer back to the input width
//! loss = mean_{i ∈ masked} (1 − cos(x̂_i, x_i))^α
//! ```
use super::GraphMethod;
use crate::views::graph::batch::{dense_rows, GraphBatch};
use crate::encoders::graph::gat_stack::{Gat, GatConfig};
use crate::encoders::graph::gin::{Gin, GinConfig};
use crate::encoders::EncoderConfig;
use crate::encoders::graph::NodeEncoder;
use crate::views::graph::masking::NodeMask;
use crate::objectives::graph::scaled_cosine_error;
use crate::views::graph::sparse::{NodeInput, SparseRows};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Init, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphMaeConfig {
    /// Fraction of nodes masked per step (0.5 on Cora, 0.75 on MUTAG).
    pub mask_rate: f64,
    /// Fraction of the masked nodes given random nodes' features instead of the token.
    #[serde(default)]
    pub replace_rate: f64,
    /// Exponent α of the scaled cosine error.
    pub alpha: f64,
    /// Heads of the GAT decoder (GraphMAE's `num_out_heads`, 1).
    #[serde(default = "one")]
    pub decoder_heads: i64,
}

fn one() -> i64 {
    1
}

/// The paper's Cora setting (Hou et al. 2022, appendix: mask 0.5, replace 0.05, α = 3).
impl Default for GraphMaeConfig {
    fn default() -> Self {
        GraphMaeConfig {
            mask_rate: 0.5,
            replace_rate: 0.05,
            alpha: 3.0,
            decoder_heads: 1,
        }
    }
}

#[derive(Debug)]
enum Stack {
    Gat(Gat),
    Gin(Gin),
}

impl Stack {
    fn forward_rows(&self, x: &NodeInput, b: &GraphBatch, rows: &Tensor, train: bool) -> Tensor {
        match self {
            Stack::Gat(g) => g.forward_rows(x, &b.index, Some(rows), train),
            Stack::Gin(g) => g.forward(x, &b.index, train).index_select(0, rows),
        }
    }
    fn forward(&self, x: &NodeInput, b: &GraphBatch, train: bool) -> Tensor {
        match self {
            Stack::Gat(g) => g.forward(x, &b.index, train),
            Stack::Gin(g) => g.forward(x, &b.index, train),
        }
    }
}

#[derive(Debug)]
pub struct GraphMae {
    cfg: GraphMaeConfig,
    encoder: Stack,
    encoder_to_decoder: Tensor,
    decoder: Stack,
    /// The learnable [MASK] features, zeros at the start (as in the reference).
    mask_token: Tensor,
}

impl GraphMae {
    pub fn new(
        p: &nn::Path,
        cfg: &GraphMaeConfig,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> Result<Self> {
        let (enc, dec, width) = match encoder {
            EncoderConfig::Gat(c) => {
                let enc = Gat::new(&(p / "encoder"), c, in_dim, true);
                let width = enc.out_dim();
                let dc = GatConfig {
                    layers: 1,
                    hidden: c.hidden,
                    heads: c.heads,
                    out: in_dim,
                    out_heads: cfg.decoder_heads,
                    ..c.clone()
                };
                let dec = Gat::new(&(p / "decoder"), &dc, width, false);
                (Stack::Gat(enc), Stack::Gat(dec), width)
            }
            EncoderConfig::Gin(c) => {
                let enc = Gin::new(&(p / "encoder"), c, in_dim, true);
                let width = enc.out_dim();
                let dc = GinConfig {
                    layers: 1,
                    hidden: width,
                    out: Some(in_dim),
                    ..c.clone()
                };
                let dec = Gin::new(&(p / "decoder"), &dc, width, false);
                (Stack::Gin(enc), Stack::Gin(dec), width)
            }
            other => bail!(
                "GraphMAE takes a gat or gin encoder (the decoder mirrors it), not {}",
                other.kind()
            ),
        };
        // PyTorch's default Linear initialisation, U(±1/√fan_in), no bias (reference: bias=False).
        let bound = 1.0 / (width as f64).sqrt();
        let encoder_to_decoder = p.var(
            "encoder_to_decoder",
            &[width, width],
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let mask_token = p.var("mask_token", &[1, in_dim], Init::Const(0.0));
        Ok(GraphMae {
            cfg: cfg.clone(),
            encoder: enc,
            encoder_to_decoder,
            decoder: dec,
            mask_token,
        })
    }

    /// The loss for a given mask (`loss` draws one; tests replay a reference's).
    pub fn loss_with_mask(&self, b: &GraphBatch, mask: &NodeMask) -> Tensor {
        let x_masked = token_masked_input(b, mask, &self.mask_token);
        let h = self.encoder.forward(&x_masked, b, true);
        let masked = Tensor::from_slice(&mask.masked).to_device(b.device);
        // Re-mask: the decoder must rebuild masked nodes from their neighbours only.
        let r = h
            .matmul(&self.encoder_to_decoder)
            .index_fill(0, &masked, 0.0);
        let recon = self
            .decoder
            .forward_rows(&NodeInput::Dense(r), b, &masked, true);
        let target = dense_rows(&b.features, Some(&mask.masked), b.device);
        scaled_cosine_error(&recon, &target, self.cfg.alpha)
    }
}

/// The batch's features with `mask` applied: token rows carry `token` (`[1, F]`, learnable),
/// noise rows another node's features.
pub(crate) fn token_masked_input(b: &GraphBatch, mask: &NodeMask, token: &Tensor) -> NodeInput {
    let n = b.num_nodes;
    let sources = mask.row_sources(n);
    let token_rows = Tensor::from_slice(&mask.token).to_device(b.device);
    match &b.input {
        NodeInput::Sparse(_) => NodeInput::Sparse(
            SparseRows::with_row_sources(&b.features, &sources, b.device)
                .with_repeated_row(token_rows, token.shallow_clone()),
        ),
        NodeInput::Dense(x) => {
            let keep: Vec<f32> = sources.iter().map(|&s| (s >= 0) as i32 as f32).collect();
            let from: Vec<i64> = sources.iter().map(|&s| s.max(0)).collect();
            let keep = Tensor::from_slice(&keep).to_device(b.device).unsqueeze(1);
            let from = Tensor::from_slice(&from).to_device(b.device);
            let is_token = 1.0 - &keep;
            NodeInput::Dense(x.index_select(0, &from) * keep + is_token * token)
        }
    }
}

impl GraphMethod for GraphMae {
    fn loss(&self, b: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let mask = NodeMask::draw(b.num_nodes, self.cfg.mask_rate, self.cfg.replace_rate, rng);
        self.loss_with_mask(b, &mask)
    }

    fn embed(&self, b: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder
            .forward(&b.input, b, false)
            .to_kind(Kind::Float)
    }
}

impl super::MethodSpec for GraphMaeConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            encoders: &["gat", "gin"],
            ..super::Needs::GRAPH
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::probability("method.replace_rate", self.replace_rate)?;
        rules::positive("method.decoder_heads", self.decoder_heads as f64)?;
        if !(self.mask_rate > 0.0 && self.mask_rate <= 1.0) {
            return Err(crate::rules::RecipeError::BadRange {
                field: "method.mask_rate",
                lo: self.mask_rate,
                hi: self.mask_rate,
                rule: "need 0 < mask_rate <= 1 (a rate of 0 leaves nothing to reconstruct)",
            });
        }
        if !(self.alpha >= 1.0 && self.alpha.is_finite()) {
            return Err(crate::rules::RecipeError::BadRange {
                field: "method.alpha",
                lo: self.alpha,
                hi: self.alpha,
                rule: "GraphMAE's exponent must be a finite number >= 1",
            });
        }
        Ok(())
    }
    fn build_graph(
        &self,
        vs: &nn::VarStore,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Box<dyn super::GraphMethod>> {
        Ok(Box::new(GraphMae::new(&vs.root(), self, encoder, in_dim)?))
    }
}
