//! Clustering of frozen embeddings: k-means, and the agreement of its clusters with the labels.
//!
//! - [`kmeans`]: Lloyd's algorithm (Lloyd 1982) from k-means++ seeds (Arthur & Vassilvitskii 2007,
//!   "k-means++: The Advantages of Careful Seeding"), best of several restarts by inertia.
//! - [`nmi`]: normalised mutual information with the arithmetic-mean normaliser (Strehl & Ghosh
//!   2002 use the geometric mean; the arithmetic one is scikit-learn's default,
//!   `normalized_mutual_info_score(average_method="arithmetic")`, and what most SSL papers report).
//! - [`ari`]: adjusted Rand index of Hubert & Arabie 1985, "Comparing partitions".
//! - [`clustering_scores`]: k-means on L2-normalised embeddings scored against the labels.
//!
//! Both scores compare *partitions*: they do not care which integer names a cluster, only which
//! samples share one.
use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::standardise::assert_features;

/// Lloyd iterations of [`clustering_scores`]: scikit-learn's `KMeans(max_iter=300)` default.
pub const SCORE_ITERS: usize = 300;
/// k-means++ restarts of [`clustering_scores`]: scikit-learn's long-standing `n_init=10`.
pub const SCORE_RESTARTS: usize = 10;

/// The best of the k-means restarts.
#[derive(Debug)]
pub struct KMeansResult {
    /// Cluster of each row, in `0..k`.
    pub assignments: Vec<i64>,
    /// Sum over rows of the squared Euclidean distance to the assigned centroid.
    pub inertia: f64,
    /// Centroids `[k, D]`, dtype and device of the input.
    pub centroids: Tensor,
}

/// k-means with k-means++ seeding, `restarts` times, keeping the run of least inertia (the first
/// one on ties). All randomness comes from a ChaCha8 generator seeded with `seed`, so the result is
/// a function of the inputs and the seed.
///
/// Each run: k-means++ seeds (the first centroid uniform, each next one a row drawn with
/// probability proportional to its squared distance to the nearest centroid so far), then at most
/// `iters` Lloyd steps (assign every row to its nearest centroid, move every centroid to the mean
/// of its rows), stopping early once an assignment step changes nothing. A centroid that loses all
/// its rows is moved onto the row farthest from its own centroid (the row contributing most to the
/// inertia), so that k clusters stay in use; with several empty clusters, each takes the next
/// farthest row. The returned assignments and inertia are those of the returned centroids.
///
/// # Panics
/// If `x` is not `[N, D]` floating point, or unless `1 ≤ k ≤ N` and `restarts ≥ 1`.
pub fn kmeans(x: &Tensor, k: usize, iters: usize, restarts: usize, seed: u64) -> KMeansResult {
    assert_features("k-means", x);
    let n = x.size()[0];
    assert!(
        k >= 1 && k as i64 <= n,
        "k-means: need 1 ≤ k ≤ N, got k = {k} with N = {n}"
    );
    assert!(restarts >= 1, "k-means: restarts must be at least 1");
    tch::no_grad(|| {
        let x_sq = x.square().sum_dim_intlist(1, false, None::<Kind>);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut best: Option<KMeansResult> = None;
        for _ in 0..restarts {
            let init = kmeans_plus_plus(x, k, &mut rng);
            let run = lloyd(x, &x_sq, init, iters);
            if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
                best = Some(run);
            }
        }
        best.expect("restarts ≥ 1")
    })
}

/// Squared Euclidean distances `[N]` from every row of `x` to row `i`, in f64 on the CPU.
/// Computed as Σ(x − xᵢ)² rather than by the expansion, so that duplicates of row i get exactly 0
/// and are never drawn again as seeds while distinct rows remain.
fn sq_distances_to_row(x: &Tensor, i: i64) -> Vec<f64> {
    let d = (x - x.narrow(0, i, 1))
        .square()
        .sum_dim_intlist(1, false, Kind::Double)
        .to_device(Device::Cpu);
    Vec::<f64>::try_from(&d).expect("1-D f64 tensor")
}

