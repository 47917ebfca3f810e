//! The supervised half of learning with few labels: an encoder plus a fresh linear head trained
//! with labels on augmented views — fine-tuning, and the student and teacher of self-training —
//! under one of three objectives (cross-entropy; SLA's joint class × rotation labels; PS-KD's
//! targets softened by the model's own past predictions), optionally with SAM/ASAM around the
//! optimiser; and the classifier's logits on plain inputs.
use crate::encoders::Encoder;
use crate::objectives::{ps_kd, sla};
use crate::train::sam::SamConfig;
use crate::views::loader::{plain_batch, BatchStream};
use crate::views::ViewSource;
use anyhow::{anyhow, ensure, Result};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tch::nn::{self, Module};
use tch::{Device, Kind, Reduction, Tensor};

/// What the classifier is trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum SupervisedObjective {
    /// Cross-entropy with the labels.
    #[default]
    CrossEntropy,
    /// SLA (Lee et al. 2020): joint labels over class × the `rotations` quarter-turns of a square
    /// image; at test time the aggregated (SLA+AG) or the identity copy's (SLA+SI) logits.
    Sla {
        #[serde(default = "four")]
        rotations: usize,
        #[serde(default = "yes")]
        aggregate: bool,
    },
    /// PS-KD (Kim et al. 2021): targets (1 − α_t)·y + α_t·p_{t−1}, α_t = α_T·t/T.
    PsKd {
        #[serde(default = "alpha_t")]
        alpha_t: f64,
    },
}

fn four() -> usize {
    4
}
fn yes() -> bool {
    true
}
fn alpha_t() -> f64 {
    ps_kd::ALPHA_T
}

impl SupervisedObjective {
    pub fn is_cross_entropy(&self) -> bool {
        *self == SupervisedObjective::CrossEntropy
    }

    /// Outputs of the head per class.
    fn outputs_per_class(&self) -> i64 {
        match self {
            SupervisedObjective::Sla { rotations, .. } => *rotations as i64,
            _ => 1,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SupervisedObjective::CrossEntropy => "ce".into(),
            SupervisedObjective::Sla {
                rotations,
                aggregate,
            } => format!(
                "sla({rotations} rotations,{})",
                if *aggregate { "aggregated" } else { "single" }
            ),
            SupervisedObjective::PsKd { alpha_t } => format!("ps-kd(alpha_T={alpha_t})"),
        }
    }
}

/// The training half of a fine-tuning configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisedConfig {
    pub epochs: u64,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub layer_lr_scales: Option<Vec<f64>>,
    pub weight_decay: f64,
    pub exclude_bias_and_norm: bool,
    pub cosine: bool,
    pub objective: SupervisedObjective,
    pub sam: Option<SamConfig>,
}

/// A trained linear head over an encoder, and what it was trained for.
pub struct Classifier {
    pub head_vs: nn::VarStore,
    head: nn::Linear,
    objective: SupervisedObjective,
    n_classes: i64,
}

/// The samples `idx` of another source, with their own labels where given (pseudo-labels).
pub struct Subset {
    pub inner: Arc<dyn ViewSource>,
    pub idx: Vec<usize>,
    pub labels: Option<Vec<i64>>,
}

impl ViewSource for Subset {
    fn len(&self) -> usize {
        self.idx.len()
    }
    fn sample_shape(&self) -> Vec<i64> {
        self.inner.sample_shape()
    }
    fn view_shape(&self, view: usize) -> Vec<i64> {
        self.inner.view_shape(view)
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.inner.make_view(self.idx[index], view, rng, out)
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        self.inner.make_plain(self.idx[index], out)
    }
    fn label(&self, index: usize) -> Option<i64> {
        match &self.labels {
            Some(l) => Some(l[index]),
            None => self.inner.label(self.idx[index]),
        }
    }
    fn n_classes(&self) -> usize {
        self.inner.n_classes()
    }
}

