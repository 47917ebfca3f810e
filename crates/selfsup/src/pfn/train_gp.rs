//! Training a PFN on functions drawn from the GP prior, saving it, and measuring it against the
//! exact posterior (the experiment of Müller et al. 2022, section 5.1: the PFN's negative
//! log-likelihood of held-out points next to the exact GP's, on fresh prior draws, by the
//! number of context points).
//!
//! Each step draws `batch` functions at `max_context + queries` inputs, cuts them at a context
//! size drawn uniformly from 1..=max_context (one size per step, as the reference code does)
//! and scores the Riemann NLL of `queries` held-out points.
use super::gp::GpPrior;
use super::model::{load_folder, save_folder, warmup_cosine, Pfn, PfnShape};
use super::riemann::Buckets;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpTraining {
    pub prior: GpPrior,
    pub shape: PfnShape,
    pub steps: u64,
    pub batch: i64,
    pub max_context: i64,
    pub queries: i64,
    /// Adam's peak learning rate, after a linear warm-up over the first 5 % of the steps and
    /// followed by a cosine decay to 0.
    pub lr: f64,
    pub seed: u64,
}

impl Default for GpTraining {
    fn default() -> Self {
        GpTraining {
            prior: GpPrior::default(),
            shape: PfnShape {
                dims: 1,
                outputs: 500,
                classes: None,
                width: 128,
                depth: 4,
                heads: 4,
                mlp_ratio: 2.0,
            },
            steps: 20_000,
            batch: 64,
            max_context: 50,
            queries: 50,
            lr: 5e-4,
            seed: 0,
        }
    }
}

/// A trained GP PFN: its settings, buckets and weights.
pub struct GpPfn {
    pub settings: GpTraining,
    pub buckets: Buckets,
    pub vs: nn::VarStore,
    pub pfn: Pfn,
}

/// Trains a PFN from the prior; `log` receives a line every `log_every` steps.
pub fn train_gp_pfn(
    t: &GpTraining,
    device: Device,
    log_every: u64,
    mut log: impl FnMut(&str),
) -> Result<GpPfn> {
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
    tch::manual_seed(t.seed as i64);
    // Buckets: equal shares of 100,000 prior targets.
    let (_, ys) = t.prior.sample(1000, 100, &mut rng);
    let buckets = Buckets::from_samples(&ys, t.shape.outputs);
    let vs = nn::VarStore::new(device);
    let pfn = Pfn::new(&vs.root(), t.shape);
    let mut opt = nn::Adam::default().build(&vs, t.lr)?;
    let total = t.max_context + t.queries;
    let mut recent = Vec::new();
    let started = std::time::Instant::now();
    for step in 0..t.steps {
        let (x, y) = t.prior.sample(t.batch, total, &mut rng);
        let n = rng.gen_range(1..=t.max_context);
        let (x, y) = (x.to_device(device), y.to_device(device));
        let logits = pfn.forward(
            &x.narrow(1, 0, n),
            &y.narrow(1, 0, n),
            &x.narrow(1, n, t.queries),
        );
        let loss = buckets
            .nll(&logits, &y.narrow(1, n, t.queries))
            .mean(Kind::Float);
        opt.set_lr(warmup_cosine(t.lr, t.steps, step));
        opt.backward_step_clip_norm(&loss, 1.0);
        recent.push(loss.double_value(&[]));
        if (step + 1) % log_every == 0 || step + 1 == t.steps {
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            log(&format!(
                "step {:>6}/{}: NLL {mean:.4} (mean of the last {}), {:.1} min",
                step + 1,
                t.steps,
                recent.len(),
                started.elapsed().as_secs_f64() / 60.0
            ));
            recent.clear();
        }
    }
    Ok(GpPfn {
        settings: t.clone(),
        buckets,
        vs,
        pfn,
    })
}

impl GpPfn {
    /// Writes `dir/pfn.json` (settings and bucket borders) and `dir/weights.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let about = serde_json::json!({
            "kind": "gp-regression",
            "settings": self.settings,
            "borders": Vec::<f64>::try_from(&self.buckets.borders)?,
        });
        save_folder(dir, &about, &self.vs)
    }

    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let (about, vs, pfn) = load_folder(dir, "gp-regression", device)?;
        let bad = || {
            format!(
                "{}: not readable as a GP PFN",
                dir.join("pfn.json").display()
            )
        };
        let settings: GpTraining =
            serde_json::from_value(about["settings"].clone()).with_context(bad)?;
        let borders: Vec<f64> =
            serde_json::from_value(about["borders"].clone()).with_context(bad)?;
        Ok(GpPfn {
            settings,
            buckets: Buckets {
                borders: Tensor::from_slice(&borders),
            },
            vs,
            pfn,
        })
    }
}

/// One row of the comparison: context size, mean NLL of the PFN and of the exact posterior
/// over every held-out point, the mean difference and its standard error over functions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NllRow {
    pub context: i64,
    pub functions: i64,
    pub queries_per_function: i64,
    pub pfn_nll: f64,
    pub exact_nll: f64,
    pub difference: f64,
    pub difference_se: f64,
}

