//! DINO's projection head (Caron et al. 2021, §3.1 and App. "Projection head"): an MLP with GELU
//! ending in a bottleneck, ℓ2 normalisation, then a weight-normalised linear layer without bias
//! whose norm is fixed to 1.
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
pub struct DinoHead {
    mlp: Vec<nn::Linear>,
    /// Direction `v` of the last layer; the weight used is `v / ‖v‖` per output unit.
    pub last_layer: Tensor,
}

impl DinoHead {
    /// `layers` linear layers in the MLP (3 in the paper): hidden width, then the bottleneck.
    pub fn new(
        vs: &nn::Path,
        input: i64,
        hidden: i64,
        bottleneck: i64,
        out_dim: i64,
        layers: usize,
    ) -> Self {
        let layers = layers.max(1);
        let mut mlp = Vec::with_capacity(layers);
        let mut d = input;
        for i in 0..layers {
            let out = if i + 1 == layers { bottleneck } else { hidden };
            // DINO's `_init_weights`: weights N(0, 0.02²) (its truncation at ±2 is 100 σ away, never
            // reached), biases zero.
            mlp.push(nn::linear(
                vs / format!("mlp{i}"),
                d,
                out,
                nn::LinearConfig {
                    ws_init: nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.02,
                    },
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            ));
            d = out;
        }
        let last_layer = vs.var(
            "last_layer",
            &[out_dim, bottleneck],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        DinoHead { mlp, last_layer }
    }
}

impl ModuleT for DinoHead {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        let n = self.mlp.len();
        for (i, l) in self.mlp.iter().enumerate() {
            x = x.apply(l);
            if i + 1 < n {
                x = x.gelu("none");
            }
        }
        let x = &x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        let v = &self.last_layer;
        let w = v / v.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        x.matmul(&w.tr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn outputs_are_cosines_bounded_by_one_and_scale_free_in_the_last_layer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let h = DinoHead::new(&vs.root(), 6, 16, 4, 10, 3);
        let x = Tensor::randn([5, 6], (Kind::Float, Device::Cpu));
        let y = h.forward_t(&x, true);
        assert_eq!(y.size(), vec![5, 10]);
        // Unit input · unit weight rows: every logit is a cosine.
        assert!(f64::try_from(y.abs().max()).unwrap() <= 1.0 + 1e-5);
        // Weight normalisation: scaling v changes nothing.
        tch::no_grad(|| {
            let _ = h.last_layer.shallow_clone().g_mul_scalar_(3.0);
        });
        let y2 = h.forward_t(&x, true);
        assert!(f64::try_from((y - y2).abs().max()).unwrap() < 1e-5);
    }
}
