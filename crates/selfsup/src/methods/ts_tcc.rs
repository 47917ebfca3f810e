//! TS-TCC (Eldele et al., IJCAI 2021): a weak view (scaling + jitter, `[views.series]`) and a
//! strong view (segment permutation + jitter, `[views.series2]`) of each series go through the
//! encoder; then
//! - temporal contrasting (§4.2): a transformer summarises one view's steps up to a random time
//!   t into a context c_t (its class token), from which K linear heads predict the other view's
//!   features at t+1 … t+K; each prediction is scored against the same step of every series in
//!   the batch (−log softmax of the dot products at the right series), both directions;
//! - contextual contrasting (§4.3): NT-Xent (τ = 0.2, cosine) between projections of the two
//!   views' contexts;
//!
//! and the loss is λ₁·(TC₁ + TC₂) + λ₂·CC with λ₁ = 1, λ₂ = 0.7.
//!
//! Differences from the authors' code, named: the temporal term normalises each prediction over
//! the batch's actual features, as the paper's eq. 3 writes it (the code normalises each actual
//! feature over the batch's predictions); the transformer is this crate's pre-norm block
//! (GELU MLP of width 64, attention scaled by the head width) instead of theirs (ReLU, scaled by
//! the model width, dropout 0.1); K is capped at T′ − 1 for series whose encoded length is
//! shorter than K + 1.
use super::{EncoderFactory, Method, MethodSpec, Needs, StepInput};
use crate::encoders::transformer::{Attention, TransformerBlock};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::nt_xent;
use crate::rng::{keyed, Stream};
use crate::rules;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::ModuleT, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsTccConfig {
    /// Future steps predicted from the context (K; 6 for HAR, 10 for Epilepsy in the paper).
    pub timesteps: usize,
    /// Width of the context transformer (100 in the authors' code), its depth (4) and heads (4).
    pub hidden: i64,
    pub depth: usize,
    pub heads: i64,
    /// Width of the transformer's MLP (64).
    pub mlp: i64,
    /// Temperature of the contextual contrasting (0.2).
    pub temperature: f64,
    /// λ₁ and λ₂ (1 and 0.7).
    pub lambda_temporal: f64,
    pub lambda_contextual: f64,
}

impl Default for TsTccConfig {
    fn default() -> Self {
        TsTccConfig {
            timesteps: 6,
            hidden: 100,
            depth: 4,
            heads: 4,
            mlp: 64,
            temperature: 0.2,
            lambda_temporal: 1.0,
            lambda_contextual: 0.7,
        }
    }
}

impl MethodSpec for TsTccConfig {
    fn needs(&self) -> Needs {
        Needs {
            encoders: &["tstcc_conv"],
            ..Needs::JOINT
        }
    }
    fn validate(&self) -> rules::R {
        rules::widths("method.timesteps", [self.timesteps as i64])?;
        rules::widths("method.hidden", [self.hidden, self.heads, self.mlp])?;
        rules::widths("method.depth", [self.depth as i64])?;
        rules::temperature("method.temperature", self.temperature)?;
        rules::non_negative("method.lambda_temporal", self.lambda_temporal)?;
        rules::non_negative("method.lambda_contextual", self.lambda_contextual)?;
        if self.hidden % self.heads != 0 {
            return Err(rules::RecipeError::BadRange {
                field: "method.hidden",
                lo: self.hidden as f64,
                hi: self.heads as f64,
                rule: "the width must divide into the heads",
            });
        }
        Ok(())
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        Ok(Box::new(TsTcc::new(&(vs.root() / "method"), encoder, self)?))
    }
}

/// The context transformer: step features → width `hidden`, a learned class token in front,
/// pre-norm blocks; the class token's output is the context.
struct Context {
    embed: nn::Linear,
    token: Tensor,
    blocks: Vec<TransformerBlock>,
}

impl Context {
    fn forward(&self, steps: &Tensor) -> Tensor {
        let n = steps.size()[0];
        let x = steps.apply(&self.embed);
        let token = self.token.expand([n, 1, x.size()[2]], false);
        let h = self
            .blocks
            .iter()
            .fold(Tensor::cat(&[token, x], 1), |h, b| b.forward(&h));
        h.select(1, 0)
    }
}

pub struct TsTcc {
    encoder: Box<dyn Encoder>,
    context: Context,
    /// W_k, k = 1..K: context → predicted step feature.
    predictors: Vec<nn::Linear>,
    projector: Head,
    cfg: TsTccConfig,
}

