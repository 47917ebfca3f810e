//! Methods wire views + encoder + heads + objective. A new method is one file plus one line in
//! [`build`] and one variant in [`MethodConfig`].
use crate::encoders::Encoder;
use crate::heads::Block;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

pub mod barlow_twins;
pub mod simclr;

/// A self-supervised method: a loss on a batch of views, and the encoder it trains.
pub trait Method {
    fn name(&self) -> &'static str;
    /// How many views of each sample the loss needs.
    fn n_views(&self) -> usize {
        2
    }
    /// The training loss for one batch; `views[v]` is `[N, ...]` for view v.
    fn loss(&self, views: &[Tensor]) -> Tensor;
    /// The representation used downstream (encoder output, evaluation mode; caller disables grad).
    fn embed(&self, x: &Tensor) -> Tensor;
    /// Projections of one view in training mode (for collapse diagnostics).
    fn encoder(&self) -> &dyn Encoder;
}

/// The `[method]` table of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    Simclr {
        #[serde(default = "simclr::default_temperature")]
        temperature: f64,
        #[serde(default = "simclr::default_projector")]
        projector: Vec<Block>,
    },
    BarlowTwins {
        #[serde(default = "barlow_twins::default_lambda")]
        lambda: f64,
        #[serde(default = "barlow_twins::default_projector")]
        projector: Vec<Block>,
    },
}

impl MethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Simclr { .. } => "simclr",
            MethodConfig::BarlowTwins { .. } => "barlow_twins",
        }
    }
    /// Smallest batch for which the objective is defined (NT-Xent needs a negative; Barlow
    /// Twins' batch standardisation needs two samples).
    pub fn min_batch(&self) -> usize {
        2
    }
    pub fn projector(&self) -> &[Block] {
        match self {
            MethodConfig::Simclr { projector, .. }
            | MethodConfig::BarlowTwins { projector, .. } => projector,
        }
    }
}

/// The registry: builds the method named in `cfg` around `encoder`, its own parameters under `vs`.
pub fn build(cfg: &MethodConfig, vs: &nn::Path, encoder: Box<dyn Encoder>) -> Box<dyn Method> {
    match cfg {
        MethodConfig::Simclr {
            temperature,
            projector,
        } => Box::new(simclr::SimClr::new(vs, encoder, projector, *temperature)),
        MethodConfig::BarlowTwins { lambda, projector } => Box::new(
            barlow_twins::BarlowTwins::new(vs, encoder, projector, *lambda),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::{self, EncoderConfig};
    use tch::{Device, Kind};

    fn all_methods() -> Vec<MethodConfig> {
        let small = vec![
            Block::new(16, true, true, true),
            Block::new(8, false, false, true),
        ];
        vec![
            MethodConfig::Simclr {
                temperature: 0.5,
                projector: small.clone(),
            },
            MethodConfig::BarlowTwins {
                lambda: 5e-3,
                projector: small,
            },
        ]
    }

    /// Every registered method: forward + backward on a tiny batch, finite loss, and a gradient
    /// on every parameter of encoder and heads.
    #[test]
    fn every_method_runs_forward_and_backward() {
        for cfg in all_methods() {
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let enc = encoders::build(
                &EncoderConfig::SmallCnn { widths: vec![4, 8] },
                &(vs.root() / "encoder"),
                &[1, 8, 8],
            )
            .unwrap();
            let m = build(&cfg, &(vs.root() / "method"), enc);
            let views: Vec<Tensor> = (0..m.n_views())
                .map(|_| Tensor::randn([6, 1, 8, 8], (Kind::Float, Device::Cpu)))
                .collect();
            let loss = m.loss(&views);
            let l = f64::try_from(&loss).unwrap();
            assert!(l.is_finite(), "{} loss {l}", m.name());
            loss.backward();
            for (name, p) in vs.variables() {
                if p.requires_grad() {
                    assert!(p.grad().defined(), "{}: no gradient for {name}", m.name());
                }
            }
            let e = tch::no_grad(|| m.embed(&views[0]));
            assert_eq!(e.size(), vec![6, 8]);
        }
    }
}
