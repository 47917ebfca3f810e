//! The numpy shapes a pickle holds: arrays (`_reconstruct` + `BUILD`) and their dtypes, decoded
//! into typed buffers; the element decoding is shared with the `.npy` reader.
use super::Value;
use crate::error::DataError;
use std::path::Path;

/// A numpy array decoded into a typed buffer, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

/// The element buffer of an [`NdArray`]; narrow integer types are widened (`i1`/`i2`/`u2` → i32,
/// `u4` → i64).
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl NdArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::Bool(v) => v.len(),
            ArrayData::U8(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as i64, for integer and boolean arrays (`None` for floating-point data, which
    /// is never a valid index).
    pub fn as_i64(&self) -> Option<Vec<i64>> {
        match &self.data {
            ArrayData::Bool(v) => Some(v.iter().map(|&b| i64::from(b)).collect()),
            ArrayData::U8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            ArrayData::I32(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            ArrayData::I64(v) => Some(v.clone()),
            ArrayData::F32(_) | ArrayData::F64(_) => None,
        }
    }

    /// The elements as f32 (wide integers and f64 are rounded to the nearest f32).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            ArrayData::Bool(v) => v.iter().map(|&b| f32::from(u8::from(b))).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::F32(v) => v.clone(),
            ArrayData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// A short dtype name, for error messages.
    pub fn dtype_name(&self) -> &'static str {
        match &self.data {
            ArrayData::Bool(_) => "bool",
            ArrayData::U8(_) => "uint8",
            ArrayData::I32(_) => "int32",
            ArrayData::I64(_) => "int64",
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
        }
    }
}

/// Decodes raw array bytes described by a numpy type string such as `<i4`, `|b1` or `>f8`.
///
/// Shared by the pickle reader and the `.npy` reader. `what` names the array in errors.
pub(crate) fn decode_array(
    raw: &[u8],
    descr: &str,
    shape: Vec<usize>,
    fortran_order: bool,
    path: &Path,
    what: &str,
) -> Result<NdArray, DataError> {
    let fail = |msg: String| DataError::format(path, format!("{what}: {msg}"));
    let (big_endian, code) = match descr.as_bytes().first() {
        Some(b'>') => (true, &descr[1..]),
        Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
        _ => (false, descr),
    };
    let itemsize = match code {
        "b1" | "u1" | "i1" => 1,
        "i2" | "u2" => 2,
        "i4" | "u4" | "f4" => 4,
        "i8" | "f8" => 8,
        _ => {
            return Err(fail(format!(
                "unsupported dtype {descr:?} (supported: bool, uint8, int8/16/32/64, uint16/32, float32/64)"
            )))
        }
    };
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail(format!("shape {shape:?} overflows")))?;
    let expected = count
        .checked_mul(itemsize)
        .ok_or_else(|| fail(format!("shape {shape:?} overflows")))?;
    if raw.len() != expected {
        return Err(fail(format!(
            "shape {shape:?} of {descr} needs {expected} bytes, the data has {}",
            raw.len()
        )));
    }
    macro_rules! words {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n).map(|c| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                if big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            })
        };
    }
    let data = match code {
        "b1" => ArrayData::Bool(raw.iter().map(|&b| b != 0).collect()),
        "u1" => ArrayData::U8(raw.to_vec()),
        "i1" => ArrayData::I32(raw.iter().map(|&b| i32::from(b as i8)).collect()),
        "i2" => ArrayData::I32(words!(i16, 2).map(i32::from).collect()),
        "u2" => ArrayData::I32(words!(u16, 2).map(i32::from).collect()),
        "i4" => ArrayData::I32(words!(i32, 4).collect()),
        "u4" => ArrayData::I64(words!(u32, 4).map(i64::from).collect()),
        "i8" => ArrayData::I64(words!(i64, 8).collect()),
        "f4" => ArrayData::F32(words!(f32, 4).collect()),
        _ => ArrayData::F64(words!(f64, 8).collect()),
    };
    let mut array = NdArray { shape, data };
    if fortran_order && array.shape.len() > 1 {
        let perm = fortran_to_c(&array.shape, count);
        array.data = match array.data {
            ArrayData::Bool(v) => ArrayData::Bool(permute(&v, &perm)),
            ArrayData::U8(v) => ArrayData::U8(permute(&v, &perm)),
            ArrayData::I32(v) => ArrayData::I32(permute(&v, &perm)),
            ArrayData::I64(v) => ArrayData::I64(permute(&v, &perm)),
            ArrayData::F32(v) => ArrayData::F32(permute(&v, &perm)),
            ArrayData::F64(v) => ArrayData::F64(permute(&v, &perm)),
        };
    }
    Ok(array)
}

