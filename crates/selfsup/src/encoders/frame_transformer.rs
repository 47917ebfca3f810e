//! A transformer over the frames of a spectrogram (TERA, Liu et al. 2021): each frame's mel
//! vector is projected to the model width, fixed 1-D sine-cosine positions are added, and
//! pre-norm transformer blocks encode the sequence; the representation is the mean of the
//! frames' outputs. TERA's base model is 3 layers of width 768; recipes here narrow it.
use super::transformer::{Attention, TransformerStack};
use crate::torch_init::xavier_linear;
use tch::{nn, nn::Module, nn::ModuleT, Kind, Tensor};

#[derive(Debug)]
pub struct FrameTransformer {
    input: nn::Linear,
    norm_in: nn::LayerNorm,
    pos: Tensor,
    stack: TransformerStack,
    n_mels: i64,
    dim: i64,
}

/// Sine-cosine positions `[t][dim]` (Vaswani et al. 2017: sin on even, cos on odd features).
pub fn sincos_1d(t: i64, dim: i64) -> Vec<f32> {
    let mut out = vec![0f32; (t * dim) as usize];
    for p in 0..t {
        for i in 0..dim / 2 {
            let freq = 1.0 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            out[(p * dim + 2 * i) as usize] = (p as f64 * freq).sin() as f32;
            out[(p * dim + 2 * i + 1) as usize] = (p as f64 * freq).cos() as f32;
        }
    }
    out
}

impl FrameTransformer {
    pub fn new(
        p: &nn::Path,
        shape: &[i64],
        dim: i64,
        depth: usize,
        heads: i64,
        mlp_ratio: f64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            shape.len() == 3 && shape[0] == 1,
            "frame_transformer needs spectrogram inputs [1, mels, frames], got {shape:?}"
        );
        anyhow::ensure!(
            heads > 0 && dim % heads == 0 && dim % 2 == 0,
            "frame_transformer: width {dim} must be even and divisible by {heads} heads"
        );
        let (n_mels, t) = (shape[1], shape[2]);
        // Fixed, saved with the model (a non-trainable variable), never updated.
        let pos = p.zeros_no_train("pos_embed", &[1, t, dim]);
        tch::no_grad(|| {
            pos.shallow_clone()
                .copy_(&Tensor::from_slice(&sincos_1d(t, dim)).view([1, t, dim]))
        });
        Ok(FrameTransformer {
            input: xavier_linear(p / "input", n_mels, dim),
            norm_in: super::transformer::layer_norm(p / "norm_in", dim),
            pos,
            stack: TransformerStack::new(p, dim, depth, heads, mlp_ratio, Attention::Fused, |_| {
                None
            }),
            n_mels,
            dim,
        })
    }

    pub fn n_mels(&self) -> i64 {
        self.n_mels
    }

    /// `[N, 1, F, T]` → frames `[N, T, F]`.
    pub fn to_frames(x: &Tensor) -> Tensor {
        x.squeeze_dim(1).transpose(1, 2)
    }

    /// Encodes frames `[N, T, F]` → `[N, T, dim]`.
    pub fn encode_frames(&self, frames: &Tensor) -> Tensor {
        let h = frames.apply(&self.input) + &self.pos;
        self.stack.forward(&h.apply(&self.norm_in))
    }
}

impl ModuleT for FrameTransformer {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.encode_frames(&Self::to_frames(x))
            .mean_dim(1, false, Kind::Float)
    }
}

impl super::Encoder for FrameTransformer {
    fn out_dim(&self) -> i64 {
        self.dim
    }
    fn as_frame_transformer(&self) -> Option<&FrameTransformer> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_are_sin_and_cos_of_position_over_frequency() {
        let p = super::sincos_1d(3, 4);
        assert_eq!(p[0], 0.0);
        assert_eq!(p[1], 1.0);
        let f1 = 1.0 / 100f64; // 10000^(2/4)
        assert!((p[2 * 4 + 2] as f64 - (2.0 * f1).sin()).abs() < 1e-6);
        assert!((p[2 * 4 + 3] as f64 - (2.0 * f1).cos()).abs() < 1e-6);
    }
}
