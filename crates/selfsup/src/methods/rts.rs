//! Random token substitution (RTS) and its cluster-based variant (C-RTS), from "Effective
//! pre-training objectives for transformer-based autoencoders" (Di Liello, Gabburo & Moschitti,
//! 2022): a share of the tokens is replaced and the encoder says, for every token, whether it
//! was — a binary head instead of MLM's softmax over the vocabulary, which is where the saving
//! in pretraining time comes from.
//!
//! ```text
//! picked  = choose(words, rate, strategy)
//! x̃_i     = picked_i ? substitute(x_i) : x_i
//!           RTS:   a uniformly drawn other ordinary token
//!           C-RTS: another token of x_i's cluster (harder to spot than a random one)
//! L       = mean over ordinary tokens of BCE( w·h_i + b, picked_i )
//! ```
//! The paper clusters the token embeddings of a pretrained model. Without one, C-RTS here
//! clusters the model's own token embeddings (spherical k-means) at the start and every
//! `refresh_steps` steps, so the substitutes grow harder as the embeddings learn which tokens
//! are alike.
use super::text_batch::{text_encoder, HostBatch};
use super::{Method, Progress, StepInput};
use crate::data::text::tokenizer::N_SPECIAL;
use crate::encoders::Encoder;
use crate::rng::{keyed, Stream};
use crate::views::text_masking::{other_token, MaskStrategy, SpanLengths};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Substitutes {
    /// RTS: any other ordinary token.
    #[default]
    Uniform,
    /// C-RTS: another token of the same cluster.
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtsConfig {
    /// Share of ordinary tokens substituted (0.15, as the paper's MLM baseline masks).
    pub rate: f64,
    pub strategy: MaskStrategy,
    pub substitutes: Substitutes,
    /// C-RTS: number of clusters of the vocabulary.
    pub clusters: usize,
    /// C-RTS: steps between re-clusterings of the token embeddings.
    pub refresh_steps: u64,
}

impl Default for RtsConfig {
    fn default() -> Self {
        RtsConfig {
            rate: 0.15,
            strategy: MaskStrategy::Token,
            substitutes: Substitutes::Uniform,
            clusters: 100,
            refresh_steps: 500,
        }
    }
}

pub struct Rts {
    encoder: Box<dyn Encoder>,
    head: nn::Linear,
    cfg: RtsConfig,
    /// C-RTS: the cluster of every token (special tokens: -1), a non-trainable variable so a
    /// checkpoint holds it.
    cluster_of: Tensor,
    /// The members of every cluster, rebuilt when `cluster_of` changes (keyed by its hash).
    members: RefCell<(u64, Vec<Vec<u32>>)>,
}

/// Spherical k-means of the rows of `x` (`[V, D]`) into `k` clusters, `iters` rounds; centres
/// start at evenly spaced rows (deterministic). Returns the cluster of each row.
pub fn spherical_kmeans(x: &Tensor, k: usize, iters: usize) -> Vec<i64> {
    let _g = tch::no_grad_guard();
    let x = x.to_kind(Kind::Float);
    let x = &x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12);
    let v = x.size()[0];
    let k = (k as i64).clamp(1, v);
    let start: Vec<i64> = (0..k).map(|i| i * v / k).collect();
    let start = Tensor::from_slice(&start).to_device(x.device());
    let mut centres = x.index_select(0, &start);
    let mut assign = Tensor::zeros([v], (Kind::Int64, x.device()));
    for _ in 0..iters.max(1) {
        assign = x.matmul(&centres.tr()).argmax(1, false);
        let sums = Tensor::zeros([k, x.size()[1]], (Kind::Float, x.device())).index_add(0, &assign, &x);
        let norms = sums.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        // An emptied cluster keeps its centre.
        let empty = norms.le(1e-12);
        centres = (sums / norms.clamp_min(1e-12)).where_self(&empty.logical_not(), &centres);
    }
    Vec::try_from(assign).expect("int64 assignments")
}

impl Rts {
    pub fn new(p: &nn::Path, encoder: Box<dyn Encoder>, cfg: &RtsConfig) -> anyhow::Result<Rts> {
        let t = text_encoder(encoder.as_ref(), "rts")?;
        let (dim, vocab) = (t.dim(), t.vocab());
        let rts = Rts {
            head: crate::torch_init::xavier_linear(p / "head", dim, 1),
            cfg: cfg.clone(),
            cluster_of: p.zeros_no_train("cluster_of", &[vocab]),
            members: RefCell::new((u64::MAX, Vec::new())),
            encoder,
        };
        if cfg.substitutes == Substitutes::Cluster {
            rts.recluster();
        }
        Ok(rts)
    }

