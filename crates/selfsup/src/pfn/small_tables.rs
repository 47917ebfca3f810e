//! A PFN classifier on real small tables it never saw, beside logistic regression and gradient-
//! boosted trees measured by the same code on the same random splits.
use super::classify::ClassifierPfn;
use crate::eval::downstream::Task;
use crate::eval::gbdt::{fit_gbdt, GbdtConfig};
use crate::eval::linear_probe::{linear_probe, LinearProbeConfig};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// A numeric CSV (optionally gzipped): every column a feature but the last, an integer class
/// 0..k. A first line with a field that is not a number is a header and skipped.
pub fn read_table(path: &Path) -> Result<(Tensor, Tensor)> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .with_context(|| format!("{}: not gzip text", path.display()))?;
        s
    } else {
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?
    };
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Option<Vec<f64>> = fields.iter().map(|f| f.parse::<f64>().ok()).collect();
        let Some(values) = parsed else {
            if i == 0 {
                continue; // a header
            }
            bail!("{}:{}: a field is not a number", path.display(), i + 1);
        };
        if values.len() < 2 {
            bail!(
                "{}:{}: a row needs features and a class",
                path.display(),
                i + 1
            );
        }
        if let Some(first) = rows.first() {
            if values.len() != first.len() + 1 {
                bail!(
                    "{}:{}: {} fields, the first row has {}",
                    path.display(),
                    i + 1,
                    values.len(),
                    first.len() + 1
                );
            }
        }
        let class = values[values.len() - 1];
        if class < 0.0 || class.fract() != 0.0 {
            bail!(
                "{}:{}: the class {class} is not an integer ≥ 0",
                path.display(),
                i + 1
            );
        }
        labels.push(class as i64);
        rows.push(
            values[..values.len() - 1]
                .iter()
                .map(|&v| v as f32)
                .collect(),
        );
    }
    if rows.is_empty() {
        bail!("{}: no rows", path.display());
    }
    let d = rows[0].len() as i64;
    let flat: Vec<f32> = rows.concat();
    Ok((
        Tensor::from_slice(&flat).view([rows.len() as i64, d]),
        Tensor::from_slice(&labels),
    ))
}

/// Accuracy of each model over the splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmallTableRow {
    pub table: String,
    pub rows: i64,
    pub features: i64,
    pub classes: i64,
    pub train_rows: i64,
    pub pfn: Vec<f64>,
    pub logistic_regression: Vec<f64>,
    pub gbdt: Vec<f64>,
}

/// `splits` random splits of the table, `train_fraction` of the rows (at most the PFN's
/// context) for training, the rest for testing. Logistic regression: the L-BFGS softmax
/// regression of the linear probe on standardised features; GBDT: forust, early-stopped on
/// a fifth of the training rows.
pub fn small_table(
    model: &ClassifierPfn,
    path: &Path,
    splits: u64,
    train_fraction: f64,
) -> Result<SmallTableRow> {
    let (x, y) = read_table(path)?;
    let (n, d) = (x.size()[0], x.size()[1]);
    let classes = y.max().int64_value(&[]) + 1;
    let n_train = ((n as f64 * train_fraction).round() as i64).min(super::classify::MAX_ROWS);
    let mut row = SmallTableRow {
        table: path.display().to_string(),
        rows: n,
        features: d,
        classes,
        train_rows: n_train,
        pfn: Vec::new(),
        logistic_regression: Vec::new(),
        gbdt: Vec::new(),
    };
    for split in 0..splits {
        let mut order: Vec<i64> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(split));
        let (tr, te) = order.split_at(n_train as usize);
        let pick = |idx: &[i64]| {
            let i = Tensor::from_slice(idx);
            (x.index_select(0, &i), y.index_select(0, &i))
        };
        let ((xt, yt), (xq, yq)) = (pick(tr), pick(te));
        let accuracy = |pred: &Tensor| {
            pred.eq_tensor(&yq)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        };
        // A class missing from the training rows cannot be predicted by the PFN; the splits
        // are large enough that this does not happen on the tables here, and it is refused.
        let p = model.predict_proba(&xt, &yt, &xq)?;
        row.pfn.push(accuracy(&p.argmax(1, false)));
        let lr = linear_probe(&xt, &yt, &xq, &yq, classes, &LinearProbeConfig::default());
        row.logistic_regression.push(lr.test_accuracy);
        let n_val = (tr.len() / 5).max(1);
        let (fit, val) = tr.split_at(tr.len() - n_val);
        let host = |idx: &[i64]| -> Result<(Vec<f32>, Vec<f64>)> {
            let (a, b) = pick(idx);
            Ok((
                Vec::<f32>::try_from(a.flatten(0, -1))?,
                Vec::<f64>::try_from(b.to_kind(Kind::Double))?,
            ))
        };
        let ((xs, ys), (xv, yv), (xe, ye)) = (host(fit)?, host(val)?, host(te)?);
        let cfg = GbdtConfig {
            seed: split,
            ..Default::default()
        };
        let task = Task::Classification {
            n_classes: classes as usize,
        };
        let g = fit_gbdt(task, (&xs, &ys), (&xv, &yv), (&xe, &ye), d as usize, &cfg)?;
        row.gbdt.push(g.test_metric);
    }
    Ok(row)
}

pub fn format_rows(rows: &[SmallTableRow]) -> String {
    let cell = |v: &[f64]| {
        let (m, s) = crate::stats::mean_std(&v.iter().map(|a| 100.0 * a).collect::<Vec<_>>());
        format!("{m:.2} ± {s:.2}")
    };
    let mut out = String::from(
        "| table | rows × features, classes | training rows | PFN % | logistic regression % | GBDT % | splits |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} × {}, {} | {} | {} | {} | {} | {} |\n",
            r.table,
            r.rows,
            r.features,
            r.classes,
            r.train_rows,
            cell(&r.pfn),
            cell(&r.logistic_regression),
            cell(&r.gbdt),
            r.pfn.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_read_with_or_without_a_header_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "150,4,setosa,versicolor\n1.0,2.0,0\n3.5,-1,2\n").unwrap();
        let (x, y) = read_table(&p).unwrap();
        assert_eq!(x.size(), [2, 2]);
        assert_eq!(Vec::<i64>::try_from(y).unwrap(), [0, 2]);
        std::fs::write(&p, "1,2,0\n3,4\n").unwrap();
        let e = format!("{:#}", read_table(&p).unwrap_err());
        assert!(e.contains("t.csv:2") && e.contains("2 fields"), "{e}");
        std::fs::write(&p, "1,2,0\n3,x,1\n").unwrap();
        assert!(format!("{:#}", read_table(&p).unwrap_err()).contains("t.csv:2"));
        std::fs::write(&p, "1,2,0.5\n").unwrap();
        assert!(format!("{:#}", read_table(&p).unwrap_err()).contains("not an integer"));
    }

    #[test]
    fn the_shared_iris_and_digits_read_as_published() {
        let Some(dir) = crate::data::shared_data("sklearn_small") else {
            return;
        };
        let (x, y) = read_table(&dir.join("iris.csv.gz")).unwrap();
        assert_eq!(x.size(), [150, 4]);
        assert_eq!(
            Vec::<i64>::try_from(y.bincount::<Tensor>(None, 3)).unwrap(),
            [50, 50, 50]
        );
        let (x, y) = read_table(&dir.join("digits.csv.gz")).unwrap();
        assert_eq!(x.size(), [1797, 64]);
        assert_eq!(y.bincount::<Tensor>(None, 10).int64_value(&[0]), 178);
    }
}
