//! Class-stratified subsets of a labelled training set, for the semi-supervised "1 % / 10 % of the
//! labels" protocol (the fine-tuning and linear-evaluation splits of SimCLR, Chen et al. 2020, and
//! later papers).
//!
//! Stratifying keeps the class balance of the full set, which a uniform draw of 1 % would not for
//! small classes; every present class keeps at least one sample, so no class disappears from the
//! classifier's training data.
use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Indices (ascending) of a subset holding, for each class c present in `labels`,
/// max(1, round(fraction · n_c)) of its n_c samples (round half away from zero), drawn by a shuffle
/// seeded with `seed`.
///
/// The classes are processed in increasing label order, each shuffled completely by one generator,
/// and the first samples of each shuffle are kept. The shuffles do not depend on `fraction`, so
/// for a given seed the subsets are nested: the 1 % subset is contained in the 10 % one.
///
/// # Errors
/// If `fraction` is not in (0, 1] (NaN included).
pub fn stratified_subset(labels: &[i64], fraction: f64, seed: u64) -> Result<Vec<usize>, String> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("label fraction must lie in (0, 1], got {fraction}"));
    }
    let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut subset = Vec::new();
    for members in by_class.values_mut() {
        members.shuffle(&mut rng);
        // fraction ≤ 1, so the rounded count never exceeds the class size.
        let keep = ((fraction * members.len() as f64).round() as usize).max(1);
        subset.extend_from_slice(&members[..keep]);
    }
    subset.sort_unstable();
    Ok(subset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classes 0..4 of sizes 1000, 240, 30 and 4, interleaved so that a class is not a contiguous
    /// block of indices.
    fn labels() -> Vec<i64> {
        let mut remaining = [1000usize, 240, 30, 4];
        let mut out = Vec::new();
        while remaining.iter().any(|&r| r > 0) {
            for (c, r) in remaining.iter_mut().enumerate() {
                if *r > 0 {
                    out.push(c as i64);
                    *r -= 1;
                }
            }
        }
        out
    }

    fn class_sizes(labels: &[i64], subset: &[usize]) -> Vec<usize> {
        let mut sizes = vec![0; 4];
        for &i in subset {
            sizes[labels[i] as usize] += 1;
        }
        sizes
    }

    #[test]
    fn per_class_sizes() {
        let y = labels();
        // 1 %: 1000 → 10, 240 → round(2.4) = 2, 30 → round(0.3) = 0 → at least 1, 4 → 0 → 1.
        let s = stratified_subset(&y, 0.01, 0).unwrap();
        assert_eq!(class_sizes(&y, &s), [10, 2, 1, 1]);
        // 10 %: 100, 24, 3, round(0.4) = 0 → 1.
        let s = stratified_subset(&y, 0.1, 0).unwrap();
        assert_eq!(class_sizes(&y, &s), [100, 24, 3, 1]);
        // 100 %: everything, i.e. every index once.
        let s = stratified_subset(&y, 1.0, 0).unwrap();
        assert_eq!(s, (0..y.len()).collect::<Vec<_>>());
        // Round half away from zero: 12.5 % of 4 = 0.5 → 1, 12.5 % of 240 = 30.
        let s = stratified_subset(&y, 0.125, 0).unwrap();
        assert_eq!(class_sizes(&y, &s), [125, 30, 4, 1]);
    }

    #[test]
    fn sorted_distinct_indices() {
        let y = labels();
        let s = stratified_subset(&y, 0.1, 5).unwrap();
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| i < y.len()));
    }

    #[test]
    fn deterministic_per_seed_and_different_across_seeds() {
        let y = labels();
        let a = stratified_subset(&y, 0.1, 42).unwrap();
        assert_eq!(a, stratified_subset(&y, 0.1, 42).unwrap());
        let b = stratified_subset(&y, 0.1, 43).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn smaller_fractions_are_nested() {
        let y = labels();
        let small = stratified_subset(&y, 0.01, 9).unwrap();
        let large = stratified_subset(&y, 0.1, 9).unwrap();
        assert!(small.iter().all(|i| large.binary_search(i).is_ok()));
    }

    #[test]
    fn at_least_one_per_class() {
        // Arbitrary label values, including negative ones and singletons.
        let y = [7i64, -1, 7, 3, 7, 7, 100, 7, 7, 7];
        let s = stratified_subset(&y, 0.001, 1).unwrap();
        let mut classes: Vec<i64> = s.iter().map(|&i| y[i]).collect();
        classes.sort();
        assert_eq!(classes, [-1, 3, 7, 100]);
        assert_eq!(stratified_subset(&[], 0.5, 0).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn fraction_outside_the_unit_interval_is_an_error() {
        for f in [0.0, -0.1, 1.0001, f64::NAN, f64::INFINITY] {
            let e = stratified_subset(&[0, 1], f, 0).unwrap_err();
            assert!(e.contains("(0, 1]"), "{e}");
        }
    }
}
