//! PyTorch's default initialisations, for layers whose published results were obtained with them.
//!
//! tch's `nn::linear` draws weights from U(±√(6/fan_in)) (Kaiming with the ReLU gain), about 2.45×
//! wider than PyTorch's `nn.Linear` default, U(±1/√fan_in) (Kaiming-uniform with a = √5). Papers'
//! hyper-parameters (learning rates, weight decays) were tuned with the latter.
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};

/// A linear layer initialised as PyTorch's `nn.Linear(fan_in, out, bias)`: weight and bias
/// U(±1/√fan_in).
pub fn linear(p: nn::Path, fan_in: i64, out: i64, bias: bool) -> nn::Linear {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::linear(
        p,
        fan_in,
        out,
        nn::LinearConfig {
            // Kaiming-uniform with gain √(2/(1+5)) = 1/√3 gives the bound √3·gain/√fan_in = 1/√fan_in.
            ws_init: Init::Kaiming {
                dist: NormalOrUniform::Uniform,
                fan: FanInOut::FanIn,
                non_linearity: NonLinearity::ExplicitGain((1.0f64 / 3.0).sqrt()),
            },
            bs_init: Some(Init::Uniform {
                lo: -bound,
                up: bound,
            }),
            bias,
        },
    )
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
}
