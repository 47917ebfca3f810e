//! Small helpers shared by the objectives' tests.
use tch::{Kind, Tensor};

pub fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t).unwrap()
}

/// A `[rows, d]` tensor of `kind` from rows of f64 values.
pub fn tensor(rows: &[Vec<f64>], kind: Kind) -> Tensor {
    let d = rows[0].len() as i64;
    Tensor::from_slice(&rows.concat())
        .view([-1, d])
        .to_kind(kind)
}
