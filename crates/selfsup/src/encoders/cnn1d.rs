//! A small 1-D CNN for time series: per width, conv1d (kernel k, "same" padding) + BN + ReLU,
//! then global average pooling over time — the fully convolutional baseline shape of Wang et al.
//! (2017, "Time series classification from scratch"), whose widths are 128-256-128 with kernels
//! 8-5-3. Inputs are `[N, C, T]`; any length.
use tch::{nn, nn::Init, nn::ModuleT, Tensor};

#[derive(Debug)]
struct Block {
    conv: nn::Conv1D,
    bn: crate::torch_init::BatchNorm,
}

#[derive(Debug)]
pub struct Cnn1d {
    blocks: Vec<Block>,
    out: i64,
}

impl Cnn1d {
    /// PyTorch's default initialisation of `nn.Conv1d` (weight and bias U(±1/√(c_in·k))).
    pub fn new(vs: &nn::Path, channels: i64, widths: &[i64], kernel: i64) -> Self {
        let mut c = channels;
        let mut blocks = Vec::new();
        for (i, &w) in widths.iter().enumerate() {
            let p = vs.sub(format!("block{i}"));
            let bound = 1.0 / ((c * kernel).max(1) as f64).sqrt();
            let init = Init::Uniform {
                lo: -bound,
                up: bound,
            };
            let conv = nn::conv1d(
                &p / "conv",
                c,
                w,
                kernel,
                nn::ConvConfig {
                    padding: kernel / 2,
                    ws_init: init,
                    bs_init: init,
                    ..Default::default()
                },
            );
            let bn = crate::torch_init::batch_norm1d(&p / "bn", w);
            blocks.push(Block { conv, bn });
            c = w;
        }
        Cnn1d { blocks, out: c }
    }
}

impl ModuleT for Cnn1d {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let t = xs.size()[2];
        let mut x = xs.shallow_clone();
        for b in &self.blocks {
            // An even kernel pads one more than it removes: keep the first T steps.
            x = x
                .apply(&b.conv)
                .narrow(2, 0, t)
                .apply_t(&b.bn, train)
                .relu();
        }
        x.mean_dim([2i64].as_slice(), false, tch::Kind::Float)
    }
}

impl super::Encoder for Cnn1d {
    fn out_dim(&self) -> i64 {
        self.out
    }
}
