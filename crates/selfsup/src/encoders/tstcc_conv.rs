//! TS-TCC's encoder (Eldele et al., IJCAI 2021, §4.1 and the authors' `base_Model`): three
//! blocks of conv1d (kernel k, stride 1, padding k/2, no bias) → batch norm → ReLU → max-pool
//! (2, stride 2, padding 1), with dropout after the first block; widths 32-64-128 and kernel 8
//! in the authors' HAR configuration. Each block roughly halves the length.
//!
//! Per-step outputs `[N, T', C]` feed the temporal contrasting; the representation handed
//! downstream is the flattened `[C·T']` map, as TS-TCC's linear evaluation reads it.
use tch::{nn, nn::Init, nn::ModuleT, Tensor};

#[derive(Debug)]
struct Block {
    conv: nn::Conv1D,
    bn: crate::torch_init::BatchNorm,
}

#[derive(Debug)]
pub struct TstccConv {
    blocks: Vec<Block>,
    dropout: f64,
    channels: i64,
    /// T' for the series length the encoder was built for.
    steps: i64,
}

/// The output length of one block for input length `t`: the convolution gives
/// t + 2⌊k/2⌋ − k + 1, the pooling ⌊(· + 2 − 2)/2⌋ + 1.
fn block_len(t: i64, k: i64) -> i64 {
    let conv = t + 2 * (k / 2) - k + 1;
    conv / 2 + 1
}

impl TstccConv {
    /// For series `[channels, length]`.
    pub fn new(
        vs: &nn::Path,
        channels: i64,
        length: i64,
        widths: &[i64],
        kernel: i64,
        dropout: f64,
    ) -> Self {
        let mut c = channels;
        let mut t = length;
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let p = vs / format!("block{i}");
                let bound = 1.0 / ((c * kernel).max(1) as f64).sqrt();
                let conv = nn::conv1d(
                    &p / "conv",
                    c,
                    w,
                    kernel,
                    nn::ConvConfig {
                        padding: kernel / 2,
                        bias: false,
                        ws_init: Init::Uniform {
                            lo: -bound,
                            up: bound,
                        },
                        ..Default::default()
                    },
                );
                let bn = crate::torch_init::batch_norm1d(&p / "bn", w);
                c = w;
                t = block_len(t, kernel);
                Block { conv, bn }
            })
            .collect();
        TstccConv {
            blocks,
            dropout,
            channels: c,
            steps: t,
        }
    }

    /// Per-step features `[N, T', C]` of series `[N, channels, T]`.
    pub fn steps(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (i, b) in self.blocks.iter().enumerate() {
            x = x.apply(&b.conv).apply_t(&b.bn, train).relu().max_pool1d(
                [2i64].as_slice(),
                [2i64].as_slice(),
                [1i64].as_slice(),
                [1i64].as_slice(),
                false,
            );
            if i == 0 {
                x = x.dropout(self.dropout, train);
            }
        }
        x.transpose(1, 2)
    }

    /// Width of each step's feature.
    pub fn step_dim(&self) -> i64 {
        self.channels
    }
}

impl ModuleT for TstccConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.steps(xs, train).flatten(1, -1)
    }
}

impl super::Encoder for TstccConv {
    fn out_dim(&self) -> i64 {
        self.channels * self.steps
    }
    fn as_tstcc_conv(&self) -> Option<&TstccConv> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_declared_length_matches_the_output() {
        for (t, k) in [(15, 8), (128, 8), (251, 8), (24, 3), (100, 25)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let e = TstccConv::new(&vs.root(), 1, t, &[32, 64, 128], k, 0.35);
            let x = Tensor::randn([2, 1, t], (Kind::Float, Device::Cpu));
            let s = e.steps(&x, false);
            assert_eq!(s.size(), [2, e.steps, 128], "T={t} k={k}");
            assert_eq!(
                e.forward_t(&x, true).size(),
                [2, super::super::Encoder::out_dim(&e)]
            );
        }
    }
}
