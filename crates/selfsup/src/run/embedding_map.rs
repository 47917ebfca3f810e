//! A 2-D map of embeddings for a person to look at: t-SNE (van der Maaten & Hinton 2008; the
//! Barnes-Hut version of van der Maaten 2014, through the `bhtsne` crate) started from the
//! first two principal components, or the principal components alone where t-SNE cannot run
//! (too few points). t-SNE keeps neighbourhoods, not distances: clusters that touch on the
//! map may be far apart in the representation, and their sizes mean nothing.
use anyhow::Result;
use tch::{Kind, Tensor};

/// t-SNE's perplexity (the effective number of neighbours), the common default.
const PERPLEXITY: f32 = 30.0;
/// Barnes-Hut's accuracy/speed trade-off θ, the value of van der Maaten (2014).
const THETA: f32 = 0.5;
/// Optimisation steps (the reference implementation's default).
const EPOCHS: usize = 1000;
/// Fewer points than this get the PCA map: t-SNE needs 3 × perplexity neighbours per point.
const MIN_TSNE_POINTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MapMethod {
    Tsne { perplexity: f32 },
    Pca,
}

/// The points of the map with their labels, and how they were placed.
pub struct Map2d {
    pub points: Vec<(f64, f64)>,
    pub labels: Vec<i64>,
    pub how: MapMethod,
}

/// The labelled rows of `e` (at most `limit`, the first ones) on a 2-D map; `None` with fewer
/// than three.
pub fn map_2d(e: &Tensor, labels: &[i64], limit: usize) -> Result<Option<Map2d>> {
    let keep: Vec<i64> = (0..labels.len() as i64)
        .filter(|&i| labels[i as usize] >= 0)
        .take(limit)
        .collect();
    if keep.len() < 3 {
        return Ok(None);
    }
    let x = e
        .to_kind(Kind::Double)
        .index_select(0, &Tensor::from_slice(&keep));
    let labels: Vec<i64> = keep.iter().map(|&i| labels[i as usize]).collect();
    let pca = principal_components(&x)?;
    if keep.len() < MIN_TSNE_POINTS {
        return Ok(Some(Map2d {
            points: pca,
            labels,
            how: MapMethod::Pca,
        }));
    }
    // Euclidean distance between L2-normalised rows ranks neighbours as cosine similarity does,
    // and is a metric (the vantage-point tree needs the triangle inequality).
    let unit = &x
        / x.norm_scalaropt_dim(2, [1i64].as_slice(), true)
            .clamp_min(1e-12);
    let rows: Vec<Vec<f32>> = Vec::<Vec<f64>>::try_from(&unit)?
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as f32).collect())
        .collect();
    // Started from the PCA map scaled to a small spread (1e-4, as random starts are), so the
    // map is the same from one report to the next up to the threads' order of summation.
    let spread = pca
        .iter()
        .map(|p| p.0 * p.0 + p.1 * p.1)
        .sum::<f64>()
        .sqrt()
        / (pca.len() as f64).sqrt();
    let start: Vec<f32> = pca
        .iter()
        .flat_map(|p| [p.0, p.1])
        .map(|v| (1e-4 * v / spread.max(1e-12)) as f32)
        .collect();
    let placed = std::panic::catch_unwind(|| {
        let mut t: bhtsne::tSNE<f32, Vec<f32>> = bhtsne::tSNE::new(&rows);
        t.embedding_dim(2)
            .perplexity(PERPLEXITY)
            .epochs(EPOCHS)
            .initial_embedding(start)
            .barnes_hut(THETA, |a, b| {
                a.iter()
                    .zip(b)
                    .map(|(u, v)| (u - v) * (u - v))
                    .sum::<f32>()
                    .sqrt()
            });
        t.embedding()
    });
    Ok(Some(match placed {
        Ok(y) if y.len() == 2 * rows.len() && y.iter().all(|v| v.is_finite()) => Map2d {
            points: y.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect(),
            labels,
            how: MapMethod::Tsne {
                perplexity: PERPLEXITY,
            },
        },
        // Identical rows or another case the crate refuses: the PCA map still shows something.
        _ => Map2d {
            points: pca,
            labels,
            how: MapMethod::Pca,
        },
    }))
}

/// Rows of `x` (`[n, d]`, double) on their first two principal components.
fn principal_components(x: &Tensor) -> Result<Vec<(f64, f64)>> {
    let x = x - x.mean_dim([0i64].as_slice(), true, Kind::Double);
    // Principal axes: eigenvectors of XᵀX with the two largest eigenvalues (eigh sorts ascending).
    let (_, vectors) = x.tr().matmul(&x).linalg_eigh("L");
    let d = vectors.size()[1];
    let axes = vectors
        .narrow(1, (d - 2).max(0), d.min(2))
        .flip([1i64].as_slice());
    let p: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(&x.matmul(&axes))?;
    Ok(p.iter()
        .map(|r| (r[0], *r.get(1).unwrap_or(&0.0)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight clusters far apart in 16 dimensions.
    fn clusters(n: i64) -> (Tensor, Vec<i64>) {
        let _g = tch::no_grad_guard();
        tch::manual_seed(0);
        let a = Tensor::randn([n, 16], (Kind::Double, tch::Device::Cpu)) * 0.05 + 1.0;
        let b = Tensor::randn([n, 16], (Kind::Double, tch::Device::Cpu)) * 0.05 - 1.0;
        let labels = (0..2 * n).map(|i| i64::from(i >= n)).collect();
        (Tensor::cat(&[a, b], 0), labels)
    }

    #[test]
    fn tsne_keeps_two_clusters_apart_and_few_points_get_pca() {
        let (x, y) = clusters(80);
        let map = map_2d(&x, &y, 5000).unwrap().unwrap();
        assert_eq!(map.how, MapMethod::Tsne { perplexity: 30.0 });
        assert_eq!(map.points.len(), 160);
        // Every point is nearer its own cluster's centre than the other's.
        let centre = |c: i64| {
            let p: Vec<_> = map
                .points
                .iter()
                .zip(&map.labels)
                .filter(|(_, &l)| l == c)
                .collect();
            let n = p.len() as f64;
            (
                p.iter().map(|q| q.0 .0).sum::<f64>() / n,
                p.iter().map(|q| q.0 .1).sum::<f64>() / n,
            )
        };
        let (c0, c1) = (centre(0), centre(1));
        let d = |p: (f64, f64), c: (f64, f64)| (p.0 - c.0).hypot(p.1 - c.1);
        for (&p, &l) in map.points.iter().zip(&map.labels) {
            let (own, other) = if l == 0 { (c0, c1) } else { (c1, c0) };
            assert!(d(p, own) < d(p, other), "{p:?} label {l}");
        }
        // Unlabelled rows are left out, and a handful of points get the PCA map.
        let mut y2 = y.clone();
        y2[0] = -1;
        assert_eq!(map_2d(&x, &y2, 10).unwrap().unwrap().how, MapMethod::Pca);
        assert_eq!(map_2d(&x, &y2, 10).unwrap().unwrap().points.len(), 10);
        assert!(map_2d(&x, &y, 2).unwrap().is_none());
    }
}
