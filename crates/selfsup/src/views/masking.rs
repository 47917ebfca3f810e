//! Token masks as a view: which patch tokens (or table features) a masked method hides.
//!
//! Like augmentations, masks are drawn on the loader's worker threads from keyed randomness —
//! per sample from `(seed, Mask, epoch, sample index)`, and per batch (block sizes shared by the
//! whole batch) from `(seed, Mask, epoch, step)` — so they do not depend on thread count and a
//! resumed run draws exactly the masks of the uninterrupted one.
use crate::rng::{keyed, Stream};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// What a masked method asks the loader for, beside its view.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSpec {
    /// Hide exactly `round(ratio · tokens)` of `tokens`, uniformly at random (MAE, SimMIM).
    /// One `[N, tokens]` int64 tensor: each row lists the visible tokens (ascending), then the
    /// hidden ones (ascending).
    Random { tokens: usize, ratio: f64 },
    /// I-JEPA's multi-block masks on a patch grid (Assran et al. 2023 §3).
    Blocks(BlockMasks),
    /// Feature subsets of a table (T-JEPA): a context subset and `targets` target subsets drawn
    /// from the features outside the context. Subset sizes are fractions of `features` drawn per
    /// batch; the members per sample. Tensors as for `Blocks`: context `[N, Kc]`, then each target
    /// `[N, Kt]`, indices ascending.
    FeatureSubsets {
        features: usize,
        context: [f64; 2],
        targets: usize,
        target: [f64; 2],
    },
}

/// I-JEPA's sampler: `targets` rectangular target blocks of one size per batch (scale and aspect
/// ratio drawn per batch), and one context block with the targets removed from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMasks {
    /// Patch grid (rows, columns).
    pub grid: (usize, usize),
    pub targets: usize,
    /// Fraction of the grid each target block covers (paper: 0.15–0.2).
    pub target_scale: [f64; 2],
    /// Height / width of the target blocks (paper: 0.75–1.5).
    pub target_aspect: [f64; 2],
    /// Fraction of the grid the context block covers before targets are removed (paper: 0.85–1.0).
    pub context_scale: [f64; 2],
    /// Fewest context tokens accepted; placements are redrawn until this many remain.
    pub min_context: usize,
}

impl BlockMasks {
    /// The paper's sampler on a given grid (four targets; `min_context` 10 in the reference code,
    /// capped here for small grids).
    pub fn ijepa(grid: (usize, usize)) -> Self {
        BlockMasks {
            grid,
            targets: 4,
            target_scale: [0.15, 0.2],
            target_aspect: [0.75, 1.5],
            context_scale: [0.85, 1.0],
            min_context: 10.min(grid.0 * grid.1 / 4).max(1),
        }
    }
}

impl MaskSpec {
    /// Number of int64 tensors [`MaskSpec::make_batch`] returns.
    pub fn n_tensors(&self) -> usize {
        match self {
            MaskSpec::Random { .. } => 1,
            MaskSpec::Blocks(b) => 1 + b.targets,
            MaskSpec::FeatureSubsets { targets, .. } => 1 + targets,
        }
    }

