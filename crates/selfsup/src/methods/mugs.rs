//! Mugs (Zhou et al. 2022, "Mugs: A Multi-Granular Self-Supervised Learning Framework"): one
//! encoder trained at three granularities against a momentum teacher, the three losses averaged.
//!
//! ```text
//! crops: 2 global (the teacher's), then local ones (the student sees all)
//! instance:     InfoNCE(pred_i(proj_i(f_s(x_s))), proj_i^T(f_t(x_t)), queue_i)   τ 0.2
//! local group:  r = f(x); its 8 nearest neighbours (cosine) in a memory of past r's;
//!               g = LN(Block([r; neighbours])[0]);
//!               InfoNCE(pred_g(proj_g(g_s)), proj_g^T(g_t), queue_g)              τ 0.2
//! group:        DINO's loss of the student's prototype scores against the centred,
//!               sharpened teacher's
//! pairs: every teacher crop t with every student crop s ≠ t; InfoNCE terms averaged over the
//! global and over the local student crops, the two halves then averaged (the authors' code)
//! after the step: queues ← the teacher's targets; memories ← view 0's r (student's and teacher's);
//! teacher ← EMA(student) of the encoder, the relation block and the three heads
//! ```
use super::ema::{cosine_momentum, EmaTarget};
use super::queue::FeatureQueue;
use super::{EncoderFactory, Method, MethodSpec, Needs, Progress, StepInput};
use crate::encoders::transformer::{layer_norm, Attention, TransformerBlock};
use crate::encoders::Encoder;
use crate::heads::dino_head::DinoHead;
use crate::heads::{Block, Head};
use crate::objectives::info_nce::l2_normalize_rows;
use crate::objectives::{dino_loss, moco_queue_loss, updated_center};
use crate::rules;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MugsConfig {
    /// Queue of teacher targets per InfoNCE loss (65,536 in the paper).
    #[serde(default = "default_queue")]
    pub queue: i64,
    /// Memory of past representations the local groups are drawn from (65,536 in the paper).
    #[serde(default = "default_queue")]
    pub memory: i64,
    /// Neighbours per local group (the authors' code: 8).
    #[serde(default = "default_knn")]
    pub neighbours: i64,
    /// τ of both InfoNCE losses (0.2).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Heads of the relation block over [representation; neighbours].
    #[serde(default = "default_heads")]
    pub relation_heads: i64,
    /// Projector of the instance and local-group heads (paper: 2048-2048-256).
    #[serde(default = "default_projector")]
    pub projector: Vec<Block>,
    /// Predictor on the student side (paper: 4096-256).
    #[serde(default = "default_predictor")]
    pub predictor: Vec<Block>,
    /// The group head: DINO's (hidden, bottleneck, prototypes; paper 2048, 256, 65,536).
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    #[serde(default = "default_bottleneck")]
    pub bottleneck: i64,
    #[serde(default = "default_prototypes")]
    pub prototypes: i64,
    #[serde(default = "yes")]
    pub batch_norm_in_head: bool,
    #[serde(default = "default_student_temperature")]
    pub student_temperature: f64,
    #[serde(default = "default_teacher_temperature")]
    pub teacher_temperature: f64,
    #[serde(default = "default_center_momentum")]
    pub center_momentum: f64,
    /// The teacher's starting momentum, raised to 1 by a cosine (paper 0.996).
    #[serde(default = "default_momentum")]
    pub base_momentum: f64,
}

fn default_queue() -> i64 {
    65_536
}
fn default_knn() -> i64 {
    8
}
fn default_temperature() -> f64 {
    0.2
}
fn default_heads() -> i64 {
    4
}
fn default_projector() -> Vec<Block> {
    vec![
        Block::new(2048, false, true, false),
        Block::new(2048, false, true, false),
        Block::new(256, false, false, false),
    ]
}
fn default_predictor() -> Vec<Block> {
    vec![Block::new(4096, false, true, true), Block::new(256, false, false, true)]
}
fn default_hidden() -> i64 {
    2048
}
fn default_bottleneck() -> i64 {
    256
}
fn default_prototypes() -> i64 {
    65_536
}
fn yes() -> bool {
    true
}
fn default_student_temperature() -> f64 {
    0.1
}
fn default_teacher_temperature() -> f64 {
    0.04
}
fn default_center_momentum() -> f64 {
    0.9
}
fn default_momentum() -> f64 {
    0.996
}

