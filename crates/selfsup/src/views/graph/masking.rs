//! Node masks and graph corruptions, drawn from keyed generators (`crate::rng`) so a run is a
//! pure function of its seed.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// GraphMAE's node mask (Hou et al. 2022, `encoding_mask_noise`): a `mask_rate` fraction of the
/// nodes is masked; of those, a `1 − replace_rate` fraction get the mask token ("token" nodes)
/// and a `replace_rate` fraction get the features of uniformly random nodes ("noise" nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMask {
    /// Every masked node (the loss is computed on these), in draw order.
    pub masked: Vec<i64>,
    /// Masked nodes whose features become the mask token.
    pub token: Vec<i64>,
    /// `(node, source)`: masked node whose features are replaced by those of `source`.
    pub noise: Vec<(i64, i64)>,
}

impl NodeMask {
    /// Draws the mask for `n` nodes. Counts are floored as in the reference, so with a replace
    /// rate one masked node can be neither token nor noise (it keeps its features but stays in
    /// the loss) — kept, so that our figures are those of the published procedure. With
    /// `floor(replace_rate · masked) == 0` and `replace_rate > 0` the reference's slice `[-0:]`
    /// makes *every* masked node a noise node; we keep that too.
    pub fn draw(n: usize, mask_rate: f64, replace_rate: f64, rng: &mut ChaCha8Rng) -> Self {
        let mut perm: Vec<i64> = (0..n as i64).collect();
        perm.shuffle(rng);
        let num_mask = (mask_rate * n as f64).floor() as usize;
        let masked: Vec<i64> = perm[..num_mask].to_vec();
        if replace_rate <= 0.0 {
            return NodeMask {
                token: masked.clone(),
                masked,
                noise: Vec::new(),
            };
        }
        let mut order: Vec<usize> = (0..num_mask).collect();
        order.shuffle(rng);
        let num_token = ((1.0 - replace_rate) * num_mask as f64).floor() as usize;
        let num_noise = (replace_rate * num_mask as f64).floor() as usize;
        let token = order[..num_token].iter().map(|&i| masked[i]).collect();
        let noise_pos: &[usize] = if num_noise == 0 {
            &order[..]
        } else {
            &order[num_mask - num_noise..]
        };
        let mut sources: Vec<i64> = (0..n as i64).collect();
        sources.shuffle(rng);
        let noise = noise_pos
            .iter()
            .zip(sources.iter().cycle())
            .map(|(&i, &s)| (masked[i], s))
            .collect();
        NodeMask {
            masked,
            token,
            noise,
        }
    }

    /// For each node, the row its features come from: itself, a noise source, or -1 (token).
    pub fn row_sources(&self, n: usize) -> Vec<i64> {
        let mut src: Vec<i64> = (0..n as i64).collect();
        for &(node, from) in &self.noise {
            src[node as usize] = from;
        }
        for &t in &self.token {
            src[t as usize] = -1;
        }
        src
    }
}

/// A uniformly random permutation of `n` rows (DGI's corruption: shuffle node features).
pub fn row_permutation(n: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut p: Vec<i64> = (0..n as i64).collect();
    p.shuffle(rng);
    p
}

/// Keeps each directed edge with probability `1 − p` (GRACE/BGRL edge dropping, per direction).
pub fn drop_edges(edges: &[[u32; 2]], p: f64, rng: &mut ChaCha8Rng) -> Vec<[u32; 2]> {
    if p <= 0.0 {
        return edges.to_vec();
    }
    edges
        .iter()
        .copied()
        .filter(|_| rng.gen::<f64>() >= p)
        .collect()
}

/// A column mask for feature masking (GRACE/BGRL): `true` = column kept; each column is dropped
/// with probability `p`, the same columns for every node.
pub fn feature_column_mask(cols: usize, p: f64, rng: &mut ChaCha8Rng) -> Vec<bool> {
    (0..cols).map(|_| rng.gen::<f64>() >= p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{keyed, Stream};

    #[test]
    fn graphmae_mask_has_the_reference_counts_and_is_keyed() {
        let mut rng = keyed(0, Stream::Method, 0, 0, 0);
        let m = NodeMask::draw(2708, 0.5, 0.05, &mut rng);
        // Cora: 1354 masked = 1286 token + 67 noise + 1 untouched.
        assert_eq!(m.masked.len(), 1354);
        assert_eq!(m.token.len(), 1286);
        assert_eq!(m.noise.len(), 67);
        let mut all: Vec<i64> = m
            .token
            .iter()
            .copied()
            .chain(m.noise.iter().map(|x| x.0))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            1353,
            "token and noise nodes are distinct masked nodes"
        );
        let masked: std::collections::HashSet<i64> = m.masked.iter().copied().collect();
        assert!(all.iter().all(|x| masked.contains(x)));
        assert_eq!(
            m,
            NodeMask::draw(2708, 0.5, 0.05, &mut keyed(0, Stream::Method, 0, 0, 0))
        );
        assert_ne!(
            m,
            NodeMask::draw(2708, 0.5, 0.05, &mut keyed(0, Stream::Method, 1, 0, 0))
        );
        let src = m.row_sources(2708);
        assert_eq!(src.iter().filter(|&&s| s < 0).count(), 1286);
    }

    #[test]
    fn without_replacement_every_masked_node_is_a_token() {
        let m = NodeMask::draw(10, 0.75, 0.0, &mut keyed(1, Stream::Method, 0, 0, 0));
        assert_eq!(m.masked.len(), 7);
        assert_eq!(m.token, m.masked);
        assert!(m.noise.is_empty());
    }

    #[test]
    fn edge_and_feature_drops_have_the_requested_rates() {
        let edges: Vec<[u32; 2]> = (0..20000).map(|i| [i, i + 1]).collect();
        let kept = drop_edges(&edges, 0.3, &mut keyed(2, Stream::Method, 0, 0, 0)).len();
        assert!((kept as f64 / 20000.0 - 0.7).abs() < 0.02, "{kept}");
        let cols = feature_column_mask(20000, 0.4, &mut keyed(2, Stream::Method, 0, 1, 0));
        let frac = cols.iter().filter(|&&k| k).count() as f64 / 20000.0;
        assert!((frac - 0.6).abs() < 0.02, "{frac}");
    }
}
