//! Targets of SelfTask-GNN's Distance2Clusters task (Jin et al. 2020): the graph is cut into k
//! clusters, each cluster's highest-degree node is its centre, and every node regresses its
//! inverse shortest-path distance to each of the k centres.
//!
//! The authors cut the graph with METIS. METIS is a C library we do not link; the clusters here
//! are the cells of a graph Voronoi partition around k seeds chosen by farthest-point sampling
//! on hop distance (the greedy 2-approximation of the k-centre problem): the first seed is the
//! highest-degree node, each next one the node farthest from every seed so far (a node no seed
//! reaches counts as farthest). Like METIS's parts, the cells are connected and spread over the
//! graph; unlike them, they are not balanced in size. The task only reads the centres.
use std::collections::VecDeque;

/// Hop distance from the nearest of `sources` to every node (`None`: unreachable), and which
/// source is nearest (the first in `sources` order on ties, by breadth-first order).
fn multi_source_bfs(adjacency: &[Vec<u32>], sources: &[u32]) -> (Vec<Option<u32>>, Vec<usize>) {
    let n = adjacency.len();
    let mut dist = vec![None; n];
    let mut owner = vec![usize::MAX; n];
    let mut queue = VecDeque::new();
    for (i, &s) in sources.iter().enumerate() {
        if dist[s as usize].is_none() {
            dist[s as usize] = Some(0);
            owner[s as usize] = i;
            queue.push_back(s);
        }
    }
    while let Some(v) = queue.pop_front() {
        let d = dist[v as usize].expect("queued nodes have a distance");
        for &w in &adjacency[v as usize] {
            if dist[w as usize].is_none() {
                dist[w as usize] = Some(d + 1);
                owner[w as usize] = owner[v as usize];
                queue.push_back(w);
            }
        }
    }
    (dist, owner)
}

/// The k cluster centres of the graph (fewer when it has fewer nodes), in seed order.
pub fn cluster_centres(adjacency: &[Vec<u32>], k: usize) -> Vec<u32> {
    let n = adjacency.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let degree = |v: usize| adjacency[v].len();
    // Highest degree first, the lower index on ties.
    let first = (0..n)
        .max_by_key(|&v| (degree(v), std::cmp::Reverse(v)))
        .expect("n > 0");
    let mut seeds = vec![first as u32];
    while seeds.len() < k {
        let (dist, _) = multi_source_bfs(adjacency, &seeds);
        let next = (0..n)
            .filter(|&v| !seeds.contains(&(v as u32)))
            .max_by_key(|&v| {
                (
                    dist[v].map_or(u64::MAX, u64::from),
                    degree(v),
                    std::cmp::Reverse(v),
                )
            })
            .expect("fewer seeds than nodes");
        seeds.push(next as u32);
    }
    let (_, owner) = multi_source_bfs(adjacency, &seeds);
    (0..k)
        .map(|c| {
            (0..n)
                .filter(|&v| owner[v] == c)
                .max_by_key(|&v| (degree(v), std::cmp::Reverse(v)))
                .expect("a seed belongs to its own cell") as u32
        })
        .collect()
}

/// Row-major `[n, k]` targets: 1/d for a node d ≥ 1 hops from a centre, 0 for the centre itself
/// and for a node it does not reach (the authors' `transform_depth` and their fill value).
pub fn inverse_distances_to_centres(adjacency: &[Vec<u32>], centres: &[u32]) -> Vec<f32> {
    let n = adjacency.len();
    let per_centre: Vec<Vec<Option<u32>>> = centres
        .iter()
        .map(|&c| multi_source_bfs(adjacency, &[c]).0)
        .collect();
    let mut out = Vec::with_capacity(n * centres.len());
    for v in 0..n {
        for d in &per_centre {
            out.push(match d[v] {
                Some(hops) if hops >= 1 => 1.0 / hops as f32,
                _ => 0.0,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undirected(n: usize, edges: &[(u32, u32)]) -> Vec<Vec<u32>> {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a as usize].push(b);
            adj[b as usize].push(a);
        }
        adj
    }

    #[test]
    fn a_path_gets_its_hub_and_far_end_as_centres_and_exact_distances() {
        // 0-1-2-3-4-5 with an extra leaf 6 on node 1: node 1 has the highest degree.
        let adj = undirected(7, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (1, 6)]);
        let seeds = cluster_centres(&adj, 2);
        // The first seed is node 1; the farthest node from it is 5 (4 hops). The cell of 5 is
        // {4, 5} (node 3, 2 hops from both seeds, goes to the first by breadth-first order), and
        // its highest-degree node, 4, is its centre.
        assert_eq!(seeds[0], 1);
        assert_eq!(seeds[1], 4);
        let d = inverse_distances_to_centres(&adj, &seeds);
        let row = |v: usize| (d[2 * v], d[2 * v + 1]);
        assert_eq!(row(0), (1.0, 0.25));
        assert_eq!(row(5), (0.25, 1.0));
        assert_eq!(row(6), (1.0, 0.25));
        assert_eq!(row(1), (0.0, 1.0 / 3.0));
    }

    #[test]
    fn unreached_components_get_a_centre_and_a_zero_target() {
        // A triangle and a separate edge: the second seed lands in the other component.
        let adj = undirected(5, &[(0, 1), (1, 2), (2, 0), (3, 4)]);
        let centres = cluster_centres(&adj, 2);
        assert!(centres[0] <= 2 && centres[1] >= 3, "{centres:?}");
        let d = inverse_distances_to_centres(&adj, &centres);
        // Unreached: 0; the centre itself: 0; its neighbour: 1.
        assert_eq!(d[2 * 3], 0.0);
        assert_eq!(d[2 * 3 + 1], if centres[1] == 3 { 0.0 } else { 1.0 });
        // More clusters than nodes: one per node.
        assert_eq!(cluster_centres(&adj, 9).len(), 5);
        assert!(cluster_centres(&[], 3).is_empty());
    }
}