/// Trains `encoder` (in place; its trainable variables are those of `encoder_vs`) and a fresh
/// head on every sample of `labelled`. With `soft` (`[n, classes]`, a distribution per sample of
/// `labelled`; cross-entropy only), the targets are those rows instead of the labels — a
/// teacher's soft pseudo-labels. Returns the classifier and the number of steps taken.
pub fn train_classifier(
    encoder: &dyn Encoder,
    encoder_vs: &nn::VarStore,
    labelled: Arc<dyn ViewSource>,
    n_classes: i64,
    cfg: &SupervisedConfig,
    soft: Option<&Tensor>,
    device: Device,
) -> Result<(Classifier, u64)> {
    let n = labelled.len();
    ensure!(
        n >= cfg.batch.max(1),
        "supervised training: {n} labelled samples, fewer than one batch of {}",
        cfg.batch
    );
    let labels: Option<Vec<i64>> = (0..n).map(|i| labelled.label(i)).collect();
    let labels = labels.ok_or_else(|| anyhow!("supervised training needs labelled samples"))?;
    if let Some(&bad) = labels.iter().find(|&&l| l < 0 || l >= n_classes) {
        return Err(anyhow!("label {bad} outside the {n_classes} classes"));
    }
    if let Some(t) = soft {
        ensure!(
            t.size() == [n as i64, n_classes],
            "soft targets of shape {:?} for {n} samples of {n_classes} classes",
            t.size()
        );
        ensure!(
            cfg.objective == SupervisedObjective::CrossEntropy,
            "soft targets go with the cross-entropy objective"
        );
    }
    let soft = soft.map(|t| t.to_kind(Kind::Float).to_device(device));
    tch::manual_seed(cfg.seed as i64);
    let head_vs = nn::VarStore::new(device);
    let m = cfg.objective.outputs_per_class();
    let head = crate::torch_init::linear(
        head_vs.root() / "head",
        encoder.out_dim(),
        n_classes * m,
        true,
    );
    let groups = cfg.layer_lr_scales.as_ref().map_or(1, |s| s.len());
    let exempt = cfg.exclude_bias_and_norm;
    let (mut opt_enc, enc_groups) =
        super::fine_tune::adamw(encoder_vs, cfg.lr, cfg.weight_decay, groups, exempt)?;
    let (mut opt_head, _) = super::fine_tune::adamw(&head_vs, cfg.lr, cfg.weight_decay, 1, exempt)?;
    let mut params = encoder_vs.trainable_variables();
    params.extend(head_vs.trainable_variables());
    // PS-KD's table of last epoch's predictions, one row per sample; epoch 0 reads the labels.
    let mut past = matches!(cfg.objective, SupervisedObjective::PsKd { .. }).then(|| {
        Tensor::from_slice(&labels)
            .one_hot(n_classes)
            .to_kind(Kind::Float)
            .to_device(device)
    });
    let total_steps = cfg.epochs * (n / cfg.batch.max(1)) as u64;
    let mut steps = 0;
    for epoch in 0..cfg.epochs {
        // View 0 of the recipe's augmentation; a seed stream apart from pretraining's.
        let stream = BatchStream::new(
            labelled.clone(),
            cfg.seed ^ 0x5eed_f17e,
            epoch,
            0,
            cfg.batch,
            1,
            None,
            1,
            2,
        );
        for b in stream {
            let y = b
                .labels
                .as_ref()
                .ok_or_else(|| anyhow!("training batch without labels"))?
                .to_device(device);
            let x = b.views[0].to_device(device);
            let rows = Tensor::from_slice(&b.indices.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to_device(device);
            // Inputs and targets of this step's loss.
            let (x, target) = match cfg.objective {
                SupervisedObjective::CrossEntropy => match &soft {
                    Some(t) => (x, Target::Soft(t.index_select(0, &rows))),
                    None => (x, Target::Hard(y)),
                },
                SupervisedObjective::Sla { rotations, .. } => {
                    let s = x.size();
                    ensure!(
                        s.len() == 4 && s[2] == s[3],
                        "SLA's rotations need square images, got views of shape {s:?}"
                    );
                    (
                        sla::rotations(&x, rotations),
                        Target::Hard(sla::joint_labels(&y, rotations)),
                    )
                }
                SupervisedObjective::PsKd { alpha_t } => {
                    let table = past.as_ref().expect("PS-KD keeps a table");
                    let a = ps_kd::alpha(epoch, cfg.epochs, alpha_t);
                    let onehot = y.one_hot(n_classes).to_kind(Kind::Float);
                    let prev = table.index_select(0, &rows);
                    let t = if epoch == 0 {
                        onehot
                    } else {
                        ps_kd::soft_targets(&onehot, &prev, a)
                    };
                    (x, Target::Soft(t))
                }
            };
            let loss_at = |x: &Tensor| -> (Tensor, Tensor) {
                let logits = head.forward(&encoder.forward_t(x, true));
                let loss = match &target {
                    Target::Hard(y) => {
                        logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
                    }
                    Target::Soft(t) => ps_kd::soft_cross_entropy(&logits, t),
                };
                (loss, logits)
            };
            let lr = if cfg.cosine {
                let f = steps as f64 / total_steps.max(1) as f64;
                cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())
            } else {
                cfg.lr
            };
            match &cfg.layer_lr_scales {
                Some(scales) => {
                    for (g, s) in scales.iter().enumerate() {
                        for group in [g, g + groups] {
                            // libtorch has the groups up to the highest one holding a tensor.
                            if group < enc_groups {
                                opt_enc.set_lr_group(group, lr * s);
                            }
                        }
                    }
                }
                None => opt_enc.set_lr(lr),
            }
            opt_head.set_lr(lr);
            opt_enc.zero_grad();
            opt_head.zero_grad();
            let (loss, logits) = loss_at(&x);
            loss.backward();
            let l = f64::try_from(&loss)?;
            ensure!(
                l.is_finite(),
                "training diverged at step {steps} (loss {l})"
            );
            if let Some(sam) = &cfg.sam {
                let moved = sam.ascend(&params);
                opt_enc.zero_grad();
                opt_head.zero_grad();
                loss_at(&x).0.backward();
                moved.restore();
            }
            opt_enc.step();
            opt_head.step();
            if let Some(table) = past.as_mut() {
                let p = logits.detach().softmax(-1, Kind::Float);
                let _ = table.index_copy_(0, &rows, &p);
            }
            steps += 1;
        }
    }
    let classifier = Classifier {
        head_vs,
        head,
        objective: cfg.objective,
        n_classes,
    };
    Ok((classifier, steps))
}

