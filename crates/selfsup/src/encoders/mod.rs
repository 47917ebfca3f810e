//! Backbones. Each maps a batch of inputs to a `[N, out_dim]` representation.
use serde::{Deserialize, Serialize};
use tch::nn;

pub mod audio_cnn;
pub mod cnn1d;
pub mod dilated_conv;
pub mod feature_transformer;
pub mod frame_transformer;
pub mod graph;
pub mod mlp;
pub mod resnet;
pub mod small_cnn;
pub mod text_transformer;
pub mod transformer;
pub mod tstcc_conv;
pub mod vit;

/// A backbone: `forward_t(x, train)` gives the representation that evaluation uses.
pub trait Encoder: nn::ModuleT {
    /// Width of the representation.
    fn out_dim(&self) -> i64;
    /// The spatial maps of a convolutional encoder, one per stage, finest first (the last is the
    /// one pooled into the representation); `None` for encoders without them.
    fn feature_maps(&self, _x: &tch::Tensor, _train: bool) -> Option<Vec<tch::Tensor>> {
        None
    }
    /// The Vision Transformer behind this encoder, for methods that work on tokens (MAE,
    /// SimMIM, I-JEPA).
    fn as_vit(&self) -> Option<&vit::Vit> {
        None
    }
    /// Width of a flat input, for encoders of flat vectors (methods that reconstruct inputs).
    fn input_len(&self) -> Option<i64> {
        None
    }
    /// The feature transformer behind this encoder, for token methods on tables (T-JEPA).
    fn as_feature_transformer(&self) -> Option<&feature_transformer::FeatureTransformer> {
        None
    }
    /// Number of optimiser groups ordered from input to output, when the encoder assigns its
    /// variables to groups for layer-wise learning-rate decay.
    fn lr_layers(&self) -> Option<usize> {
        None
    }
    /// The dilated-convolution series encoder behind this encoder, for methods that work on its
    /// per-step outputs (TS2Vec).
    fn as_dilated_conv(&self) -> Option<&dilated_conv::DilatedConv> {
        None
    }
    /// TS-TCC's convolutional encoder behind this encoder (per-step features).
    fn as_tstcc_conv(&self) -> Option<&tstcc_conv::TstccConv> {
        None
    }
    /// The transformer over spectrogram frames behind this encoder (TERA reconstructs frames).
    fn as_frame_transformer(&self) -> Option<&frame_transformer::FrameTransformer> {
        None
    }
    /// The transformer over subword tokens behind this encoder (text methods).
    fn as_text_transformer(&self) -> Option<&text_transformer::TextTransformer> {
        None
    }
}

