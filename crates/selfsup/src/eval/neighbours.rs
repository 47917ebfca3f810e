//! Nearest neighbours in a learned space: for each query, the `k` most cosine-similar rows of a
//! memory (exact, by blocks of queries, so memory is bounded by `chunk × N`), and how often their
//! labels agree with the query's — the similarity search a person runs on a representation, and a
//! direct view of what the kNN protocol votes with.
use super::knn::l2_normalise;
use tch::{Kind, Tensor};

/// The neighbours of each query, most similar first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Neighbours {
    /// Row indices into the memory, `[queries][k]`.
    pub index: Vec<Vec<i64>>,
    /// Their cosine similarities to the query, `[queries][k]`.
    pub similarity: Vec<Vec<f32>>,
}

/// The `k` memory rows most cosine-similar to each row of `queries`. With `exclude`, the memory
/// row `exclude[i]` is never a neighbour of query `i` (a query drawn from the memory itself).
/// Ties keep libtorch's `topk` order. Errors (not panics) on inputs a user can give: different
/// widths, `k` of 0 or more than the memory has rows.
pub fn cosine_neighbours(
    memory: &Tensor,
    queries: &Tensor,
    k: usize,
    exclude: Option<&[i64]>,
) -> Result<Neighbours, String> {
    let (n, d) = match memory.size()[..] {
        [n, d] => (n, d),
        ref s => return Err(format!("the memory must be a matrix [N, D], not {s:?}")),
    };
    let m = match queries.size()[..] {
        [m, qd] if qd == d => m,
        ref s => {
            return Err(format!(
                "queries of shape {s:?} against a memory of width {d}"
            ))
        }
    };
    let available = n - i64::from(exclude.is_some());
    if k == 0 || k as i64 > available {
        return Err(format!(
            "k = {k}: choose 1 to {available} (the memory's rows{})",
            if exclude.is_some() {
                " but the query itself"
            } else {
                ""
            }
        ));
    }
    if let Some(e) = exclude {
        if e.len() as i64 != m || e.iter().any(|&i| i < 0 || i >= n) {
            return Err("one excluded memory row per query, each inside the memory".into());
        }
    }
    let chunk = 1024i64;
    let mut out = Neighbours {
        index: Vec::with_capacity(m as usize),
        similarity: Vec::with_capacity(m as usize),
    };
    tch::no_grad(|| {
        let memory_t = l2_normalise(&memory.to_kind(Kind::Float)).tr();
        let queries = l2_normalise(&queries.to_kind(Kind::Float));
        let mut start = 0;
        while start < m {
            let len = chunk.min(m - start);
            let mut sim = queries.narrow(0, start, len).matmul(&memory_t);
            if let Some(e) = exclude {
                let rows = Tensor::arange(len, (Kind::Int64, sim.device()));
                let cols = Tensor::from_slice(&e[start as usize..(start + len) as usize])
                    .to_device(sim.device());
                let _ = sim.index_put_(
                    &[Some(rows), Some(cols)],
                    &Tensor::from(f32::NEG_INFINITY),
                    false,
                );
            }
            let (s, i) = sim.topk(k as i64, 1, true, true);
            let s = Vec::<Vec<f32>>::try_from(s.to_device(tch::Device::Cpu)).unwrap_or_default();
            let i = Vec::<Vec<i64>>::try_from(i.to_device(tch::Device::Cpu)).unwrap_or_default();
            out.similarity.extend(s);
            out.index.extend(i);
            start += len;
        }
    });
    Ok(out)
}

/// How often the neighbours' labels agree with the query's: (the nearest one's, all `k`'s), as
/// fractions over the queries. The first is the 1-nearest-neighbour accuracy.
pub fn label_agreement(n: &Neighbours, memory_labels: &[i64], query_labels: &[i64]) -> (f64, f64) {
    let (mut top1, mut all, mut count) = (0usize, 0usize, 0usize);
    for (row, &y) in n.index.iter().zip(query_labels) {
        top1 += usize::from(row.first().is_some_and(|&j| memory_labels[j as usize] == y));
        all += row
            .iter()
            .filter(|&&j| memory_labels[j as usize] == y)
            .count();
        count += row.len();
    }
    let q = n.index.len().max(1) as f64;
    (top1 as f64 / q, all as f64 / count.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::knn::{knn_accuracy, KnnConfig};

    fn matrix(rows: &[[f32; 2]]) -> Tensor {
        Tensor::from_slice(&rows.concat()).reshape([rows.len() as i64, 2])
    }

    #[test]
    fn neighbours_are_ordered_by_cosine_and_scale_does_not_matter() {
        // Angles 0°, 45°, 90°, 180° (lengths differ: cosine ignores them).
        let memory = matrix(&[[2.0, 0.0], [1.0, 1.0], [0.0, 5.0], [-3.0, 0.0]]);
        let queries = matrix(&[[1.0, 0.0], [0.0, 1.0]]);
        let n = cosine_neighbours(&memory, &queries, 3, None).unwrap();
        assert_eq!(n.index, vec![vec![0, 1, 2], vec![2, 1, 0]]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        for (got, want) in n.similarity[0].iter().zip([1.0, h, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", n.similarity);
        }
        // A query taken from the memory does not find itself.
        let n = cosine_neighbours(&memory, &memory.narrow(0, 0, 2), 1, Some(&[0, 1])).unwrap();
        assert_eq!(n.index, vec![vec![1], vec![0]]);
    }

    #[test]
    fn bad_requests_are_errors() {
        let memory = matrix(&[[1.0, 0.0], [0.0, 1.0]]);
        assert!(cosine_neighbours(&memory, &memory, 0, None).is_err());
        assert!(cosine_neighbours(&memory, &memory, 3, None).is_err());
        assert!(cosine_neighbours(&memory, &memory, 2, Some(&[0, 1])).is_err());
        assert!(cosine_neighbours(&memory, &memory, 1, Some(&[0, 2])).is_err());
        let wide = Tensor::ones([1, 3], (Kind::Float, tch::Device::Cpu));
        assert!(cosine_neighbours(&memory, &wide, 1, None).is_err());
    }

    #[test]
    fn the_nearest_neighbours_label_agrees_as_often_as_one_nearest_neighbour_classifies() {
        tch::manual_seed(3);
        let (n, m, d, classes) = (300, 120, 16, 4);
        let centres = Tensor::randn([classes, d], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::randint(classes, [n + m], (Kind::Int64, tch::Device::Cpu));
        let noise = Tensor::randn([n + m, d], (Kind::Float, tch::Device::Cpu)) * 1.5;
        let x: Tensor = centres.index_select(0, &y) + noise;
        let (memory, queries) = (x.narrow(0, 0, n), x.narrow(0, n, m));
        let (ym, yq) = (y.narrow(0, 0, n), y.narrow(0, n, m));
        let nb = cosine_neighbours(&memory, &queries, 5, None).unwrap();
        let (top1, all) = label_agreement(
            &nb,
            &Vec::<i64>::try_from(&ym).unwrap(),
            &Vec::<i64>::try_from(&yq).unwrap(),
        );
        let cfg = KnnConfig {
            k: 1,
            ..KnnConfig::default()
        };
        let knn1 = knn_accuracy(&memory, &ym, &queries, &yq, classes, &cfg);
        assert_eq!(top1, knn1);
        // Separated clusters: far better than the 1/4 of chance, for every rank.
        assert!(top1 > 0.6 && all > 0.5, "{top1} {all}");
    }
}