impl Default for MugsConfig {
    fn default() -> Self {
        MugsConfig {
            queue: default_queue(),
            memory: default_queue(),
            neighbours: default_knn(),
            temperature: default_temperature(),
            relation_heads: default_heads(),
            projector: default_projector(),
            predictor: default_predictor(),
            hidden: default_hidden(),
            bottleneck: default_bottleneck(),
            prototypes: default_prototypes(),
            batch_norm_in_head: true,
            student_temperature: default_student_temperature(),
            teacher_temperature: default_teacher_temperature(),
            center_momentum: default_center_momentum(),
            base_momentum: default_momentum(),
        }
    }
}

impl MethodSpec for MugsConfig {
    fn needs(&self) -> Needs {
        Needs {
            local_crops: true,
            ..Needs::JOINT
        }
    }
    fn validate(&self) -> rules::R {
        rules::widths("method.queue", [self.queue, self.memory, self.neighbours])?;
        rules::temperature("method.temperature", self.temperature)?;
        rules::temperature("method.student_temperature", self.student_temperature)?;
        rules::temperature("method.teacher_temperature", self.teacher_temperature)?;
        rules::widths("method.projector", self.projector.iter().map(|b| b.dim))?;
        rules::widths("method.predictor", self.predictor.iter().map(|b| b.dim))?;
        rules::widths("method.hidden", [self.hidden, self.bottleneck, self.prototypes])?;
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::momentum("method.center_momentum", self.center_momentum)?;
        // The predictor maps into the space of the teacher's projections.
        let width = |b: &[Block]| b.last().map_or(0, |b| b.dim);
        if width(&self.projector) != width(&self.predictor) {
            return Err(rules::RecipeError::PredictorWidth {
                projector: width(&self.projector),
                predictor: width(&self.predictor),
            });
        }
        if self.neighbours > self.memory {
            return Err(rules::RecipeError::TooManyNeighbours {
                neighbours: self.neighbours,
                memory: self.memory,
            });
        }
        Ok(())
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        let d = encoder.out_dim();
        anyhow::ensure!(
            d % self.relation_heads == 0,
            "method.relation_heads = {} does not divide the representation's width {d}",
            self.relation_heads
        );
        let root = vs.root() / "method";
        let side = |p: &nn::Path| Side {
            relation: TransformerBlock::new(&(p / "relation"), d, self.relation_heads, 4.0, Attention::Fused),
            relation_norm: layer_norm(p / "relation_norm", d),
            instance: Head::new(&(p / "instance_projector"), d, &self.projector),
            local: Head::new(&(p / "local_projector"), d, &self.projector),
            group: DinoHead::new(
                &(p / "group_head"),
                d,
                self.hidden,
                self.bottleneck,
                self.prototypes,
                3,
                self.batch_norm_in_head,
            ),
            memory: FeatureQueue::new(&(p / "memory"), self.memory, d),
        };
        let student = side(&root);
        let teacher_encoder = make_encoder(&(&root / "teacher" / "encoder"))?;
        let teacher = side(&(&root / "teacher"));
        let mut prefixes: Vec<(String, String)> =
            vec![("encoder".into(), "method.teacher.encoder".into())];
        for part in ["relation", "relation_norm", "instance_projector", "local_projector", "group_head"] {
            prefixes.push((format!("method.{part}"), format!("method.teacher.{part}")));
        }
        let pairs: Vec<(&str, &str)> = prefixes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let ema = EmaTarget::bind(vs, &pairs)?;
        let out = self.projector.last().map_or(d, |b| b.dim);
        Ok(Box::new(Mugs {
            student_encoder: encoder,
            teacher_encoder,
            instance_predictor: Head::new(&(&root / "instance_predictor"), out, &self.predictor),
            local_predictor: Head::new(&(&root / "local_predictor"), out, &self.predictor),
            student,
            teacher,
            ema,
            instance_queue: FeatureQueue::new(&(&root / "instance_queue"), self.queue, out),
            local_queue: FeatureQueue::new(&(&root / "local_queue"), self.queue, out),
            center: root.zeros_no_train("center", &[1, self.prototypes]),
            next_center: RefCell::new(None),
            cfg: self.clone(),
        }))
    }
}

/// What the student and the teacher each have: the relation block over local groups, the
/// three heads and the memory of past representations.
struct Side {
    relation: TransformerBlock,
    relation_norm: nn::LayerNorm,
    instance: Head,
    local: Head,
    group: DinoHead,
    memory: FeatureQueue,
}

