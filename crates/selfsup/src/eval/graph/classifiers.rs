//! The classifiers the graph protocols fit on frozen embeddings: a linear layer trained by Adam
//! as GraphMAE's and DGI's probes do (PyTorch's Adam, written out so that the probe's draws and
//! steps follow the reference code), and softmax regression fitted by L-BFGS (GRACE's).
use super::*;

// ---------------------------------------------------------------------------------------------
// The linear classifier trained by Adam (GraphMAE, DGI)

/// `logits = x Wᵀ + b` with W `[C, D]` and b `[C]` (torch's `nn.Linear` layout).
#[derive(Debug)]
pub(super) struct Linear {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
}

impl Linear {
    /// PyTorch's `nn.Linear` default: kaiming_uniform(a = √5) on the weight, which is
    /// U(−1/√D, 1/√D), and the bias ~ U(−1/√D, 1/√D) — weight drawn first, as torch does.
    pub(super) fn torch_default(d: i64, c: i64, like: &Tensor, rng: &mut ChaCha8Rng) -> Self {
        let bound = 1.0 / (d as f64).sqrt();
        Linear {
            weight: uniform(rng, &[c, d], bound, like),
            bias: uniform(rng, &[c], bound, like),
        }
    }

    /// DGI's `LogReg`: Xavier-uniform weight, U(±√(6/(D + C))), and zero bias.
    pub(super) fn xavier_zero(d: i64, c: i64, like: &Tensor, rng: &mut ChaCha8Rng) -> Self {
        let bound = (6.0 / (d + c) as f64).sqrt();
        Linear {
            weight: uniform(rng, &[c, d], bound, like),
            bias: Tensor::zeros([c], (like.kind(), like.device())),
        }
    }

    pub(super) fn logits(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| x.matmul(&self.weight.tr()) + &self.bias)
    }

    pub(super) fn accuracy(&self, part: &SplitPart) -> f64 {
        accuracy(&self.logits(&part.x), &part.y)
    }

    /// Gradient of the mean cross-entropy over (`x`, `onehot`) with respect to (W, b):
    /// with P = softmax(logits), ∂/∂logits = (P − Y)/N, so ∂W = (P − Y)ᵀx/N and ∂b = Σᵢ(P − Y)ᵢ/N.
    pub(super) fn ce_grad(&self, x: &Tensor, onehot: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let n = x.size()[0] as f64;
            let d_logits = (self.logits(x).softmax(1, None::<Kind>) - onehot) / n;
            (
                d_logits.tr().matmul(x),
                d_logits.sum_dim_intlist(0, false, None::<Kind>),
            )
        })
    }
}

/// Trains `model` by `cfg.epochs` full-batch Adam steps on the mean cross-entropy of `train`,
/// calling `after_epoch` after each step.
pub(super) fn train_adam(
    model: &mut Linear,
    train: &SplitPart,
    cfg: &AdamProbeConfig,
    mut after_epoch: impl FnMut(&Linear),
) {
    let c = model.bias.size()[0];
    let onehot = tch::no_grad(|| train.y.one_hot(c).to_kind(train.x.kind()));
    let mut adam = Adam::new(cfg.lr, cfg.weight_decay, 2);
    for _ in 0..cfg.epochs {
        let (gw, gb) = model.ce_grad(&train.x, &onehot);
        let mut params = [model.weight.shallow_clone(), model.bias.shallow_clone()];
        adam.step(&mut params, &[gw, gb]);
        let [w, b] = params;
        model.weight = w;
        model.bias = b;
        after_epoch(model);
    }
}

/// torch.optim.Adam (default betas 0.9/0.999, eps 1e-8, `amsgrad=False`) with its coupled L2
/// weight decay: the gradient becomes g + wd·θ before the moment updates.
pub(super) struct Adam {
    pub(super) lr: f64,
    pub(super) weight_decay: f64,
    pub(super) step: i32,
    pub(super) m: Vec<Option<Tensor>>,
    pub(super) v: Vec<Option<Tensor>>,
}

impl Adam {
    pub(super) fn new(lr: f64, weight_decay: f64, n_params: usize) -> Self {
        Adam {
            lr,
            weight_decay,
            step: 0,
            m: (0..n_params).map(|_| None).collect(),
            v: (0..n_params).map(|_| None).collect(),
        }
    }