    /// The masks of one batch: samples `indices` of step `step` of `epoch`.
    pub fn make_batch(&self, seed: u64, epoch: u64, step: u64, indices: &[usize]) -> Vec<Tensor> {
        let per_sample = |i: usize| keyed(seed, Stream::Mask, epoch, i as u64, 0);
        match self {
            MaskSpec::Random { tokens, ratio } => {
                let rows: Vec<i64> = indices
                    .iter()
                    .flat_map(|&i| random_order(*tokens, *ratio, &mut per_sample(i)))
                    .collect();
                vec![Tensor::from_slice(&rows).view([indices.len() as i64, *tokens as i64])]
            }
            MaskSpec::Blocks(b) => {
                let mut batch_rng = keyed(seed, Stream::Mask, epoch, step, 1);
                let (th, tw) = block_size(b.grid, b.target_scale, b.target_aspect, &mut batch_rng);
                let (ch, cw) = block_size(b.grid, b.context_scale, [1.0, 1.0], &mut batch_rng);
                let samples: Vec<(Vec<i64>, Vec<Vec<i64>>)> = indices
                    .iter()
                    .map(|&i| b.sample((th, tw), (ch, cw), &mut per_sample(i)))
                    .collect();
                // Contexts differ in size; like the reference collator, keep the first (lowest
                // index) `min` tokens of each so the batch is rectangular.
                let n_ctx = samples.iter().map(|s| s.0.len()).min().unwrap_or(0);
                let n = indices.len() as i64;
                let ctx: Vec<i64> = samples.iter().flat_map(|s| s.0[..n_ctx].to_vec()).collect();
                let mut out = vec![Tensor::from_slice(&ctx).view([n, n_ctx as i64])];
                for t in 0..b.targets {
                    let rows: Vec<i64> = samples.iter().flat_map(|s| s.1[t].clone()).collect();
                    out.push(Tensor::from_slice(&rows).view([n, (th * tw) as i64]));
                }
                out
            }
            MaskSpec::FeatureSubsets {
                features,
                context,
                targets,
                target,
            } => {
                let f = *features;
                let mut batch_rng = keyed(seed, Stream::Mask, epoch, step, 1);
                let mut draw = |r: [f64; 2]| {
                    let x = r[0] + batch_rng.gen::<f64>() * (r[1] - r[0]);
                    ((x * f as f64).round() as usize).clamp(1, f.saturating_sub(1).max(1))
                };
                let kt = draw(*target);
                // The context leaves at least one target's worth of features outside it.
                let kc = draw(*context).min(f.saturating_sub(kt)).max(1);
                let n = indices.len() as i64;
                let mut ctx = Vec::with_capacity(indices.len() * kc);
                let mut tgts = vec![Vec::with_capacity(indices.len() * kt); *targets];
                for &i in indices {
                    let mut rng = per_sample(i);
                    let mut perm: Vec<i64> = (0..f as i64).collect();
                    perm.shuffle(&mut rng);
                    let mut c = perm[..kc].to_vec();
                    c.sort_unstable();
                    ctx.extend(c);
                    let mut rest = perm[kc..].to_vec();
                    for t in tgts.iter_mut() {
                        rest.shuffle(&mut rng);
                        let mut chosen = rest[..kt.min(rest.len())].to_vec();
                        chosen.sort_unstable();
                        t.extend(chosen);
                    }
                }
                let mut out = vec![Tensor::from_slice(&ctx).view([n, kc as i64])];
                out.extend(
                    tgts.iter()
                        .map(|t| Tensor::from_slice(t).view([n, kt as i64])),
                );
                out
            }
        }
    }
}

/// Number of tokens left visible by hiding `round(ratio · tokens)`, at least one of each kind.
pub fn visible_count(tokens: usize, ratio: f64) -> usize {
    let hidden = (ratio * tokens as f64).round() as usize;
    tokens - hidden.clamp(1, tokens.saturating_sub(1))
}

/// A random permutation of `0..tokens` with the visible tokens first (each part ascending).
fn random_order(tokens: usize, ratio: f64, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut perm: Vec<i64> = (0..tokens as i64).collect();
    perm.shuffle(rng);
    let k = visible_count(tokens, ratio);
    perm[..k].sort_unstable();
    perm[k..].sort_unstable();
    perm
}

/// A block's (height, width) for a scale drawn from `scale` of the grid and an aspect ratio
/// (height / width) from `aspect`, shrunk to fit strictly inside the grid as the reference does.
fn block_size(
    grid: (usize, usize),
    scale: [f64; 2],
    aspect: [f64; 2],
    rng: &mut ChaCha8Rng,
) -> (usize, usize) {
    let s = scale[0] + rng.gen::<f64>() * (scale[1] - scale[0]);
    let a = aspect[0] + rng.gen::<f64>() * (aspect[1] - aspect[0]);
    let area = s * (grid.0 * grid.1) as f64;
    let h = ((area * a).sqrt().round() as usize).clamp(1, grid.0.saturating_sub(1).max(1));
    let w = ((area / a).sqrt().round() as usize).clamp(1, grid.1.saturating_sub(1).max(1));
    (h, w)
}

impl BlockMasks {
    fn place(&self, (h, w): (usize, usize), rng: &mut ChaCha8Rng) -> Vec<i64> {
        let top = rng.gen_range(0..=self.grid.0 - h);
        let left = rng.gen_range(0..=self.grid.1 - w);
        let mut v = Vec::with_capacity(h * w);
        for r in top..top + h {
            for c in left..left + w {
                v.push((r * self.grid.1 + c) as i64);
            }
        }
        v
    }

