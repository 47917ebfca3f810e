//! The scipy and Python shapes the Planetoid pickles hold: a CSR matrix (checked against every
//! invariant [`CsrMatrix`] promises) and a dict of int → list of int (adjacency lists).
use super::numpy::{ndarray, NdArray};
use super::Value;
use crate::data::graph::CsrMatrix;
use crate::error::DataError;
use std::collections::HashMap;
use std::path::Path;

/// Interprets `value` as a pickled `scipy.sparse` CSR matrix (its state dict holds `_shape`,
/// `indptr`, `indices`, `data`), checking every invariant [`CsrMatrix`] promises.
pub fn csr_matrix(value: &Value, path: &Path, what: &str) -> Result<CsrMatrix, DataError> {
    let fail = |msg: String| DataError::format(path, format!("{what}: {msg}"));
    let (class, state) = match value {
        Value::Object { class, state, .. } => (class, state),
        other => {
            return Err(fail(format!(
                "expected a scipy CSR matrix, found {}",
                other.kind()
            )))
        }
    };
    if !(class.ends_with(".csr_matrix") || class.ends_with(".csr_array")) {
        return Err(fail(format!(
            "expected a scipy CSR matrix, found a {class} object"
        )));
    }
    let state = state
        .as_deref()
        .ok_or_else(|| fail("CSR matrix without state".into()))?;
    if let Some(fmt) = state.get("format").and_then(Value::as_text) {
        if fmt != "csr" {
            return Err(fail(format!("sparse format is {fmt:?}, expected \"csr\"")));
        }
    }
    let shape = match state.get("_shape") {
        Some(Value::Tuple(d)) if d.len() == 2 => d
            .iter()
            .map(|x| x.as_int().and_then(|x| usize::try_from(x).ok()))
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or_else(|| fail("CSR state has no valid `_shape` (rows, cols)".into()))?;
    let member = |key: &str| -> Result<NdArray, DataError> {
        let v = state
            .get(key)
            .ok_or_else(|| fail(format!("CSR state has no `{key}`")))?;
        ndarray(v, path, &format!("{what}.{key}"))
    };
    let indptr = member("indptr")?;
    let indices = member("indices")?;
    let data = member("data")?;
    let ints = |a: &NdArray, key: &str| {
        a.as_i64().ok_or_else(|| {
            fail(format!(
                "`{key}` has dtype {}, expected integers",
                a.dtype_name()
            ))
        })
    };
    checked_csr(
        shape[0],
        shape[1],
        ints(&indptr, "indptr")?,
        ints(&indices, "indices")?,
        data.to_f32(),
        path,
        what,
    )
}

/// Builds a [`CsrMatrix`] after checking its invariants; errors name the offending entry.
pub(crate) fn checked_csr(
    rows: usize,
    cols: usize,
    indptr: Vec<i64>,
    indices: Vec<i64>,
    values: Vec<f32>,
    path: &Path,
    what: &str,
) -> Result<CsrMatrix, DataError> {
    let fail = |msg: String| DataError::format(path, format!("{what}: {msg}"));
    if indptr.len() != rows.saturating_add(1) {
        return Err(fail(format!(
            "indptr has {} entries, expected rows + 1 = {}",
            indptr.len(),
            rows.saturating_add(1)
        )));
    }
    if indices.len() != values.len() {
        return Err(fail(format!(
            "{} column indices but {} values",
            indices.len(),
            values.len()
        )));
    }
    if indptr.first() != Some(&0) {
        return Err(fail("indptr[0] is not 0".into()));
    }
    for (r, w) in indptr.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(fail(format!(
                "indptr decreases at row {r}: {} then {}",
                w[0], w[1]
            )));
        }
    }
    let last = indptr.last().copied().unwrap_or(0);
    if usize::try_from(last).ok() != Some(values.len()) {
        return Err(fail(format!(
            "indptr ends at {last}, but there are {} stored entries",
            values.len()
        )));
    }
    if let Some((k, &c)) = indices
        .iter()
        .enumerate()
        .find(|(_, &c)| c < 0 || usize::try_from(c).map_or(true, |c| c >= cols))
    {
        return Err(fail(format!(
            "stored entry {k} has column {c}, outside 0..{cols}"
        )));
    }
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(fail(format!(
            "stored entry {k} is not finite ({})",
            values[k]
        )));
    }
    Ok(CsrMatrix {
        rows,
        cols,
        indptr,
        indices,
        values,
    })
}

/// Interprets `value` as a dict (or `collections.defaultdict`/`OrderedDict`) of int → list of int,
/// the adjacency lists of a Planetoid `.graph` file. Keys are returned in stream order; a repeated
/// key keeps its last list, as in Python.
pub fn int_list_dict(
    value: &Value,
    path: &Path,
    what: &str,
) -> Result<Vec<(i64, Vec<i64>)>, DataError> {
    let fail = |msg: String| DataError::format(path, format!("{what}: {msg}"));
    let items = match value {
        Value::Dict(items) => items,
        Value::Object {
            class, dict_items, ..
        } if class == "collections.defaultdict" || class == "collections.OrderedDict" => dict_items,
        other => return Err(fail(format!("expected a dict, found {}", other.kind()))),
    };
    let mut out: Vec<(i64, Vec<i64>)> = Vec::with_capacity(items.len());
    let mut position: HashMap<i64, usize> = HashMap::with_capacity(items.len());
    for (n, (k, v)) in items.iter().enumerate() {
        let key = k
            .as_int()
            .ok_or_else(|| fail(format!("entry {n}: key is a {}, not an int", k.kind())))?;
        let list = match v {
            Value::List(xs) | Value::Tuple(xs) => xs,
            other => {
                return Err(fail(format!(
                    "entry {n} (key {key}): value is a {}, not a list",
                    other.kind()
                )))
            }
        };
        let ints = list
            .iter()
            .enumerate()
            .map(|(j, x)| {
                x.as_int().ok_or_else(|| {
                    fail(format!(
                        "entry {n} (key {key}): item {j} is a {}, not an int",
                        x.kind()
                    ))
                })
            })
            .collect::<Result<Vec<i64>, DataError>>()?;
        match position.get(&key) {
            Some(&p) => out[p].1 = ints,
            None => {
                position.insert(key, out.len());
                out.push((key, ints));
            }
        }
    }
    Ok(out)
}