/// k-means++ seeding: `k` rows of `x` as the initial centroids `[k, D]`.
fn kmeans_plus_plus(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let n = x.size()[0] as usize;
    let first = rng.gen_range(0..n);
    let mut chosen = vec![first as i64];
    let mut nearest = sq_distances_to_row(x, first as i64);
    while chosen.len() < k {
        let total: f64 = nearest.iter().sum();
        let next = if total > 0.0 {
            let u = rng.gen::<f64>() * total;
            let mut acc = 0.0;
            // Rounding can leave the running sum just below u at the end: fall back to the last
            // row of positive weight, which is where u would have landed.
            let mut pick = nearest.iter().rposition(|&w| w > 0.0).expect("total > 0");
            for (i, &w) in nearest.iter().enumerate() {
                acc += w;
                if u < acc {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            // Every row coincides with a chosen centroid: every further choice is equivalent.
            rng.gen_range(0..n)
        };
        chosen.push(next as i64);
        let d = sq_distances_to_row(x, next as i64);
        for (m, di) in nearest.iter_mut().zip(d) {
            *m = m.min(di);
        }
    }
    x.index_select(0, &Tensor::from_slice(&chosen).to_device(x.device()))
}

/// Squared distances `[N, k]` of the rows of `x` to the centroids `c`, as
/// ‖x‖² − 2 x·cᵀ + ‖c‖² (one matrix product instead of an `[N, k, D]` difference tensor); clamped at
/// 0 because the cancellation can leave small negative values.
fn sq_distances(x: &Tensor, x_sq: &Tensor, c: &Tensor) -> Tensor {
    let c_sq = c.square().sum_dim_intlist(1, false, None::<Kind>);
    (x_sq.unsqueeze(1) - x.matmul(&c.tr()) * 2.0 + c_sq.unsqueeze(0)).clamp_min(0.0)
}

/// Lloyd's iterations from `centroids`; see [`kmeans`].
fn lloyd(x: &Tensor, x_sq: &Tensor, mut centroids: Tensor, iters: usize) -> KMeansResult {
    let k = centroids.size()[0];
    let mut previous: Option<Tensor> = None;
    for _ in 0..iters {
        let d = sq_distances(x, x_sq, &centroids);
        let assign = d.argmin(1, false); // the first nearest centroid on ties
        if previous.as_ref().is_some_and(|p| p.equal(&assign)) {
            // The centroids are already the means of this assignment: a fixed point.
            break;
        }
        let own = d.gather(1, &assign.unsqueeze(1), false).squeeze_dim(1);
        centroids = update_centroids(x, &assign, &own, k);
        previous = Some(assign);
    }
    let assign = sq_distances(x, x_sq, &centroids).argmin(1, false);
    // The inertia is reported from the exact differences, not the cancellation-prone expansion.
    let inertia = (x - centroids.index_select(0, &assign))
        .square()
        .sum(Kind::Double)
        .double_value(&[]);
    let assignments = Vec::<i64>::try_from(&assign.to_device(Device::Cpu)).expect("1-D i64");
    KMeansResult {
        assignments,
        inertia,
        centroids,
    }
}

/// Means of the rows assigned to each of the `k` clusters; an empty cluster is re-seeded on the
/// row whose distance `own` to its assigned centroid is largest (see [`kmeans`]).
fn update_centroids(x: &Tensor, assign: &Tensor, own: &Tensor, k: i64) -> Tensor {
    let d = x.size()[1];
    let sums = Tensor::zeros([k, d], (x.kind(), x.device())).index_add(0, assign, x);
    let counts = assign.bincount(None::<Tensor>, k);
    let centroids = sums / counts.clamp_min(1).to_kind(x.kind()).unsqueeze(1);
    let counts = Vec::<i64>::try_from(&counts.to_device(Device::Cpu)).expect("1-D i64");
    if counts.contains(&0) {
        let mut far = Vec::<f64>::try_from(&own.to_device(Device::Cpu)).expect("1-D");
        for (j, _) in counts.iter().enumerate().filter(|(_, &c)| c == 0) {
            let (i, _) = far
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                });
            far[i] = f64::NEG_INFINITY; // the next empty cluster takes another row
            centroids
                .narrow(0, j as i64, 1)
                .copy_(&x.narrow(0, i as i64, 1));
        }
    }
    centroids
}