/// Which backbone to build, as written in a recipe's `[encoder]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderConfig {
    /// Fully connected layers on flat inputs (tables, or flattened images).
    Mlp {
        /// Width of each layer; the last one is the representation.
        dims: Vec<i64>,
        #[serde(default = "yes")]
        batch_norm: bool,
    },
    /// conv3x3 stem, then one [stride-2 conv, conv] stage per further width, global average pool.
    SmallCnn {
        #[serde(default = "small_cnn_widths")]
        widths: Vec<i64>,
    },
    /// ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool; He et al. 2016 §4.2).
    Resnet18 {
        /// Channels of the first stage (64 in the paper); stages use 1, 2, 4, 8 times this.
        #[serde(default = "resnet_width")]
        width: i64,
        /// `cifar` (default, small images) or `imagenet` (7×7/2 convolution and max-pool).
        #[serde(default)]
        stem: resnet::Stem,
    },
    /// Vision Transformer on square patches (pre-norm blocks, fused attention). ViT-Tiny is
    /// dim 192, depth 12, heads 3 (Touvron et al. 2021).
    Vit {
        patch: i64,
        #[serde(default = "vit_dim")]
        dim: i64,
        #[serde(default = "vit_depth")]
        depth: usize,
        #[serde(default = "vit_heads")]
        heads: i64,
        #[serde(default = "vit_mlp_ratio")]
        mlp_ratio: f64,
        #[serde(default = "vit_positions")]
        positions: vit::Positions,
        #[serde(default = "vit_pooling")]
        pooling: vit::Pooling,
    },
    /// Transformer over table features, one token per feature (FT-Transformer's tokenizer), with
    /// optional register tokens; needs tabular data.
    FeatureTransformer {
        #[serde(default = "ft_dim")]
        dim: i64,
        #[serde(default = "ft_depth")]
        depth: usize,
        #[serde(default = "ft_heads")]
        heads: i64,
        #[serde(default = "vit_mlp_ratio")]
        mlp_ratio: f64,
        #[serde(default)]
        registers: usize,
        #[serde(default = "ft_pooling")]
        pooling: feature_transformer::TablePooling,
    },
    /// 1-D convolutions over time for series `[C, T]` (conv + BN + ReLU per width, global
    /// average pool).
    Cnn1d {
        #[serde(default = "cnn1d_widths")]
        widths: Vec<i64>,
        #[serde(default = "cnn1d_kernel")]
        kernel: i64,
    },
    /// TS2Vec's encoder for series `[C, T]`: input projection, `depth` residual blocks of
    /// dilated convolutions of width `hidden`, a last block to `out`, max-pooled over time
    /// (Yue et al. 2022: hidden 64, depth 10, out 320).
    DilatedConv {
        #[serde(default = "dilated_hidden")]
        hidden: i64,
        #[serde(default = "dilated_out")]
        out: i64,
        #[serde(default = "dilated_depth")]
        depth: usize,
        #[serde(default = "dilated_kernel")]
        kernel: i64,
    },
    /// TS-TCC's encoder for series `[C, T]`: conv (kernel `kernel`, no bias) + BN + ReLU +
    /// max-pool per width, dropout after the first block; the flattened map is the
    /// representation (Eldele et al. 2021: widths 32-64-128, kernel 8, dropout 0.35).
    TstccConv {
        #[serde(default = "tstcc_widths")]
        widths: Vec<i64>,
        #[serde(default = "tstcc_kernel")]
        kernel: i64,
        #[serde(default = "tstcc_dropout")]
        dropout: f64,
    },
    /// BYOL-A's audio CNN on log-mel spectrograms `[1, mels, frames]`: conv3x3 + BN + ReLU +
    /// max-pool per width, two fully connected layers of width `dim` per time step, mean + max
    /// over time (Niizumi et al. 2021: widths 64-64-64, dim 2048, dropout 0.3).
    AudioCnn {
        #[serde(default = "audio_cnn_widths")]
        widths: Vec<i64>,
        #[serde(default = "audio_cnn_dim")]
        dim: i64,
        #[serde(default = "audio_cnn_dropout")]
        dropout: f64,
    },
    /// A transformer over spectrogram frames `[1, mels, frames]` (TERA, Liu et al. 2021: width
    /// 768, 3 layers, 12 heads), mean-pooled over time.
    FrameTransformer {
        #[serde(default = "frame_dim")]
        dim: i64,
        #[serde(default = "frame_depth")]
        depth: usize,
        #[serde(default = "frame_heads")]
        heads: i64,
        #[serde(default = "vit_mlp_ratio")]
        mlp_ratio: f64,
    },
    /// A transformer over subword tokens `[max_len]` (BERT's layout, pre-norm): token and
    /// learned position embeddings, padding masked in attention and pooling. BERT-base is
    /// width 768, 12 layers, 12 heads, dropout 0.1; recipes here narrow it.
    TextTransformer {
        /// Vocabulary size; filled from `data.tokenizer.vocab_size` when left out.
        #[serde(default)]
        vocab: Option<i64>,
        #[serde(default = "text_dim")]
        dim: i64,
        #[serde(default = "text_depth")]
        depth: usize,
        #[serde(default = "text_heads")]
        heads: i64,
        #[serde(default = "vit_mlp_ratio")]
        mlp_ratio: f64,
        #[serde(default = "text_dropout")]
        dropout: f64,
        #[serde(default)]
        pooling: text_transformer::TextPooling,
    },
    /// Graph convolutions (Kipf & Welling 2017) on graph data.
    Gcn(crate::encoders::graph::gcn::GcnConfig),
    /// Graph attention (Veličković et al. 2018) on graph data.
    Gat(crate::encoders::graph::gat_stack::GatConfig),
    /// Graph isomorphism network layers (Xu et al. 2019) on graph data.
    Gin(crate::encoders::graph::gin::GinConfig),
}

fn ft_dim() -> i64 {
    64
}
fn ft_depth() -> usize {
    2
}
fn ft_heads() -> i64 {
    4
}
fn ft_pooling() -> feature_transformer::TablePooling {
    feature_transformer::TablePooling::Flatten
}

