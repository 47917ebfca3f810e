//! A PFN classifier for small tables: trained on tables drawn from [`MlpPrior`], it classifies
//! a real table's test rows from its training rows in one forward pass (the training rows are
//! the context; "fitting" is storing them).
use super::model::{load_folder, save_folder, warmup_cosine, Pfn, PfnShape};
use super::prior_mlp::{prepare, MlpPrior};
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// The most training rows a table may have: the context the network attends over.
pub const MAX_ROWS: i64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierTraining {
    pub prior: MlpPrior,
    pub shape: PfnShape,
    pub steps: u64,
    pub batch: i64,
    /// Context sizes are drawn from 8..=max_context per step.
    pub max_context: i64,
    pub queries: i64,
    pub lr: f64,
    pub seed: u64,
}

impl Default for ClassifierTraining {
    fn default() -> Self {
        let prior = MlpPrior::default();
        ClassifierTraining {
            prior,
            shape: PfnShape {
                dims: prior.features,
                outputs: prior.classes,
                classes: Some(prior.classes),
                width: 128,
                depth: 4,
                heads: 4,
                mlp_ratio: 2.0,
            },
            steps: 10_000,
            batch: 16,
            max_context: 256,
            queries: 64,
            lr: 5e-4,
            seed: 0,
        }
    }
}

pub struct ClassifierPfn {
    pub settings: ClassifierTraining,
    pub vs: nn::VarStore,
    pub pfn: Pfn,
}

/// Trains the classifier from the prior; `log` receives a line every `log_every` steps.
pub fn train_classifier_pfn(
    t: &ClassifierTraining,
    device: Device,
    log_every: u64,
    mut log: impl FnMut(&str),
) -> Result<ClassifierPfn> {
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
    tch::manual_seed(t.seed as i64);
    let vs = nn::VarStore::new(device);
    let pfn = Pfn::new(&vs.root(), t.shape);
    let mut opt = nn::Adam::default().build(&vs, t.lr)?;
    let (mut losses, mut right, mut seen) = (Vec::new(), 0.0, 0.0);
    let started = std::time::Instant::now();
    for step in 0..t.steps {
        let n = rng.gen_range(8..=t.max_context.max(8));
        let (x, y) = t.prior.sample(t.batch, n + t.queries, n, &mut rng);
        let (x, y) = (x.to_device(device), y.to_device(device));
        let logits = pfn.forward(
            &x.narrow(1, 0, n),
            &y.narrow(1, 0, n),
            &x.narrow(1, n, t.queries),
        );
        let target = y.narrow(1, n, t.queries).reshape([-1]);
        let flat = logits.reshape([-1, t.shape.outputs]);
        let loss = flat.cross_entropy_for_logits(&target);
        opt.set_lr(warmup_cosine(t.lr, t.steps, step));
        opt.backward_step_clip_norm(&loss, 1.0);
        losses.push(loss.double_value(&[]));
        right += flat
            .argmax(1, false)
            .eq_tensor(&target)
            .sum(Kind::Float)
            .double_value(&[]);
        seen += target.size()[0] as f64;
        if (step + 1) % log_every == 0 || step + 1 == t.steps {
            log(&format!(
                "step {:>6}/{}: cross-entropy {:.4}, query accuracy {:.1} % (last {} steps), {:.1} min",
                step + 1,
                t.steps,
                losses.iter().sum::<f64>() / losses.len() as f64,
                100.0 * right / seen,
                losses.len(),
                started.elapsed().as_secs_f64() / 60.0
            ));
            (losses, right, seen) = (Vec::new(), 0.0, 0.0);
        }
    }
    Ok(ClassifierPfn {
        settings: t.clone(),
        vs,
        pfn,
    })
}