impl Side {
    /// The local-group token of each representation `r` `[B, D]`: r and its nearest memory rows
    /// (cosine) through the relation block, its first output normalised.
    fn local_group(&self, r: &Tensor, k: i64, train: bool) -> Tensor {
        let memory = self.memory.rows().detach();
        let sim = l2_normalize_rows(&r.detach()).matmul(&l2_normalize_rows(&memory).tr());
        let (_, idx) = sim.topk(k, 1, true, true);
        let b = r.size()[0];
        let neighbours = memory.index_select(0, &idx.flatten(0, 1)).view([b, k, -1]);
        let seq = Tensor::cat(&[r.unsqueeze(1), neighbours], 1);
        self.relation
            .forward_masked(&seq, None, 0.0, train)
            .select(1, 0)
            .apply(&self.relation_norm)
    }
}

pub struct Mugs {
    student_encoder: Box<dyn Encoder>,
    teacher_encoder: Box<dyn Encoder>,
    instance_predictor: Head,
    local_predictor: Head,
    student: Side,
    teacher: Side,
    ema: EmaTarget,
    instance_queue: FeatureQueue,
    local_queue: FeatureQueue,
    center: Tensor,
    next_center: RefCell<Option<Tensor>>,
    cfg: MugsConfig,
}

/// InfoNCE of each student crop's prediction against each teacher crop's target (s ≠ t), with
/// the queue's negatives: global and local student crops averaged apart, then together.
fn paired_info_nce(preds: &[Tensor], targets: &[Tensor], queue: &Tensor, tau: f64) -> Tensor {
    let mean = |terms: Vec<Tensor>| {
        let n = terms.len() as f64;
        terms.into_iter().reduce(|a, b| a + b).map(|t| t / n)
    };
    let mut global = Vec::new();
    let mut local = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for (s, pred) in preds.iter().enumerate() {
            if s == t {
                continue;
            }
            let l = moco_queue_loss(pred, target, queue, tau);
            if s < targets.len() {
                global.push(l);
            } else {
                local.push(l);
            }
        }
    }
    match (mean(global), mean(local)) {
        (Some(g), Some(l)) => (g + l) * 0.5,
        (Some(g), None) => g,
        (None, Some(l)) => l,
        (None, None) => unreachable!("two crops at least"),
    }
}