enum Target {
    Hard(Tensor),
    Soft(Tensor),
}

/// Class logits `[n, classes]` of the first `n` plain inputs of `source`, on the CPU. SLA
/// classifiers aggregate over the rotated copies or read the identity copy, as configured.
pub fn class_logits(
    encoder: &dyn Encoder,
    classifier: &Classifier,
    source: &dyn ViewSource,
    n: usize,
    batch: usize,
    device: Device,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut out = Vec::new();
    for s in (0..n).step_by(batch.max(1)) {
        let x = plain_batch(source, s..(s + batch.max(1)).min(n)).to_device(device);
        let logits = match classifier.objective {
            SupervisedObjective::Sla {
                rotations,
                aggregate,
            } => {
                if aggregate {
                    let z = classifier
                        .head
                        .forward(&encoder.forward_t(&sla::rotations(&x, rotations), false));
                    sla::aggregated_logits(&z, rotations)
                } else {
                    let z = classifier.head.forward(&encoder.forward_t(&x, false));
                    sla::single_logits(&z, rotations)
                }
            }
            _ => classifier.head.forward(&encoder.forward_t(&x, false)),
        };
        out.push(logits.to_device(Device::Cpu));
    }
    ensure!(!out.is_empty(), "no samples to classify");
    let logits = Tensor::cat(&out, 0);
    debug_assert_eq!(logits.size()[1], classifier.n_classes);
    Ok(logits)
}

/// Labels of the first `n` samples of `source`.
pub fn labels_of(source: &dyn ViewSource, n: usize) -> Result<Vec<i64>> {
    let l: Option<Vec<i64>> = (0..n).map(|i| source.label(i)).collect();
    l.ok_or_else(|| anyhow!("the split has no labels"))
}

/// Fraction of rows of `logits` whose argmax is the label.
pub fn accuracy(logits: &Tensor, labels: &[i64]) -> f64 {
    let y = Tensor::from_slice(labels);
    logits
        .argmax(1, false)
        .eq_tensor(&y)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

/// Fixtures of the supervised tests: a three-class image task and a tiny CNN for it.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::data::ImageSet;
    use crate::encoders::{self, Encoder, EncoderConfig};
    use crate::views::image_aug::ImageAugment;
    use crate::views::image_views::ImageViews;
    use crate::views::ViewSource;
    use std::sync::Arc;
    use tch::nn;

    /// Three classes of 10×10 images: a bright band in the left, middle or right third; with
    /// `varied`, its brightness changes from sample to sample.
    pub fn bands(n: usize, varied: bool) -> Arc<dyn ViewSource> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            labels.push(c as i64);
            let hi = if varied {
                150 + (i * 7 % 100) as u8
            } else {
                220
            };
            for _ in 0..10 {
                for x in 0..10 {
                    pixels.push(if (x * 3) / 10 == c { hi } else { 30 });
                }
            }
        }
        let set = ImageSet {
            pixels,
            len: n,
            channels: 1,
            height: 10,
            width: 10,
            labels: Some(labels),
            class_names: vec!["0".into(), "1".into(), "2".into()],
            sources: None,
        };
        // Flips would swap left and right bands: no flips, mild crops.
        let aug = ImageAugment {
            crop_scale: [0.8, 1.0],
            hflip_p: 0.0,
            blur_p: 0.0,
            jitter_p: 0.0,
            ..Default::default()
        };
        Arc::new(ImageViews::new(Arc::new(set), vec![aug]))
    }

    /// A two-layer small CNN for the bands, in `vs`.
    pub fn small_cnn(vs: &nn::VarStore) -> Box<dyn Encoder> {
        encoders::build(
            &EncoderConfig::SmallCnn { widths: vec![4, 8] },
            &(vs.root() / "encoder"),
            &[1, 10, 10],
        )
        .unwrap()
    }
}
