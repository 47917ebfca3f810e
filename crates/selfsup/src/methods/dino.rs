//! DINO (Caron et al. 2021, Algorithm 1): a student matches the centred, sharpened output of a
//! momentum teacher across crops — the teacher sees the global crops, the student every crop.
use super::branch::{Branch, MomentumBranch};
use super::ema::cosine_momentum;
use super::{EncoderFactory, Method, Progress, StepInput};
use crate::distributed::{Alone, Collective};
use crate::encoders::Encoder;
use crate::heads::dino_head::DinoHead;
use crate::objectives::dino::{dino_loss, teacher_temperature, updated_center};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoConfig {
    /// Head: hidden 2048, bottleneck 256, K = 65,536 outputs (§3.1); scaled down for small data.
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    #[serde(default = "default_bottleneck")]
    pub bottleneck: i64,
    #[serde(default = "default_out_dim")]
    pub out_dim: i64,
    /// τ_s = 0.1 (§3.1).
    #[serde(default = "default_student_temp")]
    pub student_temperature: f64,
    /// τ_t warms up linearly from 0.04 to 0.07 over the first 30 epochs (App. B).
    #[serde(default = "default_warmup_teacher_temp")]
    pub warmup_teacher_temperature: f64,
    #[serde(default = "default_teacher_temp")]
    pub teacher_temperature: f64,
    #[serde(default = "default_warmup_teacher_epochs")]
    pub warmup_teacher_epochs: f64,
    /// Centre momentum m = 0.9 (§3.1).
    #[serde(default = "default_center_momentum")]
    pub center_momentum: f64,
    /// Teacher momentum λ from 0.996 to 1 on a cosine schedule (§3.1).
    #[serde(default = "default_base_momentum")]
    pub base_momentum: f64,
    /// Batch norm after each hidden layer of the head (reference code, `use_bn_in_head`; off
    /// there by default, for ViTs, whose layer-normed output is centred already).
    #[serde(default)]
    pub batch_norm_in_head: bool,
    /// The last layer is frozen during the first epoch (reference code, `freeze_last_layer`).
    #[serde(default = "default_freeze_epochs")]
    pub freeze_last_layer_epochs: f64,
}

impl Default for DinoConfig {
    fn default() -> Self {
        DinoConfig {
            hidden: default_hidden(),
            bottleneck: default_bottleneck(),
            out_dim: default_out_dim(),
            student_temperature: default_student_temp(),
            warmup_teacher_temperature: default_warmup_teacher_temp(),
            teacher_temperature: default_teacher_temp(),
            warmup_teacher_epochs: default_warmup_teacher_epochs(),
            center_momentum: default_center_momentum(),
            base_momentum: default_base_momentum(),
            batch_norm_in_head: false,
            freeze_last_layer_epochs: default_freeze_epochs(),
        }
    }
}

pub fn default_hidden() -> i64 {
    1024
}
pub fn default_bottleneck() -> i64 {
    256
}
pub fn default_out_dim() -> i64 {
    4096
}
pub fn default_student_temp() -> f64 {
    0.1
}
pub fn default_warmup_teacher_temp() -> f64 {
    0.04
}
pub fn default_teacher_temp() -> f64 {
    0.07
}
pub fn default_warmup_teacher_epochs() -> f64 {
    30.0
}
pub fn default_center_momentum() -> f64 {
    0.9
}
pub fn default_base_momentum() -> f64 {
    0.996
}
pub fn default_freeze_epochs() -> f64 {
    1.0
}

pub struct Dino {
    student: Branch,
    last_layer: Tensor,
    teacher: MomentumBranch,
    center: Tensor,
    next_center: RefCell<Option<Tensor>>,
    cfg: DinoConfig,
}

