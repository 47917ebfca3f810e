//! D-SLA's candidate graphs (Kim et al., NeurIPS 2022; as its authors' molecular loader builds
//! them): for each graph of a batch, one centre node drawn uniformly and its `hops`-hop
//! neighbourhood; candidate 0 is the graph with a fraction of that neighbourhood's nodes masked,
//! candidate `i ≥ 1` is masked the same way (own draw) and has `max(1, ⌊m · fraction · i⌋)`
//! undirected edges of the neighbourhood deleted and as many added between its nodes, `m` the
//! neighbourhood's edge count; the optional "strong" candidate does that on the whole graph at
//! level `count + 1`. The edit distance of a candidate is the number of edges deleted plus
//! added (node masking is not counted, as in the reference).
use super::batch::GraphBatch;
use crate::data::graph::CsrMatrix;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerturbConfig {
    /// Radius of the neighbourhood edited (reference: 3).
    pub hops: usize,
    /// Perturbed candidates per graph, besides the original (reference: 3).
    pub count: usize,
    /// Add the strong candidate (reference's `--add_strong_pert`).
    pub strong: bool,
    /// Edges edited per level, as a fraction of the neighbourhood's edges (reference: 0.2).
    pub edit_fraction: f64,
    /// Nodes of the neighbourhood masked in every candidate (reference: 0.8).
    pub mask_rate: f64,
}

/// The candidates of a batch, candidate-major: graph `c · B + b` is candidate `c` of graph `b`.
#[derive(Debug)]
pub struct Candidates {
    pub batch: GraphBatch,
    /// Edits of each perturbed candidate, `[B][count (+1 strong)]`.
    pub edits: Vec<Vec<f32>>,
    /// Candidates per graph, the original included.
    pub per_graph: usize,
}

/// Builds the candidates of every graph of `batch` (a disjoint union with graph ids).
pub fn candidates(batch: &GraphBatch, cfg: &PerturbConfig, rng: &mut ChaCha8Rng) -> Candidates {
    let ranges = graph_ranges(batch);
    let n = batch.num_nodes;
    let mut adjacency = vec![Vec::new(); n];
    let mut edge_set = HashSet::new();
    for &[a, b] in &batch.edges {
        adjacency[a as usize].push(b);
        edge_set.insert(key(a, b));
    }
    let per_graph = 1 + cfg.count + cfg.strong as usize;
    let mut edges = Vec::new();
    let mut masked_rows = vec![false; n * per_graph];
    let mut edits = vec![vec![0f32; per_graph - 1]; ranges.len()];
    for (g, &(start, end)) in ranges.iter().enumerate() {
        let centre = rng.gen_range(start..end.max(start + 1)) as u32;
        let near = neighbourhood(&adjacency, centre, cfg.hops);
        let whole: Vec<u32> = (start as u32..end as u32).collect();
        let mine = graph_edges(&batch.edges, start, end);
        for c in 0..per_graph {
            let strong = cfg.strong && c == per_graph - 1;
            let nodes = if strong { &whole } else { &near };
            let offset = (c * n) as u32;
            // Mask: ⌊rate · |nodes|⌋ of them, a fresh draw per candidate.
            let mut order = nodes.clone();
            order.shuffle(rng);
            let k = (cfg.mask_rate * nodes.len() as f64).floor() as usize;
            for &v in &order[..k] {
                masked_rows[c * n + v as usize] = true;
            }
            let level = if strong { cfg.count + 1 } else { c };
            let (kept, added) = if level == 0 {
                (mine.clone(), Vec::new())
            } else {
                let e = edit(&mine, &edge_set, nodes, level, cfg, rng);
                edits[g][c - 1] = e.2 as f32;
                (e.0, e.1)
            };
            for [a, b] in kept.into_iter().chain(added) {
                edges.push([a + offset, b + offset]);
            }
        }
    }
    // Features: `per_graph` copies, masked rows emptied (an all-zero input row is the mask token).
    let f = &batch.features;
    let mut feats = CsrMatrix::zeros(0, f.cols);
    feats.indptr = vec![0];
    for c in 0..per_graph {
        for r in 0..n {
            if !masked_rows[c * n + r] {
                for (col, v) in f.row(r) {
                    feats.indices.push(col as i64);
                    feats.values.push(v);
                }
            }
            feats.indptr.push(feats.indices.len() as i64);
        }
    }
    feats.rows = n * per_graph;
    let b = ranges.len();
    let owner: Vec<i64> = (0..per_graph)
        .flat_map(|c| {
            ranges
                .iter()
                .enumerate()
                .flat_map(move |(g, &(s, e))| std::iter::repeat((c * b + g) as i64).take(e - s))
        })
        .collect();
    let ids = tch::Tensor::from_slice(&owner).to_device(batch.device);
    Candidates {
        batch: GraphBatch::from_parts(
            feats,
            edges,
            Some((ids, (b * per_graph) as i64)),
            batch.device,
        ),
        edits,
        per_graph,
    }
}

