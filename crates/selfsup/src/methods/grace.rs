//! GRACE (Zhu et al., 2020): two views by edge dropping and feature-column masking, node-level
//! InfoNCE between the views' projections with intra- and inter-view negatives.
//!
//! ```text
//! G1 = (drop_edges(A, p_e1), mask_columns(x, p_f1));  G2 likewise with (p_e2, p_f2)
//! u = g(f(G1));  v = g(f(G2))          # f: GCN encoder, g: 2-layer ELU projection
//! loss = ½ mean_i [ℓ(u_i, v_i) + ℓ(v_i, u_i)]
//! ```
use super::GraphMethod;
use crate::views::graph::batch::GraphBatch;
use crate::encoders::EncoderConfig;
use crate::encoders::graph::{self as encoders, NodeEncoder};
use crate::objectives::graph::grace_loss;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraceConfig {
    pub tau: f64,
    /// Edge drop rate of view 1 and view 2.
    pub drop_edge: [f64; 2],
    /// Feature-column mask rate of view 1 and view 2.
    pub drop_feature: [f64; 2],
    /// Hidden width of the projection head.
    pub proj_hidden: i64,
}

/// GRACE's Cora setting (Zhu et al. 2020, appendix table: τ 0.4, edge drop 0.2/0.4, feature mask
/// 0.3/0.4, projection 128).
impl Default for GraceConfig {
    fn default() -> Self {
        GraceConfig {
            tau: 0.4,
            drop_edge: [0.2, 0.4],
            drop_feature: [0.3, 0.4],
            proj_hidden: 128,
        }
    }
}

#[derive(Debug)]
pub struct Grace {
    cfg: GraceConfig,
    encoder: Box<dyn NodeEncoder>,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Grace {
    pub fn new(
        p: &nn::Path,
        cfg: &GraceConfig,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Self> {
        let encoder = encoders::build(encoder, &(p / "encoder"), in_dim)?;
        let d = encoder.out_dim();
        Ok(Grace {
            cfg: cfg.clone(),
            fc1: crate::torch_init::linear(p / "proj1", d, cfg.proj_hidden, true),
            fc2: crate::torch_init::linear(p / "proj2", cfg.proj_hidden, d, true),
            encoder,
        })
    }

    fn view(&self, b: &GraphBatch, k: usize, rng: &mut ChaCha8Rng) -> Tensor {
        let (x, edges) = b.dropped_view(self.cfg.drop_edge[k], self.cfg.drop_feature[k], rng);
        let z = self.encoder.forward(&x, &edges, true);
        z.apply(&self.fc1).elu().apply(&self.fc2)
    }
}

impl GraphMethod for Grace {
    fn loss(&self, batch: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor {
        let u = self.view(batch, 0, rng);
        let v = self.view(batch, 1, rng);
        grace_loss(&u, &v, self.cfg.tau)
    }

    fn embed(&self, batch: &GraphBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        self.encoder.forward(&batch.input, &batch.index, false)
    }
}

impl super::MethodSpec for GraceConfig {
    fn needs(&self) -> super::Needs {
        super::Needs::GRAPH
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.tau", self.tau)?;
        for r in self.drop_edge {
            rules::probability("method.drop_edge", r)?;
        }
        for r in self.drop_feature {
            rules::probability("method.drop_feature", r)?;
        }
        rules::widths("method.proj_hidden", [self.proj_hidden])
    }
    fn build_graph(
        &self,
        vs: &nn::VarStore,
        encoder: &EncoderConfig,
        in_dim: i64,
    ) -> anyhow::Result<Box<dyn super::GraphMethod>> {
        Ok(Box::new(Grace::new(&vs.root(), self, encoder, in_dim)?))
    }
}
