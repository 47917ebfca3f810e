//! SimCore (Kim, Bae & Yun, CVPR 2023, "Coreset sampling from open-set for fine-grained
//! self-supervised learning"): from a large open-set pool, the subset that resembles the target
//! data, for pretraining on target ∪ subset. The paper poses it as facility location — pick S ⊆ U
//! maximising Σ_x max_{u∈S} cos(f(x), f(u)) — and approximates it greedily:
//!
//! 1. embed target and pool with an encoder pretrained on the target alone, L2-normalise;
//! 2. k-means the target embeddings into K centroids (K = 100 in the paper; every target sample
//!    is its own centroid when there are fewer), normalised again;
//! 3. rounds: each centroid takes its most similar pool sample not yet taken (two centroids may
//!    take the same one; it counts once); the round's score is the mean similarity of the picks;
//! 4. stop when the budget is reached (the last round's picks drawn at random to fill it exactly)
//!    or, with the stopping rule, when a round scores below τ times the score of round `patience`
//!    (τ = 0.95, patience 20 in the reference implementation); that round is discarded.
use super::clustering::kmeans;
use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresetConfig {
    /// k-means centroids of the target set.
    #[serde(default = "clusters")]
    pub clusters: usize,
    /// Most pool samples to select.
    pub budget: usize,
    /// The similarity-drop stopping rule; `None`: only the budget stops.
    #[serde(default)]
    pub stop: Option<StopRule>,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRule {
    pub tau: f64,
    pub patience: usize,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            tau: 0.95,
            patience: 20,
        }
    }
}

fn clusters() -> usize {
    100
}

#[derive(Debug, Clone, Serialize)]
pub struct Coreset {
    /// Pool indices, in the order they were selected.
    pub selected: Vec<usize>,
    /// Cosine similarity of each selected sample to the centroid that took it.
    pub similarity: Vec<f64>,
    /// Mean similarity of each kept round's picks.
    pub round_scores: Vec<f64>,
    /// "budget", "stopping rule" or "pool exhausted".
    pub stopped_by: String,
}

fn normalised(x: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let n = x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    x / n
}