/// `[start, end)` node range of each graph of the batch (graphs list their nodes together).
pub fn graph_ranges(batch: &GraphBatch) -> Vec<(usize, usize)> {
    let Some((ids, count)) = &batch.graphs else {
        return vec![(0, batch.num_nodes)];
    };
    let ids = Vec::<i64>::try_from(ids.to_device(tch::Device::Cpu)).expect("graph ids are int64");
    let mut ranges = vec![(usize::MAX, 0); *count as usize];
    for (node, &g) in ids.iter().enumerate() {
        let r = &mut ranges[g as usize];
        r.0 = r.0.min(node);
        r.1 = r.1.max(node + 1);
    }
    ranges
        .into_iter()
        .map(|(s, e)| if s == usize::MAX { (0, 0) } else { (s, e) })
        .collect()
}

fn key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// Nodes within `hops` of `centre`, `centre` included, sorted.
fn neighbourhood(adjacency: &[Vec<u32>], centre: u32, hops: usize) -> Vec<u32> {
    let mut out: Vec<u32> = super::pretext::bfs(adjacency, centre, hops)
        .into_iter()
        .map(|(v, _)| v)
        .chain([centre])
        .collect();
    out.sort_unstable();
    out
}

/// The directed edges of the graph spanning nodes `[start, end)`.
fn graph_edges(all: &[[u32; 2]], start: usize, end: usize) -> Vec<[u32; 2]> {
    all.iter()
        .copied()
        .filter(|&[a, _]| (start..end).contains(&(a as usize)))
        .collect()
}