impl TsTcc {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &TsTccConfig) -> anyhow::Result<Self> {
        let conv = encoder
            .as_tstcc_conv()
            .ok_or_else(|| anyhow::anyhow!("ts_tcc needs encoder.kind = \"tstcc_conv\""))?;
        let c = conv.step_dim();
        let h = cfg.hidden;
        let context = Context {
            embed: crate::torch_init::linear(p / "context" / "embed", c, h, true),
            token: p.var("context_token", &[1, 1, h], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            blocks: (0..cfg.depth)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "context" / "blocks" / i),
                        h,
                        cfg.heads,
                        cfg.mlp as f64 / h as f64,
                        Attention::Fused,
                    )
                })
                .collect(),
        };
        let predictors = (0..cfg.timesteps)
            .map(|k| crate::torch_init::linear(p / "predictors" / k, h, c, true))
            .collect();
        // Linear(h, C/2) → BN → ReLU → Linear(C/4), as the authors' projection head.
        let projector = Head::new(
            &(p / "projector"),
            h,
            &[Block::new(c / 2, true, true, true), Block::new(c / 4, false, false, true)],
        );
        Ok(TsTcc {
            encoder,
            context,
            predictors,
            projector,
            cfg: cfg.clone(),
        })
    }

    /// Temporal contrasting of `from` predicting `to` (both `[N, T', C]`): the mean over series
    /// and the K future steps of −log softmax over the batch at the right series. Returns the
    /// loss and the context `[N, hidden]`.
    pub fn temporal(&self, from: &Tensor, to: &Tensor, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
        let (n, t) = (from.size()[0], from.size()[1]);
        let k = (self.cfg.timesteps as i64).min(t - 1).max(1);
        let start = rng.gen_range(0..(t - k).max(1));
        let context = self.context.forward(&from.narrow(1, 0, start + 1));
        let targets = Tensor::arange(n, (Kind::Int64, from.device())).unsqueeze(1);
        let mut loss = from.zeros_like().sum(from.kind());
        for i in 1..=k {
            let actual = to.select(1, start + i); // [N, C]
            let predicted = context.apply(&self.predictors[(i - 1) as usize]); // [N, C]
            // Row a: prediction a against every series' actual step (the paper's eq. 3).
            let scores = predicted.matmul(&actual.tr()).log_softmax(1, from.kind());
            loss = loss - scores.gather(1, &targets, false).sum(from.kind());
        }
        (loss / (n * k) as f64, context)
    }

    pub fn loss_with(&self, weak: &Tensor, strong: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let conv = self.encoder.as_tstcc_conv().expect("checked when built");
        let z1 = conv.steps(weak, true);
        let z2 = conv.steps(strong, true);
        let (tc1, c1) = self.temporal(&z1, &z2, rng);
        let (tc2, c2) = self.temporal(&z2, &z1, rng);
        let p1 = self.projector.forward_t(&c1, true);
        let p2 = self.projector.forward_t(&c2, true);
        let cc = nt_xent(&p1, &p2, self.cfg.temperature);
        (tc1 + tc2) * self.cfg.lambda_temporal + cc * self.cfg.lambda_contextual
    }
}

impl Method for TsTcc {
    fn name(&self) -> &'static str {
        "ts_tcc"
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        self.loss_with(&input.views[0], &input.views[1], &mut rng)
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::tstcc_conv::TstccConv;
    use tch::Device;

    fn model() -> (nn::VarStore, TsTcc) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Box::new(TstccConv::new(&(vs.root() / "encoder"), 1, 64, &[8, 16, 16], 8, 0.0));
        let cfg = TsTccConfig {
            hidden: 12,
            heads: 2,
            mlp: 8,
            timesteps: 3,
            ..Default::default()
        };
        let m = TsTcc::new(&(vs.root() / "method"), enc, &cfg).unwrap();
        (vs, m)
    }

    /// The temporal term written out: for each future step and series, −log of the softmax over
    /// the batch's actual features at that series.
    #[test]
    fn temporal_contrasting_matches_its_formula() {
        let (_vs, m) = model();
        let _guard = tch::no_grad_guard();
        let from = Tensor::randn([4, 10, 16], (Kind::Float, Device::Cpu));
        let to = Tensor::randn([4, 10, 16], (Kind::Float, Device::Cpu));
        let mut rng = keyed(7, Stream::Method, 0, 0, 0);
        let (loss, context) = m.temporal(&from, &to, &mut rng);
        // Re-draw the same start and recompute by hand.
        let mut rng = keyed(7, Stream::Method, 0, 0, 0);
        let start = rng.gen_range(0..(10 - 3));
        let mut total = 0.0;
        for i in 1..=3i64 {
            let pred = context.apply(&m.predictors[(i - 1) as usize]);
            let actual = to.select(1, start + i);
            for a in 0..4 {
                let scores: Vec<f64> = (0..4)
                    .map(|b| (actual.get(b) * pred.get(a)).sum(Kind::Double).double_value(&[]))
                    .collect();
                let lse = scores.iter().map(|s| s.exp()).sum::<f64>().ln();
                total += lse - scores[a as usize];
            }
        }
        let want = total / 12.0;
        assert!((loss.double_value(&[]) - want).abs() < 1e-4 * want.abs().max(1.0), "{loss} vs {want}");
        // The context saw only the steps up to the start: changing later steps leaves it.
        let later = from.copy();
        let _ = later.narrow(1, start + 1, 10 - start - 1).fill_(5.0);
        let mut rng = keyed(7, Stream::Method, 0, 0, 0);
        let (_, c2) = m.temporal(&later, &to, &mut rng);
        assert!(context.allclose(&c2, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_loss_is_finite_and_trains_every_part() {
        let (vs, m) = model();
        let weak = Tensor::randn([6, 1, 64], (Kind::Float, Device::Cpu));
        let strong = Tensor::randn([6, 1, 64], (Kind::Float, Device::Cpu));
        let mut rng = keyed(1, Stream::Method, 0, 0, 0);
        let loss = m.loss_with(&weak, &strong, &mut rng);
        assert!(loss.double_value(&[]).is_finite());
        loss.backward();
        for (name, v) in vs.variables() {
            if v.requires_grad() {
                let g = v.grad();
                assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name}");
            }
        }
    }
}
