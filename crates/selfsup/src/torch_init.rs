//! PyTorch's default initialisations, for layers whose published results were obtained with them.
//!
//! tch's defaults differ from PyTorch's in two ways that move results:
//! - `nn::linear` and `nn::conv2d` draw weights from U(±√(6/fan_in)) (Kaiming with the ReLU gain),
//!   about 2.45× wider than PyTorch's `nn.Linear` / `nn.Conv2d` default, U(±1/√fan_in)
//!   (Kaiming-uniform with a = √5);
//! - `nn::batch_norm*` draws the scale γ from U(0, 1); PyTorch starts it at 1. Random scales near
//!   zero silence channels at the start of training.
//!
//! Papers' hyper-parameters (learning rates, weight decays) were tuned with PyTorch's.
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};
use tch::Tensor;

/// Kaiming-uniform with gain √(2/(1+5)) = 1/√3: the bound √3·gain/√fan_in is 1/√fan_in, PyTorch's
/// `kaiming_uniform_(w, a=√5)` for linear and convolution weights (fan_in counts the kernel taps).
const TORCH_DEFAULT_WEIGHT: Init = Init::Kaiming {
    dist: NormalOrUniform::Uniform,
    fan: FanInOut::FanIn,
    non_linearity: NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

/// A linear layer initialised as PyTorch's `nn.Linear(fan_in, out, bias)`: weight and bias
/// U(±1/√fan_in).
pub fn linear(p: nn::Path, fan_in: i64, out: i64, bias: bool) -> nn::Linear {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::linear(
        p,
        fan_in,
        out,
        nn::LinearConfig {
            ws_init: TORCH_DEFAULT_WEIGHT,
            bs_init: Some(Init::Uniform {
                lo: -bound,
                up: bound,
            }),
            bias,
        },
    )
}

/// A convolution initialised as PyTorch's `nn.Conv2d(c_in, c_out, k, stride, k / 2, bias)`:
/// weight and bias U(±1/√(c_in·k²)).
pub fn conv2d(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    let bound = 1.0 / ((c_in * k * k).max(1) as f64).sqrt();
    let bias_init = bias.then_some(Init::Uniform {
        lo: -bound,
        up: bound,
    });
    same_padded_conv(p, c_in, c_out, k, stride, TORCH_DEFAULT_WEIGHT, bias_init)
}

/// A bias-free convolution initialised as torchvision's ResNets do: Kaiming-normal over fan_out
/// with the ReLU gain, N(0, 2/(c_out·k²)).
pub fn conv2d_kaiming_fan_out(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
) -> nn::Conv2D {
    let kaiming_fan_out = Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ReLU,
    };
    same_padded_conv(p, c_in, c_out, k, stride, kaiming_fan_out, None)
}

/// A k×k convolution with padding k / 2; a bias exactly when `bias_init` is given.
fn same_padded_conv(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    ws_init: Init,
    bias_init: Option<Init>,
) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        k,
        nn::ConvConfig {
            stride,
            padding: k / 2,
            bias: bias_init.is_some(),
            ws_init,
            bs_init: bias_init.unwrap_or(Init::Const(0.0)),
            ..Default::default()
        },
    )
}

/// tch's batch norm (same variables, same output) that synchronises its batch statistics over
/// the ranks of a data-parallel run inside a [`crate::distributed::SyncScope`].
#[derive(Debug)]
pub struct BatchNorm {
    pub inner: nn::BatchNorm,
    momentum: f64,
    eps: f64,
}

impl nn::ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            let state = crate::distributed::sync_norm::NormState {
                weight: self.inner.ws.as_ref(),
                bias: self.inner.bs.as_ref(),
                running_mean: &self.inner.running_mean,
                running_var: &self.inner.running_var,
                momentum: self.momentum,
                eps: self.eps,
            };
            if let Some(y) = crate::distributed::sync_norm::normalise(xs, &state) {
                return y;
            }
        }
        self.inner.forward_t(xs, train)
    }
}

/// PyTorch's `nn.BatchNorm1d(dim)`: γ = 1, β = 0, ε = 1e-5, momentum 0.1.
pub fn batch_norm1d(p: nn::Path, dim: i64) -> BatchNorm {
    batch_norm1d_with_momentum(p, dim, 0.1)
}

