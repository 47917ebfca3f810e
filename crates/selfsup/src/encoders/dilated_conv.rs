//! TS2Vec's encoder (Yue et al., AAAI 2022, §3.2): a per-timestep linear input projection,
//! optional timestamp masking of the projected steps, then residual blocks of dilated
//! convolutions (dilation 2^i in block i) that keep the length, and dropout (p = 0.1) on the
//! output. The paper's setting is hidden width 64, ten blocks, and a final block to 320 channels;
//! kernel 3, so each block's receptive field is odd and "same" padding needs no trimming.
//!
//! Steps whose input is NaN (series shorter than the padded length) are zeroed after the
//! projection and stay masked out, as in the authors' encoder. The representation of a whole
//! series (the `Encoder` output) is the per-step output max-pooled over time.
use crate::torch_init;
use tch::{nn, nn::Init, Tensor};

/// Dropout on the per-step representation during training (the authors' encoder).
const REPR_DROPOUT: f64 = 0.1;

/// A convolution initialised as PyTorch's `nn.Conv1d` (weight and bias U(±1/√(c_in·k))) with
/// "same" padding for an odd receptive field.
fn conv1d(p: nn::Path, c_in: i64, c_out: i64, k: i64, dilation: i64) -> nn::Conv1D {
    let bound = 1.0 / ((c_in * k).max(1) as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::conv1d(
        p,
        c_in,
        c_out,
        k,
        nn::ConvConfig {
            padding: (k - 1) * dilation / 2,
            dilation,
            ws_init: init,
            bs_init: init,
            ..Default::default()
        },
    )
}

/// gelu → conv → gelu → conv, plus the input (through a 1×1 projection where the width changes,
/// and always in the last block).
#[derive(Debug)]
struct Block {
    conv1: nn::Conv1D,
    conv2: nn::Conv1D,
    projector: Option<nn::Conv1D>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let residual = match &self.projector {
            Some(p) => x.apply(p),
            None => x.shallow_clone(),
        };
        let h = x
            .gelu("none")
            .apply(&self.conv1)
            .gelu("none")
            .apply(&self.conv2);
        h + residual
    }
}

#[derive(Debug)]
pub struct DilatedConv {
    input_fc: nn::Linear,
    blocks: Vec<Block>,
    out: i64,
}

/// Which steps the projected input keeps.
#[derive(Debug, Clone, Copy)]
pub enum StepMask<'a> {
    /// Every observed (non-NaN) step: evaluation.
    All,
    /// `[N, T]` booleans: true keeps the step (TS2Vec draws Bernoulli(0.5) per step in training).
    Keep(&'a Tensor),
}

impl DilatedConv {
    /// `channels` input channels; `depth` blocks of width `hidden`, then one block to `out`;
    /// convolution kernel `kernel` (odd).
    pub fn new(
        vs: &nn::Path,
        channels: i64,
        hidden: i64,
        out: i64,
        depth: usize,
        kernel: i64,
    ) -> Self {
        let input_fc = torch_init::linear(vs / "input_fc", channels, hidden, true);
        let widths: Vec<i64> = std::iter::repeat(hidden).take(depth).chain([out]).collect();
        let mut c = hidden;
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let p = vs / "blocks" / i;
                let dilation = 1i64 << i;
                let last = i + 1 == widths.len();
                let projector = (c != w || last).then(|| conv1d(&p / "projector", c, w, 1, 1));
                let b = Block {
                    conv1: conv1d(&p / "conv1", c, w, kernel, dilation),
                    conv2: conv1d(&p / "conv2", w, w, kernel, dilation),
                    projector,
                };
                c = w;
                b
            })
            .collect();
        DilatedConv {
            input_fc,
            blocks,
            out,
        }
    }

    /// Per-step representations `[N, T, out]` of series `[N, C, T]`.
    pub fn steps(&self, xs: &Tensor, mask: StepMask, train: bool) -> Tensor {
        let x = xs.transpose(1, 2); // [N, T, C]
        let observed = x.isnan().any_dim(-1, false).logical_not(); // [N, T]
        let x = x.masked_fill(&x.isnan(), 0.0).apply(&self.input_fc);
        let keep = match mask {
            StepMask::All => observed,
            StepMask::Keep(m) => observed.logical_and(m),
        };
        let kind = x.kind();
        let x = x * keep.unsqueeze(-1).to_kind(kind);
        let mut h = x.transpose(1, 2); // [N, hidden, T]
        for b in &self.blocks {
            h = b.forward(&h);
        }
        h.dropout(REPR_DROPOUT, train).transpose(1, 2)
    }
}

impl nn::ModuleT for DilatedConv {
    /// The whole-series representation: per-step outputs (every observed step kept),
    /// max-pooled over time.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.steps(xs, StepMask::All, train)
            .amax([1i64].as_slice(), false)
    }
}

impl super::Encoder for DilatedConv {
    fn out_dim(&self) -> i64 {
        self.out
    }
    fn as_dilated_conv(&self) -> Option<&DilatedConv> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::ModuleT, Device, Kind};

    #[test]
    fn steps_keep_the_length_and_masked_steps_do_not_see_their_input() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = DilatedConv::new(&vs.root(), 1, 8, 12, 3, 3);
        let x = Tensor::randn([2, 1, 17], (Kind::Float, Device::Cpu));
        let s = enc.steps(&x, StepMask::All, false);
        assert_eq!(s.size(), [2, 17, 12]);
        assert_eq!(enc.forward_t(&x, false).size(), [2, 12]);
        // A masked step gives the same output whatever its input was.
        let keep = Tensor::ones([2, 17], (Kind::Bool, Device::Cpu));
        let _ = keep.get(0).get(5).fill_(0);
        let y = x.copy();
        let _ = y.get(0).get(0).get(5).fill_(100.0);
        let a = enc.steps(&x, StepMask::Keep(&keep), false);
        let b = enc.steps(&y, StepMask::Keep(&keep), false);
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
        // A NaN step is treated as masked, and nothing NaN comes out.
        let z = x.copy();
        let _ = z.get(0).get(0).get(5).fill_(f64::NAN);
        let c = enc.steps(&z, StepMask::All, false);
        assert!(c.isfinite().all().int64_value(&[]) == 1);
        assert!(a.allclose(&c, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_paper_shape_has_eleven_blocks_and_reaches_far() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = DilatedConv::new(&vs.root(), 1, 64, 320, 10, 3);
        assert_eq!(enc.blocks.len(), 11);
        // Only the last block projects its residual (64 → 320).
        assert!(enc.blocks[..10].iter().all(|b| b.projector.is_none()));
        assert!(enc.blocks[10].projector.is_some());
        // A change at step 0 reaches step 2000 (receptive field 2·2·(2^11 − 1) + 1 ≫ 2000).
        let x = Tensor::zeros([1, 1, 2048], (Kind::Float, Device::Cpu));
        let y = x.copy();
        let _ = y.get(0).get(0).get(0).fill_(1.0);
        let (a, b) = (
            enc.steps(&x, StepMask::All, false),
            enc.steps(&y, StepMask::All, false),
        );
        let diff = (a - b)
            .abs()
            .get(0)
            .get(2000)
            .sum(Kind::Float)
            .double_value(&[]);
        assert!(diff > 0.0);
    }
}
