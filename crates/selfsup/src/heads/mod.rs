//! Heads on top of the representation, built from a list of blocks.
pub mod dino_head;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

/// One block of a head: Linear(dim) → optional BatchNorm → optional ReLU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub dim: i64,
    #[serde(default)]
    pub batch_norm: bool,
    #[serde(default)]
    pub relu: bool,
    #[serde(default = "yes")]
    pub bias: bool,
}

fn yes() -> bool {
    true
}

impl Block {
    pub fn new(dim: i64, batch_norm: bool, relu: bool, bias: bool) -> Self {
        Block {
            dim,
            batch_norm,
            relu,
            bias,
        }
    }
}

/// A multi-layer head (projector or predictor).
#[derive(Debug)]
pub struct Head {
    layers: Vec<(nn::Linear, Option<crate::torch_init::BatchNorm>, bool)>,
    out: i64,
}

impl Head {
    pub fn new(vs: &nn::Path, input: i64, blocks: &[Block]) -> Self {
        let mut layers = Vec::with_capacity(blocks.len());
        let mut d_in = input;
        for (i, b) in blocks.iter().enumerate() {
            let p = vs.sub(format!("block{i}"));
            // PyTorch's nn.Linear / nn.BatchNorm1d defaults, with which the papers' heads were tuned.
            let lin = crate::torch_init::linear(&p / "linear", d_in, b.dim, b.bias);
            let bn = b
                .batch_norm
                .then(|| crate::torch_init::batch_norm1d(&p / "bn", b.dim));
            layers.push((lin, bn, b.relu));
            d_in = b.dim;
        }
        Head { layers, out: d_in }
    }
    pub fn out_dim(&self) -> i64 {
        self.out
    }
}

impl ModuleT for Head {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (lin, bn, relu) in &self.layers {
            x = x.apply(lin);
            if let Some(bn) = bn {
                x = x.apply_t(bn, train);
            }
            if *relu {
                x = x.relu();
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn head_shapes_and_gradients() {
        let vs = nn::VarStore::new(Device::Cpu);
        let blocks = [
            Block::new(12, true, true, false),
            Block::new(5, false, false, true),
        ];
        let h = Head::new(&vs.root(), 7, &blocks);
        let y = h.forward_t(&Tensor::randn([6, 7], (Kind::Float, Device::Cpu)), true);
        assert_eq!(y.size(), vec![6, 5]);
        y.sum(Kind::Float).backward();
        // block0 has no bias (BN follows), block1 has one: 1 weight + BN(2) + weight + bias.
        assert_eq!(vs.trainable_variables().len(), 5);
        for p in vs.trainable_variables() {
            assert!(p.grad().defined());
        }
    }
}
