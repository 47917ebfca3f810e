//! T-JEPA (Thimonier et al. 2025): joint-embedding prediction on tables without augmentations —
//! from the representations of a context subset of features, predict the representations a
//! momentum target encoder gives to other feature subsets. I-JEPA's recipe with features in place
//! of patches; the encoder carries T-JEPA's regularisation (register) tokens.
//!
//! ```text
//! context, targets₁..M = feature subsets                             (drawn by the loader)
//! s_x  = encoder(tokens(x)[context])                                   (+ register tokens)
//! s_y  = layer_norm(target_encoder(tokens(x)))[targets_m]              (no gradient)
//! ŝ_y  = predictor(s_x, feature positions of context, mask tokens at target positions)
//! loss = mean_m smooth_l1(ŝ_y, s_y);   target ← EMA(encoder), momentum base → 1 (linear)
//! ```
use super::ema::EmaTarget;
use super::ijepa::{linear_momentum, Predictor};
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::encoders::feature_transformer::FeatureTransformer;
use crate::encoders::vit::gather_tokens;
use crate::encoders::Encoder;
use crate::views::masking::MaskSpec;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TjepaConfig {
    #[serde(default = "default_predictor_dim")]
    pub predictor_dim: i64,
    #[serde(default = "default_predictor_depth")]
    pub predictor_depth: usize,
    #[serde(default = "default_predictor_heads")]
    pub predictor_heads: i64,
    /// Target-encoder momentum at the start, raised linearly to 1.
    #[serde(default = "default_base_momentum")]
    pub base_momentum: f64,
    /// Fraction of the features in the context subset (drawn per batch from this range).
    #[serde(default = "default_context")]
    pub context: [f64; 2],
    /// Target subsets per row and the fraction of the features each holds.
    #[serde(default = "default_targets")]
    pub targets: usize,
    #[serde(default = "default_target")]
    pub target: [f64; 2],
    /// Which encoder gives the downstream representation: the trained (`online`) one, or the
    /// momentum `target` encoder, which the T-JEPA authors' code embeds with.
    #[serde(default)]
    pub embed_with: EmbedWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedWith {
    #[default]
    Online,
    Target,
}

impl Default for TjepaConfig {
    fn default() -> Self {
        TjepaConfig {
            predictor_dim: default_predictor_dim(),
            predictor_depth: default_predictor_depth(),
            predictor_heads: default_predictor_heads(),
            base_momentum: default_base_momentum(),
            context: default_context(),
            targets: default_targets(),
            target: default_target(),
            embed_with: EmbedWith::Online,
        }
    }
}

fn default_predictor_dim() -> i64 {
    64
}
fn default_predictor_depth() -> usize {
    2
}
fn default_predictor_heads() -> i64 {
    4
}
fn default_base_momentum() -> f64 {
    0.996
}
fn default_context() -> [f64; 2] {
    [0.5, 0.75]
}
fn default_targets() -> usize {
    4
}
fn default_target() -> [f64; 2] {
    [0.15, 0.25]
}

pub struct Tjepa {
    encoder: Box<dyn Encoder>,
    target: Box<dyn Encoder>,
    ema: EmaTarget,
    predictor: Predictor,
    cfg: TjepaConfig,
}

fn ft_of(encoder: &dyn Encoder) -> Result<&FeatureTransformer> {
    encoder.as_feature_transformer().ok_or_else(|| {
        anyhow!("tjepa predicts feature tokens and needs encoder.kind = \"feature_transformer\"")
    })
}

impl Tjepa {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &TjepaConfig,
    ) -> Result<Self> {
        let p = vs.root() / "method";
        let ft = ft_of(encoder.as_ref())?;
        let pp = &p / "predictor";
        // Features have no geometry: one learned position per feature.
        let pos = pp.var(
            "pos",
            &[1, ft.n_features(), cfg.predictor_dim],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        );
        let predictor =
            Predictor::new(&pp, ft.dim(), pos, cfg.predictor_depth, cfg.predictor_heads)?;
        let target = make_encoder(&(&p / "teacher" / "encoder"))?;
        let ema = EmaTarget::bind(vs, &[("encoder", "method.teacher.encoder")])?;
        Ok(Tjepa {
            encoder,
            target,
            ema,
            predictor,
            cfg: cfg.clone(),
        })
    }

    fn ft(&self) -> &FeatureTransformer {
        self.encoder
            .as_feature_transformer()
            .expect("checked in new()")
    }

    pub fn loss_with(&self, x: &Tensor, context: &Tensor, targets: &[Tensor]) -> Tensor {
        let ft = self.ft();
        let s_x = ft.encode(&gather_tokens(&ft.tokens(x), context));
        let s_y = tch::no_grad(|| {
            let t = ft_of(self.target.as_ref()).expect("same factory as the online encoder");
            t.encode(&t.tokens(x))
        });
        self.predictor.loss(&s_x, context, targets, &s_y)
    }
}

impl Method for Tjepa {
    fn name(&self) -> &'static str {
        "tjepa"
    }
    fn n_views(&self) -> usize {
        1
    }
    fn mask_spec(&self) -> Option<MaskSpec> {
        Some(MaskSpec::FeatureSubsets {
            features: self.ft().n_features() as usize,
            context: self.cfg.context,
            targets: self.cfg.targets,
            target: self.cfg.target,
        })
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_with(&input.views[0], &input.masks[0], &input.masks[1..])
    }
    fn after_update(&self, progress: Progress) {
        self.ema
            .update(linear_momentum(self.cfg.base_momentum, progress.fraction()));
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        match self.cfg.embed_with {
            EmbedWith::Online => self.encoder.forward_t(x, false),
            EmbedWith::Target => self.target.forward_t(x, false),
        }
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for TjepaConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            tables: true,
            encoders: &["feature_transformer"],
            ..super::Needs::MASKED_VIT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::widths("method.predictor_dim", [self.predictor_dim])?;
        rules::widths("method.predictor_depth", [self.predictor_depth as i64])?;
        rules::widths("method.predictor_heads", [self.predictor_heads])?;
        rules::widths("method.targets", [self.targets as i64])?;
        rules::fraction_range("method.context", self.context, false)?;
        rules::fraction_range("method.target", self.target, false)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Tjepa::new(vs, encoder, make_encoder, self)?))
    }
}