/// One edited copy of a graph whose directed edges are `mine`: `(kept edges, added edges,
/// edits)`, both directions listed.
fn edit(
    mine: &[[u32; 2]],
    edge_set: &HashSet<u64>,
    nodes: &[u32],
    level: usize,
    cfg: &PerturbConfig,
    rng: &mut ChaCha8Rng,
) -> (Vec<[u32; 2]>, Vec<[u32; 2]>, usize) {
    let inside: HashSet<u32> = nodes.iter().copied().collect();
    // Undirected edges with both ends in the edited node set (each once, a < b).
    let mut pool: Vec<[u32; 2]> = mine
        .iter()
        .copied()
        .filter(|&[a, b]| a < b && inside.contains(&a) && inside.contains(&b))
        .collect();
    let m = pool.len();
    let wanted = ((m as f64 * cfg.edit_fraction * level as f64).floor() as usize).max(1);
    pool.shuffle(rng);
    let deleted: HashSet<u64> = pool[..wanted.min(m)]
        .iter()
        .flat_map(|&[a, b]| [key(a, b), key(b, a)])
        .collect();
    let kept: Vec<[u32; 2]> = mine
        .iter()
        .copied()
        .filter(|&[a, b]| !deleted.contains(&key(a, b)))
        .collect();
    // Additions: uniform pairs of distinct nodes of the set that are not edges of the graph. The
    // reference may re-add an edge it just deleted (two edits counted, none made); we exclude
    // those, so the count is the true edit distance. Bounded tries for dense graphs.
    let mut added = Vec::new();
    let mut taken = HashSet::new();
    let possible = (nodes.len() * nodes.len().saturating_sub(1) / 2).saturating_sub(m);
    let mut tries = 0;
    while added.len() / 2 < wanted.min(possible) && tries < 50 * wanted + 100 {
        tries += 1;
        let a = nodes[rng.gen_range(0..nodes.len())];
        let b = nodes[rng.gen_range(0..nodes.len())];
        let (a, b) = (a.min(b), a.max(b));
        let present = edge_set.contains(&key(a, b));
        if a == b || present || !taken.insert(key(a, b)) {
            continue;
        }
        added.push([a, b]);
        added.push([b, a]);
    }
    let edits = wanted.min(m) + added.len() / 2;
    (kept, added, edits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::graph_tests::random_graph;
    use crate::rng::{keyed, Stream};
    use tch::Device;

    fn edge_count(edges: &[[u32; 2]], lo: u32, hi: u32) -> HashSet<(u32, u32)> {
        edges
            .iter()
            .filter(|e| e[0] >= lo && e[0] < hi)
            .map(|e| (e[0] - lo, e[1] - lo))
            .collect()
    }

    #[test]
    fn candidates_have_the_reference_edit_counts_and_stay_inside_their_graph() {
        let graphs: Vec<_> = (0..4)
            .map(|i| random_graph(12 + i, 5, 0.4, 30 + i as u64))
            .collect();
        let refs: Vec<_> = graphs.iter().collect();
        let batch = GraphBatch::from_graphs(&refs, Device::Cpu);
        let cfg = PerturbConfig {
            hops: 2,
            count: 3,
            strong: true,
            edit_fraction: 0.2,
            mask_rate: 0.5,
        };
        let c = candidates(&batch, &cfg, &mut keyed(0, Stream::Method, 0, 0, 0));
        let n = batch.num_nodes as u32;
        assert_eq!(c.per_graph, 5);
        assert_eq!(c.batch.num_nodes, 5 * batch.num_nodes);
        // Every edge stays within one candidate copy of one graph, both directions listed.
        let ranges = graph_ranges(&batch);
        let all: HashSet<[u32; 2]> = c.batch.edges.iter().copied().collect();
        for &[a, b] in &c.batch.edges {
            assert_eq!(a / n, b / n, "an edge crosses candidates");
            let g = |v: u32| {
                ranges
                    .iter()
                    .position(|&(s, e)| ((v % n) as usize) >= s && ((v % n) as usize) < e)
            };
            assert_eq!(g(a), g(b), "an edge crosses graphs");
            assert!(all.contains(&[b, a]), "edges stay undirected");
        }
        // Candidate 0 keeps the edges; candidate i ≥ 1 differs from it by exactly its edit count.
        let original = edge_count(&c.batch.edges, 0, n);
        assert_eq!(original, edge_count(&batch.edges, 0, n));
        for i in 1..5u32 {
            let cand = edge_count(&c.batch.edges, i * n, (i + 1) * n);
            let differ = original.symmetric_difference(&cand).count() / 2;
            let claimed: f32 = c.edits.iter().map(|e| e[(i - 1) as usize]).sum();
            assert_eq!(differ as f32, claimed, "candidate {i}");
            assert!(claimed > 0.0);
        }
        // Later levels edit more.
        for e in &c.edits {
            assert!(e[0] <= e[2] && e[2] <= e[3], "{e:?}");
        }
    }

    #[test]
    fn masked_rows_are_empty_and_draws_are_keyed() {
        let g = random_graph(10, 6, 0.9, 4);
        let batch = GraphBatch::from_graphs(&[&g, &g], Device::Cpu);
        let cfg = PerturbConfig {
            hops: 1,
            count: 2,
            strong: false,
            edit_fraction: 0.3,
            mask_rate: 0.8,
        };
        let draw = |s| candidates(&batch, &cfg, &mut keyed(s, Stream::Method, 0, 0, 0));
        let (a, b) = (draw(1), draw(1));
        assert_eq!(a.batch.edges, b.batch.edges);
        assert_eq!(a.batch.features, b.batch.features);
        assert!(a.batch.features.nnz() < 3 * batch.features.nnz());
    }
}