/// The PFN against the exact GP posterior on `functions` fresh prior draws per context size,
/// `queries` held-out points each, drawn from `seed` (different from the training seed).
pub fn compare_with_exact(
    model: &GpPfn,
    contexts: &[i64],
    functions: i64,
    queries: i64,
    seed: u64,
    device: Device,
) -> Result<Vec<NllRow>> {
    let _g = tch::no_grad_guard();
    let prior = model.settings.prior;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for &n in contexts {
        anyhow::ensure!(n >= 1, "context sizes start at 1");
        let mut per_function = Vec::new();
        let (mut pfn_sum, mut exact_sum) = (0.0, 0.0);
        // A grid conditions every function once per grid point: smaller chunks bound memory.
        let chunk = if prior.hyper.is_some() { 25 } else { 100 };
        let mut done = 0;
        while done < functions {
            let b = chunk.min(functions - done);
            let (x, y) = prior.sample(b, n + queries, &mut rng);
            let (xc, yc) = (x.narrow(1, 0, n), y.narrow(1, 0, n));
            let (xq, yq) = (x.narrow(1, n, queries), y.narrow(1, n, queries));
            let exact = prior.predictive_nll(&xc, &yc, &xq, &yq).mean_dim(
                [1i64].as_slice(),
                false,
                Kind::Double,
            );
            let logits = model.pfn.forward(
                &xc.to_device(device),
                &yc.to_device(device),
                &xq.to_device(device),
            );
            let pfn = model
                .buckets
                .nll(&logits, &yq.to_device(device))
                .to_kind(Kind::Double)
                .to_device(Device::Cpu)
                .mean_dim([1i64].as_slice(), false, Kind::Double);
            let (p, e) = (Vec::<f64>::try_from(&pfn)?, Vec::<f64>::try_from(&exact)?);
            pfn_sum += p.iter().sum::<f64>();
            exact_sum += e.iter().sum::<f64>();
            per_function.extend(p.iter().zip(&e).map(|(a, b)| a - b));
            done += b;
        }
        let (d, sd) = crate::stats::mean_std(&per_function);
        rows.push(NllRow {
            context: n,
            functions,
            queries_per_function: queries,
            pfn_nll: pfn_sum / functions as f64,
            exact_nll: exact_sum / functions as f64,
            difference: d,
            difference_se: sd / (functions as f64).sqrt(),
        });
    }
    Ok(rows)
}

pub fn format_rows(rows: &[NllRow]) -> String {
    let mut s = String::from(
        "| context points | functions × held-out points | PFN NLL | exact GP NLL | PFN − exact (± s.e.) |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} × {} | {:.4} | {:.4} | {:+.4} ± {:.4} |\n",
            r.context,
            r.functions,
            r.queries_per_function,
            r.pfn_nll,
            r.exact_nll,
            r.difference,
            r.difference_se
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_training_learns_and_saves_and_loads_the_same_network() {
        let t = GpTraining {
            shape: PfnShape {
                width: 32,
                depth: 2,
                heads: 2,
                outputs: 50,
                ..GpTraining::default().shape
            },
            steps: 150,
            batch: 16,
            max_context: 10,
            queries: 10,
            lr: 3e-3,
            ..Default::default()
        };
        let mut lines = Vec::new();
        let model = train_gp_pfn(&t, Device::Cpu, 50, |l| lines.push(l.to_string())).unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let nll = |l: &str| -> f64 { l.split("NLL ").nth(1).unwrap()[..7].trim().parse().unwrap() };
        // The loss falls from the first 50 steps to the last 50.
        assert!(nll(&lines[2]) < nll(&lines[0]), "{lines:?}");
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let back = GpPfn::load(dir.path(), Device::Cpu).unwrap();
        let a = compare_with_exact(&model, &[3], 20, 5, 9, Device::Cpu).unwrap();
        let b = compare_with_exact(&back, &[3], 20, 5, 9, Device::Cpu).unwrap();
        assert_eq!(a[0].pfn_nll, b[0].pfn_nll);
        assert_eq!(a[0].exact_nll, b[0].exact_nll);
        // The exact posterior is what the PFN approximates: a barely trained PFN is worse.
        assert!(a[0].difference > 0.0, "{a:?}");
    }

    #[test]
    fn a_grid_prior_is_saved_with_the_model_and_older_files_read_as_fixed() {
        let mut t = GpTraining::default();
        t.prior.hyper = Some(crate::pfn::gp::HyperGrid::default());
        let back: GpTraining = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.prior, t.prior);
        // A file written before grids existed has no "hyper" field.
        let mut old = serde_json::to_value(GpTraining::default()).unwrap();
        assert!(old["prior"].get("hyper").is_none());
        old["prior"].as_object_mut().unwrap().remove("hyper");
        let read: GpTraining = serde_json::from_value(old).unwrap();
        assert_eq!(read.prior.hyper, None);
    }
}
