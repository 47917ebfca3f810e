//! D-SLA's three losses (Kim et al., "Graph Self-supervised Learning with Accurate Discrepancy
//! Learning", NeurIPS 2022), as pure functions of graph embeddings and scores.
//!
//! Each graph `b` of a batch comes with candidates: index 0 the (masked) original, 1..C the
//! perturbed ones with `e_{b,i}` edge edits.

use tch::{Kind, Reduction, Tensor};

/// Graph discrimination: the original must score highest among its candidates —
/// cross-entropy of `scores [B, C+1]` with class 0.
pub fn discrimination(scores: &Tensor) -> Tensor {
    let b = scores.size()[0];
    let target = Tensor::zeros([b], (Kind::Int64, scores.device()));
    scores.cross_entropy_loss::<Tensor>(&target, None, Reduction::Mean, -100, 0.0)
}

/// Edit-distance consistency: the embedding distance per edit, `r_i = ‖h_i − h_0‖ / e_i`, should
/// be the same for every perturbed candidate of a graph, so the loss is the mean of
/// `(r_i − r_j)²` over pairs `i < j` of candidates (and graphs). `distances [B, C]`,
/// `edits [B, C]` (floats); candidates with no edit (`e = 0`, a graph too small to perturb) are
/// left out of every pair. Zero when no pair is left.
pub fn edit_consistency(distances: &Tensor, edits: &Tensor) -> Tensor {
    let valid = edits.gt(0.0).to_kind(distances.kind());
    let ratio = distances / edits.clamp_min(1.0);
    // [B, C, C]: difference and validity of every ordered pair; i < j keeps each pair once.
    let diff = ratio.unsqueeze(2) - ratio.unsqueeze(1);
    let both = valid.unsqueeze(2) * valid.unsqueeze(1);
    let c = distances.size()[1];
    let upper = Tensor::ones([c, c], (distances.kind(), distances.device())).triu(1);
    let weight = both * upper;
    let count = weight.sum(distances.kind());
    (diff.square() * &weight).sum(distances.kind()) / count.clamp_min(1.0)
}

/// Margin against other graphs: a perturbed graph stays closer to its original than any other
/// graph's original does, by `margin` — the mean over graphs `b`, other graphs `b' ≠ b` and
/// candidates `i` of `max(0, margin + ‖h0_b − h_{b,i}‖ − ‖h0_b − h0_{b'}‖)`.
/// `originals [B, D]`, `perturbed [B, C, D]`; needs `B ≥ 2`.
pub fn margin_to_other_graphs(originals: &Tensor, perturbed: &Tensor, margin: f64) -> Tensor {
    let b = originals.size()[0];
    assert!(
        b >= 2,
        "the margin loss needs at least two graphs in a batch"
    );
    let pos = pair_distance(&(originals.unsqueeze(1) - perturbed)); // [B, C]
    let neg = pair_distance(&(originals.unsqueeze(1) - originals.unsqueeze(0))); // [B, B]
                                                                                 // [B, B', C]
    let hinge = (pos.unsqueeze(1) - neg.unsqueeze(2) + margin).relu();
    let off_diagonal: Tensor =
        1.0 - Tensor::eye(b, (originals.kind(), originals.device())).unsqueeze(2);
    let c = perturbed.size()[1];
    (hinge * off_diagonal).sum(originals.kind()) / ((b * (b - 1) * c) as f64)
}