    /// One update of every parameter, in torch's order of operations:
    /// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
    pub(super) fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        self.step += 1;
        let bc1 = 1.0 - ADAM_BETA1.powi(self.step);
        let bc2_sqrt = (1.0 - ADAM_BETA2.powi(self.step)).sqrt();
        tch::no_grad(|| {
            for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
                let g = if self.weight_decay != 0.0 {
                    g + &*p * self.weight_decay
                } else {
                    g.shallow_clone()
                };
                let m = match &self.m[i] {
                    Some(m) => m * ADAM_BETA1 + &g * (1.0 - ADAM_BETA1),
                    None => &g * (1.0 - ADAM_BETA1),
                };
                let v = match &self.v[i] {
                    Some(v) => v * ADAM_BETA2 + g.square() * (1.0 - ADAM_BETA2),
                    None => g.square() * (1.0 - ADAM_BETA2),
                };
                let denom = v.sqrt() / bc2_sqrt + ADAM_EPS;
                *p = &*p - (&m / denom) * (self.lr / bc1);
                self.m[i] = Some(m);
                self.v[i] = Some(v);
            }
        });
    }
}

/// A `shape` tensor of U(−bound, bound) draws from `rng`, in `like`'s dtype and device.
pub(super) fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], bound: f64, like: &Tensor) -> Tensor {
    let count: i64 = shape.iter().product();
    let draws: Vec<f64> = (0..count).map(|_| rng.gen_range(-bound..bound)).collect();
    Tensor::from_slice(&draws)
        .reshape(shape)
        .to_kind(like.kind())
        .to_device(like.device())
}

/// Fraction of rows whose argmax logit is the label; NaN for no rows.
pub(super) fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    let m = labels.size()[0];
    if m == 0 {
        return f64::NAN;
    }
    let correct = tch::no_grad(|| {
        logits
            .argmax(1, false)
            .eq_tensor(labels)
            .sum(Kind::Int64)
            .int64_value(&[])
    });
    correct as f64 / m as f64
}

// ---------------------------------------------------------------------------------------------
// Softmax regression on raw features, fitted by L-BFGS (GRACE)

/// A multinomial logistic regression fitted to convergence on the features as given (the
/// crate's [`fit_linear_probe`] standardises them first, which GRACE's protocol does not).
pub(super) struct SoftmaxFit {
    /// `[D, C]`.
    pub(super) weight: Tensor,
    /// `[C]`.
    pub(super) bias: Tensor,
}

impl SoftmaxFit {
    pub(super) fn accuracy_on(&self, x: &Tensor, y: &Tensor) -> f64 {
        accuracy(&tch::no_grad(|| x.matmul(&self.weight) + &self.bias), y)
    }
}

/// Minimises mean CE + ½·wd·(‖W‖² + ‖b‖²) from zero weights with L-BFGS (the linear probe's
/// settings: lr 1, history 20, strong-Wolfe line search, `max_iters` iterations). The bias is
/// penalised like liblinear's intercept; with it unpenalised, a strongly regularised fit
/// predicts the training-set majority class almost everywhere.
pub(super) fn fit_softmax_lbfgs(
    x: &Tensor,
    y: &Tensor,
    c: i64,
    d: i64,
    wd: f64,
    max_iters: usize,
) -> SoftmaxFit {
    let objective = |theta: &Tensor| softmax_loss_grad(x, y, c, d, wd, theta);
    let cfg = LbfgsConfig {
        max_iter: max_iters,
        history_size: 20,
        ..LbfgsConfig::default()
    };
    let theta0 = Tensor::zeros([d * c + c], (x.kind(), x.device()));
    let (theta, _) = minimise(&theta0, &cfg, objective);
    SoftmaxFit {
        weight: theta.narrow(0, 0, d * c).reshape([d, c]),
        bias: theta.narrow(0, d * c, c),
    }
}

/// Loss and gradient of mean CE + ½·wd·‖θ‖² at θ = [vec(W) row-major; b]:
/// ∂W = xᵀ(P − Y)/N + wd·W, ∂b = 1ᵀ(P − Y)/N + wd·b.
pub(super) fn softmax_loss_grad(
    x: &Tensor,
    y: &Tensor,
    c: i64,
    d: i64,
    wd: f64,
    theta: &Tensor,
) -> (f64, Tensor) {
    tch::no_grad(|| {
        let n = x.size()[0] as f64;
        let w = theta.narrow(0, 0, d * c).reshape([d, c]);
        let b = theta.narrow(0, d * c, c);
        let log_p = (x.matmul(&w) + &b).log_softmax(1, None::<Kind>);
        let ce = -log_p.gather(1, &y.unsqueeze(1), false).mean(None::<Kind>);
        let loss = (ce + theta.square().sum(None::<Kind>) * (0.5 * wd)).double_value(&[]);
        let d_logits = (log_p.exp() - y.one_hot(c).to_kind(x.kind())) / n;
        let grad_w = x.tr().matmul(&d_logits);
        let grad_b = d_logits.sum_dim_intlist(0, false, None::<Kind>);
        (
            loss,
            Tensor::cat(&[grad_w.reshape([-1]), grad_b], 0) + theta * wd,
        )
    })
}
