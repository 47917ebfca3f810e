//! Targets of SelfTask-GNN's pretext tasks (Jin et al., "Self-supervised Learning on Graphs:
//! Deep Insights and New Direction", 2020), computed on the host from a graph's structure and
//! features, as the authors' code defines them:
//! - node property: degree in three classes (≤ 2, 3–7, > 7), with the nodes between the 35th and
//!   65th degree percentile forced into the middle class;
//! - pairwise distance: shortest-path length of node pairs in four classes (1, 2, 3, ≥ 4 or
//!   unreachable), a fixed number of pairs drawn per class each step;
//! - pairwise attribute similarity: the cosine similarity of two nodes' raw features, on the
//!   pairs of each node with its k most similar, k least similar and k "random-rank" nodes.
use super::batch::GraphBatch;
use crate::data::graph::CsrMatrix;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashSet, VecDeque};
use tch::{Device, Kind, Tensor};

/// Distance classes 1, 2, 3 (the fourth, ≥ 4, is drawn by rejection when sampling).
pub const DISTANCE_CUTOFF: usize = 3;

/// What the tasks need of one graph (or one batch of graphs), computed once per graph.
#[derive(Debug)]
pub struct PretextTargets {
    /// Degree class of every node (0, 1, 2).
    pub degree_class: Vec<i64>,
    /// Unordered pairs `(i, j)`, `i < j`, at distance 1, 2 and 3.
    pub near_pairs: [Vec<(u32, u32)>; DISTANCE_CUTOFF],
    /// Per node, every node within distance 3 (to reject them when drawing the far class).
    within: Vec<HashSet<u32>>,
    /// Unordered pairs and their feature cosine similarity.
    pub attr_pairs: Vec<(u32, u32, f32)>,
    /// Distance2Clusters: row-major `[num_nodes, clusters]` inverse hop distances to the
    /// cluster centres (empty when the task is off).
    pub centre_distance: Vec<f32>,
    pub clusters: usize,
    pub num_nodes: usize,
}

impl PretextTargets {
    /// Targets of `batch`'s graph; `attr_k` is the k of the similarity pairs (reference: 3),
    /// `clusters` the k of Distance2Clusters (0: not computed).
    pub fn new(batch: &GraphBatch, attr_k: usize, clusters: usize, rng: &mut ChaCha8Rng) -> Self {
        let n = batch.num_nodes;
        let mut adjacency = vec![Vec::new(); n];
        for &[a, b] in &batch.edges {
            adjacency[a as usize].push(b);
        }
        let degree: Vec<usize> = adjacency.iter().map(Vec::len).collect();
        let mut near_pairs: [Vec<(u32, u32)>; DISTANCE_CUTOFF] = Default::default();
        let mut within = Vec::with_capacity(n);
        for s in 0..n as u32 {
            let found = bfs(&adjacency, s, DISTANCE_CUTOFF);
            for &(v, d) in &found {
                if s < v {
                    near_pairs[d - 1].push((s, v));
                }
            }
            within.push(found.into_iter().map(|(v, _)| v).collect());
        }
        let centres = super::cluster_distance::cluster_centres(&adjacency, clusters);
        PretextTargets {
            centre_distance: super::cluster_distance::inverse_distances_to_centres(
                &adjacency, &centres,
            ),
            clusters: centres.len(),
            degree_class: degree_classes(&degree),
            near_pairs,
            within,
            attr_pairs: similarity_pairs(&batch.features, attr_k, rng),
            num_nodes: n,
        }
    }

