//! Fully connected backbone: [Linear → (BatchNorm) → ReLU] per layer.
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
pub struct Mlp {
    layers: Vec<(nn::Linear, Option<crate::torch_init::BatchNorm>)>,
    input: i64,
    out: i64,
}

impl Mlp {
    pub fn new(vs: &nn::Path, input: i64, dims: &[i64], batch_norm: bool) -> Self {
        let mut layers = Vec::with_capacity(dims.len());
        let mut d_in = input;
        for (i, &d) in dims.iter().enumerate() {
            let p = vs.sub(format!("layer{i}"));
            // A bias before batch norm is redundant: BN's shift replaces it.
            let lin = crate::torch_init::linear(&p / "linear", d_in, d, !batch_norm);
            let bn = batch_norm.then(|| crate::torch_init::batch_norm1d(&p / "bn", d));
            layers.push((lin, bn));
            d_in = d;
        }
        Mlp {
            layers,
            input,
            out: d_in,
        }
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.flatten(1, -1);
        for (lin, bn) in &self.layers {
            x = x.apply(lin);
            if let Some(bn) = bn {
                x = x.apply_t(bn, train);
            }
            x = x.relu();
        }
        x
    }
}

impl super::Encoder for Mlp {
    fn out_dim(&self) -> i64 {
        self.out
    }
    fn input_len(&self) -> Option<i64> {
        Some(self.input)
    }
}
