//! Encoding parsed rows with a fitted schema into the table's values, labels and targets.
use super::read::*;
use super::*;
use crate::data::{Feature, FeatureKind, TableSet};
use crate::error::{BadInputPolicy, DataError, SkipReport};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The first numeric cell of `row` that is finite as f64 but not as f32 once standardised, as a
/// record error. Only a file encoded with another file's fit can have one (1e300 in a test file
/// whose training std is 1); it must not reach a model as infinity.
pub(super) fn overflowing_cell(
    path: &Path,
    layout: &Layout,
    row: &Row,
    features: &[Feature],
) -> Option<DataError> {
    row.cells
        .iter()
        .zip(features)
        .zip(&layout.features)
        .find_map(|((cell, feature), &col)| match (&feature.kind, cell) {
            (FeatureKind::Numeric { mean, std }, Cell::Num(x))
                if !(((x - mean) / std) as f32).is_finite() =>
            {
                Some(DataError::record(
                    path,
                    row.line,
                    col + 1,
                    format!(
                        "{x} in numeric column {:?} does not fit in f32 once standardised \
                         (training mean {mean}, std {std})",
                        feature.name
                    ),
                ))
            }
            _ => None,
        })
}

/// Encodes parsed rows with a fitted schema. A label outside `label_names` is a record error;
/// a category outside the levels becomes the missing level (or code 0) and is counted.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode(
    path: &Path,
    layout: &Layout,
    rows: Vec<Row>,
    features: Vec<Feature>,
    label_names: Vec<String>,
    task: Task,
    has_labels: bool,
    policy: BadInputPolicy,
    report: &mut SkipReport,
) -> Result<TableSet, DataError> {
    let level_maps: Vec<Option<(HashMap<&str, usize>, Option<usize>)>> = features
        .iter()
        .map(|f| match &f.kind {
            FeatureKind::Categorical { levels } => Some((
                levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect(),
                levels.iter().position(|l| l == MISSING_LEVEL),
            )),
            FeatureKind::Numeric { .. } => None,
        })
        .collect();
    let label_index: HashMap<&str, i64> = label_names
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as i64))
        .collect();

    let mut values = Vec::with_capacity(rows.len() * features.len());
    let mut labels = Vec::new();
    let mut targets = Vec::new();
    // Per feature: how many unseen values, and the first few of them for the warning.
    let mut unseen: BTreeMap<usize, (usize, BTreeSet<String>)> = BTreeMap::new();
    let mut n_rows = 0;
    for row in rows {
        if let Some(e) = overflowing_cell(path, layout, &row, &features) {
            report.handle(policy, e)?;
            continue;
        }
        match &row.label {
            Label::Class(s) => match label_index.get(s.as_str()) {
                Some(&i) => labels.push(i),
                None => {
                    let col = layout.label.map_or(0, |c| c + 1);
                    let e = DataError::record(
                        path,
                        row.line,
                        col,
                        format!("label {s:?} was not seen in training (known: {label_names:?})"),
                    );
                    report.handle(policy, e)?;
                    continue;
                }
            },
            // Targets were checked to fit in f32 when parsed.
            Label::Target(t) => targets.push(*t as f32),
            Label::None => {}
        }
        for (f, (cell, feature)) in row.cells.iter().zip(&features).enumerate() {
            let v = match (&feature.kind, cell, &level_maps[f]) {
                (FeatureKind::Numeric { mean, std }, Cell::Num(x), _) => ((x - mean) / std) as f32,
                (FeatureKind::Numeric { .. }, _, _) => 0.0,
                (FeatureKind::Categorical { .. }, cell, Some((map, missing))) => {
                    let known = match cell {
                        Cell::Text(s) => map.get(s.as_str()).copied(),
                        _ => *missing,
                    };
                    match known {
                        Some(code) => code as f32,
                        None => {
                            let entry = unseen.entry(f).or_default();
                            entry.0 += 1;
                            if entry.1.len() < 5 {
                                entry.1.insert(match cell {
                                    Cell::Text(s) => s.clone(),
                                    _ => "(missing)".into(),
                                });
                            }
                            missing.unwrap_or(0) as f32
                        }
                    }
                }
                // level_maps is built from the same features, so this arm is unreachable; 0 is
                // a harmless value should it ever be reached.
                (FeatureKind::Categorical { .. }, _, None) => 0.0,
            };
            values.push(v);
        }
        n_rows += 1;
    }
    for (f, (count, examples)) in &unseen {
        let to = match &level_maps[*f] {
            Some((_, Some(_))) => "the missing level \"?\"",
            _ => "code 0",
        };
        tracing::warn!(
            "{}: column {:?}: {count} value(s) not seen in training (e.g. {examples:?}) encoded as {to}",
            path.display(),
            features[*f].name
        );
    }
    if n_rows == 0 {
        return Err(DataError::Empty {
            path: path.into(),
            message: format!("no data rows left (skipped {})", report.skipped),
        });
    }
    let (labels, targets, label_names) = match (has_labels, task) {
        (true, Task::Classification) => (Some(labels), None, label_names),
        (true, Task::Regression) => (None, Some(targets), Vec::new()),
        (false, _) => (None, None, Vec::new()),
    };
    Ok(TableSet {
        features,
        values,
        n_rows,
        labels,
        label_names,
        targets,
    })
}
