//! A prior over small classification tables for a PFN classifier, after the random-network
//! priors of Müller et al. 2022 (section 5.2, a BNN prior) and TabPFN (Hollmann et al. 2023): a
//! table's label is the arg-max of a randomly drawn MLP of its features, with noise inside.
//!
//! Per table: d of the model's `features` are used (1..=features), drawn N(0, 1) or U(−√3, √3)
//! (one choice per table); an MLP of 1–3 hidden layers of 8–64 units (tanh or ReLU, weights
//! N(0, σ_w²/fan_in) with σ_w ∈ [0.5, 2], Gaussian noise of std σ_n ∈ [0.01, 0.3] on every
//! hidden unit) maps each row to C ∈ 2..=classes scores, and the label is the highest score.
//! Class indices are shuffled, so that no index means anything across tables.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::gp::standard_normal;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpPrior {
    /// The most features a table may have (inputs are zero-padded to this).
    pub features: i64,
    /// The most classes a table may have.
    pub classes: i64,
}

impl Default for MlpPrior {
    /// 64 features (the 8×8 digits) and 10 classes.
    fn default() -> Self {
        MlpPrior {
            features: 64,
            classes: 10,
        }
    }
}

impl MlpPrior {
    /// `batch` tables of `rows` rows: features `[B, rows, features]` (prepared as
    /// [`prepare`] does with the first `context` rows as the context) and labels `[B, rows]`.
    pub fn sample(
        &self,
        batch: i64,
        rows: i64,
        context: i64,
        rng: &mut ChaCha8Rng,
    ) -> (Tensor, Tensor) {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..batch {
            let (x, y) = self.table(rows, rng);
            xs.push(prepare(&x, context, self.features));
            ys.push(y);
        }
        (Tensor::stack(&xs, 0), Tensor::stack(&ys, 0))
    }

    /// One table: features `[rows, d]` and labels `[rows]`.
    pub fn table(&self, rows: i64, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
        let d = rng.gen_range(1..=self.features);
        let c = rng.gen_range(2..=self.classes);
        let gaussian = rng.gen_bool(0.5);
        let n = (rows * d) as usize;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if gaussian {
                    standard_normal(rng) as f32
                } else {
                    (rng.gen::<f32>() * 2.0 - 1.0) * 3f32.sqrt()
                }
            })
            .collect();
        let x = Tensor::from_slice(&v).view([rows, d]);
        let layers = rng.gen_range(1..=3);
        let tanh = rng.gen_bool(0.5);
        let sigma_w = rng.gen_range(0.5..2.0);
        let sigma_n = (rng.gen_range(0.01f64.ln()..0.3f64.ln())).exp();
        let mut h = x.shallow_clone();
        let mut width = d;
        for layer in 0..=layers {
            let out = if layer == layers {
                c
            } else {
                rng.gen_range(8..=64)
            };
            let w = gaussian_tensor(&[width, out], sigma_w / (width as f64).sqrt(), rng);
            h = h.matmul(&w);
            if layer < layers {
                h = h + gaussian_tensor(&[rows, out], sigma_n, rng);
                h = if tanh { h.tanh() } else { h.relu() };
            }
            width = out;
        }
        let label = h.argmax(1, false);
        let mut perm: Vec<i64> = (0..c).collect();
        perm.shuffle(rng);
        let y = Tensor::from_slice(&perm).index_select(0, &label);
        (x, y)
    }
}

fn gaussian_tensor(shape: &[i64], std: f64, rng: &mut ChaCha8Rng) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (standard_normal(rng) * std) as f32)
        .collect();
    Tensor::from_slice(&v).view(shape)
}

/// A table's features as the network sees them, for the prior and for real tables alike: each
/// feature standardised by the mean and population std of the first `context` rows (a constant feature
/// becomes 0), clipped to ±10, zero-padded to `features` columns and scaled by
/// √(features / d) so that a row's norm does not depend on how many features are used (TabPFN's
/// normalisation by the number of used features).
pub fn prepare(x: &Tensor, context: i64, features: i64) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let d = x.size()[1];
    assert!(
        d <= features,
        "{d} features, more than the model's {features}"
    );
    let ctx = x.narrow(0, 0, context.max(1));
    let mean = ctx.mean_dim([0i64].as_slice(), true, Kind::Float);
    let std = ctx.std_dim([0i64].as_slice(), false, true);
    let z = ((&x - mean) / std.clamp_min(1e-6)).clamp(-10.0, 10.0);
    let z = z * (features as f64 / d as f64).sqrt();
    z.constant_pad_nd([0, features - d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tables_have_their_classes_and_prepared_features() {
        let p = MlpPrior {
            features: 8,
            classes: 4,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (x, y) = p.sample(20, 60, 40, &mut rng);
        assert_eq!(x.size(), [20, 60, 8]);
        assert_eq!(y.size(), [20, 60]);
        let ys = Vec::<i64>::try_from(y.flatten(0, -1)).unwrap();
        assert!(ys.iter().all(|&c| (0..4).contains(&c)));
        // Tables differ in how many classes actually occur, and most have more than one.
        let distinct: Vec<usize> = (0..20)
            .map(|b| {
                let mut v = Vec::<i64>::try_from(y.get(b)).unwrap();
                v.sort_unstable();
                v.dedup();
                v.len()
            })
            .collect();
        assert!(
            distinct.iter().filter(|&&k| k > 1).count() >= 15,
            "{distinct:?}"
        );
    }

    #[test]
    fn preparing_standardises_by_the_context_and_pads() {
        let x = Tensor::from_slice(&[1f32, 10.0, 3.0, 10.0, 5.0, 10.0, 100.0, 0.0]).view([4, 2]);
        let z = prepare(&x, 3, 4);
        assert_eq!(z.size(), [4, 4]);
        // Column 0 over the context (1, 3, 5): mean 3, population std √(8/3), scaled by √(4/2);
        // the fourth row, 100, is clipped at 10 standard deviations.
        let (s, sd) = (2f64.sqrt(), (8.0f64 / 3.0).sqrt());
        let col0 = Vec::<f32>::try_from(z.select(1, 0)).unwrap();
        for (a, e) in col0
            .iter()
            .zip([-2.0 / sd * s, 0.0, 2.0 / sd * s, 10.0 * s])
        {
            assert!((*a as f64 - e).abs() < 1e-5, "{col0:?}");
        }
        // A constant column is 0 on the context; padding is 0.
        assert_eq!(z.get(0).double_value(&[1]), 0.0);
        assert_eq!(
            z.narrow(1, 2, 2).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
    }
}