/// The contingency table of two labellings of the same samples: cell (i, j) counts the samples in
/// class i of the first and class j of the second. Only the non-zero cells are kept.
struct Contingency {
    n: u64,
    /// Class sizes of the first labelling (a_i).
    rows: Vec<u64>,
    /// Class sizes of the second labelling (b_j).
    cols: Vec<u64>,
    /// Non-zero cell counts n_ij, each with its (row, column).
    cells: Vec<(usize, usize, u64)>,
}

impl Contingency {
    fn new(truth: &[i64], pred: &[i64]) -> Contingency {
        assert_eq!(
            truth.len(),
            pred.len(),
            "clustering scores: {} true labels but {} predicted",
            truth.len(),
            pred.len()
        );
        fn index(labels: &[i64]) -> (Vec<usize>, Vec<u64>) {
            let mut ids = BTreeMap::new();
            for &l in labels {
                let next = ids.len();
                ids.entry(l).or_insert(next);
            }
            let mut sizes = vec![0u64; ids.len()];
            let idx: Vec<usize> = labels.iter().map(|l| ids[l]).collect();
            for &i in &idx {
                sizes[i] += 1;
            }
            (idx, sizes)
        }
        let (ti, rows) = index(truth);
        let (pi, cols) = index(pred);
        // BTreeMap: the cells are summed in a fixed order, so the scores are reproducible bit for bit.
        let mut cells = BTreeMap::new();
        for (&i, &j) in ti.iter().zip(&pi) {
            *cells.entry((i, j)).or_insert(0u64) += 1;
        }
        Contingency {
            n: truth.len() as u64,
            rows,
            cols,
            cells: cells.into_iter().map(|((i, j), c)| (i, j, c)).collect(),
        }
    }
}

