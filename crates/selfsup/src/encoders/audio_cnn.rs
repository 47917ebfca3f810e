//! BYOL-A's audio encoder (Niizumi et al. 2021, "AudioNTT2020"): on a log-mel `[1, F, T]`,
//! blocks of conv3x3 + BN + ReLU + 2×2 max-pool, then each remaining time step's
//! (channel × frequency) features through two fully connected layers, and the result pooled over
//! time as mean + max. The paper's widths are 64 channels and 2048 features; a recipe may narrow
//! them for small machines.
use super::small_cnn::ConvBn;
use tch::{nn, nn::ModuleT, Kind, Tensor};

#[derive(Debug)]
pub struct AudioCnn {
    blocks: Vec<ConvBn>,
    fc1: nn::Linear,
    fc2: nn::Linear,
    dropout: f64,
    out: i64,
}

impl AudioCnn {
    /// For inputs `[N, 1, n_mels, T]`.
    pub fn new(
        p: &nn::Path,
        shape: &[i64],
        widths: &[i64],
        dim: i64,
        dropout: f64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            shape.len() == 3,
            "audio_cnn needs spectrogram inputs [1, mels, frames], got {shape:?}"
        );
        anyhow::ensure!(!widths.is_empty(), "audio_cnn needs at least one block");
        let pool = 1i64 << widths.len();
        anyhow::ensure!(
            shape[1] >= pool && shape[2] >= pool,
            "audio_cnn: {} blocks halve the {}×{} spectrogram below one cell",
            widths.len(),
            shape[1],
            shape[2]
        );
        let mut c = shape[0];
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let b = ConvBn::new(&(p / "blocks" / i), c, w, 3, 1);
                c = w;
                b
            })
            .collect();
        let freq = shape[1] / pool;
        Ok(AudioCnn {
            blocks,
            fc1: crate::torch_init::linear(p / "fc1", c * freq, dim, true),
            fc2: crate::torch_init::linear(p / "fc2", dim, dim, true),
            dropout,
            out: dim,
        })
    }

    /// Per-step features `[N, T / 2^blocks, dim]`.
    pub fn steps(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for b in &self.blocks {
            // Same padding (ConvBn pads by k/2) keeps the size; the pool halves it.
            h = b
                .forward_t(&h, train)
                .max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        }
        let (n, c, f, t) = h.size4().expect("conv maps are [N, C, F, T]");
        let h = h.permute([0, 3, 1, 2]).reshape([n, t, c * f]);
        h.apply(&self.fc1)
            .relu()
            .dropout(self.dropout, train)
            .apply(&self.fc2)
            .relu()
    }
}

impl ModuleT for AudioCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let s = self.steps(x, train);
        s.mean_dim(1, false, Kind::Float) + s.amax(1, false)
    }
}

impl super::Encoder for AudioCnn {
    fn out_dim(&self) -> i64 {
        self.out
    }
}