fn vit_dim() -> i64 {
    192
}
fn vit_depth() -> usize {
    12
}
fn vit_heads() -> i64 {
    3
}
fn vit_mlp_ratio() -> f64 {
    4.0
}
fn vit_positions() -> vit::Positions {
    vit::Positions::Sincos
}
fn vit_pooling() -> vit::Pooling {
    vit::Pooling::Cls
}

fn yes() -> bool {
    true
}
/// Wang et al. (2017)'s fully convolutional network: 128-256-128 with kernels 8-5-3; one kernel
/// here for every layer.
fn cnn1d_widths() -> Vec<i64> {
    vec![128, 256, 128]
}
fn cnn1d_kernel() -> i64 {
    5
}
fn dilated_hidden() -> i64 {
    64
}
fn dilated_out() -> i64 {
    320
}
fn dilated_depth() -> usize {
    10
}
fn dilated_kernel() -> i64 {
    3
}
fn tstcc_widths() -> Vec<i64> {
    vec![32, 64, 128]
}
fn tstcc_kernel() -> i64 {
    8
}
fn tstcc_dropout() -> f64 {
    0.35
}
fn audio_cnn_widths() -> Vec<i64> {
    vec![64, 64, 64]
}
fn audio_cnn_dim() -> i64 {
    2048
}
fn audio_cnn_dropout() -> f64 {
    0.3
}
fn frame_dim() -> i64 {
    768
}
fn frame_depth() -> usize {
    3
}
fn frame_heads() -> i64 {
    12
}
fn text_dim() -> i64 {
    256
}
fn text_depth() -> usize {
    4
}
fn text_heads() -> i64 {
    4
}
fn text_dropout() -> f64 {
    0.1
}
fn small_cnn_widths() -> Vec<i64> {
    vec![32, 64, 128, 256]
}
fn resnet_width() -> i64 {
    64
}

impl EncoderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            EncoderConfig::Mlp { .. } => "mlp",
            EncoderConfig::SmallCnn { .. } => "small_cnn",
            EncoderConfig::Resnet18 { .. } => "resnet18",
            EncoderConfig::Vit { .. } => "vit",
            EncoderConfig::FeatureTransformer { .. } => "feature_transformer",
            EncoderConfig::Cnn1d { .. } => "cnn1d",
            EncoderConfig::DilatedConv { .. } => "dilated_conv",
            EncoderConfig::TstccConv { .. } => "tstcc_conv",
            EncoderConfig::AudioCnn { .. } => "audio_cnn",
            EncoderConfig::FrameTransformer { .. } => "frame_transformer",
            EncoderConfig::TextTransformer { .. } => "text_transformer",
            EncoderConfig::Gcn(_) => "gcn",
            EncoderConfig::Gat(_) => "gat",
            EncoderConfig::Gin(_) => "gin",
        }
    }
    /// Whether the backbone is a message-passing network over graphs.
    pub fn is_graph(&self) -> bool {
        matches!(
            self,
            EncoderConfig::Gcn(_) | EncoderConfig::Gat(_) | EncoderConfig::Gin(_)
        )
    }
    /// Whether the backbone takes images of any height and width (convolutions ending in a
    /// global pool), so it may be evaluated at another size than it was trained at.
    pub fn takes_any_input_size(&self) -> bool {
        matches!(
            self,
            EncoderConfig::SmallCnn { .. } | EncoderConfig::Resnet18 { .. }
        )
    }
    /// Whether the backbone takes images `[C, H, W]` (else flat vectors or graphs).
    pub fn wants_images(&self) -> bool {
        matches!(
            self,
            EncoderConfig::SmallCnn { .. }
                | EncoderConfig::Resnet18 { .. }
                | EncoderConfig::Vit { .. }
                | EncoderConfig::AudioCnn { .. }
                | EncoderConfig::FrameTransformer { .. }
        )
    }
}

/// Builds the backbone under `vs` for samples of shape `sample_shape` (`[C, H, W]` or `[D]`).
pub fn build(
    cfg: &EncoderConfig,
    vs: &nn::Path,
    sample_shape: &[i64],
) -> anyhow::Result<Box<dyn Encoder>> {
    build_for(cfg, vs, sample_shape, None)
}