    /// Clusters the ordinary tokens' embeddings into `cluster_of`.
    pub fn recluster(&self) {
        let t = text_encoder(self.encoder.as_ref(), "rts").expect("checked");
        let e = t.token_embeddings().detach();
        let ordinary = e.narrow(0, N_SPECIAL as i64, t.vocab() - N_SPECIAL as i64);
        let assign = spherical_kmeans(&ordinary, self.cfg.clusters, 10);
        let mut all = vec![-1f32; N_SPECIAL as usize];
        all.extend(assign.iter().map(|&a| a as f32));
        tch::no_grad(|| {
            self.cluster_of
                .shallow_clone()
                .copy_(&Tensor::from_slice(&all).to_device(self.cluster_of.device()))
        });
    }

    /// The members of every cluster as `cluster_of` holds them now.
    fn with_members<T>(&self, f: impl FnOnce(&[i64], &[Vec<u32>]) -> T) -> T {
        let of: Vec<f32> = Vec::try_from(self.cluster_of.to_device(Device::Cpu)).expect("float clusters");
        let of: Vec<i64> = of.iter().map(|&c| c as i64).collect();
        let hash = of.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
            (h ^ (c as u64).wrapping_add(1)).wrapping_mul(0x100_0000_01b3)
        });
        let mut cache = self.members.borrow_mut();
        if cache.0 != hash {
            let k = of.iter().copied().max().unwrap_or(-1) + 1;
            let mut m = vec![Vec::new(); k.max(0) as usize];
            for (id, &c) in of.iter().enumerate() {
                if c >= 0 {
                    m[c as usize].push(id as u32);
                }
            }
            *cache = (hash, m);
        }
        f(&of, &cache.1)
    }

    /// The substitute for `id`: another ordinary token, drawn uniformly (RTS) or from `id`'s
    /// cluster (C-RTS; uniformly when the cluster has no other member).
    fn substitute(&self, id: u32, of: &[i64], members: &[Vec<u32>], rng: &mut ChaCha8Rng) -> u32 {
        let vocab = of.len() as u32;
        if self.cfg.substitutes == Substitutes::Cluster {
            if let Some(m) = of.get(id as usize).filter(|&&c| c >= 0).map(|&c| &members[c as usize]) {
                if m.len() > 1 {
                    let t = m[rng.gen_range(0..m.len() - 1)];
                    // Skip `id` itself: draw among the others.
                    return if t == id { m[m.len() - 1] } else { t };
                }
            }
        }
        other_token(id, vocab, rng)
    }

    /// The substituted ids and the positions substituted.
    pub fn corrupt(&self, b: &HostBatch, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<bool>) {
        let picked = b.pick(self.cfg.rate, self.cfg.strategy, SpanLengths::default(), rng);
        let input = self.with_members(|of, members| {
            b.ids
                .iter()
                .zip(&picked)
                .map(|(&id, &p)| if p { self.substitute(id, of, members, rng) } else { id })
                .collect()
        });
        (input, picked)
    }

    /// Per-token logits "was substituted" `[N, L]`.
    pub fn logits(&self, input: &Tensor) -> Tensor {
        let enc = text_encoder(self.encoder.as_ref(), "rts").expect("checked");
        let keys = input.ne(crate::data::text::tokenizer::PAD as i64);
        enc.encode_tokens(input, &keys, true).apply(&self.head).squeeze_dim(-1)
    }

    /// Mean binary cross-entropy over the ordinary tokens.
    pub fn loss_of(&self, b: &HostBatch, input: &[u32], picked: &[bool]) -> Tensor {
        let z = self.logits(&b.ids_tensor(input));
        let target = b.flags_tensor(picked).to_kind(Kind::Float);
        let scored = b.flags_tensor(&b.ordinary()).to_kind(Kind::Float);
        let bce = z.binary_cross_entropy_with_logits(&target, None::<Tensor>, None::<Tensor>, tch::Reduction::None);
        (bce * &scored).sum(Kind::Float) / scored.sum(Kind::Float).clamp_min(1.0)
    }
}