impl ClassifierPfn {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let about = serde_json::json!({"kind": "classifier", "settings": self.settings});
        save_folder(dir, &about, &self.vs)
    }

    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let (about, vs, pfn) = load_folder(dir, "classifier", device)?;
        let settings: ClassifierTraining = serde_json::from_value(about["settings"].clone())
            .with_context(|| format!("{}: not readable as a PFN classifier", dir.display()))?;
        Ok(ClassifierPfn { settings, vs, pfn })
    }

    /// Class probabilities `[test rows, classes]` of `test` given the labelled `train` rows
    /// (labels 0..classes). The table must fit the model: at most [`MAX_ROWS`] training rows,
    /// the model's features and classes.
    pub fn predict_proba(&self, train: &Tensor, labels: &Tensor, test: &Tensor) -> Result<Tensor> {
        let _g = tch::no_grad_guard();
        let (n, d) = (train.size()[0], train.size()[1]);
        let prior = self.settings.prior;
        if n > MAX_ROWS {
            bail!("{n} training rows: a PFN takes at most {MAX_ROWS}");
        }
        if d > prior.features {
            bail!("{d} features: this PFN takes at most {}", prior.features);
        }
        let classes = labels.max().int64_value(&[]) + 1;
        if classes > prior.classes || labels.min().int64_value(&[]) < 0 {
            bail!(
                "labels must be 0..{}, got up to {}",
                prior.classes - 1,
                classes - 1
            );
        }
        let device = self.vs.device();
        let x = prepare(&Tensor::cat(&[train, test], 0), n, prior.features).to_device(device);
        let m = test.size()[0];
        let mut parts = Vec::new();
        // Queries in chunks: each sees only the context, so chunks change nothing.
        for s in (0..m).step_by(256) {
            let q = 256.min(m - s);
            let logits = self.pfn.forward(
                &x.narrow(0, 0, n).unsqueeze(0),
                &labels.to_device(device).unsqueeze(0),
                &x.narrow(0, n + s, q).unsqueeze(0),
            );
            // Classes the table does not have get no probability.
            parts.push(
                logits
                    .squeeze_dim(0)
                    .narrow(1, 0, classes)
                    .softmax(-1, Kind::Float)
                    .to_device(Device::Cpu),
            );
        }
        Ok(Tensor::cat(&parts, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_training_beats_chance_on_fresh_prior_tables_and_reloads() {
        let prior = MlpPrior {
            features: 4,
            classes: 3,
        };
        let t = ClassifierTraining {
            prior,
            shape: PfnShape {
                dims: 4,
                outputs: 3,
                classes: Some(3),
                width: 32,
                depth: 2,
                heads: 2,
                mlp_ratio: 2.0,
            },
            steps: 300,
            batch: 16,
            max_context: 48,
            queries: 16,
            lr: 3e-3,
            seed: 0,
        };
        let model = train_classifier_pfn(&t, Device::Cpu, 1000, |_| {}).unwrap();
        // Fresh tables: the network must read each table's labels from its context, as class
        // indices are shuffled per table; a network that ignores the context is at chance.
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let (mut right, mut chance, mut total) = (0.0, 0.0, 0.0);
        for _ in 0..40 {
            let (x, y) = prior.table(80, &mut rng);
            let (xt, yt, xq, yq) = (
                x.narrow(0, 0, 48),
                y.narrow(0, 0, 48),
                x.narrow(0, 48, 32),
                y.narrow(0, 48, 32),
            );
            let classes = yt.max().int64_value(&[]) + 1;
            if yq.max().int64_value(&[]) >= classes {
                continue;
            }
            let p = model.predict_proba(&xt, &yt, &xq).unwrap();
            right += p
                .argmax(1, false)
                .eq_tensor(&yq)
                .sum(Kind::Float)
                .double_value(&[]);
            chance += 32.0 / classes as f64;
            total += 32.0;
        }
        assert!(total >= 320.0, "{total}");
        assert!(
            right > 1.2 * chance,
            "{right} right of {total}; chance {chance}"
        );
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let back = ClassifierPfn::load(dir.path(), Device::Cpu).unwrap();
        let x = Tensor::randn([10, 4], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
        let a = model
            .predict_proba(&x.narrow(0, 0, 8), &y, &x.narrow(0, 8, 2))
            .unwrap();
        let b = back
            .predict_proba(&x.narrow(0, 0, 8), &y, &x.narrow(0, 8, 2))
            .unwrap();
        assert!(a.allclose(&b, 0.0, 0.0, false));
        // Limits are checked with a message.
        let wide = Tensor::zeros([8, 5], (Kind::Float, Device::Cpu));
        let err = model.predict_proba(&wide, &y, &wide).unwrap_err();
        assert!(format!("{err}").contains("5 features"), "{err}");
    }
}