/// Selects the SimCore coreset of `pool` (`[n_u, d]` embeddings) for `target` (`[n_x, d]`).
pub fn simcore(target: &Tensor, pool: &Tensor, cfg: &CoresetConfig) -> Result<Coreset> {
    let _guard = tch::no_grad_guard();
    let (nx, d) = target.size2()?;
    let (nu, du) = pool.size2()?;
    ensure!(d == du, "target embeddings are {d}-d, pool's {du}-d");
    ensure!(nx > 0 && nu > 0, "SimCore needs target and pool samples");
    ensure!(cfg.clusters >= 1, "SimCore needs at least one centroid");
    let x = normalised(target);
    let centroids = if cfg.clusters as i64 >= nx {
        x.shallow_clone()
    } else {
        normalised(&kmeans(&x, cfg.clusters, 300, 1, cfg.seed).centroids)
    };
    let k = centroids.size()[0] as usize;
    // [K, n_u]: each centroid's similarity to every pool sample, and the pool sorted by it.
    let sim = centroids.matmul(&normalised(pool).tr());
    let (sorted_sim, order) = sim.sort(1, true);
    let sorted_sim = Vec::<f32>::try_from(sorted_sim.flatten(0, -1))?;
    let order = Vec::<i64>::try_from(order.flatten(0, -1))?;
    let nu = nu as usize;
    let mut taken = vec![false; nu];
    let mut next = vec![0usize; k];
    let mut out = Coreset {
        selected: Vec::new(),
        similarity: Vec::new(),
        round_scores: Vec::new(),
        stopped_by: "pool exhausted".into(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x51c0_7e5e);
    let mut threshold = f64::NEG_INFINITY;
    while out.selected.len() < cfg.budget {
        let mut picks: Vec<(usize, f64)> = Vec::new();
        let mut score = 0.0;
        for c in 0..k {
            while next[c] < nu && taken[order[c * nu + next[c]] as usize] {
                next[c] += 1;
            }
            if next[c] < nu {
                let u = order[c * nu + next[c]] as usize;
                let s = sorted_sim[c * nu + next[c]] as f64;
                score += s;
                if !picks.iter().any(|&(p, _)| p == u) {
                    picks.push((u, s));
                }
            }
        }
        if picks.is_empty() {
            break;
        }
        let score = score / k as f64;
        let round = out.round_scores.len() + 1;
        if let Some(rule) = cfg.stop {
            if round == rule.patience {
                threshold = rule.tau * score;
            }
            if score < threshold {
                out.stopped_by = "stopping rule".into();
                break;
            }
        }
        let room = cfg.budget - out.selected.len();
        if picks.len() > room {
            picks.shuffle(&mut rng);
            picks.truncate(room);
        }
        for (u, s) in picks {
            taken[u] = true;
            out.selected.push(u);
            out.similarity.push(s);
        }
        out.round_scores.push(score);
        if out.selected.len() == cfg.budget {
            out.stopped_by = "budget".into();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors at the given angles (degrees), as `[n, 2]`.
    fn at(angles: &[f64]) -> Tensor {
        let v: Vec<f32> = angles
            .iter()
            .flat_map(|a| {
                let r = a.to_radians();
                [r.cos() as f32, r.sin() as f32]
            })
            .collect();
        Tensor::from_slice(&v).view([angles.len() as i64, 2])
    }

    /// Two target samples (centroids, K ≥ n) at 0° and 90°; pool samples at 5°, 10°, 80°, 180°,
    /// 45°. Round 1: the 0° centroid takes 5°, the 90° one 80°; round 2: 10° and 45° (cos 45° for
    /// the 90° centroid beats 180°'s cos 90°); the budget of 3 keeps one of the second round's.
    #[test]
    fn each_centroid_takes_its_nearest_untaken_pool_sample() {
        let target = at(&[0.0, 90.0]);
        let pool = at(&[5.0, 10.0, 80.0, 180.0, 45.0]);
        let cfg = CoresetConfig {
            clusters: 100,
            budget: 10,
            stop: None,
            seed: 0,
        };
        let c = simcore(&target, &pool, &cfg).unwrap();
        assert_eq!(&c.selected[..2], &[0, 2]);
        let mut second = c.selected[2..4].to_vec();
        second.sort();
        assert_eq!(second, vec![1, 4]);
        assert_eq!(c.selected[4], 3);
        assert_eq!(c.stopped_by, "pool exhausted");
        // Round 1's score: the mean of cos 5° and cos 10°.
        let want = (5f64.to_radians().cos() + 10f64.to_radians().cos()) / 2.0;
        assert!((c.round_scores[0] - want).abs() < 1e-6);
        let budget = simcore(&target, &pool, &CoresetConfig { budget: 3, ..cfg }).unwrap();
        assert_eq!(budget.selected.len(), 3);
        assert!([1, 4].contains(&budget.selected[2]));
        assert_eq!(budget.stopped_by, "budget");
    }

    /// Two centroids wanting the same pool sample take it once.
    #[test]
    fn a_sample_two_centroids_want_counts_once() {
        let target = at(&[0.0, 10.0]);
        let pool = at(&[5.0, 100.0]);
        let cfg = CoresetConfig {
            clusters: 2,
            budget: 5,
            stop: None,
            seed: 0,
        };
        let c = simcore(&target, &pool, &cfg).unwrap();
        assert_eq!(c.selected, vec![0, 1]);
        assert_eq!(c.round_scores.len(), 2);
    }

    /// With the stopping rule at patience 1, a round scoring below τ × round 1's stops the
    /// selection and is discarded: the pool's far samples are never taken.
    #[test]
    fn the_stopping_rule_ends_at_a_drop_in_similarity() {
        let target = at(&[0.0]);
        let pool = at(&[1.0, 2.0, 3.0, 60.0, 90.0]);
        let cfg = CoresetConfig {
            clusters: 1,
            budget: 5,
            stop: Some(StopRule {
                tau: 0.9,
                patience: 1,
            }),
            seed: 0,
        };
        let c = simcore(&target, &pool, &cfg).unwrap();
        assert_eq!(c.selected, vec![0, 1, 2]);
        assert_eq!(c.stopped_by, "stopping rule");
    }

    /// Clustering a larger target: the coreset of a pool half near the target, half far away,
    /// is the near half.
    #[test]
    fn the_coreset_is_the_part_of_the_pool_like_the_target() {
        let target_angles: Vec<f64> = (0..200).map(|i| (i % 40) as f64).collect();
        let pool_angles: Vec<f64> = (0..100)
            .map(|i| {
                if i % 2 == 0 {
                    (i % 40) as f64 + 0.5
                } else {
                    180.0 + i as f64 * 0.3
                }
            })
            .collect();
        let cfg = CoresetConfig {
            clusters: 8,
            budget: 50,
            stop: None,
            seed: 3,
        };
        let c = simcore(&at(&target_angles), &at(&pool_angles), &cfg).unwrap();
        assert_eq!(c.selected.len(), 50);
        assert!(c.selected.iter().all(|&u| u % 2 == 0), "{:?}", c.selected);
    }
}
