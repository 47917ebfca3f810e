//! Fitting the schema on the training rows: numeric mean and std, categorical levels.
use super::read::*;
use super::*;
use crate::data::FeatureKind;
use crate::error::DataError;
use std::collections::BTreeSet;
use std::path::Path;

/// Mean and (population) std over the non-missing values of feature `f`; std 0 becomes 1 so a
/// constant column standardises to 0 instead of dividing by zero.
pub(super) fn fit_numeric(
    path: &Path,
    name: &str,
    rows: &[Row],
    f: usize,
) -> Result<FeatureKind, DataError> {
    let values = || {
        rows.iter().filter_map(move |r| match r.cells[f] {
            Cell::Num(v) => Some(v),
            _ => None,
        })
    };
    let n = values().count();
    if n == 0 {
        return Ok(FeatureKind::Numeric {
            mean: 0.0,
            std: 1.0,
        });
    }
    // Running mean: a plain sum of large finite values could overflow to infinity.
    let mut mean = 0.0;
    for (i, v) in values().enumerate() {
        mean += (v - mean) / (i + 1) as f64;
    }
    let var = values()
        .map(|v| ((v - mean) / n as f64) * (v - mean))
        .sum::<f64>();
    let std = var.sqrt();
    if !mean.is_finite() || !std.is_finite() {
        return Err(DataError::format(
            path,
            format!("numeric column {name:?} has values too large to standardise"),
        ));
    }
    Ok(FeatureKind::Numeric {
        mean,
        std: if std > 0.0 { std } else { 1.0 },
    })
}

/// Sorted distinct values of feature `f`, plus the missing level if any value is missing.
pub(super) fn fit_levels(rows: &[Row], f: usize) -> FeatureKind {
    let mut distinct = BTreeSet::new();
    let mut any_missing = false;
    for r in rows {
        match &r.cells[f] {
            Cell::Text(s) => {
                distinct.insert(s.as_str());
            }
            Cell::Missing => any_missing = true,
            Cell::Num(_) => {}
        }
    }
    let mut levels: Vec<String> = distinct.into_iter().map(str::to_string).collect();
    if any_missing && !levels.iter().any(|l| l == MISSING_LEVEL) {
        levels.push(MISSING_LEVEL.to_string());
    }
    FeatureKind::Categorical { levels }
}
