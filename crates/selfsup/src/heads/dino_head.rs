//! DINO's projection head (Caron et al. 2021, §3.1 and App. "Projection head"): an MLP with GELU
//! ending in a bottleneck, ℓ2 normalisation, then a weight-normalised linear layer without bias
//! whose norm is fixed to 1. The reference code's `use_bn_in_head` puts a batch norm after each
//! hidden linear layer.
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
pub struct DinoHead {
    mlp: Vec<nn::Linear>,
    /// One batch norm per hidden layer, or none.
    norms: Vec<crate::torch_init::BatchNorm>,
    /// Direction `v` of the last layer; the weight used is `v / ‖v‖` per output unit.
    pub last_layer: Tensor,
}

impl DinoHead {
    /// `layers` linear layers in the MLP (3 in the paper): hidden width, then the bottleneck;
    /// `batch_norm` adds a batch norm after each hidden one (linear → BN → GELU).
    pub fn new(
        vs: &nn::Path,
        input: i64,
        hidden: i64,
        bottleneck: i64,
        out_dim: i64,
        layers: usize,
        batch_norm: bool,
    ) -> Self {
        let layers = layers.max(1);
        let mut mlp = Vec::with_capacity(layers);
        let mut norms = Vec::new();
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
            if batch_norm && i + 1 < layers {
                norms.push(crate::torch_init::batch_norm1d(vs / format!("bn{i}"), out));
            }
            d = out;
        }
        // The reference head builds its last layer after `_init_weights` has run, so its direction
        // v keeps `nn.Linear`'s default U(±1/√bottleneck). The scale of v does not change the
        // output (weight normalisation), but it sets how fast Adam turns the prototypes: each step
        // moves an element by about lr, so an N(0, 1) start (28× the reference's spread, 1/(16√3),
        // for a 256-d bottleneck) turns them 28× slower, and a few hundred steps leave the
        // student near uniform (its loss stays at ln K).
        let bound = 1.0 / (bottleneck.max(1) as f64).sqrt();
        let last_layer = vs.var(
            "last_layer",
            &[out_dim, bottleneck],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        DinoHead {
            mlp,
            norms,
            last_layer,
        }
    }
}

impl ModuleT for DinoHead {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        let n = self.mlp.len();
        for (i, l) in self.mlp.iter().enumerate() {
            x = x.apply(l);
            if i + 1 < n {
                if let Some(bn) = self.norms.get(i) {
                    x = x.apply_t(bn, train);
                }
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
        let h = DinoHead::new(&vs.root(), 6, 16, 4, 10, 3, false);
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

    /// The direction starts as `nn.Linear(bottleneck, out_dim)` does in PyTorch: U(±1/√bottleneck),
    /// whose standard deviation is bound/√3.
    #[test]
    fn last_layer_starts_as_torch_linear_default() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let h = DinoHead::new(&vs.root(), 6, 16, 64, 512, 3, false);
        let bound = 1.0 / 8.0;
        let v = &h.last_layer;
        assert!(f64::try_from(v.abs().max()).unwrap() <= bound);
        let std = f64::try_from(v.std(true)).unwrap();
        let want = bound / 3f64.sqrt();
        assert!((std - want).abs() < 0.02 * want, "{std} vs {want}");
    }

    /// With batch norm, a hidden layer's pre-activations are centred over the batch, so inputs
    /// that share a large common component (post-ReLU pooled features) still give the bottleneck
    /// sample-specific directions: the rows' spread of cosines to a prototype is far wider than
    /// without it.
    #[test]
    fn batch_norm_in_head_removes_the_shared_component() {
        let spread = |batch_norm: bool| {
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let h = DinoHead::new(&vs.root(), 32, 64, 16, 8, 3, batch_norm);
            let x = Tensor::randn([64, 32], (Kind::Float, Device::Cpu)) * 0.05 + 1.0;
            let y = h.forward_t(&x, true);
            f64::try_from(y.std_dim([0i64].as_slice(), true, false).mean(Kind::Float)).unwrap()
        };
        let (plain, normed) = (spread(false), spread(true));
        assert!(normed > 5.0 * plain, "{normed} vs {plain}");
        // Batch norms only in the hidden layers: two for a 3-layer head.
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = DinoHead::new(&vs.root(), 6, 16, 4, 10, 3, true);
        let norms = vs
            .variables()
            .keys()
            .filter(|k| k.ends_with("running_mean"))
            .count();
        assert_eq!(norms, 2);
    }
}