/// [`batch_norm1d`] with another running-statistics momentum (PyTorch's convention: the weight
/// of the newest batch).
pub fn batch_norm1d_with_momentum(p: nn::Path, dim: i64, momentum: f64) -> BatchNorm {
    let c = batch_norm_config(momentum);
    let eps = c.eps;
    BatchNorm {
        inner: nn::batch_norm1d(p, dim, c),
        momentum,
        eps,
    }
}

/// PyTorch's `nn.BatchNorm2d(dim)`: γ = 1, β = 0, ε = 1e-5, momentum 0.1.
pub fn batch_norm2d(p: nn::Path, dim: i64) -> BatchNorm {
    let c = batch_norm_config(0.1);
    let eps = c.eps;
    BatchNorm {
        inner: nn::batch_norm2d(p, dim, c),
        momentum: 0.1,
        eps,
    }
}

fn batch_norm_config(momentum: f64) -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        momentum,
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        ..Default::default()
    }
}

/// A linear layer initialised as in the MAE/ViT reference code: Xavier-uniform weight
/// U(±√(6/(fan_in+fan_out))) and zero bias.
pub fn xavier_linear(p: nn::Path, fan_in: i64, out: i64) -> nn::Linear {
    xavier_linear_with(p, fan_in, out, true)
}

/// [`xavier_linear`], with or without its bias.
pub fn xavier_linear_with(p: nn::Path, fan_in: i64, out: i64, bias: bool) -> nn::Linear {
    let bound = (6.0 / (fan_in + out).max(1) as f64).sqrt();
    nn::linear(
        p,
        fan_in,
        out,
        nn::LinearConfig {
            ws_init: Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Some(Init::Const(0.0)),
            bias,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn weights_and_biases_lie_within_pytorchs_bounds_and_fill_them() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let l = linear(vs.root() / "l", 100, 400, true);
        let bound = 0.1;
        let w_max = l.ws.abs().max().double_value(&[]);
        assert!(w_max <= bound + 1e-7 && w_max > 0.95 * bound, "{w_max}");
        let b_max = l.bs.as_ref().unwrap().abs().max().double_value(&[]);
        assert!(b_max <= bound + 1e-7, "{b_max}");
    }

    #[test]
    fn convolution_weights_fill_pytorchs_bound_over_the_kernel_fan_in() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        // fan_in = 16 · 3 · 3 = 144, bound 1/12.
        let c = conv2d(vs.root() / "c", 16, 64, 3, 2, true);
        let bound = 1.0 / 12.0;
        let w_max = c.ws.abs().max().double_value(&[]);
        assert!(w_max <= bound + 1e-7 && w_max > 0.95 * bound, "{w_max}");
        let b_max = c.bs.as_ref().unwrap().abs().max().double_value(&[]);
        assert!(b_max <= bound + 1e-7, "{b_max}");
        assert_eq!(c.ws.size(), [64, 16, 3, 3]);
    }

    #[test]
    fn resnet_convolutions_have_the_fan_out_kaiming_spread() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        // fan_out = 128 · 3 · 3 = 1152, std √(2/1152) = 1/24.
        let c = conv2d_kaiming_fan_out(vs.root() / "c", 64, 128, 3, 1);
        let std = c.ws.std(true).double_value(&[]);
        assert!((std - 1.0 / 24.0).abs() < 0.02 / 24.0, "{std}");
        assert!(c.bs.is_none());
    }

    #[test]
    fn batch_norms_start_as_the_identity_scale() {
        let vs = nn::VarStore::new(Device::Cpu);
        for bn in [
            batch_norm1d(vs.root() / "a", 7),
            batch_norm2d(vs.root() / "b", 7),
            batch_norm1d_with_momentum(vs.root() / "c", 7, 0.99),
        ] {
            let w = bn.inner.ws.as_ref().unwrap();
            let b = bn.inner.bs.as_ref().unwrap();
            assert_eq!(Vec::<f32>::try_from(w).unwrap(), vec![1.0; 7]);
            assert_eq!(Vec::<f32>::try_from(b).unwrap(), vec![0.0; 7]);
        }
        // tch's own default would have drawn γ from U(0, 1).
        let tch_default = nn::batch_norm1d(vs.root() / "d", 1000, Default::default());
        assert!(tch_default.ws.unwrap().max().double_value(&[]) < 1.0);
    }
}