/// [`build`], with the table's feature layout for encoders that tokenize features.
pub fn build_for(
    cfg: &EncoderConfig,
    vs: &nn::Path,
    sample_shape: &[i64],
    spans: Option<&[crate::data::FeatureSpan]>,
) -> anyhow::Result<Box<dyn Encoder>> {
    let flat: i64 = sample_shape.iter().product();
    Ok(match cfg {
        EncoderConfig::Mlp { dims, batch_norm } => {
            Box::new(mlp::Mlp::new(vs, flat, dims, *batch_norm))
        }
        EncoderConfig::SmallCnn { widths } => {
            anyhow::ensure!(
                sample_shape.len() == 3,
                "small_cnn needs image inputs [C, H, W], got {sample_shape:?}"
            );
            Box::new(small_cnn::SmallCnn::new(vs, sample_shape[0], widths))
        }
        EncoderConfig::Resnet18 { width, stem } => {
            anyhow::ensure!(
                sample_shape.len() == 3,
                "resnet18 needs image inputs [C, H, W], got {sample_shape:?}"
            );
            Box::new(resnet::ResNet::resnet18(vs, sample_shape[0], *width, *stem))
        }
        EncoderConfig::Vit {
            patch,
            dim,
            depth,
            heads,
            mlp_ratio,
            positions,
            pooling,
        } => Box::new(vit::Vit::new(
            vs,
            sample_shape,
            *patch,
            *dim,
            *depth,
            *heads,
            *mlp_ratio,
            *positions,
            *pooling,
        )?),
        EncoderConfig::FeatureTransformer {
            dim,
            depth,
            heads,
            mlp_ratio,
            registers,
            pooling,
        } => {
            let spans = spans.ok_or_else(|| {
                anyhow::anyhow!("feature_transformer needs tabular data (one token per feature)")
            })?;
            Box::new(feature_transformer::FeatureTransformer::new(
                vs, spans, *dim, *depth, *heads, *mlp_ratio, *registers, *pooling,
            )?)
        }
        EncoderConfig::Cnn1d { widths, kernel } => {
            anyhow::ensure!(
                sample_shape.len() == 2,
                "cnn1d needs series inputs [C, T], got {sample_shape:?}"
            );
            Box::new(cnn1d::Cnn1d::new(vs, sample_shape[0], widths, *kernel))
        }
        EncoderConfig::TstccConv {
            widths,
            kernel,
            dropout,
        } => {
            anyhow::ensure!(
                sample_shape.len() == 2,
                "tstcc_conv needs series inputs [C, T], got {sample_shape:?}"
            );
            Box::new(tstcc_conv::TstccConv::new(
                vs,
                sample_shape[0],
                sample_shape[1],
                widths,
                *kernel,
                *dropout,
            ))
        }
        EncoderConfig::DilatedConv {
            hidden,
            out,
            depth,
            kernel,
        } => {
            anyhow::ensure!(
                sample_shape.len() == 2,
                "dilated_conv needs series inputs [C, T], got {sample_shape:?}"
            );
            anyhow::ensure!(
                kernel % 2 == 1 && *hidden > 0 && *out > 0,
                "dilated_conv: the kernel must be odd and the widths > 0"
            );
            Box::new(dilated_conv::DilatedConv::new(
                vs,
                sample_shape[0],
                *hidden,
                *out,
                *depth,
                *kernel,
            ))
        }
        EncoderConfig::AudioCnn {
            widths,
            dim,
            dropout,
        } => Box::new(audio_cnn::AudioCnn::new(
            vs,
            sample_shape,
            widths,
            *dim,
            *dropout,
        )?),
        EncoderConfig::FrameTransformer {
            dim,
            depth,
            heads,
            mlp_ratio,
        } => Box::new(frame_transformer::FrameTransformer::new(
            vs,
            sample_shape,
            *dim,
            *depth,
            *heads,
            *mlp_ratio,
        )?),
        EncoderConfig::TextTransformer {
            vocab,
            dim,
            depth,
            heads,
            mlp_ratio,
            dropout,
            pooling,
        } => Box::new(text_transformer::TextTransformer::new(
            vs,
            sample_shape,
            vocab.unwrap_or(0),
            *dim,
            *depth,
            *heads,
            *mlp_ratio,
            *dropout,
            *pooling,
        )?),
        EncoderConfig::Gcn(_) | EncoderConfig::Gat(_) | EncoderConfig::Gin(_) => anyhow::bail!(
            "encoder.kind = {}: a graph encoder, for graph data and graph methods",
            cfg.kind()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// Every registered encoder: forward + backward on a tiny input, finite output of the
    /// declared width, and a gradient on every parameter.
    #[test]
    fn every_encoder_runs_forward_and_backward() {
        let cases: Vec<(EncoderConfig, Vec<i64>)> = vec![
            (
                EncoderConfig::Mlp {
                    dims: vec![16, 8],
                    batch_norm: true,
                },
                vec![5],
            ),
            (
                EncoderConfig::Mlp {
                    dims: vec![8],
                    batch_norm: false,
                },
                vec![5],
            ),
            (
                EncoderConfig::SmallCnn {
                    widths: vec![4, 8, 16],
                },
                vec![1, 12, 12],
            ),
            (
                EncoderConfig::Resnet18 {
                    width: 4,
                    stem: resnet::Stem::Cifar,
                },
                vec![3, 16, 16],
            ),
            (
                EncoderConfig::Resnet18 {
                    width: 4,
                    stem: resnet::Stem::Imagenet,
                },
                vec![3, 32, 32],
            ),
            (
                EncoderConfig::Cnn1d {
                    widths: vec![4, 6],
                    kernel: 4,
                },
                vec![1, 17],
            ),
            (
                EncoderConfig::DilatedConv {
                    hidden: 4,
                    out: 6,
                    depth: 3,
                    kernel: 3,
                },
                vec![1, 17],
            ),
            (
                EncoderConfig::TstccConv {
                    widths: vec![4, 6],
                    kernel: 8,
                    dropout: 0.2,
                },
                vec![1, 17],
            ),
            (
                EncoderConfig::Vit {
                    patch: 4,
                    dim: 8,
                    depth: 2,
                    heads: 2,
                    mlp_ratio: 2.0,
                    positions: vit::Positions::Learned,
                    pooling: vit::Pooling::Cls,
                },
                vec![1, 8, 8],
            ),
            (
                EncoderConfig::Vit {
                    patch: 4,
                    dim: 8,
                    depth: 1,
                    heads: 2,
                    mlp_ratio: 2.0,
                    positions: vit::Positions::Sincos,
                    pooling: vit::Pooling::Mean,
                },
                vec![3, 8, 8],
            ),
            (
                EncoderConfig::AudioCnn {
                    widths: vec![4, 4],
                    dim: 8,
                    dropout: 0.3,
                },
                vec![1, 8, 12],
            ),
            (
                EncoderConfig::FrameTransformer {
                    dim: 8,
                    depth: 2,
                    heads: 2,
                    mlp_ratio: 2.0,
                },
                vec![1, 6, 5],
            ),
            (
                EncoderConfig::TextTransformer {
                    vocab: Some(30),
                    dim: 8,
                    depth: 2,
                    heads: 2,
                    mlp_ratio: 2.0,
                    dropout: 0.1,
                    pooling: text_transformer::TextPooling::Mean,
                },
                vec![7],
            ),
        ];
        for (cfg, shape) in cases {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let enc = build(&cfg, &vs.root(), &shape).unwrap();
            let mut input = vec![4i64];
            input.extend(&shape);
            let x = if cfg.kind() == "text_transformer" {
                // Token ids with some padding: [CLS]-like first token, then random ids.
                Tensor::randint_low(1, 30, input.as_slice(), (Kind::Int64, Device::Cpu))
                    .to_kind(Kind::Float)
                    .index_fill(1, &Tensor::from_slice(&[5i64, 6]), 0.0)
            } else {
                Tensor::randn(input.as_slice(), (Kind::Float, Device::Cpu))
            };
            let y = enc.forward_t(&x, true);
            assert_eq!(y.size(), vec![4, enc.out_dim()], "{cfg:?}");
            assert!(bool::try_from(y.isfinite().all()).unwrap());
            (y * Tensor::randn([4, enc.out_dim()], (Kind::Float, Device::Cpu)))
                .sum(Kind::Float)
                .backward();
            for (name, p) in vs.variables() {
                if p.requires_grad() {
                    let g = p.grad();
                    assert!(g.defined(), "{} has no gradient in {cfg:?}", name);
                    assert!(
                        f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0,
                        "{name} zero grad in {cfg:?}"
                    );
                }
            }
            // Evaluation mode uses running statistics and must not need a batch.
            let one = enc.forward_t(&x.narrow(0, 0, 1), false);
            assert_eq!(one.size(), vec![1, enc.out_dim()]);
        }
    }
}
