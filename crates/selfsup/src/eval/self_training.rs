//! Self-training on top of a self-supervised encoder (as in HAST and Noisy Student): a teacher —
//! the encoder fine-tuned on the labelled fraction — labels the unlabelled rest with its hard
//! predictions, keeping those at or above a confidence threshold; a student, started again from
//! the self-supervised weights, is trained on the labelled and the pseudo-labelled samples
//! (augmented views, the same objective) and becomes the next round's teacher.
//!
//! Pseudo-labels are plain hard labels taken on the un-augmented input, not FixMatch's
//! weak/strong consistency: the student sees them through the recipe's augmentation.
use super::fine_tune::{score, FineTuneConfig, FineTuneResult};
use super::label_fraction::stratified_subset;
use super::supervised::{class_logits, labels_of, train_classifier, Subset};
use crate::encoders::Encoder;
use crate::views::ViewSource;
use anyhow::{anyhow, ensure, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tch::nn;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTrainingConfig {
    /// Teacher → student rounds.
    #[serde(default = "one")]
    pub rounds: usize,
    /// Keep a pseudo-label when the teacher's softmax probability reaches this.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// Epochs of each student over the labelled and pseudo-labelled samples.
    #[serde(default = "student_epochs")]
    pub student_epochs: u64,
    /// Balance the pseudo-labels over the classes, as Noisy Student does (Xie et al. 2020):
    /// each class gets the mean count per class — its most confident samples when it has
    /// more, its samples repeated when it has fewer. Confident predictions pile up in the easy
    /// classes, and a student trained on them unbalanced learns the pile.
    #[serde(default = "yes")]
    pub balance: bool,
    /// Train the student on the teacher's whole softmax over the pseudo-labelled samples (and
    /// one-hot labels on the labelled ones) — the distillation of SimCLRv2 (Chen et al. 2020b)
    /// — instead of its hard labels.
    #[serde(default)]
    pub soft: bool,
    /// The least share of the student's training set that is labelled: the labelled samples
    /// are repeated until they make it up, so the true labels are not drowned by a hundred
    /// times as many pseudo-labels (0.125 is FixMatch's one labelled sample to seven
    /// unlabelled ones in a batch).
    #[serde(default = "labelled_share")]
    pub labelled_share: f64,
}

fn labelled_share() -> f64 {
    0.125
}

/// How many times `n_labelled` samples are repeated so that they make up at least `share` of a
/// set with `n_pseudo` pseudo-labelled ones (at least once).
pub fn labelled_repeats(n_labelled: usize, n_pseudo: usize, share: f64) -> usize {
    if n_labelled == 0 || share <= 0.0 {
        return 1;
    }
    let share = share.min(0.999);
    let want = share * n_pseudo as f64 / (1.0 - share);
    ((want / n_labelled as f64).ceil() as usize).max(1)
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}
/// 0.5 and 5 student epochs: the best of the pilots in `docs/few-labels.md` (Fashion-MNIST, 1 %
/// of the labels; 0.9 kept mostly easy samples, 0.0 every teacher error, 2 epochs underfit).
fn threshold() -> f64 {
    0.5
}
fn student_epochs() -> u64 {
    5
}

impl Default for SelfTrainingConfig {
    fn default() -> Self {
        SelfTrainingConfig {
            rounds: one(),
            threshold: threshold(),
            student_epochs: student_epochs(),
            balance: true,
            soft: false,
            labelled_share: labelled_share(),
        }
    }
}

impl SelfTrainingConfig {
    pub fn is_default(&self) -> bool {
        *self == SelfTrainingConfig::default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    /// Unlabelled samples whose pseudo-label passed the threshold.
    pub pseudo_labelled: usize,
    pub unlabelled: usize,
    /// Of those, the fraction whose pseudo-label is the true one (the hidden labels are known
    /// in a benchmark; a diagnostic, never used for training).
    pub pseudo_label_accuracy: Option<f64>,
    /// Pseudo-labelled samples the student trained on (balanced: with repeats).
    pub student_pseudo_samples: usize,
    pub student: FineTuneResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelfTrainingResult {
    pub teacher: FineTuneResult,
    pub rounds: Vec<RoundResult>,
}

impl SelfTrainingResult {
    /// The last student's result.
    pub fn last(&self) -> &FineTuneResult {
        self.rounds.last().map_or(&self.teacher, |r| &r.student)
    }
}

/// The encoder's variables (buffers included), copied.
pub fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let _guard = tch::no_grad_guard();
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

pub fn restore(vs: &nn::VarStore, snap: &[(String, Tensor)]) {
    let _guard = tch::no_grad_guard();
    let vars = vs.variables();
    for (n, t) in snap {
        let mut v = vars[n].shallow_clone();
        v.copy_(t);
    }
}

/// Noisy Student's balancing of `(sample, class, confidence)` pseudo-labels: every class present
/// gets ⌊total ÷ classes⌋ samples — its most confident ones, or all of its own repeated in turn.
pub fn balanced(mut picks: Vec<(usize, i64, f64)>, n_classes: usize) -> Vec<(usize, i64, f64)> {
    let per_class = picks.len() / n_classes.max(1);
    // Most confident first; ties by sample index, so the choice is a function of the inputs.
    picks.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut out = Vec::new();
    for c in 0..n_classes as i64 {
        let mine: Vec<_> = picks.iter().filter(|p| p.1 == c).copied().collect();
        if !mine.is_empty() {
            out.extend(mine.iter().cycle().take(per_class).copied());
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
/// Self-training from the encoder's current weights (the self-supervised ones; the encoder ends
/// as the last student). `ft` is the teacher's fine-tuning — its label fraction, objective,
/// optimiser — and the student's too, but for its epochs.
pub fn self_train(
    encoder: &dyn Encoder,
    encoder_vs: &nn::VarStore,
    train: Arc<dyn ViewSource>,
    test: &dyn ViewSource,
    n_test: usize,
    n_classes: i64,
    ft: &FineTuneConfig,
    st: &SelfTrainingConfig,
    device: Device,
) -> Result<SelfTrainingResult> {
    ensure!(
        st.threshold.is_finite() && (0.0..=1.0).contains(&st.threshold),
        "self-training threshold must lie in [0, 1], got {}",
        st.threshold
    );
    let started = Instant::now();
    let labels = labels_of(train.as_ref(), train.len())
        .map_err(|_| anyhow!("self-training needs the training labels for its labelled part"))?;
    let labelled =
        stratified_subset(&labels, ft.label_fraction, ft.seed).map_err(|e| anyhow!(e))?;
    let mut is_labelled = vec![false; labels.len()];
    for &i in &labelled {
        is_labelled[i] = true;
    }
    let unlabelled: Vec<usize> = (0..labels.len()).filter(|&i| !is_labelled[i]).collect();
    ensure!(
        !unlabelled.is_empty(),
        "self-training with {} of the labels leaves nothing unlabelled",
        ft.label_fraction
    );
    let initial = snapshot(encoder_vs);
    let sup = ft.supervised(encoder.lr_layers());
    let teacher_set: Arc<dyn ViewSource> = Arc::new(Subset {
        inner: train.clone(),
        idx: labelled.clone(),
        labels: None,
    });
    let (mut teacher, steps) = train_classifier(
        encoder,
        encoder_vs,
        teacher_set,
        n_classes,
        &sup,
        None,
        device,
    )?;
    let mut teacher_result = score(encoder, &teacher, test, n_test, ft, device)?;
    teacher_result.train_samples = labelled.len();
    teacher_result.steps = steps;
    teacher_result.seconds = started.elapsed().as_secs_f64();
    let pool = Subset {
        inner: train.clone(),
        idx: unlabelled.clone(),
        labels: None,
    };
    let mut rounds = Vec::new();
    for round in 0..st.rounds {
        let t0 = Instant::now();
        let probs = class_logits(encoder, &teacher, &pool, pool.len(), ft.batch, device)?
            .softmax(-1, Kind::Double);
        let (conf, pred) = probs.max_dim(1, false);
        let conf = Vec::<f64>::try_from(conf)?;
        let pred = Vec::<i64>::try_from(pred)?;
        let confident: Vec<(usize, i64, f64)> = unlabelled
            .iter()
            .enumerate()
            .filter(|&(k, _)| conf[k] >= st.threshold)
            .map(|(k, &u)| (u, pred[k], conf[k]))
            .collect();
        let right = confident
            .iter()
            .filter(|&&(u, p, _)| p == labels[u])
            .count();
        let n_confident = confident.len();
        let chosen = if st.balance {
            balanced(confident, n_classes as usize)
        } else {
            confident
        };
        let repeats = labelled_repeats(labelled.len(), chosen.len(), st.labelled_share);
        let mut idx: Vec<usize> = (0..repeats)
            .flat_map(|_| labelled.iter().copied())
            .collect();
        let mut y: Vec<i64> = idx.iter().map(|&i| labels[i]).collect();
        let n_true = idx.len();
        for &(u, p, _) in &chosen {
            idx.push(u);
            y.push(p);
        }
        // Soft targets: one-hot rows for the labelled samples, the teacher's softmax for the rest.
        let soft = st.soft.then(|| {
            let mut rows: Vec<Tensor> = Vec::new();
            let onehot = Tensor::from_slice(&y[..n_true])
                .one_hot(n_classes)
                .to_kind(Kind::Double);
            rows.push(onehot);
            let pos: std::collections::HashMap<usize, i64> = unlabelled
                .iter()
                .enumerate()
                .map(|(k, &u)| (u, k as i64))
                .collect();
            let at: Vec<i64> = chosen.iter().map(|&(u, _, _)| pos[&u]).collect();
            rows.push(probs.index_select(0, &Tensor::from_slice(&at)));
            Tensor::cat(&rows, 0)
        });
        let kept = n_confident;
        tracing::info!(
            "self-training round {}: {kept} of {} unlabelled samples pseudo-labelled at ≥ {} \
             ({} after balancing)",
            round + 1,
            unlabelled.len(),
            st.threshold,
            chosen.len()
        );
        restore(encoder_vs, &initial);
        let student_set: Arc<dyn ViewSource> = Arc::new(Subset {
            inner: train.clone(),
            idx,
            labels: Some(y),
        });
        let mut student_cfg = sup.clone();
        student_cfg.epochs = st.student_epochs;
        student_cfg.seed = sup.seed.wrapping_add(1 + round as u64);
        let n_student = student_set.len();
        let (student, steps) = train_classifier(
            encoder,
            encoder_vs,
            student_set,
            n_classes,
            &student_cfg,
            soft.as_ref(),
            device,
        )?;
        let mut r = score(encoder, &student, test, n_test, ft, device)?;
        r.train_samples = n_student;
        r.steps = steps;
        r.seconds = t0.elapsed().as_secs_f64();
        rounds.push(RoundResult {
            pseudo_labelled: kept,
            unlabelled: unlabelled.len(),
            pseudo_label_accuracy: (kept > 0).then(|| right as f64 / kept as f64),
            student_pseudo_samples: chosen.len(),
            student: r,
        });
        teacher = student;
    }
    Ok(SelfTrainingResult {
        teacher: teacher_result,
        rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::supervised::fixtures::{bands, small_cnn};

    /// The teacher learns from 10 % of the labels, pseudo-labels the rest (right, on this easy
    /// task), and the student restarts from the initial weights and trains on both.
    #[test]
    fn students_train_on_confident_pseudo_labels() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = small_cnn(&vs);
        let test = bands(30, true);
        let ft = FineTuneConfig {
            epochs: 40,
            batch: 8,
            lr: 1e-2,
            label_fraction: 0.1,
            ..Default::default()
        };
        let st = SelfTrainingConfig {
            rounds: 2,
            threshold: 0.5,
            student_epochs: 2,
            balance: false,
            soft: false,
            labelled_share: 0.0,
        };
        let r = self_train(
            enc.as_ref(),
            &vs,
            bands(240, true),
            test.as_ref(),
            30,
            3,
            &ft,
            &st,
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(r.teacher.train_samples, 24);
        assert_eq!(r.rounds.len(), 2);
        for round in &r.rounds {
            assert_eq!(round.unlabelled, 216);
            assert!(round.pseudo_labelled > 100, "{round:?}");
            assert_eq!(round.student_pseudo_samples, round.pseudo_labelled);
            assert_eq!(round.student.train_samples, 24 + round.pseudo_labelled);
            assert_eq!(
                round.student.steps,
                2 * (round.student.train_samples / 8) as u64
            );
            assert!(round.pseudo_label_accuracy.unwrap() > 0.9, "{round:?}");
        }
        assert!(r.last().test_accuracy > 0.9, "{r:?}");
    }

    /// Balancing: 9 picks over 3 classes give 3 a class — class 0's three most confident of
    /// its five, class 1's only sample three times, class 2's three; a class without picks
    /// stays empty.
    #[test]
    fn balancing_gives_each_class_the_mean_count() {
        let picks = vec![
            (0, 0, 0.91),
            (1, 0, 0.99),
            (2, 0, 0.95),
            (3, 0, 0.97),
            (4, 0, 0.92),
            (5, 1, 0.93),
            (6, 2, 0.96),
            (7, 2, 0.94),
            (8, 2, 0.98),
        ];
        let b = balanced(picks.clone(), 3);
        let ids: Vec<usize> = b.iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![1, 3, 2, 5, 5, 5, 8, 6, 7]);
        // With a fourth class absent: ⌊9 / 4⌋ = 2 each for the three present ones.
        let ids: Vec<usize> = balanced(picks, 4).iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![1, 3, 5, 5, 8, 6]);
    }

    #[test]
    fn labelled_samples_are_repeated_to_their_share() {
        // 600 labels beside 55,000 pseudo-labels at 1/8: 55,000/7 ≈ 7,857 → 14 repeats.
        assert_eq!(labelled_repeats(600, 55_000, 0.125), 14);
        assert!(14 * 600 * 8 >= 55_000 + 14 * 600);
        assert!(13 * 600 * 8 < 55_000 + 13 * 600);
        // Already a large share: once.
        assert_eq!(labelled_repeats(6_000, 30_000, 0.125), 1);
        assert_eq!(labelled_repeats(100, 1_000, 0.0), 1);
    }

    /// Restoring the snapshot brings every variable, buffers included, back.
    #[test]
    fn snapshots_restore_weights_and_buffers() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[3], 0.0, 1.0);
        let b = vs.root().zeros_no_train("running_mean", &[2]);
        let snap = snapshot(&vs);
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(5.0);
            let _ = b.shallow_clone().fill_(7.0);
        });
        restore(&vs, &snap);
        assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![0.0, 0.0]);
        assert!(Vec::<f32>::try_from(&w).unwrap().iter().all(|&v| v != 5.0));
    }
}
