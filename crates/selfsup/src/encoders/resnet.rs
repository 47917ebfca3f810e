//! ResNet-18 (He et al. 2016) with the CIFAR stem used by SimCLR/solo-learn on small images:
//! a 3×3 stride-1 first convolution and no max-pool, so 32×32 inputs keep their resolution — or
//! the paper's ImageNet stem (7×7 stride-2 convolution, 3×3 stride-2 max-pool) for large images,
//! where the CIFAR stem would run every stage at 16× the cost.
use super::small_cnn::ConvBn;
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    /// 1×1 projection shortcut when the shape changes (option B of the paper).
    shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let shortcut = (stride != 1 || c_in != c_out)
            .then(|| ConvBn::resnet(&(vs / "shortcut"), c_in, c_out, 1, stride));
        BasicBlock {
            conv1: ConvBn::resnet(&(vs / "conv1"), c_in, c_out, 3, stride),
            conv2: ConvBn::resnet(&(vs / "conv2"), c_out, c_out, 3, 1),
            shortcut,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = self
            .conv2
            .forward_linear(&self.conv1.forward_t(xs, train), train);
        let s = match &self.shortcut {
            Some(sc) => sc.forward_linear(xs, train),
            None => xs.shallow_clone(),
        };
        (y + s).relu()
    }
}

/// The first layers before the four stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 3×3 convolution, stride 1, no max-pool (small images: 32×32).
    #[default]
    Cifar,
    /// 7×7 convolution, stride 2, then a 3×3 stride-2 max-pool (224×224 images, He et al. 2016).
    Imagenet,
}

#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    pool: bool,
    blocks: Vec<BasicBlock>,
    out: i64,
}

impl ResNet {
    /// ResNet-18 with the CIFAR stem.
    pub fn resnet18_cifar(vs: &nn::Path, channels: i64, width: i64) -> Self {
        Self::resnet18(vs, channels, width, Stem::Cifar)
    }

    /// ResNet-18: the stem, then stages of [2, 2, 2, 2] basic blocks with widths w, 2w, 4w, 8w.
    pub fn resnet18(vs: &nn::Path, channels: i64, width: i64, stem: Stem) -> Self {
        let (pool, stem) = match stem {
            Stem::Cifar => (false, ConvBn::resnet(&(vs / "stem"), channels, width, 3, 1)),
            Stem::Imagenet => (true, ConvBn::resnet(&(vs / "stem"), channels, width, 7, 2)),
        };
        let mut blocks = Vec::new();
        let mut c = width;
        for (stage, mult) in [1i64, 2, 4, 8].into_iter().enumerate() {
            let w = width * mult;
            for b in 0..2 {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    &vs.sub(format!("layer{}_{b}", stage + 1)),
                    c,
                    w,
                    stride,
                ));
                c = w;
            }
        }
        ResNet {
            stem,
            pool,
            blocks,
            out: c,
        }
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self.stem.forward_t(xs, train);
        if self.pool {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        x.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float)
    }
}

impl super::Encoder for ResNet {
    fn out_dim(&self) -> i64 {
        self.out
    }
}
