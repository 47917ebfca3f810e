//! Table views. SCARF (Bahri et al. 2022): corrupt a random fraction of a row's features by
//! replacing each chosen feature with its value in another row drawn uniformly from the table, i.e. a
//! draw from that feature's empirical marginal. Optional Gaussian noise on numeric features.
use super::ViewSource;
use crate::data::{FeatureKind, TableSet};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableCorruption {
    /// Fraction of features replaced per view; 0.6 is SCARF's default (§4).
    pub corruption_rate: f64,
    /// Std of Gaussian noise added to (standardised) numeric features after corruption.
    pub noise_std: f64,
    /// SCARF contrasts the clean row with one corrupted view: view 0 is left uncorrupted.
    pub clean_first_view: bool,
}

impl Default for TableCorruption {
    fn default() -> Self {
        TableCorruption {
            corruption_rate: 0.6,
            noise_std: 0.0,
            clean_first_view: true,
        }
    }
}

pub struct TableViews {
    pub table: Arc<TableSet>,
    pub corruption: TableCorruption,
}

impl TableViews {
    /// The corrupted raw row (before one-hot encoding), into `row`.
    pub fn corrupt_row(&self, index: usize, rng: &mut ChaCha8Rng, row: &mut [f32]) {
        let t = &self.table;
        row.copy_from_slice(t.row(index));
        let f = t.n_features();
        // Exactly round(rate·F) features, chosen uniformly without replacement, as in SCARF.
        let k = (self.corruption.corruption_rate * f as f64).round() as usize;
        let chosen = rand::seq::index::sample(rng, f, k.min(f));
        for j in chosen.iter() {
            let donor = rng.gen_range(0..t.n_rows);
            row[j] = t.values[donor * f + j];
        }
        if self.corruption.noise_std > 0.0 {
            for (j, feat) in t.features.iter().enumerate() {
                if matches!(feat.kind, FeatureKind::Numeric { .. }) {
                    let z: f64 = rng.sample(rand_distr_normal());
                    row[j] += (z * self.corruption.noise_std) as f32;
                }
            }
        }
    }
}

/// Standard normal draws via Box–Muller (rand's core has no normal distribution).
fn rand_distr_normal() -> impl rand::distributions::Distribution<f64> {
    struct StdNormal;
    impl rand::distributions::Distribution<f64> for StdNormal {
        fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
            let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
            let u2: f64 = rng.gen();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }
    StdNormal
}

impl ViewSource for TableViews {
    fn len(&self) -> usize {
        self.table.n_rows
    }
    fn sample_shape(&self) -> Vec<i64> {
        vec![self.table.encoded_dim() as i64]
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        if view == 0 && self.corruption.clean_first_view {
            return self.make_plain(index, out);
        }
        let mut row = vec![0f32; self.table.n_features()];
        self.corrupt_row(index, rng, &mut row);
        self.table.encode_row(&row, out);
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        self.table.encode_row(self.table.row(index), out);
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.table.labels.as_ref().map(|l| l[index])
    }
    fn n_classes(&self) -> usize {
        if self.table.labels.is_some() {
            self.table.label_names.len()
        } else {
            0
        }
    }
    fn feature_spans(&self) -> Option<Vec<crate::data::FeatureSpan>> {
        Some(self.table.feature_spans())
    }
    fn target(&self, index: usize) -> Option<f32> {
        self.table.targets.as_ref().map(|t| t[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Feature;
    use rand::SeedableRng;

    fn table() -> TableSet {
        // 3 numeric features + 1 categorical (3 levels); rows are distinct per feature.
        let n = 50;
        let mut values = Vec::new();
        for i in 0..n {
            values.extend([i as f32, 100.0 + i as f32, 200.0 + i as f32, (i % 3) as f32]);
        }
        let num = |name: &str| Feature {
            name: name.into(),
            kind: FeatureKind::Numeric {
                mean: 0.0,
                std: 1.0,
            },
        };
        TableSet {
            features: vec![
                num("a"),
                num("b"),
                num("c"),
                Feature {
                    name: "d".into(),
                    kind: FeatureKind::Categorical {
                        levels: vec!["x".into(), "y".into(), "z".into()],
                    },
                },
            ],
            values,
            n_rows: n,
            labels: None,
            label_names: vec![],
            targets: None,
        }
    }

    #[test]
    fn corrupts_the_requested_fraction_from_the_marginals() {
        let t = Arc::new(table());
        let v = TableViews {
            table: t.clone(),
            corruption: TableCorruption {
                corruption_rate: 0.5,
                noise_std: 0.0,
                clean_first_view: true,
            },
        };
        let mut changed_total = 0;
        for i in 0..t.n_rows {
            let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
            let mut row = vec![0f32; 4];
            v.corrupt_row(i, &mut rng, &mut row);
            for j in 0..3 {
                // Every value comes from the same column of some row (the marginal).
                assert!((0..t.n_rows).any(|r| t.values[r * 4 + j] == row[j]));
                if row[j] != t.row(i)[j] {
                    changed_total += 1;
                }
            }
        }
        // Exactly 2 of 4 features are resampled per row; a donor equal to the row itself leaves it unchanged.
        assert!(
            changed_total > 50 && changed_total <= 100,
            "{changed_total}"
        );
    }

    #[test]
    fn first_view_is_clean_and_encoding_is_one_hot() {
        let t = Arc::new(table());
        let v = TableViews {
            table: t.clone(),
            corruption: TableCorruption::default(),
        };
        assert_eq!(v.sample_shape(), vec![6]);
        let mut out = vec![0f32; 6];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        v.make_view(4, 0, &mut rng, &mut out);
        assert_eq!(out, vec![4.0, 104.0, 204.0, 0.0, 1.0, 0.0]);
    }
}
