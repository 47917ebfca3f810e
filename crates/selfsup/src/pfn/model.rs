//! The prior-data fitted network (Müller et al. 2022, section 4): a transformer over one token
//! per context point (its x and y embedded and added) and one per query point (its x alone).
//! Context tokens attend to each other; query tokens attend to the context only, never to each
//! other or themselves, so each query's prediction depends on the context alone and every query
//! of a batch is an independent sample of the posterior predictive. There are no positions: the
//! prediction does not depend on the order of the points.
use crate::encoders::transformer::{Attention, TransformerStack};
use crate::torch_init::xavier_linear;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// The network's shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PfnShape {
    /// Input features per point.
    pub dims: i64,
    /// Outputs per query: buckets of the Riemann distribution, or classes.
    pub outputs: i64,
    /// Classification: the context's y is a class index, embedded by its one-hot code.
    pub classes: Option<i64>,
    pub width: i64,
    pub depth: usize,
    pub heads: i64,
    pub mlp_ratio: f64,
}

pub struct Pfn {
    x_embed: nn::Linear,
    y_embed: nn::Linear,
    stack: TransformerStack,
    head: nn::Linear,
    pub shape: PfnShape,
}

impl Pfn {
    pub fn new(p: &nn::Path, shape: PfnShape) -> Self {
        let y_in = shape.classes.unwrap_or(1);
        Pfn {
            x_embed: xavier_linear(p / "x_embed", shape.dims, shape.width),
            y_embed: xavier_linear(p / "y_embed", y_in, shape.width),
            stack: TransformerStack::new(
                &(p / "transformer"),
                shape.width,
                shape.depth,
                shape.heads,
                shape.mlp_ratio,
                Attention::Fused,
                |_| None,
            ),
            head: xavier_linear(p / "head", shape.width, shape.outputs),
            shape,
        }
    }

    /// Outputs `[B, m, outputs]` for the queries `xq: [B, m, dims]` given the context
    /// `x: [B, n, dims]`, `y: [B, n]` (n ≥ 1; class indices for classification).
    pub fn forward(&self, x: &Tensor, y: &Tensor, xq: &Tensor) -> Tensor {
        let (b, n, _) = x.size3().expect("context inputs are [B, n, d]");
        let m = xq.size()[1];
        assert!(n >= 1, "a PFN needs at least one context point");
        let y_in = match self.shape.classes {
            Some(c) => y.to_kind(Kind::Int64).one_hot(c).to_kind(Kind::Float),
            None => y.to_kind(Kind::Float).unsqueeze(-1),
        };
        let context = x.to_kind(Kind::Float).apply(&self.x_embed) + y_in.apply(&self.y_embed);
        let queries = xq.to_kind(Kind::Float).apply(&self.x_embed);
        let tokens = Tensor::cat(&[context, queries], 1);
        // Every token may attend to the context tokens only.
        let keys = Tensor::cat(
            &[
                Tensor::ones([b, n], (Kind::Bool, x.device())),
                Tensor::zeros([b, m], (Kind::Bool, x.device())),
            ],
            1,
        );
        self.stack
            .forward_masked(&tokens, Some(&keys), 0.0, false)
            .narrow(1, n, m)
            .apply(&self.head)
    }
}

/// Adam's learning rate at `step` of `steps`: a linear warm-up over the first 5 % of the steps,
/// then a cosine decay to 0.
pub fn warmup_cosine(peak: f64, steps: u64, step: u64) -> f64 {
    let warm = (steps / 20).max(1);
    if step < warm {
        peak * (step + 1) as f64 / warm as f64
    } else {
        let p = (step - warm) as f64 / (steps - warm).max(1) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// Writes a model folder: `pfn.json` (`about`, with its `kind`) and `weights.safetensors`.
pub fn save_folder(
    dir: &std::path::Path,
    about: &serde_json::Value,
    vs: &nn::VarStore,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    crate::run::folder::atomic_write(
        &dir.join("pfn.json"),
        serde_json::to_string_pretty(about)?.as_bytes(),
    )?;
    vs.save(dir.join("weights.safetensors"))?;
    Ok(())
}

/// Reads a model folder written by [`save_folder`] whose `pfn.json` says `kind`: its JSON, and
/// the network (shape from `about["settings"]["shape"]`) with its weights on `device`.
pub fn load_folder(
    dir: &std::path::Path,
    kind: &str,
    device: tch::Device,
) -> anyhow::Result<(serde_json::Value, nn::VarStore, Pfn)> {
    use anyhow::Context;
    let path = dir.join("pfn.json");
    let about: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
    )
    .with_context(|| format!("{}: not JSON", path.display()))?;
    if about["kind"] != kind {
        anyhow::bail!(
            "{}: not a {kind} PFN (kind {})",
            path.display(),
            about["kind"]
        );
    }
    let shape: PfnShape = serde_json::from_value(about["settings"]["shape"].clone())
        .with_context(|| format!("{}: no network shape", path.display()))?;
    let mut vs = nn::VarStore::new(device);
    let pfn = Pfn::new(&vs.root(), shape);
    vs.load(dir.join("weights.safetensors"))
        .with_context(|| format!("{}: weights", dir.display()))?;
    Ok((about, vs, pfn))
}

impl std::fmt::Debug for Pfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pfn({:?})", self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(classes: Option<i64>) -> PfnShape {
        PfnShape {
            dims: 2,
            outputs: 7,
            classes,
            width: 16,
            depth: 2,
            heads: 2,
            mlp_ratio: 2.0,
        }
    }

    #[test]
    fn queries_see_the_context_only_and_order_does_not_matter() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let pfn = Pfn::new(&vs.root(), shape(None));
        let x = Tensor::randn([3, 5, 2], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::randn([3, 5], (Kind::Float, tch::Device::Cpu));
        let xq = Tensor::randn([3, 4, 2], (Kind::Float, tch::Device::Cpu));
        let out = pfn.forward(&x, &y, &xq);
        assert_eq!(out.size(), [3, 4, 7]);
        // A query alone gets what it gets among others: queries do not see each other.
        let alone = pfn.forward(&x, &y, &xq.narrow(1, 2, 1));
        assert!(alone.allclose(&out.narrow(1, 2, 1), 1e-5, 1e-5, false));
        // Shuffling the context changes nothing.
        let perm = Tensor::from_slice(&[3i64, 0, 4, 1, 2]);
        let shuffled = pfn.forward(&x.index_select(1, &perm), &y.index_select(1, &perm), &xq);
        assert!(shuffled.allclose(&out, 1e-5, 1e-5, false));
        // Changing a context target changes every prediction.
        let y2 = &y + Tensor::from_slice(&[0f32, 0.0, 1.0, 0.0, 0.0]).view([1, 5]);
        let moved = pfn.forward(&x, &y2, &xq);
        let diff = (moved - &out).abs().amax([2i64].as_slice(), false);
        assert!(diff.min().double_value(&[]) > 1e-6);
    }

    #[test]
    fn the_classifier_embeds_classes_and_trains() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let pfn = Pfn::new(&vs.root(), shape(Some(3)));
        let x = Tensor::randn([2, 6, 2], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2])
            .view([1, 6])
            .repeat([2, 1]);
        let out = pfn.forward(&x, &y, &x);
        assert_eq!(out.size(), [2, 6, 7]);
        let loss = out
            .narrow(2, 0, 3)
            .reshape([12, 3])
            .cross_entropy_for_logits(&y.reshape([12]));
        loss.backward();
        for (name, t) in vs.variables() {
            assert!(t.grad().defined(), "{name} has no gradient");
        }
    }
}
