//! OBoW (Gidaris et al., CVPR 2021): a momentum teacher turns its feature maps into bags of
//! visual words over a vocabulary it keeps filling online; the student predicts the teacher's
//! bag from other crops of the image.
//!
//! ```text
//! per level l (the encoder's last `levels` feature maps):
//!   d     = ‖teacher_map_l(view 0)(u) − V_l[k]‖²      inner locations u, words k
//!   δ_l  ← 0.99·δ_l + 0.01·mean_u min_k d            (before the codes, as the authors' code)
//!   bow_l = L1( max_u softmax_k(−d · inv_delta / δ_l) )
//!   W_l   = normalise(G_l(normalise(V_l)))            G_l: Linear → BN → ReLU → Linear
//!   loss  = Σ_groups mean_l CE(bow_l, softmax(κ · student(crop) W_lᵀ))
//! groups: the student's view (view 1), and its local crops if any (averaged within a group)
//! V_l ← enqueue one random location of avg_pool3×3(teacher_map_l), per image  (after the step)
//! teacher ← EMA(student), momentum 0.99 → 1 (cosine)
//! ```
use super::ema::{cosine_momentum, EmaTarget};
use super::queue::FeatureQueue;
use super::{EncoderFactory, Method, MethodSpec, Needs, Progress, StepInput};
use crate::encoders::Encoder;
use crate::heads::{Block, Head};
use crate::objectives::info_nce::l2_normalize_rows;
use crate::objectives::obow::{bag_of_words, bow_prediction_loss, mean_min_distance, word_distances};
use crate::rng::{keyed, Stream};
use crate::rules;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, nn::ModuleT, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObowConfig {
    /// Words per level (8,192 in the paper for ImageNet; fewer for small data sets).
    #[serde(default = "default_words")]
    pub words: i64,
    /// How many of the encoder's last feature maps make bags (the paper: ResNet's last two).
    #[serde(default = "default_levels")]
    pub levels: usize,
    /// The assignment's sharpness relative to δ (the authors' ResNet-18 configs: 10).
    #[serde(default = "default_inv_delta")]
    pub inv_delta: f64,
    /// The prediction logits' fixed scale κ (the authors' ResNet-18 configs: 5).
    #[serde(default = "default_kappa")]
    pub kappa: f64,
    /// The teacher's starting momentum, raised to 1 by a cosine (0.99 in the paper).
    #[serde(default = "default_momentum")]
    pub base_momentum: f64,
}

fn default_words() -> i64 {
    8192
}
fn default_levels() -> usize {
    2
}
fn default_inv_delta() -> f64 {
    10.0
}
fn default_kappa() -> f64 {
    5.0
}
fn default_momentum() -> f64 {
    0.99
}

impl Default for ObowConfig {
    fn default() -> Self {
        ObowConfig {
            words: default_words(),
            levels: default_levels(),
            inv_delta: default_inv_delta(),
            kappa: default_kappa(),
            base_momentum: default_momentum(),
        }
    }
}

/// δ's running mean: the authors' decay, and its starting value.
const DELTA_DECAY: f64 = 0.99;
const DELTA_START: f64 = 0.5;