impl Method for Mugs {
    fn name(&self) -> &'static str {
        "mugs"
    }
    fn accepts_local_crops(&self) -> bool {
        true
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        let views = input.views;
        let k = self.cfg.neighbours;
        let reps: Vec<Tensor> = views
            .iter()
            .map(|v| self.student_encoder.forward_t(v, true))
            .collect();
        let (t_reps, t_inst, t_local, t_group) = tch::no_grad(|| {
            let r: Vec<Tensor> = views[..2]
                .iter()
                .map(|v| self.teacher_encoder.forward_t(v, true))
                .collect();
            let inst: Vec<Tensor> = r
                .iter()
                .map(|x| l2_normalize_rows(&self.teacher.instance.forward_t(x, true)))
                .collect();
            let local: Vec<Tensor> = r
                .iter()
                .map(|x| {
                    let g = self.teacher.local_group(x, k, true);
                    l2_normalize_rows(&self.teacher.local.forward_t(&g, true))
                })
                .collect();
            let group: Vec<Tensor> = r.iter().map(|x| self.teacher.group.forward_t(x, true)).collect();
            (r, inst, local, group)
        });
        let s_inst: Vec<Tensor> = reps
            .iter()
            .map(|r| {
                self.instance_predictor
                    .forward_t(&self.student.instance.forward_t(r, true), true)
            })
            .collect();
        let s_local: Vec<Tensor> = reps
            .iter()
            .map(|r| {
                let g = self.student.local_group(r, k, true);
                self.local_predictor
                    .forward_t(&self.student.local.forward_t(&g, true), true)
            })
            .collect();
        let s_group: Vec<Tensor> = reps.iter().map(|r| self.student.group.forward_t(r, true)).collect();
        let tau = self.cfg.temperature;
        let instance = paired_info_nce(&s_inst, &t_inst, self.instance_queue.rows(), tau);
        let local = paired_info_nce(&s_local, &t_local, self.local_queue.rows(), tau);
        let group = dino_loss(
            &s_group,
            &t_group,
            &self.center,
            self.cfg.student_temperature,
            self.cfg.teacher_temperature,
        );
        // Stage the state the step commits.
        self.instance_queue.stage(&Tensor::cat(&t_inst, 0));
        self.local_queue.stage(&Tensor::cat(&t_local, 0));
        self.student.memory.stage(&reps[0]);
        self.teacher.memory.stage(&t_reps[0]);
        *self.next_center.borrow_mut() =
            Some(updated_center(&self.center, &t_group, self.cfg.center_momentum));
        (instance + local + group) / 3.0
    }
    fn after_update(&self, progress: Progress) {
        for q in [
            &self.instance_queue,
            &self.local_queue,
            &self.student.memory,
            &self.teacher.memory,
        ] {
            q.commit();
        }
        if let Some(c) = self.next_center.borrow_mut().take() {
            tch::no_grad(|| self.center.shallow_clone().copy_(&c));
        }
        self.ema
            .update(cosine_momentum(self.cfg.base_momentum, progress.fraction()));
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.student_encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.student_encoder.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::EncoderConfig;
    use tch::{Device, Kind};

    fn small() -> MugsConfig {
        MugsConfig {
            queue: 16,
            memory: 16,
            neighbours: 3,
            relation_heads: 2,
            projector: vec![Block::new(8, false, true, false), Block::new(4, false, false, false)],
            predictor: vec![Block::new(8, false, true, true), Block::new(4, false, false, true)],
            hidden: 8,
            bottleneck: 4,
            prototypes: 6,
            ..Default::default()
        }
    }

    #[test]
    fn the_paired_loss_averages_global_and_local_student_crops_apart() {
        tch::manual_seed(1);
        let r = |n| Tensor::randn([3, 4], (Kind::Double, Device::Cpu)).g_mul_scalar(n as f64);
        let preds = [r(1), r(2), r(3), r(4)];
        let targets = [r(5), r(6)];
        let queue = l2_normalize_rows(&Tensor::randn([5, 4], (Kind::Double, Device::Cpu)));
        let l = |s: usize, t: usize| moco_queue_loss(&preds[s], &targets[t], &queue, 0.2);
        // Global: (s1, t0), (s0, t1); local: s2 and s3 against both teacher crops.
        let want = ((l(1, 0) + l(0, 1)) / 2.0 + (l(2, 0) + l(3, 0) + l(2, 1) + l(3, 1)) / 4.0) * 0.5;
        let got = paired_info_nce(&preds, &targets, &queue, 0.2);
        assert!(f64::try_from(&(got - want).abs()).unwrap() < 1e-12);
    }

    #[test]
    fn a_step_trains_every_part_and_fills_the_queues_and_memories() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = EncoderConfig::SmallCnn { widths: vec![4, 8] };
        let f = |p: &nn::Path| crate::encoders::build(&cfg, p, &[1, 8, 8]);
        let m = super::super::build(&super::super::MethodConfig::Mugs(small()), &vs, &f).unwrap();
        let views: Vec<Tensor> = [8, 8, 6, 6]
            .iter()
            .map(|&s| Tensor::randn([5, 1, s, s], (Kind::Float, Device::Cpu)))
            .collect();
        let before = |name: &str| vs.variables()[name].copy();
        let (iq, mem) = (before("method.instance_queue.rows"), before("method.teacher.memory.rows"));
        let loss = m.loss(&StepInput::new(&views, Progress::at(0, 4, 4)));
        assert!(f64::try_from(&loss).unwrap().is_finite());
        loss.backward();
        for (name, v) in vs.variables() {
            if v.requires_grad() {
                assert!(v.grad().defined(), "{name} has no gradient");
                assert!(!name.starts_with("method.teacher"), "{name} is trained");
            }
        }
        m.after_update(Progress::at(0, 4, 4));
        let changed = |a: &Tensor, name: &str| {
            let b = &vs.variables()[name];
            i64::try_from((a - b).abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).gt(0.0).sum(Kind::Int64)).unwrap()
        };
        // Both teacher crops' targets (2 × 5 rows) went into the queue, view 0's teacher
        // representations (5 rows) into the teacher's memory.
        assert_eq!(changed(&iq, "method.instance_queue.rows"), 10);
        assert_eq!(changed(&mem, "method.teacher.memory.rows"), 5);
    }
}
