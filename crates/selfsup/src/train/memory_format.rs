//! Channels-last (NHWC) memory format for convolutional networks. oneDNN's CPU convolutions (and
//! cuDNN's bf16 ones) run natively on NHWC; with NCHW tensors libtorch reorders every input,
//! output and weight around each convolution. A 4-D tensor whose strides are NHWC's *is*
//! channels-last to libtorch (`suggest_memory_format` reads the strides), so no special API is
//! needed: permute to NHWC, make it contiguous, permute back — same shape, same values, NHWC
//! strides — and convolutions keep their outputs in that format.
//!
//! Weights are converted in place (`set_data`: the variable stays the one the optimiser holds).
//! Checkpoints are written contiguous in the default format (see `checkpoint::save`), so a run
//! saved in either format resumes in either.
use tch::{nn::VarStore, Tensor};

/// `x` with channels-last strides when it is 4-D (`[N, C, H, W]`), as is otherwise.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if x.dim() == 4 {
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        x.shallow_clone()
    }
}

/// Whether `x` is 4-D with channels-last strides (and more than one channel, where the formats
/// differ).
pub fn is_channels_last(x: &Tensor) -> bool {
    if x.dim() != 4 {
        return false;
    }
    let (size, stride) = (x.size(), x.stride());
    size[1] > 1 && stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}

/// Converts every 4-D variable of `vs` (convolution kernels) to channels-last in place; returns
/// how many were converted.
pub fn convert_conv_weights(vs: &VarStore) -> usize {
    let mut n = 0;
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 && !is_channels_last(&v) {
                let cl = to_channels_last(&v);
                v.set_data(&cl);
                n += 1;
            }
        }
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, nn::ModuleT, Device, Kind};

    #[test]
    fn conversion_keeps_shape_and_values_and_sets_nhwc_strides() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let y = to_channels_last(&x);
        assert_eq!(y.size(), x.size());
        assert_eq!(y.stride(), [60, 1, 15, 3]);
        assert!(is_channels_last(&y) && !is_channels_last(&x));
        assert_eq!(f64::try_from((&y - &x).abs().max()).unwrap(), 0.0);
        // Other ranks pass through.
        let v = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        assert_eq!(to_channels_last(&v).stride(), v.stride());
    }

    #[test]
    fn a_converted_cnn_computes_the_same_outputs_and_gradients() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cnn = crate::encoders::small_cnn::SmallCnn::new(&vs.root(), 3, &[8, 16]);
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let grads = |input: &Tensor| {
            let mut vars: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, v)| v.requires_grad())
                .collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            let y = cnn.forward_t(input, true);
            let params: Vec<&Tensor> = vars.iter().map(|(_, v)| v).collect();
            let g = Tensor::run_backward(&[y.square().sum(Kind::Float)], &params, false, false);
            let named: Vec<(String, Tensor)> = vars
                .iter()
                .zip(g)
                .map(|((k, _), g)| (k.clone(), g.contiguous()))
                .collect();
            (y.contiguous(), named)
        };
        let (y0, g0) = grads(&x);
        let converted = convert_conv_weights(&vs);
        assert!(converted >= 2, "{converted} kernels converted");
        let (y1, g1) = grads(&to_channels_last(&x));
        let close = |a: &Tensor, b: &Tensor| {
            f64::try_from((a - b).abs().max()).unwrap()
                <= 1e-4 * (1.0 + f64::try_from(b.abs().max()).unwrap())
        };
        assert!(close(&y1, &y0));
        for ((k, a), (_, b)) in g1.iter().zip(&g0) {
            assert!(close(a, b), "gradient of {k} differs");
        }
        // The variables themselves stay channels-last, the ones the optimiser updates.
        assert!(vs
            .variables()
            .values()
            .filter(|v| v.dim() == 4)
            .all(is_channels_last));
    }
}
