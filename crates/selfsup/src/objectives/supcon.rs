//! Supervised contrastive loss L^sup_out (Khosla et al. 2020, eq. 2).
//!
//! The V views [N,D] of N labelled samples give V·N embeddings z, L2-normalised here; every one
//! of them is an anchor. For anchor i, A(i) is every other embedding and P(i) ⊂ A(i) those with
//! the same label (its other views and the other views of same-class samples):
//!   L = (1/VN) Σ_i −(τ/τ_base) (1/|P(i)|) Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a∈A(i)} exp(z_i·z_a/τ) ).
//! The τ/τ_base factor is the paper's code's; with all labels distinct and two views this is
//! NT-Xent scaled by τ/τ_base. An anchor with no positive (possible only with a single view)
//! contributes 0 and still counts in the mean, as in the paper's code.
use super::info_nce::l2_normalize_rows;
use crate::distributed::{Alone, Collective};
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// τ = 0.1: the paper's reported temperature and the one its code's README trains with.
pub fn default_temperature() -> f64 {
    0.1
}

/// τ_base = 0.07: the default `base_temperature` of the paper's code.
pub fn default_base_temperature() -> f64 {
    0.07
}

/// `views[v]`: embeddings [N,D] of view v, rows in the same sample order; `labels` [N] (any
/// integer kind, on any device) are the samples' classes.
pub fn supcon(
    views: &[Tensor],
    labels: &Tensor,
    temperature: f64,
    base_temperature: f64,
) -> Tensor {
    supcon_across(views, labels, (temperature, base_temperature), &Alone)
        .expect("one process gathers nothing")
}

/// This rank's part of the loss over the batches of every rank of `comm`: its own V·n anchors
/// against the V·N embeddings of every rank (gathered with their gradients, labels alongside),
/// so that the mean over ranks is the one-process loss.
pub fn supcon_across(
    views: &[Tensor],
    labels: &Tensor,
    (temperature, base_temperature): (f64, f64),
    comm: &dyn Collective,
) -> Result<Tensor> {
    if views.is_empty() {
        bail!("SupCon needs at least one view");
    }
    let v = views.len() as i64;
    let local = l2_normalize_rows(&Tensor::cat(views, 0));
    let (m, d, device, kind) = (
        local.size()[0],
        local.size()[1],
        local.device(),
        local.kind(),
    );
    let n = m / v;
    let (w, r) = (comm.world_size() as i64, comm.rank() as i64);
    // Gathered as [rank][view][row]; reordered to the one-process order [view][rank][row].
    let all = comm
        .gather(&local)?
        .view([w, v, n, d])
        .transpose(0, 1)
        .reshape([v * w * n, d]);
    let labels = labels.to_device(device).reshape([-1]);
    let all_labels = comm.gather(&labels)?.repeat([v]);
    let labels = labels.repeat([v]);
    // Global index of each local anchor: view j's row i sits at j·W·n + r·n + i.
    let own = (Tensor::arange(v, (Kind::Int64, device)).unsqueeze(1) * (w * n)
        + Tensor::arange_start(r * n, (r + 1) * n, (Kind::Int64, device)).unsqueeze(0))
    .reshape([m, 1]);
    let self_mask = Tensor::zeros([m, v * w * n], (Kind::Bool, device)).scatter_value(1, &own, 1);
    // log of exp(z_i·z_a/τ) / Σ_{a≠i} exp(z_i·z_a/τ); the own entry (−∞) is zeroed so that the
    // product with the positive mask below stays finite.
    let log_prob = (local.matmul(&all.tr()) / temperature)
        .masked_fill(&self_mask, f64::NEG_INFINITY)
        .log_softmax(1, None::<Kind>)
        .masked_fill(&self_mask, 0.0);
    let positive = labels
        .unsqueeze(1)
        .eq_tensor(&all_labels.unsqueeze(0))
        .logical_and(&self_mask.logical_not())
        .to_kind(kind);
    let count = positive.sum_dim_intlist([1i64].as_slice(), false, kind);
    let mean_log_prob_pos = (positive * log_prob).sum_dim_intlist([1i64].as_slice(), false, kind)
        / count.clamp_min(1.0);
    Ok(-(mean_log_prob_pos * (temperature / base_temperature)).mean(None::<Kind>))
}

