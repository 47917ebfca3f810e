//! N-way K-shot classification of frozen embeddings by class prototypes.
//!
//! The episodic protocol of Vinyals et al. 2016 (Matching Networks) with the prototype classifier
//! of Snell et al. 2017 (Prototypical Networks), in its cosine form as used to evaluate frozen
//! self-supervised features: each episode draws N classes, K support and Q query samples of each;
//! a class's prototype is the mean of its L2-normalised support embeddings, and each query is
//! assigned to the prototype of highest cosine similarity. The score is the mean query accuracy
//! over the episodes, with a 95 % confidence interval 1.96·σ/√E (σ the standard deviation of the
//! per-episode accuracies, E the number of episodes), as conventionally reported.
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

use super::clustering::labels_to_vec;
use super::standardise::assert_features;

/// Shape and number of the episodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FewShotConfig {
    /// Classes per episode (N).
    pub n_way: usize,
    /// Support samples per class (K).
    pub k_shot: usize,
    /// Query samples per class (Q).
    pub n_query: usize,
    /// Number of episodes (E).
    pub episodes: usize,
    /// Seed of the episode sampler.
    pub seed: u64,
}

impl Default for FewShotConfig {
    /// 5-way 1-shot, 15 queries per class, 600 episodes: the usual miniImageNet evaluation.
    fn default() -> Self {
        FewShotConfig {
            n_way: 5,
            k_shot: 1,
            n_query: 15,
            episodes: 600,
            seed: 0,
        }
    }
}

impl FewShotConfig {
    /// Checks a configuration that came from a user.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_way < 2 {
            return Err(format!(
                "few-shot: n_way must be at least 2 (one class leaves nothing to classify), not {}",
                self.n_way
            ));
        }
        if self.k_shot == 0 || self.n_query == 0 || self.episodes == 0 {
            return Err(format!(
                "few-shot: k_shot, n_query and episodes must be at least 1, got {}, {}, {}",
                self.k_shot, self.n_query, self.episodes
            ));
        }
        Ok(())
    }
}

/// Outcome of [`few_shot_accuracy`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FewShotResult {
    /// Mean over episodes of the fraction of queries classified correctly.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval of `mean`.
    pub ci95: f64,
    /// Number of episodes run.
    pub episodes: usize,
}

/// Few-shot accuracy of `features` `[N, D]` (floating point) with integer `labels` `[N]`; see the
/// module documentation.
///
/// Only classes with at least K + Q samples can appear in an episode. Each episode draws N of them
/// without replacement, then K + Q distinct samples of each; the first K are the support, the rest
/// the queries. All draws come from one ChaCha8 generator seeded with `cfg.seed`, so the result is
/// a function of the inputs and the configuration.
///
/// # Errors
/// If `cfg` is invalid ([`FewShotConfig::validate`]) or fewer than N classes have K + Q samples.
///
/// # Panics
/// If `features` is not `[N, D]` floating point or `labels` not an integer vector of length N.
pub fn few_shot_accuracy(
    features: &Tensor,
    labels: &Tensor,
    cfg: &FewShotConfig,
) -> Result<FewShotResult, String> {
    cfg.validate()?;
    assert_features("few-shot", features);
    let labels = labels_to_vec("few-shot labels", labels, features.size()[0]);
    let per_episode = cfg.k_shot + cfg.n_query;

    let mut by_class: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i as i64);
    }
    let eligible: Vec<&Vec<i64>> = by_class
        .values()
        .filter(|m| m.len() >= per_episode)
        .collect();
    if eligible.len() < cfg.n_way {
        return Err(format!(
            "few-shot: {}-way {}-shot with {} queries needs {} classes of at least {} samples, \
             found {} (of {} classes)",
            cfg.n_way,
            cfg.k_shot,
            cfg.n_query,
            cfg.n_way,
            per_episode,
            eligible.len(),
            by_class.len()
        ));
    }

    let accuracies = tch::no_grad(|| {
        let unit = l2_normalise(features);
        let (n_way, k, q) = (cfg.n_way as i64, cfg.k_shot as i64, cfg.n_query as i64);
        // Way w's queries are rows w·Q .. (w+1)·Q of the query block.
        let targets = Tensor::arange(n_way, (Kind::Int64, unit.device()))
            .repeat_interleave_self_int(q, 0, None);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        (0..cfg.episodes)
            .map(|_| {
                let ways = sample(&mut rng, eligible.len(), cfg.n_way);
                let mut support = Vec::with_capacity(cfg.n_way * cfg.k_shot);
                let mut query = Vec::with_capacity(cfg.n_way * cfg.n_query);
                for w in ways.iter() {
                    let members = eligible[w];
                    let picked = sample(&mut rng, members.len(), per_episode);
                    for (j, m) in picked.iter().enumerate() {
                        if j < cfg.k_shot {
                            support.push(members[m]);
                        } else {
                            query.push(members[m]);
                        }
                    }
                }
                let rows = |idx: &[i64]| {
                    unit.index_select(0, &Tensor::from_slice(idx).to_device(unit.device()))
                };
                let d = unit.size()[1];
                let prototypes = l2_normalise(&rows(&support).reshape([n_way, k, d]).mean_dim(
                    1,
                    false,
                    None::<Kind>,
                ));
                let pred = rows(&query).matmul(&prototypes.tr()).argmax(1, false);
                pred.eq_tensor(&targets)
                    .to_kind(Kind::Double)
                    .mean(None::<Kind>)
                    .to_device(Device::Cpu)
                    .double_value(&[])
            })
            .collect::<Vec<f64>>()
    });
    let (mean, ci95) = mean_ci95(&accuracies);
    Ok(FewShotResult {
        mean,
        ci95,
        episodes: accuracies.len(),
    })
}