impl Method for Rts {
    fn name(&self) -> &'static str {
        match self.cfg.substitutes {
            Substitutes::Uniform => "rts",
            Substitutes::Cluster => "c_rts",
        }
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let b = HostBatch::from_views(input.views);
        let mut rng = keyed(input.seed, Stream::Method, 0, input.progress.step, 0);
        let (x, picked) = self.corrupt(&b, &mut rng);
        self.loss_of(&b, &x, &picked)
    }
    fn after_update(&self, progress: Progress) {
        if self.cfg.substitutes == Substitutes::Cluster
            && (progress.step + 1) % self.cfg.refresh_steps.max(1) == 0
        {
            self.recluster();
        }
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}

impl super::MethodSpec for RtsConfig {
    fn needs(&self) -> super::Needs {
        super::mlm::TEXT_TOKENS
    }
    fn validate(&self) -> crate::rules::R {
        super::mlm::check_rate("method.rate", self.rate)?;
        crate::rules::widths("method.clusters", [self.clusters as i64])?;
        crate::rules::widths("method.refresh_steps", [self.refresh_steps as i64])
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        _: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        Ok(Box::new(Rts::new(&(vs.root() / "method"), encoder, self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::text_batch::tests_support::{batch, tiny_encoder};
    use super::*;

    /// The loss against binary cross-entropy written out: −log σ(z) for a substituted token,
    /// −log(1 − σ(z)) for a kept one, averaged over the ordinary tokens only.
    #[test]
    fn loss_is_binary_cross_entropy_over_ordinary_tokens() {
        for substitutes in [Substitutes::Uniform, Substitutes::Cluster] {
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = RtsConfig {
                rate: 0.4,
                substitutes,
                clusters: 4,
                ..Default::default()
            };
            let m = Rts::new(&(vs.root() / "method"), tiny_encoder(&vs), &cfg).unwrap();
            let b = batch();
            let (x, picked) = m.corrupt(&b, &mut keyed(2, Stream::Method, 0, 0, 0));
            for (i, (&orig, (&new, &p))) in b.ids.iter().zip(x.iter().zip(&picked)).enumerate() {
                assert_eq!(p, new != orig, "position {i}: substitutes differ from the original");
                assert!(!p || new >= N_SPECIAL);
            }
            let got = m.loss_of(&b, &x, &picked).double_value(&[]);
            let z: Vec<f64> = Vec::try_from(m.logits(&b.ids_tensor(&x)).to_kind(Kind::Double).flatten(0, -1)).unwrap();
            let (mut sum, mut n) = (0.0, 0);
            for (i, &w) in b.words.iter().enumerate() {
                if w < 0 {
                    continue;
                }
                let s = 1.0 / (1.0 + (-z[i]).exp());
                sum -= if picked[i] { s.ln() } else { (1.0 - s).ln() };
                n += 1;
            }
            let want = sum / n as f64;
            assert!((got - want).abs() < 1e-5, "{substitutes:?}: {got} vs {want}");
        }
    }

    /// C-RTS substitutes come from the token's own cluster.
    #[test]
    fn cluster_substitutes_share_the_cluster() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = RtsConfig {
            rate: 0.5,
            substitutes: Substitutes::Cluster,
            clusters: 3,
            ..Default::default()
        };
        let m = Rts::new(&(vs.root() / "method"), tiny_encoder(&vs), &cfg).unwrap();
        let b = batch();
        let (x, picked) = m.corrupt(&b, &mut keyed(3, Stream::Method, 0, 0, 0));
        m.with_members(|of, members| {
            for i in 0..x.len() {
                if picked[i] && members[of[b.ids[i] as usize] as usize].len() > 1 {
                    assert_eq!(of[x[i] as usize], of[b.ids[i] as usize]);
                }
            }
        });
    }

    #[test]
    fn kmeans_separates_two_directions() {
        let a = Tensor::from_slice(&[1f32, 0.1, 0.9, 0.0, 1.0, -0.1, 0.0, 1.0, 0.1, 0.9, -0.1, 1.0]).view([6, 2]);
        let c = spherical_kmeans(&a, 2, 5);
        assert_eq!(c[0], c[1]);
        assert_eq!(c[1], c[2]);
        assert_eq!(c[3], c[4]);
        assert_eq!(c[4], c[5]);
        assert_ne!(c[0], c[3]);
    }
}