impl MethodSpec for ObowConfig {
    fn needs(&self) -> Needs {
        Needs {
            local_crops: true,
            encoders: &["small_cnn"],
            ..Needs::JOINT
        }
    }
    fn validate(&self) -> rules::R {
        rules::widths("method.words", [self.words])?;
        rules::widths("method.levels", [self.levels as i64])?;
        rules::positive("method.inv_delta", self.inv_delta)?;
        rules::positive("method.kappa", self.kappa)?;
        rules::momentum("method.base_momentum", self.base_momentum)
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        let p = vs.root() / "method";
        let teacher = make_encoder(&(&p / "teacher" / "encoder"))?;
        let ema = EmaTarget::bind(vs, &[("encoder", "method.teacher.encoder")])?;
        // The levels' widths, from one small forward pass of the teacher.
        let probe = Tensor::zeros([2, 1, 16, 16], (Kind::Float, vs.device()));
        let maps = tch::no_grad(|| teacher.feature_maps(&probe, false)).ok_or_else(|| {
            anyhow::anyhow!("obow needs an encoder with feature maps (small_cnn)")
        })?;
        anyhow::ensure!(
            self.levels <= maps.len(),
            "method.levels = {}, but the encoder has {} feature maps",
            self.levels,
            maps.len()
        );
        let widths: Vec<i64> = maps[maps.len() - self.levels..]
            .iter()
            .map(|m| m.size()[1])
            .collect();
        let d = encoder.out_dim();
        let mut vocab = Vec::new();
        let mut generators = Vec::new();
        let mut delta = Vec::new();
        for (l, &c) in widths.iter().enumerate() {
            let q = FeatureQueue::new(&(&p / format!("vocab{l}")), self.words, c);
            // The authors' start: N(0, 1) clipped at 0, like post-ReLU features.
            tch::no_grad(|| {
                let init = Tensor::randn([self.words, c], (Kind::Float, vs.device())).clamp_min(0.0);
                q.rows().shallow_clone().copy_(&init);
            });
            vocab.push(q);
            generators.push(Head::new(
                &(&p / format!("generator{l}")),
                c,
                &[Block::new(2 * d, true, true, false), Block::new(d, false, false, true)],
            ));
            let mut t = p.zeros_no_train(&format!("delta{l}"), &[1]);
            let _ = tch::no_grad(|| t.fill_(DELTA_START));
            delta.push(t);
        }
        Ok(Box::new(Obow {
            student: encoder,
            teacher,
            ema,
            vocab,
            generators,
            delta,
            staged_delta: RefCell::new(Vec::new()),
            cfg: self.clone(),
        }))
    }
}

pub struct Obow {
    student: Box<dyn Encoder>,
    teacher: Box<dyn Encoder>,
    ema: EmaTarget,
    vocab: Vec<FeatureQueue>,
    generators: Vec<Head>,
    /// δ per level, `[1]`, in the `VarStore`.
    delta: Vec<Tensor>,
    staged_delta: RefCell<Vec<f64>>,
    cfg: ObowConfig,
}

impl Obow {
    /// The teacher's bag per level for `x`, staging δ and the words to enqueue.
    fn targets(&self, x: &Tensor, seed: u64, step: u64) -> Vec<Tensor> {
        let _g = tch::no_grad_guard();
        let maps = self
            .teacher
            .feature_maps(x, true)
            .expect("checked at build");
        let maps = &maps[maps.len() - self.cfg.levels..];
        let mut staged = Vec::new();
        let mut bows = Vec::new();
        for (l, map) in maps.iter().enumerate() {
            let dist = word_distances(map, self.vocab[l].rows());
            let old = f64::try_from(&self.delta[l]).unwrap_or(DELTA_START);
            let delta = DELTA_DECAY * old + (1.0 - DELTA_DECAY) * mean_min_distance(&dist);
            staged.push(delta);
            bows.push(bag_of_words(&dist, self.cfg.inv_delta / delta.max(1e-12)));
            // One random location of the locally averaged inner map per image.
            let (h, w) = (map.size()[2], map.size()[3]);
            let inner = map.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
            // 3×3 in the authors' code; smaller where the map is (a 4×4 map has 2×2 inside).
            let k = 3.min(h - 2).min(w - 2).max(1);
            let pooled = inner.avg_pool2d([k, k], [1, 1], [0, 0], false, true, None::<i64>);
            let (ph, pw) = (pooled.size()[2], pooled.size()[3]);
            let mut rng = keyed(seed, Stream::Method, 0, step, l as u64);
            let b = pooled.size()[0];
            let at: Vec<i64> = (0..b).map(|_| rng.gen_range(0..ph * pw)).collect();
            let flat = pooled.flatten(2, 3); // [B, C, ph·pw]
            let idx = Tensor::from_slice(&at)
                .to_device(flat.device())
                .view([b, 1, 1])
                .expand([b, flat.size()[1], 1], false);
            self.vocab[l].stage(&flat.gather(2, &idx, false).squeeze_dim(2));
        }
        *self.staged_delta.borrow_mut() = staged;
        bows
    }

    /// The unit-norm prediction weights of level `l`, made from its words.
    fn weights(&self, l: usize) -> Tensor {
        let words = l2_normalize_rows(&self.vocab[l].rows().detach());
        l2_normalize_rows(&self.generators[l].forward_t(&words, true))
    }
}

