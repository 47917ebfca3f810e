//! The small CNN of the Fashion-MNIST reference pipeline: conv3x3(C→w0)+BN+ReLU, then for each
//! further width w a stage [conv3x3 stride 2 + BN + ReLU, conv3x3 + BN + ReLU], global average pool.
//! With widths [32, 64, 128, 256] a 28×28 image goes 28 → 14 → 7 → 4 and gives 256 features.
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
pub struct ConvBn {
    conv: nn::Conv2D,
    bn: crate::torch_init::BatchNorm,
}

impl ConvBn {
    /// PyTorch's default initialisation, as in the reference pipeline (`torch_e2e_reference.py`).
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, ksize: i64, stride: i64) -> Self {
        ConvBn {
            conv: crate::torch_init::conv2d(vs / "conv", c_in, c_out, ksize, stride, false),
            bn: crate::torch_init::batch_norm2d(vs / "bn", c_out),
        }
    }
    /// torchvision's ResNet initialisation (Kaiming-normal, fan_out), which the papers' ResNet
    /// results were obtained with.
    pub fn resnet(vs: &nn::Path, c_in: i64, c_out: i64, ksize: i64, stride: i64) -> Self {
        ConvBn {
            conv: crate::torch_init::conv2d_kaiming_fan_out(
                vs / "conv",
                c_in,
                c_out,
                ksize,
                stride,
            ),
            bn: crate::torch_init::batch_norm2d(vs / "bn", c_out),
        }
    }
    /// conv → BN, without the activation (ResNet adds the shortcut before it).
    pub fn forward_linear(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train)
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_linear(xs, train).relu()
    }
}

#[derive(Debug)]
pub struct SmallCnn {
    layers: Vec<ConvBn>,
    out: i64,
}

impl SmallCnn {
    pub fn new(vs: &nn::Path, channels: i64, widths: &[i64]) -> Self {
        let mut layers = vec![ConvBn::new(&(vs / "stem"), channels, widths[0], 3, 1)];
        let mut c = widths[0];
        for (i, &w) in widths.iter().enumerate().skip(1) {
            let p = vs.sub(format!("stage{i}"));
            layers.push(ConvBn::new(&(&p / "down"), c, w, 3, 2));
            layers.push(ConvBn::new(&(&p / "conv"), w, w, 3, 1));
            c = w;
        }
        SmallCnn { layers, out: c }
    }
}

impl SmallCnn {
    /// The stem's output map and each stage's, `[B, width, h, w]`, finest first.
    fn maps(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        let mut x = xs.shallow_clone();
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward_t(&x, train);
            // Layer 0 is the stem; a stage ends with its second layer (odd index from 2 on).
            if i % 2 == 0 {
                out.push(x.shallow_clone());
            }
        }
        out
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.maps(xs, train).pop().expect("a stem at least");
        last.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float)
    }
}

impl super::Encoder for SmallCnn {
    fn out_dim(&self) -> i64 {
        self.out
    }
    fn feature_maps(&self, x: &Tensor, train: bool) -> Option<Vec<Tensor>> {
        Some(self.maps(x, train))
    }
}
