//! Fine-tuning: the whole pretrained encoder plus a fresh linear head, trained with labels
//! (cross-entropy, Adam) on augmented views of a stratified fraction of the training split, then
//! scored on the plain test inputs — the protocol that frozen-feature probes understate.
use super::calibration::softmax_ece_from_logits;
use super::label_fraction::stratified_subset;
use crate::encoders::Encoder;
use crate::views::loader::{plain_batch, BatchStream};
use crate::views::ViewSource;
use anyhow::{anyhow, ensure, Result};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

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

/// The samples `idx` of another source.
struct Subset {
    inner: Arc<dyn ViewSource>,
    idx: Vec<usize>,
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
        self.inner.label(self.idx[index])
    }
    fn n_classes(&self) -> usize {
        self.inner.n_classes()
    }
}

#[allow(clippy::too_many_arguments)]
/// Fine-tunes `encoder` (its variables are the trainable ones of `encoder_vs`; they are changed
/// in place) with a fresh linear head, and scores it on the first `n_test` test samples.
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
    let labels: Option<Vec<i64>> = (0..train.len()).map(|i| train.label(i)).collect();
    let labels = labels.ok_or_else(|| anyhow!("fine-tuning needs labelled training data"))?;
    let idx = stratified_subset(&labels, cfg.label_fraction, cfg.seed).map_err(|e| anyhow!(e))?;
    let n_train = idx.len();
    ensure!(
        n_train >= cfg.batch.max(1),
        "fine-tuning: {n_train} labelled samples, fewer than one batch of {}",
        cfg.batch
    );
    let subset: Arc<dyn ViewSource> = Arc::new(Subset { inner: train, idx });
    tch::manual_seed(cfg.seed as i64);
    let head_vs = nn::VarStore::new(device);
    let head =
        crate::torch_init::linear(head_vs.root() / "head", encoder.out_dim(), n_classes, true);
    let layer_scales = layer_lr_scales(encoder.lr_layers(), cfg.layer_decay);
    let groups = layer_scales.as_ref().map_or(1, |s| s.len());
    let exempt = cfg.exclude_bias_and_norm;
    let (mut opt_enc, enc_groups) = adamw(encoder_vs, cfg.lr, cfg.weight_decay, groups, exempt)?;
    let (mut opt_head, _) = adamw(&head_vs, cfg.lr, cfg.weight_decay, 1, exempt)?;
    let total_steps = cfg.epochs * (n_train / cfg.batch.max(1)) as u64;
    let mut steps = 0;
    for epoch in 0..cfg.epochs {
        // View 0 of the recipe's augmentation; a seed stream apart from pretraining's.
        let stream = BatchStream::new(
            subset.clone(),
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
                .ok_or_else(|| anyhow!("fine-tuning batch without labels"))?
                .to_device(device);
            let x = b.views[0].to_device(device);
            let logits = head.forward(&encoder.forward_t(&x, true));
            let loss = logits.cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0);
            let lr = if cfg.cosine {
                let f = steps as f64 / total_steps.max(1) as f64;
                cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())
            } else {
                cfg.lr
            };
            match &layer_scales {
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
            loss.backward();
            let l = f64::try_from(&loss)?;
            ensure!(
                l.is_finite(),
                "fine-tuning diverged at step {steps} (loss {l})"
            );
            opt_enc.step();
            opt_head.step();
            steps += 1;
        }
    }
    let _guard = tch::no_grad_guard();
    let mut logits = Vec::new();
    let mut ys = Vec::new();
    for s in (0..n_test).step_by(cfg.batch.max(1)) {
        let r = s..(s + cfg.batch).min(n_test);
        let x = plain_batch(test, r.clone()).to_device(device);
        logits.push(
            head.forward(&encoder.forward_t(&x, false))
                .to_device(Device::Cpu),
        );
        let l: Option<Vec<i64>> = r.map(|i| test.label(i)).collect();
        ys.extend(l.ok_or_else(|| anyhow!("the test split has no labels"))?);
    }
    let logits = Tensor::cat(&logits, 0);
    let y = Tensor::from_slice(&ys);
    let acc = f64::try_from(
        logits
            .argmax(1, false)
            .eq_tensor(&y)
            .to_kind(Kind::Float)
            .mean(Kind::Float),
    )?;
    Ok(FineTuneResult {
        test_accuracy: acc,
        test_ece: softmax_ece_from_logits(&logits, &y, cfg.ece_bins),
        train_samples: n_train,
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
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
    use crate::data::ImageSet;
    use crate::encoders::{self, EncoderConfig};
    use crate::views::image_aug::ImageAugment;
    use crate::views::image_views::ImageViews;

    /// Three classes of 10×10 images: a bright band in the left, middle or right third.
    fn bands(n: usize) -> Arc<dyn ViewSource> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            labels.push(c as i64);
            for _ in 0..10 {
                for x in 0..10 {
                    pixels.push(if (x * 3) / 10 == c { 220 } else { 30 });
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
        let enc = encoders::build(
            &EncoderConfig::SmallCnn { widths: vec![4, 8] },
            &(vs.root() / "encoder"),
            &[1, 10, 10],
        )
        .unwrap();
        let test = bands(30);
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
            bands(96),
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
}