/// Shannon entropy (nats) of a labelling with the given class sizes out of `n`.
fn entropy(sizes: &[u64], n: f64) -> f64 {
    sizes
        .iter()
        .map(|&s| {
            let p = s as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Normalised mutual information NMI(U, V) = I(U; V) / ((H(U) + H(V)) / 2), natural logarithms,
/// with I(U; V) = Σᵢⱼ (nᵢⱼ/N) ln(N nᵢⱼ / (aᵢ bⱼ)) over the contingency table.
///
/// Degenerate cases, where the ratio is 0/0: if both labellings put every sample in one cluster
/// (or there are no samples) they are the same partition and the score is 1.0 — scikit-learn's
/// convention. If only one of them is a single cluster, I = 0 and the score is 0.0 by the formula.
/// The result is clamped to [0, 1] against rounding (I ≤ min(H(U), H(V)) holds exactly).
///
/// # Panics
/// If the two slices differ in length.
pub fn nmi(truth: &[i64], pred: &[i64]) -> f64 {
    let t = Contingency::new(truth, pred);
    if t.rows.len() <= 1 && t.cols.len() <= 1 {
        return 1.0;
    }
    let n = t.n as f64;
    let mi: f64 = t
        .cells
        .iter()
        .map(|&(i, j, c)| {
            let c = c as f64;
            (c / n) * (n.ln() + c.ln() - (t.rows[i] as f64).ln() - (t.cols[j] as f64).ln())
        })
        .sum();
    let normaliser = 0.5 * (entropy(&t.rows, n) + entropy(&t.cols, n));
    (mi / normaliser).clamp(0.0, 1.0)
}

/// C(m, 2) = m(m − 1)/2, the number of pairs among m samples.
fn pairs(m: u64) -> i128 {
    let m = m as i128;
    m * (m - 1) / 2
}

/// Adjusted Rand index (Hubert & Arabie 1985):
/// ARI = (Index − Expected) / (Max − Expected), with Index = Σᵢⱼ C(nᵢⱼ, 2),
/// Expected = Σᵢ C(aᵢ, 2) Σⱼ C(bⱼ, 2) / C(N, 2) and Max = (Σᵢ C(aᵢ, 2) + Σⱼ C(bⱼ, 2)) / 2.
/// 1 for identical partitions, 0 in expectation for independent ones, negative below chance.
///
/// Multiplying through by 2·C(N, 2) leaves integer numerator and denominator, computed exactly
/// (i128 does not overflow for N < 2³²). The denominator is 0 only when both labellings are the
/// same trivial partition — every sample in one cluster, or every sample alone (including N ≤ 1);
/// the score is then 1.0, as scikit-learn's.
///
/// # Panics
/// If the two slices differ in length.
pub fn ari(truth: &[i64], pred: &[i64]) -> f64 {
    let t = Contingency::new(truth, pred);
    let index: i128 = t.cells.iter().map(|&(_, _, c)| pairs(c)).sum();
    let a: i128 = t.rows.iter().map(|&s| pairs(s)).sum();
    let b: i128 = t.cols.iter().map(|&s| pairs(s)).sum();
    let total = pairs(t.n);
    let numerator = 2 * total * index - 2 * a * b;
    let denominator = total * (a + b) - 2 * a * b;
    if denominator == 0 {
        return 1.0;
    }
    numerator as f64 / denominator as f64
}

/// How well k-means clusters of the embeddings match the labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusteringScores {
    /// [`nmi`] of labels and clusters.
    pub nmi: f64,
    /// [`ari`] of labels and clusters.
    pub ari: f64,
    /// k-means inertia on the L2-normalised embeddings (so at most 4·N).
    pub inertia: f64,
}

/// Runs [`kmeans`] with `n_clusters` clusters ([`SCORE_ITERS`] iterations, [`SCORE_RESTARTS`]
/// restarts) on the L2-normalised `features` `[N, D]` and scores the clusters against `labels`
/// (`[N]`, integer).
///
/// The rows are L2-normalised first because self-supervised embeddings are trained and compared by
/// cosine similarity (the kNN protocol does the same): their norms carry no class information the
/// objectives asked for, and on the unit sphere squared Euclidean distance is 2 − 2·cosine, so
/// k-means then groups by angle.
///
/// # Panics
/// As [`kmeans`], and if `labels` is not an integer vector of length N.
pub fn clustering_scores(
    features: &Tensor,
    labels: &Tensor,
    n_clusters: usize,
    seed: u64,
) -> ClusteringScores {
    assert_features("clustering", features);
    let truth = labels_to_vec("clustering labels", labels, features.size()[0]);
    let unit = tch::no_grad(|| {
        features
            / features
                .norm_scalaropt_dim(2, [1i64].as_slice(), true)
                .clamp_min(1e-12)
    });
    let km = kmeans(&unit, n_clusters, SCORE_ITERS, SCORE_RESTARTS, seed);
    ClusteringScores {
        nmi: nmi(&truth, &km.assignments),
        ari: ari(&truth, &km.assignments),
        inertia: km.inertia,
    }
}

/// Integer labels `[n]` (any device) as a host vector.
///
/// # Panics
/// If `labels` is not a 1-D integer tensor of length `n`.
pub(crate) fn labels_to_vec(name: &str, labels: &Tensor, n: i64) -> Vec<i64> {
    // Class indices are non-negative; with no upper bound given, that is all that is checked.
    let l = super::knn::checked_labels(name, labels, n, i64::MAX);
    Vec::<i64>::try_from(&l.to_device(Device::Cpu)).expect("1-D i64")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Device = Device::Cpu;

    #[test]
    fn nmi_and_ari_of_a_hand_computed_fixture() {
        // truth [0,0,0,1,1,1], pred [0,0,1,1,2,2]; N = 6.
        // Contingency (rows truth, columns pred): [[2,1,0],[0,1,2]]; a = (3,3), b = (2,2,2).
        //
        // NMI: cells of 2 give (2/6)·ln(6·2/(3·2)) = (1/3)·ln 2 each, cells of 1 give
        // (1/6)·ln(6/(3·2)) = 0; I = (2/3)·ln 2. H(truth) = ln 2, H(pred) = ln 3.
        // NMI = (2/3)·ln 2 / ((ln 2 + ln 3)/2) = 4·ln 2 / (3·ln 6) ≈ 0.515803.
        //
        // ARI: Index = C(2,2) + C(2,2) = 2; Σ C(aᵢ,2) = 3 + 3 = 6; Σ C(bⱼ,2) = 1+1+1 = 3;
        // C(6,2) = 15; Expected = 6·3/15 = 1.2; Max = (6+3)/2 = 4.5;
        // ARI = (2 − 1.2)/(4.5 − 1.2) = 0.8/3.3 = 8/33 ≈ 0.242424.
        let truth = [0, 0, 0, 1, 1, 1];
        let pred = [0, 0, 1, 1, 2, 2];
        let want_nmi = 4.0 * 2f64.ln() / (3.0 * 6f64.ln());
        assert!((nmi(&truth, &pred) - want_nmi).abs() < 1e-9);
        assert!((want_nmi - 0.515803).abs() < 1e-6);
        assert!((ari(&truth, &pred) - 8.0 / 33.0).abs() < 1e-9);
        // Both scores are symmetric in their arguments.
        assert!((nmi(&pred, &truth) - want_nmi).abs() < 1e-9);
        assert!((ari(&pred, &truth) - 8.0 / 33.0).abs() < 1e-9);
    }

    #[test]
    fn scores_ignore_cluster_names_and_sample_order() {
        let truth = [0, 0, 0, 1, 1, 1];
        let pred = [0, 0, 1, 1, 2, 2];
        // Renaming the predicted clusters 0→7, 1→-3, 2→0 leaves the partition unchanged.
        let renamed = [7, 7, -3, -3, 0, 0];
        assert!((nmi(&truth, &renamed) - nmi(&truth, &pred)).abs() < 1e-12);
        assert!((ari(&truth, &renamed) - 8.0 / 33.0).abs() < 1e-9);
        // Reordering the samples (the same permutation on both sides).
        let perm = [4, 1, 5, 0, 3, 2];
        let t2: Vec<i64> = perm.iter().map(|&i| truth[i]).collect();
        let p2: Vec<i64> = perm.iter().map(|&i| pred[i]).collect();
        assert!((nmi(&t2, &p2) - 4.0 * 2f64.ln() / (3.0 * 6f64.ln())).abs() < 1e-9);
        assert!((ari(&t2, &p2) - 8.0 / 33.0).abs() < 1e-9);
    }

    #[test]
    fn identical_partitions_score_one() {
        let truth = [0, 1, 2, 0, 1, 2, 2];
        let pred = [5, 3, 9, 5, 3, 9, 9];
        assert!((nmi(&truth, &pred) - 1.0).abs() < 1e-12);
        assert_eq!(ari(&truth, &pred), 1.0);
    }

    #[test]
    fn independent_labellings() {
        // truth = i mod 2, pred = ⌊i/2⌋ mod 2 over i = 0..8: every cell of the 2×2 table holds 2.
        // NMI: every term is (2/8)·ln(8·2/(4·4)) = 0, so exactly 0.
        // ARI: Index = 4·C(2,2) = 4; Σ C(aᵢ,2) = Σ C(bⱼ,2) = 2·C(4,2) = 12; C(8,2) = 28;
        // Expected = 144/28; Max = 12; ARI = (4 − 144/28)/(12 − 144/28) = (112 − 144)/(336 − 144)
        // = −32/192 = −1/6 (slightly below chance, as ARI may be).
        let truth: Vec<i64> = (0..8).map(|i| i % 2).collect();
        let pred: Vec<i64> = (0..8).map(|i| (i / 2) % 2).collect();
        assert!(nmi(&truth, &pred).abs() < 1e-12);
        assert!((ari(&truth, &pred) + 1.0 / 6.0).abs() < 1e-12);

        // Large random independent labellings: both near 0 (NMI's small positive bias is about
        // (5−1)²/(2N)/ln 5 ≈ 0.001 here).
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let truth: Vec<i64> = (0..5000).map(|_| rng.gen_range(0..5)).collect();
        let pred: Vec<i64> = (0..5000).map(|_| rng.gen_range(0..5)).collect();
        let (s, a) = (nmi(&truth, &pred), ari(&truth, &pred));
        assert!((0.0..0.01).contains(&s), "NMI {s}");
        assert!(a.abs() < 0.01, "ARI {a}");
    }

    #[test]
    fn degenerate_partitions() {
        // Both single-cluster: the same partition, 1 by convention (0/0 otherwise).
        assert_eq!(nmi(&[4, 4, 4], &[0, 0, 0]), 1.0);
        assert_eq!(ari(&[4, 4, 4], &[0, 0, 0]), 1.0);
        // Both all-singletons: ARI's denominator vanishes too; the partitions are identical.
        assert_eq!(ari(&[0, 1, 2], &[2, 0, 1]), 1.0);
        assert!((nmi(&[0, 1, 2], &[2, 0, 1]) - 1.0).abs() < 1e-12);
        assert_eq!(nmi(&[], &[]), 1.0);
        assert_eq!(ari(&[], &[]), 1.0);
        // One side single-cluster, the other split in two halves: I = 0 → NMI 0.
        // ARI: Index = 2·C(2,2) = 2, Σ C(aᵢ,2) = C(4,2) = 6, Σ C(bⱼ,2) = 2, C(4,2) = 6;
        // Expected = 6·2/6 = 2 = Index → 0.
        assert_eq!(nmi(&[0, 0, 0, 0], &[0, 0, 1, 1]), 0.0);
        assert_eq!(ari(&[0, 0, 0, 0], &[0, 0, 1, 1]), 0.0);
    }

    #[test]
    #[should_panic(expected = "3 true labels but 2 predicted")]
    fn length_mismatch_is_reported() {
        let _ = nmi(&[0, 1, 1], &[0, 1]);
    }

    /// `per` points around each of `centres` (rows of a `[k, D]` tensor) with Gaussian noise, and
    /// the index of the centre of each point.
    fn blobs(centres: &Tensor, per: i64, noise: f64) -> (Tensor, Tensor) {
        let k = centres.size()[0];
        let labels = Tensor::arange(k, (Kind::Int64, CPU)).repeat_interleave_self_int(per, 0, None);
        let x = centres.index_select(0, &labels)
            + Tensor::randn([k * per, centres.size()[1]], (Kind::Float, CPU)) * noise;
        (x, labels)
    }

    #[test]
    fn kmeans_on_a_hand_computed_line() {
        // Points 0, 1, 10, 11 on a line, k = 2: the optimum is {0,1} / {10,11} with centroids
        // 0.5 and 10.5 and inertia 4 · 0.5² = 1.
        let x = Tensor::from_slice2(&[[0.0f32], [1.0], [10.0], [11.0]]);
        let r = kmeans(&x, 2, 100, 3, 0);
        assert!((r.inertia - 1.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.assignments[0], r.assignments[1]);
        assert_eq!(r.assignments[2], r.assignments[3]);
        assert_ne!(r.assignments[0], r.assignments[2]);
        let mut c = Vec::<f32>::try_from(&r.centroids.reshape([-1])).unwrap();
        c.sort_by(f32::total_cmp);
        assert_eq!(c, [0.5, 10.5]);
        // k = N: every point its own cluster, inertia 0.
        let r = kmeans(&x, 4, 100, 1, 0);
        assert_eq!(r.inertia, 0.0);
        let mut a = r.assignments.clone();
        a.sort();
        assert_eq!(a, [0, 1, 2, 3]);
    }

    #[test]
    fn kmeans_recovers_separated_blobs_and_is_reproducible() {
        tch::manual_seed(7);
        let centres =
            Tensor::from_slice2(&[[0.0f32, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 5.0]]);
        let (x, labels) = blobs(&centres, 40, 1.0);
        let truth = Vec::<i64>::try_from(&labels).unwrap();
        let r = kmeans(&x, 3, 100, 4, 123);
        assert!((nmi(&truth, &r.assignments) - 1.0).abs() < 1e-12);
        assert_eq!(ari(&truth, &r.assignments), 1.0);
        assert_eq!(r.centroids.size(), [3, 3]);
        // The inertia equals the within-blob scatter around the blob means.
        let want: f64 = (0..3)
            .map(|c| {
                let xs = x.narrow(0, c * 40, 40).to_kind(Kind::Double);
                (&xs - xs.mean_dim(0, true, None::<Kind>))
                    .square()
                    .sum(Kind::Double)
                    .double_value(&[])
            })
            .sum();
        assert!(
            (r.inertia - want).abs() < 1e-6 * want,
            "{} vs {want}",
            r.inertia
        );

        let again = kmeans(&x, 3, 100, 4, 123);
        assert_eq!(again.assignments, r.assignments);
        assert_eq!(again.inertia, r.inertia);
        assert!(again.centroids.equal(&r.centroids));
    }

    #[test]
    fn seeds_differ_but_restarts_keep_the_best() {
        tch::manual_seed(8);
        // Unstructured data: local optima differ between seeds.
        let x = Tensor::randn([200, 2], (Kind::Float, CPU));
        let runs: Vec<f64> = (0..6).map(|s| kmeans(&x, 8, 50, 1, s).inertia).collect();
        assert!(runs.iter().any(|&r| r != runs[0]), "{runs:?}");
        // With more restarts from the same seed the kept inertia can only go down: the first
        // restart draws exactly what the single-restart run drew.
        let one = kmeans(&x, 8, 50, 1, 3).inertia;
        let five = kmeans(&x, 8, 50, 5, 3).inertia;
        assert!(five <= one, "{five} > {one}");
    }

    #[test]
    fn empty_cluster_is_reseeded_on_the_farthest_row() {
        // Rows 0, 1, 10, all assigned to cluster 0 of k = 2, at distances 1, 0 and 81 from it:
        // cluster 1 is empty and restarts on row 2; cluster 0 becomes the mean 11/3.
        let x = Tensor::from_slice2(&[[0.0f64], [1.0], [10.0]]);
        let assign = Tensor::from_slice(&[0i64, 0, 0]);
        let own = Tensor::from_slice(&[1.0f64, 0.0, 81.0]);
        let c = update_centroids(&x, &assign, &own, 2);
        assert!((c.double_value(&[0, 0]) - 11.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.double_value(&[1, 0]), 10.0);
        // Two empty clusters take the two farthest rows, farthest first.
        let c = update_centroids(&x, &assign, &own, 3);
        assert_eq!(c.double_value(&[1, 0]), 10.0);
        assert_eq!(c.double_value(&[2, 0]), 0.0);
    }

    #[test]
    fn duplicate_rows_do_not_break_seeding() {
        // Two distinct values, k = 3: the third seed must come from duplicates (total weight 0).
        let x = Tensor::from_slice2(&[[1.0f32, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]);
        let r = kmeans(&x, 3, 20, 2, 5);
        assert_eq!(r.inertia, 0.0);
        assert_eq!(r.assignments[0], r.assignments[1]);
        assert_eq!(r.assignments[2], r.assignments[3]);
    }

    #[test]
    fn clustering_scores_groups_by_direction() {
        tch::manual_seed(9);
        // Two directions 20° apart; in each class half the rows have norm 1, half norm 10.
        // On the unit circle the classes are 2·sin 10° ≈ 0.35 apart against noise 0.01: k-means
        // separates them. Raw Euclidean k-means splits by norm instead: grouping {norm 1} and
        // {norm 10} leaves within-cluster distances of at most ≈ 3.5, grouping by direction
        // leaves ≈ 9 between the two norms. The norm split is independent of the class (half of
        // each class at each norm), so its NMI is ≈ 0.
        let a = 20f32.to_radians();
        let dirs = Tensor::from_slice2(&[[1.0f32, 0.0], [a.cos(), a.sin()]]);
        let (unit, labels) = blobs(&dirs, 40, 0.01);
        let scale = Tensor::from_slice(&[1.0f32, 10.0])
            .repeat([40])
            .unsqueeze(1);
        let x = unit * scale;
        let s = clustering_scores(&x, &labels, 2, 0);
        assert!((s.nmi - 1.0).abs() < 1e-12, "{s:?}");
        assert_eq!(s.ari, 1.0, "{s:?}");
        // Each unit row is off its class direction by ≈ 0.01 along the circle: ≈ 80 · 1e-4.
        assert!(s.inertia > 0.0 && s.inertia < 0.05, "{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"ari\":1.0"), "{json}");

        let truth = Vec::<i64>::try_from(&labels).unwrap();
        let raw = kmeans(&x, 2, SCORE_ITERS, SCORE_RESTARTS, 0);
        let raw_nmi = nmi(&truth, &raw.assignments);
        assert!(raw_nmi < 0.1, "{raw_nmi}");
    }

    #[test]
    #[should_panic(expected = "need 1 ≤ k ≤ N")]
    fn too_many_clusters_is_reported() {
        let _ = kmeans(&Tensor::zeros([3, 2], (Kind::Float, CPU)), 4, 10, 1, 0);
    }
}
