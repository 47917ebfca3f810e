//! The downstream MLP of tabular SSL papers (T-JEPA, VIME, SCARF report "MLP on the
//! representation" beside "MLP on raw features"): a small MLP trained on fixed feature vectors,
//! early-stopped on a validation split, scored on the test rows at its best validation epoch.
//! Classification reports accuracy; regression trains on standardised targets and reports RMSE in
//! the target's own units.
use super::standardise::Standardiser;
use crate::rng::{keyed, Stream};
use anyhow::{bail, ensure, Result};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::time::Instant;
use tch::nn::{self, Module, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    Classification { n_classes: usize },
    Regression,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MlpProbeConfig {
    pub hidden: Vec<i64>,
    pub dropout: f64,
    /// AdamW.
    pub lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation metric before stopping.
    pub patience: usize,
    pub seed: u64,
}

impl Default for MlpProbeConfig {
    fn default() -> Self {
        MlpProbeConfig {
            hidden: vec![256, 256],
            dropout: 0.1,
            lr: 1e-3,
            weight_decay: 1e-5,
            batch: 256,
            max_epochs: 100,
            patience: 10,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MlpProbeResult {
    /// Accuracy in [0, 1], or RMSE.
    pub test_metric: f64,
    pub val_metric: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub seconds: f64,
}

/// Root mean squared error of `pred` against `y` (both `[N]`).
pub fn rmse(pred: &Tensor, y: &Tensor) -> f64 {
    (pred.to_kind(Kind::Double) - y.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[])
}

/// (train, validation) row indices of `0..n`: stratified by label for classification (each class
/// contributes round(fraction·count) rows to validation), plain otherwise; seeded.
pub fn split_indices(
    n: usize,
    labels: Option<&[i64]>,
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = keyed(seed, Stream::Eval, 0x5911_7, 0, 0);
    let groups: Vec<Vec<usize>> = match labels {
        Some(l) => {
            let mut by: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
            for (i, &c) in l.iter().enumerate().take(n) {
                by.entry(c).or_default().push(i);
            }
            by.into_values().collect()
        }
        None => vec![(0..n).collect()],
    };
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut g in groups {
        g.shuffle(&mut rng);
        let k = (val_fraction * g.len() as f64).round() as usize;
        val.extend_from_slice(&g[..k]);
        train.extend_from_slice(&g[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

#[derive(Debug)]
struct Mlp {
    layers: Vec<nn::Linear>,
    dropout: f64,
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i < last {
                h = h.relu().dropout(self.dropout, train);
            }
        }
        h
    }
}

/// Metric where larger is better, for model selection.
fn score(task: Task, out: &Tensor, y: &Tensor, target_mean: f64, target_std: f64) -> f64 {
    match task {
        Task::Classification { .. } => out
            .argmax(1, false)
            .eq_tensor(y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]),
        Task::Regression => -rmse(&(out.squeeze_dim(1) * target_std + target_mean), y),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn fit_mlp_probe(
    task: Task,
    x_train: &Tensor,
    y_train: &Tensor,
    x_val: &Tensor,
    y_val: &Tensor,
    x_test: &Tensor,
    y_test: &Tensor,
    cfg: &MlpProbeConfig,
    device: Device,
) -> Result<MlpProbeResult> {
    let started = Instant::now();
    let n = x_train.size()[0];
    ensure!(
        n > 0 && x_val.size()[0] > 0 && x_test.size()[0] > 0,
        "the MLP probe needs non-empty train, validation and test rows"
    );
    let d = x_train.size()[1];
    ensure!(
        x_val.size()[1] == d && x_test.size()[1] == d,
        "feature widths differ: train {d}, validation {}, test {}",
        x_val.size()[1],
        x_test.size()[1]
    );
    let st = Standardiser::fit(x_train);
    let (xtr, xva, xte) = (
        st.apply(x_train).to_device(device),
        st.apply(x_val).to_device(device),
        st.apply(x_test).to_device(device),
    );
    let (out_dim, t_mean, t_std) = match task {
        Task::Classification { n_classes } => {
            ensure!(n_classes >= 2, "classification needs at least two classes");
            (n_classes as i64, 0.0, 1.0)
        }
        Task::Regression => {
            let y = y_train.to_kind(Kind::Double);
            let m = y.mean(Kind::Double).double_value(&[]);
            let s = y.std(true).double_value(&[]).max(1e-12);
            (1, m, s)
        }
    };
    // Regression trains on standardised targets; metrics are computed in the original units.
    let ytr = match task {
        Task::Classification { .. } => y_train.to_device(device),
        Task::Regression => ((y_train.to_kind(Kind::Float) - t_mean) / t_std).to_device(device),
    };
    let (yva, yte) = (y_val.to_device(device), y_test.to_device(device));
    tch::manual_seed(cfg.seed as i64);
    let vs = nn::VarStore::new(device);
    let mut layers = Vec::new();
    let mut din = d;
    for (i, &h) in cfg
        .hidden
        .iter()
        .chain(std::iter::once(&out_dim))
        .enumerate()
    {
        layers.push(crate::torch_init::linear(
            &vs.root() / format!("l{i}"),
            din,
            h,
            true,
        ));
        din = h;
    }
    let mlp = Mlp {
        layers,
        dropout: cfg.dropout,
    };
    let mut opt = nn::AdamW {
        wd: cfg.weight_decay,
        ..Default::default()
    }
    .build(&vs, cfg.lr)?;
    let mut best = (f64::NEG_INFINITY, 0usize);
    let mut best_weights = Vec::new();
    let mut epochs_run = 0;
    let batch = cfg.batch.max(1) as i64;
    for epoch in 0..cfg.max_epochs {
        epochs_run = epoch + 1;
        let mut order: Vec<i64> = (0..n).collect();
        order.shuffle(&mut keyed(cfg.seed, Stream::Eval, epoch as u64, 1, 0));
        let order = Tensor::from_slice(&order).to_device(device);
        for s in (0..n).step_by(batch as usize) {
            let idx = order.narrow(0, s, batch.min(n - s));
            if idx.size()[0] < 2 && n >= 2 {
                continue; // a lone last row adds noise and nothing else
            }
            let out = mlp.forward_t(&xtr.index_select(0, &idx), true);
            let yb = ytr.index_select(0, &idx);
            let loss = match task {
                Task::Classification { .. } => {
                    out.cross_entropy_loss::<Tensor>(&yb, None, Reduction::Mean, -100, 0.0)
                }
                Task::Regression => out.squeeze_dim(1).mse_loss(&yb, Reduction::Mean),
            };
            opt.backward_step(&loss);
        }
        let v = tch::no_grad(|| score(task, &mlp.forward_t(&xva, false), &yva, t_mean, t_std));
        if !v.is_finite() {
            bail!("the MLP probe diverged at epoch {epoch} (validation metric {v})");
        }
        if v > best.0 {
            best = (v, epoch);
            best_weights = vs
                .variables()
                .into_iter()
                .map(|(k, t)| (k, t.detach().copy()))
                .collect();
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    tch::no_grad(|| {
        let vars = vs.variables();
        for (k, t) in &best_weights {
            vars[k].shallow_clone().copy_(t);
        }
    });
    let test = tch::no_grad(|| score(task, &mlp.forward_t(&xte, false), &yte, t_mean, t_std));
    let sign = |v: f64| match task {
        Task::Classification { .. } => v,
        Task::Regression => -v,
    };
    Ok(MlpProbeResult {
        test_metric: sign(test),
        val_metric: sign(best.0),
        best_epoch: best.1,
        epochs_run,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_matches_a_hand_computed_value() {
        let p = Tensor::from_slice(&[1f32, 2., 3.]);
        let y = Tensor::from_slice(&[1f32, 4., 0.]);
        // sqrt((0 + 4 + 9) / 3)
        assert!((rmse(&p, &y) - (13f64 / 3.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn splits_are_disjoint_stratified_and_seeded() {
        let labels: Vec<i64> = (0..100).map(|i| if i < 70 { 0 } else { 1 }).collect();
        let (tr, va) = split_indices(100, Some(&labels), 0.2, 3);
        assert_eq!(tr.len() + va.len(), 100);
        assert!(tr.iter().all(|i| !va.contains(i)));
        assert_eq!(va.iter().filter(|&&i| labels[i] == 0).count(), 14);
        assert_eq!(va.iter().filter(|&&i| labels[i] == 1).count(), 6);
        assert_eq!(
            split_indices(100, Some(&labels), 0.2, 3),
            (tr.clone(), va.clone())
        );
        assert_ne!(split_indices(100, Some(&labels), 0.2, 4).1, va);
    }

    fn data(n: i64, seed: i64) -> (Tensor, Tensor, Tensor) {
        tch::manual_seed(seed);
        let x = Tensor::randn([n, 4], (Kind::Float, Device::Cpu));
        let cls = x.select(1, 0).gt(0.0).to_kind(Kind::Int64);
        let reg = x.select(1, 0) * 3.0 - x.select(1, 1) * 2.0
            + Tensor::randn([n], (Kind::Float, Device::Cpu)) * 0.01;
        (x, cls, reg)
    }

    #[test]
    fn learns_a_separable_classification_and_a_linear_regression() {
        let (x, c, r) = data(600, 1);
        let (xv, cv, rv) = data(200, 2);
        let (xt, ct, rt) = data(200, 3);
        let cfg = MlpProbeConfig {
            max_epochs: 40,
            ..Default::default()
        };
        let task = Task::Classification { n_classes: 2 };
        let a = fit_mlp_probe(task, &x, &c, &xv, &cv, &xt, &ct, &cfg, Device::Cpu).unwrap();
        assert!(a.test_metric >= 0.97, "accuracy {}", a.test_metric);
        let e = fit_mlp_probe(
            Task::Regression,
            &x,
            &r,
            &xv,
            &rv,
            &xt,
            &rt,
            &cfg,
            Device::Cpu,
        )
        .unwrap();
        assert!(e.test_metric < 0.25, "rmse {}", e.test_metric);
        // RMSE is reported in the target's units: targets ×100 give an RMSE about 100× larger.
        let e100 = fit_mlp_probe(
            Task::Regression,
            &x,
            &(&r * 100.0),
            &xv,
            &(&rv * 100.0),
            &xt,
            &(&rt * 100.0),
            &cfg,
            Device::Cpu,
        )
        .unwrap();
        let ratio = e100.test_metric / e.test_metric;
        assert!((50.0..200.0).contains(&ratio), "{ratio}");
    }
}