    /// One sample's (context tokens ascending, target blocks): targets are placed first, then a
    /// context block with every target token removed, redrawn until `min_context` tokens remain
    /// (after 20 tries the targets are redrawn too; after 10 such rounds the largest context found
    /// is kept).
    fn sample(
        &self,
        target: (usize, usize),
        context: (usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> (Vec<i64>, Vec<Vec<i64>>) {
        let mut best: Option<(Vec<i64>, Vec<Vec<i64>>)> = None;
        for _ in 0..10 {
            let targets: Vec<Vec<i64>> =
                (0..self.targets).map(|_| self.place(target, rng)).collect();
            let mut hidden = vec![false; self.grid.0 * self.grid.1];
            targets
                .iter()
                .flatten()
                .for_each(|&t| hidden[t as usize] = true);
            for _ in 0..20 {
                let ctx: Vec<i64> = self
                    .place(context, rng)
                    .into_iter()
                    .filter(|&t| !hidden[t as usize])
                    .collect();
                if ctx.len() >= self.min_context {
                    return (ctx, targets);
                }
                if best.as_ref().map_or(true, |b| ctx.len() > b.0.len()) {
                    best = Some((ctx, targets.clone()));
                }
            }
        }
        best.expect("at least one placement was drawn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        let (n, l) = t.size2().unwrap();
        let flat = Vec::<i64>::try_from(t.flatten(0, -1)).unwrap();
        (0..n as usize)
            .map(|i| flat[i * l as usize..(i + 1) * l as usize].to_vec())
            .collect()
    }

    #[test]
    fn random_masks_hide_exactly_the_requested_ratio_and_are_permutations() {
        for (tokens, ratio, visible) in
            [(64, 0.75, 16), (49, 0.75, 12), (16, 0.6, 6), (10, 0.99, 1)]
        {
            assert_eq!(visible_count(tokens, ratio), visible);
            let spec = MaskSpec::Random { tokens, ratio };
            let m = spec.make_batch(3, 1, 0, &[0, 1, 2, 3, 4]);
            for r in rows(&m[0]) {
                let mut sorted = r.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..tokens as i64).collect::<Vec<_>>());
                assert!(r[..visible].windows(2).all(|w| w[0] < w[1]));
                assert!(r[visible..].windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn masks_are_keyed_by_seed_epoch_and_sample_not_by_batch_position() {
        let spec = MaskSpec::Random {
            tokens: 49,
            ratio: 0.75,
        };
        let a = rows(&spec.make_batch(7, 2, 0, &[10, 11, 12])[0]);
        let b = rows(&spec.make_batch(7, 2, 5, &[12, 99, 10])[0]);
        assert_eq!(a[0], b[2]);
        assert_eq!(a[2], b[0]);
        assert_ne!(a[0], a[1]);
        let other_epoch = rows(&spec.make_batch(7, 3, 0, &[10])[0]);
        let other_seed = rows(&spec.make_batch(8, 2, 0, &[10])[0]);
        assert_ne!(a[0], other_epoch[0]);
        assert_ne!(a[0], other_seed[0]);
    }

    #[test]
    fn feature_subsets_keep_targets_outside_the_context() {
        let spec = MaskSpec::FeatureSubsets {
            features: 14,
            context: [0.5, 0.7],
            targets: 2,
            target: [0.15, 0.3],
        };
        let m = spec.make_batch(4, 1, 2, &[3, 8, 9]);
        assert_eq!(m.len(), 3);
        let ctx = rows(&m[0]);
        let kc = ctx[0].len();
        assert!((7..=10).contains(&kc), "{kc}");
        for t in &m[1..] {
            for (s, tr) in rows(t).iter().enumerate() {
                assert!((2..=4).contains(&tr.len()));
                assert!(
                    tr.iter().all(|x| !ctx[s].contains(x)),
                    "target inside the context"
                );
                assert!(tr.windows(2).all(|w| w[0] < w[1]));
            }
        }
        // Keyed per sample: sample 8's context does not depend on its batch neighbours.
        let again = spec.make_batch(4, 1, 2, &[8]);
        assert_eq!(rows(&again[0])[0], ctx[1]);
    }

    #[test]
    fn block_masks_are_rectangles_and_the_context_avoids_every_target() {
        let spec = MaskSpec::Blocks(BlockMasks::ijepa((7, 7)));
        let idx: Vec<usize> = (0..16).collect();
        let m = spec.make_batch(1, 0, 3, &idx);
        assert_eq!(m.len(), 5);
        let ctx = rows(&m[0]);
        let targets: Vec<Vec<Vec<i64>>> = m[1..].iter().map(rows).collect();
        let n_t = targets[0][0].len();
        // 0.15–0.2 of 49 tokens, after rounding each side.
        assert!((4..=12).contains(&n_t), "target block of {n_t} tokens");
        for s in 0..16 {
            assert!(ctx[s].len() >= 10.min(49 / 4));
            for t in &targets {
                let b = &t[s];
                assert_eq!(b.len(), n_t);
                let (r0, c0) = (b[0] / 7, b[0] % 7);
                let (r1, c1) = (b[n_t - 1] / 7, b[n_t - 1] % 7);
                assert_eq!(
                    ((r1 - r0 + 1) * (c1 - c0 + 1)) as usize,
                    n_t,
                    "not a rectangle: {b:?}"
                );
                assert!(
                    ctx[s].iter().all(|c| !b.contains(c)),
                    "context overlaps a target"
                );
            }
        }
        // Keyed: the same step and samples give the same masks.
        let again = spec.make_batch(1, 0, 3, &idx);
        assert!(m.iter().zip(&again).all(|(a, b)| a.equal(b)));
    }
}