/// Mean of `xs` and 1.96·σ/√n with σ the population standard deviation (divisor n), the form
/// used by the few-shot evaluation code the literature reports against (e.g. Chen et al. 2019,
/// "A Closer Look at Few-shot Classification"). Not called with an empty slice.
fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    (
        crate::stats::mean(xs),
        1.96 * crate::stats::std_population(xs) / n.sqrt(),
    )
}

/// Row-wise `x / max(‖x‖₂, 1e-12)`, as `torch.nn.functional.normalize(x, dim=1)`.
fn l2_normalise(x: &Tensor) -> Tensor {
    x / x
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Device = Device::Cpu;

    /// `per_class` samples of each of `n_classes` classes around distinct basis directions.
    fn separable(n_classes: i64, per_class: i64, dim: i64, noise: f64) -> (Tensor, Tensor) {
        let labels = Tensor::arange(n_classes, (Kind::Int64, CPU))
            .repeat_interleave_self_int(per_class, 0, None);
        let centres = Tensor::eye(dim, (Kind::Float, CPU)).narrow(0, 0, n_classes) * 3.0;
        let x = centres.index_select(0, &labels)
            + Tensor::randn([n_classes * per_class, dim], (Kind::Float, CPU)) * noise;
        (x, labels)
    }

    #[test]
    fn separable_classes_are_always_right() {
        tch::manual_seed(10);
        let (x, y) = separable(8, 25, 10, 0.3);
        for (k_shot, n_way) in [(1, 5), (5, 5), (5, 8)] {
            let cfg = FewShotConfig {
                n_way,
                k_shot,
                n_query: 10,
                episodes: 40,
                seed: 1,
            };
            let r = few_shot_accuracy(&x, &y, &cfg).unwrap();
            assert_eq!(
                r,
                FewShotResult {
                    mean: 1.0,
                    ci95: 0.0,
                    episodes: 40
                }
            );
        }
    }

    #[test]
    fn hand_computed_episode_accuracy() {
        // Class 0: two copies of the direction 0° (norms 1 and 5, the same after normalisation).
        // Class 1: unit vectors at +60° and −60°.
        // 2-way 1-shot 1-query: class 0's prototype is 0°; class 1's is whichever of ±60° was
        // drawn as support, and its query is the other one.
        // - class 0's query (0°): cos 0° = 1 to its own prototype vs cos 60° = 0.5 → right;
        // - class 1's query (∓60°): cos 60° = 0.5 to class 0 vs cos 120° = −0.5 → wrong.
        // Every episode scores 1/2 whatever was drawn: mean 0.5, σ = 0, ci95 = 0.
        let s = 3f32.sqrt() / 2.0;
        let x = Tensor::from_slice2(&[[1.0f32, 0.0], [0.5, s], [5.0, 0.0], [0.5, -s]]);
        let y = Tensor::from_slice(&[0i64, 1, 0, 1]);
        let cfg = FewShotConfig {
            n_way: 2,
            k_shot: 1,
            n_query: 1,
            episodes: 12,
            seed: 3,
        };
        let r = few_shot_accuracy(&x, &y, &cfg).unwrap();
        assert_eq!(r.episodes, 12);
        assert!((r.mean - 0.5).abs() < 1e-12, "{r:?}");
        assert!(r.ci95.abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn confidence_interval_formula() {
        // Accuracies 0.5 and 1: mean 0.75, population σ = 0.25, ci95 = 1.96 · 0.25 / √2 ≈ 0.346482.
        let (m, ci) = mean_ci95(&[0.5, 1.0]);
        assert_eq!(m, 0.75);
        assert!((ci - 0.49 / 2f64.sqrt()).abs() < 1e-12);
        assert!((ci - 0.346482).abs() < 1e-6);
    }

    #[test]
    fn deterministic_per_seed_and_invariant_to_row_norms() {
        tch::manual_seed(11);
        // Overlapping classes so that accuracy varies from episode to episode.
        let (x, y) = separable(6, 20, 6, 2.0);
        let cfg = FewShotConfig {
            n_way: 5,
            k_shot: 2,
            n_query: 5,
            episodes: 50,
            seed: 4,
        };
        let a = few_shot_accuracy(&x, &y, &cfg).unwrap();
        assert!(a.mean > 0.2 && a.mean < 1.0 && a.ci95 > 0.0, "{a:?}");
        assert_eq!(a, few_shot_accuracy(&x, &y, &cfg).unwrap());
        let other = few_shot_accuracy(
            &x,
            &y,
            &FewShotConfig {
                seed: 5,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_ne!(a.mean, other.mean);
        // Cosine similarity ignores the norms of the rows: rescaling every row by a power of two
        // (exact in floating point) changes nothing.
        let scale = Tensor::from_slice(&[0.25f32, 1.0, 4.0, 16.0])
            .repeat([30])
            .unsqueeze(1);
        let b = few_shot_accuracy(&(&x * scale), &y, &cfg).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn too_few_classes_or_samples_is_an_error() {
        tch::manual_seed(12);
        // Classes 0..3 with 5 samples each, class 3 with only 2.
        let (x, _) = separable(4, 5, 4, 0.1);
        let y = Tensor::from_slice(&[
            0i64, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 0, 1, 2,
        ]);
        let cfg = FewShotConfig {
            n_way: 4,
            k_shot: 1,
            n_query: 2,
            episodes: 5,
            seed: 0,
        };
        // Class 3 has 2 < 1 + 2 samples: only 3 classes are eligible for 4 ways.
        let e = few_shot_accuracy(&x, &y, &cfg).unwrap_err();
        assert!(e.contains("found 3 (of 4 classes)"), "{e}");
        // 3 ways work.
        let ok = FewShotConfig {
            n_way: 3,
            ..cfg.clone()
        };
        assert!(few_shot_accuracy(&x, &y, &ok).is_ok());
        // Classes 0..2 have 6 samples: 2 + 5 = 7 is too many.
        let e = few_shot_accuracy(
            &x,
            &y,
            &FewShotConfig {
                k_shot: 2,
                n_query: 5,
                ..ok.clone()
            },
        )
        .unwrap_err();
        assert!(e.contains("found 0 (of 4 classes)"), "{e}");
        let e = few_shot_accuracy(
            &x,
            &y,
            &FewShotConfig {
                k_shot: 0,
                ..ok.clone()
            },
        )
        .unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = few_shot_accuracy(&x, &y, &FewShotConfig { n_way: 1, ..ok }).unwrap_err();
        assert!(e.contains("at least 2"), "{e}");
    }
}