/// Euclidean norm over the last dimension, with a gradient of zero (not NaN) at a zero
/// difference — an original and its own masked copy can coincide when nothing was masked.
pub fn pair_distance(diff: &Tensor) -> Tensor {
    (diff.square().sum_dim_intlist(-1, false, diff.kind()) + 1e-12).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::scalar;
    use tch::Device;

    fn dist(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn discrimination_is_the_softmax_cross_entropy_of_the_original() {
        let s: [[f64; 3]; 2] = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]];
        let t = Tensor::from_slice(&s.concat()).view([2, 3]);
        let direct: f64 = s
            .iter()
            .map(|r| {
                let z: f64 = r.iter().map(|x| x.exp()).sum();
                -(r[0].exp() / z).ln()
            })
            .sum::<f64>()
            / 2.0;
        assert!((scalar(&discrimination(&t)) - direct).abs() < 1e-12);
    }

    #[test]
    fn edit_consistency_matches_pairs_written_out() {
        // Graph 0: ratios 1/1, 4/2, 9/3 = 1, 2, 3 → pairs (1,2),(1,3),(2,3): 1 + 4 + 1.
        // Graph 1: one candidate without edits → only the pair of the other two: (2/2 − 6/3)² = 1.
        let d = Tensor::from_slice(&[1.0, 4.0, 9.0, 2.0, 5.0, 6.0]).view([2, 3]);
        let e = Tensor::from_slice(&[1.0, 2.0, 3.0, 2.0, 0.0, 3.0]).view([2, 3]);
        let expected = (1.0 + 4.0 + 1.0 + 1.0) / 4.0;
        assert!((scalar(&edit_consistency(&d, &e)) - expected).abs() < 1e-12);
        // Proportional distances cost nothing.
        let d = Tensor::from_slice(&[0.5, 1.0, 1.5]).view([1, 3]);
        let e = Tensor::from_slice(&[1.0, 2.0, 3.0]).view([1, 3]);
        assert!(scalar(&edit_consistency(&d, &e)).abs() < 1e-12);
    }

    #[test]
    fn margin_matches_a_loop_over_graphs_and_candidates() {
        tch::manual_seed(1);
        let o = Tensor::randn([3, 4], (Kind::Double, Device::Cpu));
        let p = Tensor::randn([3, 2, 4], (Kind::Double, Device::Cpu)) * 0.5;
        let ov: Vec<Vec<f64>> = (0..3)
            .map(|i| Vec::<f64>::try_from(o.get(i)).unwrap())
            .collect();
        let mut total = 0.0;
        for b in 0..3usize {
            for c in 0..2i64 {
                let pc = Vec::<f64>::try_from(p.get(b as i64).get(c)).unwrap();
                for b2 in 0..3usize {
                    if b2 != b {
                        total += (2.0 + dist(&ov[b], &pc) - dist(&ov[b], &ov[b2])).max(0.0);
                    }
                }
            }
        }
        let ours = scalar(&margin_to_other_graphs(&o, &p, 2.0));
        assert!(
            (ours - total / 12.0).abs() < 1e-9,
            "{ours} vs {}",
            total / 12.0
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        tch::manual_seed(2);
        let opts = (Kind::Double, Device::Cpu);
        let o = Tensor::randn([3, 4], opts).set_requires_grad(true);
        let p = Tensor::randn([3, 2, 4], opts);
        let e = Tensor::from_slice(&[1.0, 2.0, 2.0, 4.0, 3.0, 6.0]).view([3, 2]);
        let f = |o: &Tensor| {
            let d = pair_distance(&(o.unsqueeze(1) - &p));
            let scores = Tensor::cat(
                &[o.sum_dim_intlist(1, true, Kind::Double), d.shallow_clone()],
                1,
            );
            discrimination(&scores) + edit_consistency(&d, &e) + margin_to_other_graphs(o, &p, 1.5)
        };
        f(&o).backward();
        let analytic = Vec::<f64>::try_from(o.grad().flatten(0, -1)).unwrap();
        let base = o.detach();
        let h = 1e-6;
        for (i, g) in analytic.iter().enumerate() {
            let step = Tensor::zeros([12], opts)
                .index_fill(0, &Tensor::from_slice(&[i as i64]), h)
                .view([3, 4]);
            let numeric = (scalar(&f(&(&base + &step))) - scalar(&f(&(&base - &step)))) / (2.0 * h);
            assert!(
                (numeric - g).abs() < 1e-6 * (1.0 + g.abs()),
                "{i}: {g} vs {numeric}"
            );
        }
    }
}