impl Dino {
    pub fn new(
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &EncoderFactory,
        cfg: &DinoConfig,
    ) -> anyhow::Result<Self> {
        let p = vs.root() / "method";
        let d = encoder.out_dim();
        let c = cfg.clone();
        let make_head = move |p: &nn::Path| {
            DinoHead::new(
                p,
                d,
                c.hidden,
                c.bottleneck,
                c.out_dim,
                3,
                c.batch_norm_in_head,
            )
        };
        let head = make_head(&(&p / "head"));
        let last_layer = head.last_layer.shallow_clone();
        let teacher =
            MomentumBranch::new(vs, make_encoder, "head", move |p| Box::new(make_head(p)))?;
        let center = p.zeros_no_train("center", &[1, cfg.out_dim]);
        Ok(Dino {
            student: Branch {
                encoder,
                head: Box::new(head),
            },
            last_layer,
            teacher,
            center,
            next_center: RefCell::new(None),
            cfg: cfg.clone(),
        })
    }
}

impl Method for Dino {
    fn name(&self) -> &'static str {
        "dino"
    }
    fn accepts_local_crops(&self) -> bool {
        true
    }
    fn loss(&self, input: &StepInput) -> Tensor {
        self.loss_across(input, &Alone)
            .expect("one process gathers nothing")
    }
    /// Each crop's cross-entropy is per sample, so the mean over ranks is the one-process loss;
    /// the centre moves towards the mean teacher output over every rank's rows (gathered), as
    /// the authors' all-reduced `update_center`, so it stays identical on every rank.
    fn loss_across(&self, input: &StepInput, comm: &dyn Collective) -> Result<Tensor> {
        let views = input.views;
        let student: Vec<Tensor> = views
            .iter()
            .map(|v| self.student.forward(v, true))
            .collect();
        let teacher: Vec<Tensor> = views[..2].iter().map(|v| self.teacher.forward(v)).collect();
        let c = &self.cfg;
        let t_temp = teacher_temperature(
            input.progress.epoch(),
            c.warmup_teacher_epochs,
            c.warmup_teacher_temperature,
            c.teacher_temperature,
        );
        let all_teacher = teacher
            .iter()
            .map(|t| comm.gather(&t.detach()))
            .collect::<Result<Vec<_>>>()?;
        *self.next_center.borrow_mut() =
            Some(updated_center(&self.center, &all_teacher, c.center_momentum));
        Ok(dino_loss(
            &student,
            &teacher,
            &self.center,
            c.student_temperature,
            t_temp,
        ))
    }
    fn trains_across_ranks(&self) -> bool {
        true
    }
    fn before_update(&self, progress: Progress) {
        if progress.epoch() < self.cfg.freeze_last_layer_epochs {
            let mut g = self.last_layer.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
    fn after_update(&self, progress: Progress) {
        self.teacher
            .update(cosine_momentum(self.cfg.base_momentum, progress.fraction()));
        if let Some(c) = self.next_center.borrow_mut().take() {
            tch::no_grad(|| self.center.shallow_clone().copy_(&c));
        }
    }
    fn embed(&self, x: &Tensor) -> Tensor {
        self.student.encoder.forward_t(x, false)
    }
    fn encoder(&self) -> &dyn Encoder {
        self.student.encoder.as_ref()
    }
}

impl super::MethodSpec for DinoConfig {
    fn needs(&self) -> super::Needs {
        super::Needs {
            local_crops: true,
            ..super::Needs::JOINT
        }
    }
    fn validate(&self) -> crate::rules::R {
        use crate::rules;
        rules::temperature("method.student_temperature", self.student_temperature)?;
        rules::temperature("method.teacher_temperature", self.teacher_temperature)?;
        rules::temperature(
            "method.warmup_teacher_temperature",
            self.warmup_teacher_temperature,
        )?;
        rules::momentum("method.center_momentum", self.center_momentum)?;
        rules::momentum("method.base_momentum", self.base_momentum)?;
        rules::widths("method.hidden", [self.hidden])?;
        rules::widths("method.bottleneck", [self.bottleneck])?;
        rules::widths("method.out_dim", [self.out_dim])?;
        rules::non_negative("method.warmup_teacher_epochs", self.warmup_teacher_epochs)?;
        rules::non_negative(
            "method.freeze_last_layer_epochs",
            self.freeze_last_layer_epochs,
        )
    }
    fn build(
        &self,
        vs: &nn::VarStore,
        encoder: Box<dyn Encoder>,
        make_encoder: &super::EncoderFactory,
    ) -> anyhow::Result<Box<dyn super::Method>> {
        Ok(Box::new(Dino::new(vs, encoder, make_encoder, self)?))
    }
}
