//! Fine-tuning: the whole pretrained encoder plus a fresh linear head, trained with labels
//! (cross-entropy, Adam) on augmented views of a stratified fraction of the training split, then
//! scored on the plain test inputs — the protocol that frozen-feature probes understate.
use super::calibration::softmax_ece_from_logits;
use super::label_fraction::stratified_subset;
use super::supervised::{
    accuracy, class_logits, labels_of, train_classifier, Classifier, Subset, SupervisedConfig,
    SupervisedObjective,
};
use crate::encoders::Encoder;
use crate::train::sam::SamConfig;
use crate::views::ViewSource;
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct FineTuneConfig {
    pub epochs: u64,
    pub batch: usize,
    pub lr: f64,
    /// Fraction of training labels used (stratified, seeded), as in SimCLR's semi-supervised
    /// protocol (1 %, 10 %).
    pub label_fraction: f64,
    pub seed: u64,
    pub ece_bins: usize,
    /// Layer-wise learning-rate decay (MAE's fine-tuning), for encoders that declare layers.
    pub layer_decay: Option<f64>,
    /// AdamW's decoupled weight decay (0: Adam).
    pub weight_decay: f64,
    /// Exempt biases, norm parameters (1-D tensors), the ViT's class token and its position
    /// embedding from the decay, as MAE's fine-tuning does (timm's `param_groups_lrd`).
    pub exclude_bias_and_norm: bool,
    /// Cosine decay of the learning rate to 0 (else constant).
    pub cosine: bool,
    /// Cross-entropy, SLA or PS-KD.
    pub objective: SupervisedObjective,
    /// SAM/ASAM around AdamW (two forward-backward passes a step).
    pub sam: Option<SamConfig>,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            epochs: 5,
            batch: 256,
            lr: 1e-3,
            label_fraction: 1.0,
            seed: 0,
            ece_bins: 15,
            layer_decay: None,
            weight_decay: 0.0,
            cosine: false,
            exclude_bias_and_norm: false,
            objective: SupervisedObjective::CrossEntropy,
            sam: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FineTuneResult {
    pub test_accuracy: f64,
    pub test_ece: f64,
    pub train_samples: usize,
    pub steps: u64,
    pub seconds: f64,
}

#[allow(clippy::too_many_arguments)]
/// Fine-tunes `encoder` (its variables are the trainable ones of `encoder_vs`; they are changed
/// in place) with a fresh linear head on the stratified label fraction, and scores it on the
/// first `n_test` test samples.
pub fn fine_tune(
    encoder: &dyn Encoder,
    encoder_vs: &nn::VarStore,
    train: Arc<dyn ViewSource>,
    test: &dyn ViewSource,
    n_test: usize,
    n_classes: i64,
    cfg: &FineTuneConfig,
    device: Device,
) -> Result<FineTuneResult> {
    let started = Instant::now();
    let labels = labels_of(train.as_ref(), train.len())
        .map_err(|_| anyhow!("fine-tuning needs labelled training data"))?;
    let idx = stratified_subset(&labels, cfg.label_fraction, cfg.seed).map_err(|e| anyhow!(e))?;
    let subset: Arc<dyn ViewSource> = Arc::new(Subset {
        inner: train,
        idx,
        labels: None,
    });
    let (classifier, steps) = train_classifier(
        encoder,
        encoder_vs,
        subset.clone(),
        n_classes,
        &cfg.supervised(encoder.lr_layers()),
        None,
        device,
    )?;
    let mut r = score(encoder, &classifier, test, n_test, cfg, device)?;
    r.train_samples = subset.len();
    r.steps = steps;
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Test accuracy and ECE of a trained classifier on the first `n_test` test samples.
pub fn score(
    encoder: &dyn Encoder,
    classifier: &Classifier,
    test: &dyn ViewSource,
    n_test: usize,
    cfg: &FineTuneConfig,
    device: Device,
) -> Result<FineTuneResult> {
    let logits = class_logits(encoder, classifier, test, n_test, cfg.batch, device)?;
    let ys = labels_of(test, n_test).map_err(|_| anyhow!("the test split has no labels"))?;
    Ok(FineTuneResult {
        test_accuracy: accuracy(&logits, &ys),
        test_ece: softmax_ece_from_logits(&logits, &Tensor::from_slice(&ys), cfg.ece_bins),
        train_samples: 0,
        steps: 0,
        seconds: 0.0,
    })
}

impl FineTuneConfig {
    /// The training half, for an encoder with `layers` learning-rate layers.
    pub fn supervised(&self, layers: Option<usize>) -> SupervisedConfig {
        SupervisedConfig {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            layer_lr_scales: layer_lr_scales(layers, self.layer_decay),
            weight_decay: self.weight_decay,
            exclude_bias_and_norm: self.exclude_bias_and_norm,
            cosine: self.cosine,
            objective: self.objective,
            sam: self.sam,
        }
    }
}

/// AdamW over `vs`. With `exempt`, every parameter exempt from weight decay — 1-D tensors
/// (biases, norm gains and shifts, layer scales) and tensors named `cls_token` or `pos_embed` —
/// moves from its learning-rate group `g < groups` to `g + groups`, whose decay is 0; the caller
/// sets both groups' learning rates. Idempotent: a parameter already moved stays where it is.
/// Returns the optimiser and its number of groups (libtorch's: one past the highest group that
/// holds a trainable tensor; setting a group beyond it fails).
pub fn adamw(
    vs: &nn::VarStore,
    lr: f64,
    weight_decay: f64,
    groups: usize,
    exempt: bool,
) -> Result<(nn::Optimizer, usize)> {
    let n_groups = {
        let mut vars = vs
            .variables_
            .lock()
            .map_err(|_| anyhow!("variable store lock poisoned"))?;
        if exempt {
            let exempt_ptrs: std::collections::HashSet<usize> = vars
                .named_variables
                .iter()
                .filter(|(name, t)| {
                    t.dim() <= 1 || name.ends_with("cls_token") || name.ends_with("pos_embed")
                })
                .map(|(_, t)| t.data_ptr() as usize)
                .collect();
            for v in vars.trainable_variables.iter_mut() {
                if v.group < groups && exempt_ptrs.contains(&(v.tensor.data_ptr() as usize)) {
                    v.group += groups;
                }
            }
        }
        let highest = vars.trainable_variables.iter().map(|v| v.group + 1).max();
        highest.unwrap_or(0)
    };
    let mut opt = nn::AdamW {
        wd: weight_decay,
        ..Default::default()
    }
    .build(vs, lr)?;
    if exempt {
        for g in groups..n_groups.min(2 * groups) {
            opt.set_weight_decay_group(g, 0.0);
        }
    }
    Ok((opt, n_groups))
}

/// Learning-rate multiplier per optimiser group, from the input side (group 0) to the output
/// side (group n−1): decay^(n−1−g). `None` when the encoder has no layers or no decay is asked.
pub fn layer_lr_scales(layers: Option<usize>, decay: Option<f64>) -> Option<Vec<f64>> {
    let (n, d) = (layers?, decay?);
    Some((0..n).map(|g| d.powi((n - 1 - g) as i32)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::supervised::fixtures::{bands, small_cnn};
    use tch::Kind;

    /// A random-initialised encoder fine-tuned on a separable task gets every test image right,
    /// and the label fraction is honoured.
    #[test]
    fn layer_decay_scales_from_input_to_output() {
        assert_eq!(
            layer_lr_scales(Some(4), Some(0.5)),
            Some(vec![0.125, 0.25, 0.5, 1.0])
        );
        assert_eq!(layer_lr_scales(None, Some(0.5)), None);
        assert_eq!(layer_lr_scales(Some(4), None), None);
    }

    /// One AdamW step with zero gradients moves nothing but the decoupled decay: weights shrink
    /// by 1 − lr·wd, biases, the class token and position embeddings keep their values.
    #[test]
    fn weight_decay_skips_biases_and_token_embeddings() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let lin = nn::linear(&root / "lin", 3, 4, Default::default());
        let g1 = root.set_group(1);
        let cls = g1.randn("cls_token", &[1, 1, 4], 0.0, 1.0);
        let pos = g1.randn("pos_embed", &[1, 5, 4], 0.0, 1.0);
        let w2 = g1.randn("w2", &[4, 4], 0.0, 1.0);
        let before: Vec<Tensor> = [&lin.ws, lin.bs.as_ref().unwrap(), &cls, &pos, &w2]
            .iter()
            .map(|t| t.detach().copy())
            .collect();
        let (lr, wd) = (0.1, 0.5);
        let (mut opt, n_groups) = adamw(&vs, lr, wd, 2, true).unwrap();
        assert_eq!(n_groups, 4);
        // Calling it again must not move the exempt parameters a second time.
        let (mut opt2, _) = adamw(&vs, lr, wd, 2, true).unwrap();
        opt2.zero_grad();
        opt.zero_grad();
        let zero = (lin.ws.sum(Kind::Float)
            + lin.bs.as_ref().unwrap().sum(Kind::Float)
            + cls.sum(Kind::Float)
            + pos.sum(Kind::Float)
            + w2.sum(Kind::Float))
            * 0.0;
        zero.backward();
        opt.step();
        let after = [&lin.ws, lin.bs.as_ref().unwrap(), &cls, &pos, &w2];
        let decayed = |i: usize| (&before[i] * (1.0 - lr * wd) - after[i]).abs().max();
        let kept = |i: usize| (&before[i] - after[i]).abs().max();
        assert!(decayed(0).double_value(&[]) < 1e-6, "weight not decayed");
        assert!(
            decayed(4).double_value(&[]) < 1e-6,
            "group-1 weight not decayed"
        );
        for i in 1..4 {
            assert_eq!(kept(i).double_value(&[]), 0.0, "exempt tensor {i} changed");
        }
    }

    #[test]
    fn fine_tuning_learns_a_separable_task() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = small_cnn(&vs);
        let test = bands(30, false);
        let cfg = FineTuneConfig {
            epochs: 15,
            batch: 16,
            lr: 1e-2,
            label_fraction: 0.5,
            ..Default::default()
        };
        let r = fine_tune(
            enc.as_ref(),
            &vs,
            bands(96, false),
            test.as_ref(),
            30,
            3,
            &cfg,
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(r.train_samples, 48);
        assert_eq!(r.steps, 15 * 3);
        assert_eq!(r.test_accuracy, 1.0, "{r:?}");
        assert!(r.test_ece.is_finite());
    }

    /// Every objective, and SAM and ASAM around the optimiser, fine-tune the separable task to
    /// (nearly) every test image right through the same entry point.
    #[test]
    fn every_objective_and_sam_learn_a_separable_task() {
        let variants = [
            (
                SupervisedObjective::Sla {
                    rotations: 4,
                    aggregate: true,
                },
                None,
            ),
            (
                SupervisedObjective::Sla {
                    rotations: 4,
                    aggregate: false,
                },
                None,
            ),
            (SupervisedObjective::PsKd { alpha_t: 0.8 }, None),
            (
                SupervisedObjective::CrossEntropy,
                Some(SamConfig::default()),
            ),
            (
                SupervisedObjective::CrossEntropy,
                Some(SamConfig {
                    rho: 0.5,
                    adaptive: true,
                    eta: 0.01,
                }),
            ),
        ];
        for (objective, sam) in variants {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let enc = small_cnn(&vs);
            let test = bands(30, false);
            let cfg = FineTuneConfig {
                epochs: 15,
                batch: 16,
                lr: 1e-2,
                label_fraction: 0.5,
                objective,
                sam,
                ..Default::default()
            };
            let r = fine_tune(
                enc.as_ref(),
                &vs,
                bands(96, false),
                test.as_ref(),
                30,
                3,
                &cfg,
                Device::Cpu,
            )
            .unwrap();
            assert_eq!(r.steps, 15 * 3);
            assert!(r.test_accuracy >= 0.9, "{objective:?} {sam:?}: {r:?}");
        }
    }
}