/// For each position of the C-ordered result, its position in the Fortran-ordered buffer.
/// `count` is the (already overflow-checked) number of elements.
fn fortran_to_c(shape: &[usize], count: usize) -> Vec<usize> {
    let mut f_strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        // Saturating: with a zero-length axis the product can overflow, but then count is 0.
        f_strides[k] = f_strides[k - 1].saturating_mul(shape[k - 1]);
    }
    let mut index = vec![0usize; shape.len()];
    let mut perm = Vec::with_capacity(count);
    for _ in 0..count {
        perm.push(index.iter().zip(&f_strides).map(|(i, s)| i * s).sum());
        // Advance the C-order multi-index (last axis fastest).
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    perm
}

fn permute<T: Copy>(v: &[T], perm: &[usize]) -> Vec<T> {
    perm.iter().map(|&p| v[p]).collect()
}

/// Is `class` the numpy array reconstructor (numpy 1.x `numpy.core`, numpy 2.x `numpy._core`)?
fn is_ndarray_reconstruct(class: &str) -> bool {
    matches!(
        class,
        "numpy.core.multiarray._reconstruct" | "numpy._core.multiarray._reconstruct"
    )
}

/// Interprets `value` as a pickled numpy array: `_reconstruct(ndarray, (0,), b'b')` followed by
/// `BUILD` with `(version, shape, dtype, is_fortran, raw_bytes)`.
pub fn ndarray(value: &Value, path: &Path, what: &str) -> Result<NdArray, DataError> {
    let fail = |msg: String| DataError::format(path, format!("{what}: {msg}"));
    let (class, state) = match value {
        Value::Object { class, state, .. } => (class, state),
        other => {
            return Err(fail(format!(
                "expected a numpy array, found {}",
                other.kind()
            )))
        }
    };
    if !is_ndarray_reconstruct(class) {
        return Err(fail(format!(
            "expected a numpy array, found a {class} object"
        )));
    }
    let state = match state.as_deref() {
        Some(Value::Tuple(items)) => items.as_slice(),
        _ => return Err(fail("numpy array without a state tuple".into())),
    };
    // Version 1 states lead with the version number; version 0 ones do not.
    let fields = match state.len() {
        5 => &state[1..],
        4 => state,
        n => {
            return Err(fail(format!(
                "numpy array state has {n} fields, expected 4 or 5"
            )))
        }
    };
    let shape = match &fields[0] {
        Value::Tuple(dims) => dims
            .iter()
            .map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| fail("array shape is not a tuple of sizes".into()))?,
        other => {
            return Err(fail(format!(
                "array shape is a {}, not a tuple",
                other.kind()
            )))
        }
    };
    let descr = dtype_descr(&fields[1]).map_err(fail)?;
    let fortran = match &fields[2] {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        other => return Err(fail(format!("fortran flag is a {}", other.kind()))),
    };
    let raw = fields[3].as_bytes().ok_or_else(|| {
        fail(format!(
            "array data is a {}, not raw bytes (object arrays are not supported)",
            fields[3].kind()
        ))
    })?;
    decode_array(&raw, &descr, shape, fortran, path, what)
}

/// The `<i4`-style type string of a pickled `numpy.dtype('i4', 0, 1)` with its `BUILD` state
/// `(version, endianness, ...)`.
fn dtype_descr(value: &Value) -> Result<String, String> {
    let (class, args, state) = match value {
        Value::Object {
            class, args, state, ..
        } => (class, args, state),
        other => return Err(format!("dtype is a {}, not a numpy.dtype", other.kind())),
    };
    if class != "numpy.dtype" {
        return Err(format!("dtype is a {class} object, not a numpy.dtype"));
    }
    let code = args
        .first()
        .and_then(Value::as_text)
        .ok_or("numpy.dtype without a type code")?;
    let endian = match state.as_deref() {
        Some(Value::Tuple(items)) => items.get(1).and_then(Value::as_text),
        _ => None,
    }
    .unwrap_or_else(|| "<".into());
    if code.starts_with(['<', '>', '|', '=']) {
        Ok(code)
    } else {
        Ok(format!("{endian}{code}"))
    }
}