    /// Up to `per_class` pairs of each distance class, as `(left [M], right [M], class [M])`.
    /// Classes 1–3 are drawn without replacement from their lists; class "≥ 4" by rejection of
    /// uniform pairs (bounded tries, so a small dense graph may give fewer).
    pub fn distance_batch(
        &self,
        per_class: usize,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let (mut l, mut r, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for (class, pairs) in self.near_pairs.iter().enumerate() {
            for &(a, b) in pairs.choose_multiple(rng, per_class.min(pairs.len())) {
                l.push(a as i64);
                r.push(b as i64);
                y.push(class as i64);
            }
        }
        let n = self.num_nodes;
        let mut drawn = 0;
        for _ in 0..20 * per_class {
            if drawn == per_class || n < 2 {
                break;
            }
            let a = rng.gen_range(0..n) as u32;
            let b = rng.gen_range(0..n) as u32;
            if a != b && !self.within[a as usize].contains(&b) {
                l.push(a as i64);
                r.push(b as i64);
                y.push(DISTANCE_CUTOFF as i64);
                drawn += 1;
            }
        }
        (l, r, y)
    }

    /// Up to `count` similarity pairs without replacement: `(left, right, cosine)`.
    pub fn similarity_batch(
        &self,
        count: usize,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
        let picked = self
            .attr_pairs
            .choose_multiple(rng, count.min(self.attr_pairs.len()));
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for &(a, b, s) in picked {
            out.0.push(a as i64);
            out.1.push(b as i64);
            out.2.push(s);
        }
        out
    }
}

/// `(node, distance)` of every node within `cutoff` hops of `s`, `s` itself left out, in
/// breadth-first order.
pub(crate) fn bfs(adjacency: &[Vec<u32>], s: u32, cutoff: usize) -> Vec<(u32, usize)> {
    let mut seen = HashSet::from([s]);
    let mut queue = VecDeque::from([(s, 0usize)]);
    let mut out = Vec::new();
    while let Some((v, d)) = queue.pop_front() {
        if d == cutoff {
            continue;
        }
        for &w in &adjacency[v as usize] {
            if seen.insert(w) {
                out.push((w, d + 1));
                queue.push_back((w, d + 1));
            }
        }
    }
    out
}

/// The reference's degree classes: ≤ 2 → 0, 3..=7 → 1, > 7 → 2, then every node whose degree
/// lies between the 35th and 65th percentile (inclusive, numpy's linear interpolation) → 1.
pub fn degree_classes(degree: &[usize]) -> Vec<i64> {
    let mut sorted: Vec<f64> = degree.iter().map(|&d| d as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let percentile = |q: f64| {
        if sorted.is_empty() {
            return 0.0;
        }
        let pos = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    let (p35, p65) = (percentile(0.35), percentile(0.65));
    degree
        .iter()
        .map(|&d| {
            let df = d as f64;
            if df >= p35 && df <= p65 {
                1
            } else if d <= 2 {
                0
            } else if d <= 7 {
                1
            } else {
                2
            }
        })
        .collect()
}

/// For every node: its `k` least similar nodes, its `k` most similar other nodes, and the nodes
/// at `k` random similarity ranks (drawn once, shared by every node), as unordered unique pairs
/// with their cosine similarity. Zero-feature rows have similarity 0 to everything.
pub fn similarity_pairs(
    features: &CsrMatrix,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(u32, u32, f32)> {
    let n = features.rows;
    if n < 2 || k == 0 {
        return Vec::new();
    }
    let x = super::batch::dense_rows(features, None, Device::Cpu);
    let norm = x
        .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    let x = &x / norm;
    let sim = x.matmul(&x.transpose(0, 1));
    let order = sim.argsort(1, false); // ascending, per row
    let sim = Vec::<f32>::try_from(sim.flatten(0, -1)).expect("float similarities");
    let order = Vec::<i64>::try_from(order.flatten(0, -1)).expect("int64 order");
    let k = k.min(n / 2);
    let mut ranks: Vec<usize> = (0..k).collect(); // least similar
    ranks.extend(n.saturating_sub(k + 1)..n); // most similar, self among them
    if n > 2 * k {
        let random: Vec<usize> = (k..n - k).collect();
        ranks.extend(random.choose_multiple(rng, k.min(random.len())));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for i in 0..n {
        for &r in &ranks {
            let j = order[i * n + r] as usize;
            let (a, b) = (i.min(j) as u32, i.max(j) as u32);
            if a != b && seen.insert((a, b)) {
                out.push((a, b, sim[i * n + j]));
            }
        }
    }
    out
}

/// Index tensors on `device` for the pair heads.
pub fn index_tensor(v: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device).to_kind(Kind::Int64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::graph::Graph;
    use crate::rng::{keyed, Stream};

    fn path(n: usize) -> Graph {
        let mut edges = Vec::new();
        for i in 0..n as u32 - 1 {
            edges.push([i, i + 1]);
            edges.push([i + 1, i]);
        }
        Graph {
            name: "path".into(),
            num_nodes: n,
            features: CsrMatrix::from_dense(
                n,
                2,
                &(0..2 * n).map(|i| ((i * 7) % 5) as f32).collect::<Vec<_>>(),
            ),
            edges,
            node_labels: vec![0; n],
            num_classes: 1,
            split: None,
        }
    }

    #[test]
    fn distances_on_a_path_are_exact() {
        let g = path(7);
        let b = GraphBatch::from_graph(&g, Device::Cpu);
        let mut rng = keyed(0, Stream::Method, 0, 0, 0);
        let t = PretextTargets::new(&b, 2, 0, &mut rng);
        // A path of 7 nodes has 6 pairs at distance 1, 5 at 2, 4 at 3, and 6 + 5 + … = 21 − 15 far.
        assert_eq!(
            [
                t.near_pairs[0].len(),
                t.near_pairs[1].len(),
                t.near_pairs[2].len()
            ],
            [6, 5, 4]
        );
        for (c, pairs) in t.near_pairs.iter().enumerate() {
            assert!(pairs.iter().all(|&(a, b)| (b - a) as usize == c + 1));
        }
        let (l, r, y) = t.distance_batch(3, &mut rng);
        for ((a, b), c) in l.iter().zip(&r).zip(&y) {
            let d = (a - b).unsigned_abs() as i64;
            assert_eq!(*c, (d - 1).min(3), "pair ({a}, {b})");
        }
        assert_eq!(y.iter().filter(|&&c| c == 3).count(), 3);
    }

    #[test]
    fn degree_classes_follow_the_reference_rule() {
        // Percentiles of [1,1,2,2,3,5,8,9,9,12]: p35 = 2.15, p65 = 7.55 → 3 and 5 forced to 1 (as
        // they would be anyway); 1, 2 → 0; 8, 9, 12 → 2.
        let d = [1, 1, 2, 2, 3, 5, 8, 9, 9, 12];
        assert_eq!(degree_classes(&d), vec![0, 0, 0, 0, 1, 1, 2, 2, 2, 2]);
        // All degrees equal: every node lies between the percentiles → class 1.
        assert_eq!(degree_classes(&[10, 10, 10]), vec![1, 1, 1]);
    }

    #[test]
    fn similarity_pairs_carry_the_cosine_of_their_rows() {
        let g = path(9);
        let mut rng = keyed(1, Stream::Method, 0, 0, 0);
        let pairs = similarity_pairs(&g.features, 2, &mut rng);
        let dense = g.features.to_dense();
        let row = |i: u32| &dense[i as usize * 2..i as usize * 2 + 2];
        assert!(!pairs.is_empty());
        let mut seen = HashSet::new();
        for &(a, b, s) in &pairs {
            assert!(a < b && seen.insert((a, b)));
            let (x, y) = (row(a), row(b));
            let dot = x[0] * y[0] + x[1] * y[1];
            let nx = (x[0] * x[0] + x[1] * x[1]).sqrt().max(1e-12);
            let ny = (y[0] * y[0] + y[1] * y[1]).sqrt().max(1e-12);
            assert!((s - dot / (nx * ny)).abs() < 1e-5, "({a}, {b})");
        }
        // Each node contributes at most 2 + 2 + 2 partners.
        assert!(pairs.len() <= 9 * 6);
    }
}