#[cfg(test)]
mod tests {
    use super::super::nt_xent::nt_xent;
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};
    use tch::Device;

    /// Eq. 2 anchor by anchor, in f64.
    fn reference(views: &[Vec<Vec<f64>>], labels: &[i64], t: f64, tb: f64) -> f64 {
        let mut z = Vec::new();
        let mut y = Vec::new();
        for v in views {
            for (row, &l) in v.iter().zip(labels) {
                let n = row.iter().map(|x| x * x).sum::<f64>().sqrt();
                z.push(row.iter().map(|x| x / n).collect::<Vec<_>>());
                y.push(l);
            }
        }
        let dot = |a: &Vec<f64>, b: &Vec<f64>| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let m = z.len();
        let mut total = 0.0;
        for i in 0..m {
            let denom: f64 = (0..m)
                .filter(|&a| a != i)
                .map(|a| (dot(&z[i], &z[a]) / t).exp())
                .sum();
            let positives: Vec<usize> = (0..m).filter(|&p| p != i && y[p] == y[i]).collect();
            if positives.is_empty() {
                continue;
            }
            let s: f64 = positives
                .iter()
                .map(|&p| ((dot(&z[i], &z[p]) / t).exp() / denom).ln())
                .sum();
            total += -(t / tb) * s / positives.len() as f64;
        }
        total / m as f64
    }

    fn three_views() -> Vec<Vec<Vec<f64>>> {
        vec![
            vec![
                vec![1.0, 2.0, -0.5],
                vec![0.3, -1.0, 0.8],
                vec![-2.0, 0.1, 0.4],
                vec![0.5, 0.5, 0.5],
            ],
            vec![
                vec![0.9, 2.2, -0.1],
                vec![0.0, -1.5, 1.0],
                vec![-1.0, -0.3, 0.9],
                vec![2.0, -0.2, 0.3],
            ],
            vec![
                vec![1.2, 1.0, 0.0],
                vec![0.1, -0.9, 0.4],
                vec![-1.5, 0.5, 0.2],
                vec![0.3, 0.9, -0.1],
            ],
        ]
    }

    #[test]
    fn matches_an_independent_computation() {
        let views = three_views();
        for labels in [[0i64, 1, 0, 2], [3, 3, 3, 3], [0, 1, 2, 3]] {
            for (n_views, t, tb) in [(2, 0.1, 0.07), (3, 0.5, 0.5), (1, 0.2, 0.07)] {
                let want = reference(&views[..n_views], &labels, t, tb);
                for kind in [Kind::Float, Kind::Double] {
                    let v: Vec<Tensor> = views[..n_views].iter().map(|x| tensor(x, kind)).collect();
                    let got = scalar(&supcon(&v, &Tensor::from_slice(&labels), t, tb));
                    assert!(
                        (got - want).abs() < 1e-5 * want.abs().max(1.0),
                        "{labels:?}, {n_views} views: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// All labels distinct, two views: each anchor's only positive is its partner and the
    /// denominator runs over the other 2N − 1 embeddings, which is NT-Xent, times τ/τ_base.
    #[test]
    fn distinct_labels_reduce_to_scaled_nt_xent() {
        tch::manual_seed(5);
        let a = Tensor::randn([6, 5], (Kind::Double, Device::Cpu));
        let b = Tensor::randn([6, 5], (Kind::Double, Device::Cpu));
        let labels = Tensor::from_slice(&[4i64, 0, 9, 2, 7, 1]);
        for (t, tb) in [(0.1, 0.07), (0.5, 0.5)] {
            let got = scalar(&supcon(
                &[a.shallow_clone(), b.shallow_clone()],
                &labels,
                t,
                tb,
            ));
            let want = scalar(&nt_xent(&a, &b, t)) * t / tb;
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
    }

    /// A single view with distinct labels has no positive pair at all: every anchor contributes 0.
    #[test]
    fn anchors_without_positives_contribute_zero() {
        let v = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let got = scalar(&supcon(
            &[v],
            &Tensor::from_slice(&[0i64, 1, 2, 3]),
            0.1,
            0.07,
        ));
        assert_eq!(got, 0.0);
    }

    #[test]
    fn defaults_are_the_papers_code() {
        assert_eq!(
            (default_temperature(), default_base_temperature()),
            (0.1, 0.07)
        );
    }
}