impl Method for Obow {
    fn name(&self) -> &'static str {
        "obow"
    }
    fn accepts_local_crops(&self) -> bool {
        true
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let views = input.views;
        let bows = self.targets(&views[0], input.seed, input.progress.step);
        let weights: Vec<Tensor> = (0..bows.len()).map(|l| self.weights(l)).collect();
        // The student's groups: its view, then the local crops (one group, averaged).
        let mut groups = vec![self.student.forward_t(&views[1], true)];
        if views.len() > 2 {
            let crops: Vec<Tensor> = views[2..]
                .iter()
                .map(|v| self.student.forward_t(v, true))
                .collect();
            groups.push(Tensor::cat(&crops, 0));
        }
        let mut total = None;
        for z in &groups {
            let copies = z.size()[0] / bows[0].size()[0];
            let mut group = None;
            for (bow, w) in bows.iter().zip(&weights) {
                let target = bow.repeat([copies, 1]);
                let l = bow_prediction_loss(z, w, self.cfg.kappa, &target);
                group = Some(match group {
                    None => l,
                    Some(g) => g + l,
                });
            }
            let g = group.expect("a level at least") / bows.len() as f64;
            total = Some(match total {
                None => g,
                Some(t) => t + g,
            });
        }
        total.expect("a group at least")
    }
    fn after_update(&self, progress: Progress) {
        for (d, v) in self.delta.iter().zip(self.staged_delta.borrow().iter()) {
            let _ = tch::no_grad(|| d.shallow_clone().fill_(*v));
        }
        for q in &self.vocab {
            q.commit();
        }
        self.ema
            .update(cosine_momentum(self.cfg.base_momentum, progress.fraction()));
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.student.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.student.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::EncoderConfig;
    use tch::Device;

    fn model(words: i64) -> (nn::VarStore, Box<dyn Method>) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = EncoderConfig::SmallCnn {
            widths: vec![4, 8, 8],
        };
        let f = |p: &nn::Path| crate::encoders::build(&cfg, p, &[1, 12, 12]);
        let m = ObowConfig {
            words,
            ..Default::default()
        };
        let method = super::super::build(&super::super::MethodConfig::Obow(m), &vs, &f).unwrap();
        (vs, method)
    }

    #[test]
    fn a_step_fills_the_vocabulary_with_teacher_features_and_moves_delta() {
        let (vs, m) = model(8);
        let views = [
            Tensor::randn([4, 1, 12, 12], (Kind::Float, Device::Cpu)),
            Tensor::randn([4, 1, 10, 10], (Kind::Float, Device::Cpu)),
            Tensor::randn([4, 1, 6, 6], (Kind::Float, Device::Cpu)),
        ];
        let mut input = StepInput::new(&views, Progress::at(0, 10, 10));
        input.seed = 3;
        let before = vs.variables()["method.vocab0.rows"].copy();
        let loss = m.loss(&input);
        assert!(f64::try_from(&loss).unwrap().is_finite());
        loss.backward();
        m.after_update(Progress::at(0, 10, 10));
        let after = &vs.variables()["method.vocab0.rows"];
        // Four rows (one per image) were replaced, the other four kept.
        let changed = (after - &before).abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).gt(0.0);
        assert_eq!(i64::try_from(changed.sum(Kind::Int64)).unwrap(), 4);
        let delta = f64::try_from(&vs.variables()["method.delta0"]).unwrap();
        assert!(delta != DELTA_START && delta.is_finite(), "{delta}");
        // The generator and the student learn; the teacher does not.
        for (name, v) in vs.variables() {
            if name.starts_with("method.generator") && v.requires_grad() {
                assert!(v.grad().defined(), "{name}");
            }
            if name.starts_with("method.teacher") {
                assert!(!v.requires_grad(), "{name}");
            }
        }
    }

    #[test]
    fn an_encoder_without_feature_maps_is_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = EncoderConfig::Mlp {
            dims: vec![4],
            batch_norm: false,
        };
        let f = |p: &nn::Path| crate::encoders::build(&cfg, p, &[3]);
        let m = super::super::MethodConfig::Obow(ObowConfig::default());
        assert!(super::super::build(&m, &vs, &f).is_err());
    }
}
