//! Node features as a first layer sees them: dense, or sparse rows (bag-of-words features of
//! citation graphs are ~1 % non-zero) with optional dense rows put in their place (GraphMAE's
//! mask token).
//!
//! The only thing a first layer does with its input is multiply it by a weight matrix, so the
//! sparse form offers exactly that: [`NodeInput::linear`], a CSR × dense product done by
//! `embedding_bag` in sum mode (differentiable in the weight and in the stored values). On Cora this
//! replaces a 2708 × 1433 × 512 dense product (4 GFLOP forward) by 49k gathered rows.
use crate::data::graph::CsrMatrix;
use tch::{Device, Kind, Tensor};

/// Sparse rows on tensors (CSR), plus rows that are dense instead.
#[derive(Debug)]
pub struct SparseRows {
    pub rows: i64,
    pub cols: i64,
    indices: Tensor,
    offsets: Tensor,
    values: Tensor,
    /// Rows that hold one repeated dense vector instead (they have no sparse entries).
    token: Option<TokenRows>,
}

/// One dense vector (GraphMAE's learnable mask token, `[1, cols]`) repeated at `rows` (`[T]`).
///
/// Without dropout the rows' product is one `[1, cols] × [cols, D]` product repeated. With
/// dropout the rows differ and are multiplied as the dense `[T, cols]` block they are. (A sparse
/// product over the dropped entries, `(t W − (D ⊙ t) W) / (1 − p)`, does a fifth of the
/// multiplications, but as `embedding_bag` forward and backward it measured 67 ms against 23 ms
/// for the dense block in fp32 and 78 against 13 in bf16 on Cora's 1,286 × 1,433 token rows,
/// 2 threads of a Xeon with AMX: `examples/graph_step_profile.rs`.)
#[derive(Debug)]
struct TokenRows {
    rows: Tensor,
    vector: Tensor,
    /// Dropout's scaled mask over the `[T, cols]` block (0 or 1 / (1 − p)).
    dropped: Option<Tensor>,
}

impl TokenRows {
    fn count(&self) -> i64 {
        self.rows.size()[0]
    }

    /// `[T, D]` rows of `dropout(token rows) @ w`.
    fn matmul(&self, w: &Tensor) -> Tensor {
        match &self.dropped {
            None => self
                .vector
                .matmul(w)
                .expand([self.count(), w.size()[1]], false),
            Some(mask) => (mask * &self.vector).matmul(w),
        }
    }

    fn with_dropout(&self, p: f64, train: bool) -> TokenRows {
        let dropped = (train && p > 0.0).then(|| {
            let shape = [self.count(), self.vector.size()[1]];
            let kind = match self.vector.kind() {
                Kind::Double => Kind::Double,
                _ => Kind::Float,
            };
            let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
            crate::torch_dropout::bernoulli_mask(&shape, 1.0 - p, scale, kind, self.vector.device())
        });
        TokenRows {
            rows: self.rows.shallow_clone(),
            vector: self.vector.shallow_clone(),
            dropped,
        }
    }
}

/// What a layer's input is.
#[derive(Debug)]
pub enum NodeInput {
    Dense(Tensor),
    Sparse(SparseRows),
}

impl SparseRows {
    /// The whole matrix on `device`.
    pub fn from_csr(m: &CsrMatrix, device: Device) -> Self {
        SparseRows::with_row_sources(m, &(0..m.rows as i64).collect::<Vec<_>>(), device)
    }

    /// A matrix whose row `i` is row `sources[i]` of `m`, or empty when `sources[i] < 0` —
    /// how a masking view re-uses or blanks rows without densifying them.
    pub fn with_row_sources(m: &CsrMatrix, sources: &[i64], device: Device) -> Self {
        let mut indices = Vec::new();
        let mut values = Vec::new();
        let mut offsets = Vec::with_capacity(sources.len());
        for &s in sources {
            offsets.push(indices.len() as i64);
            if s >= 0 {
                let (a, b) = (
                    m.indptr[s as usize] as usize,
                    m.indptr[s as usize + 1] as usize,
                );
                indices.extend_from_slice(&m.indices[a..b]);
                values.extend_from_slice(&m.values[a..b]);
            }
        }
        SparseRows {
            rows: sources.len() as i64,
            cols: m.cols as i64,
            indices: Tensor::from_slice(&indices).to_device(device),
            offsets: Tensor::from_slice(&offsets).to_device(device),
            values: Tensor::from_slice(&values).to_device(device),
            token: None,
        }
    }

    /// Puts the dense `vector` (`[1, cols]`) at each of `rows` (`[T]`, rows that must be empty).
    pub fn with_repeated_row(mut self, rows: Tensor, vector: Tensor) -> Self {
        self.token = Some(TokenRows {
            rows,
            vector,
            dropped: None,
        });
        self
    }

    /// `self @ w` for `w: [cols, D]` → `[rows, D]`.
    pub fn matmul(&self, w: &Tensor) -> Tensor {
        let (out, _, _, _) = Tensor::embedding_bag(
            w,
            &self.indices,
            &self.offsets,
            false,
            0, // sum
            false,
            Some(&self.values),
            false,
        );
        match &self.token {
            None => out,
            // Under bf16 autocast the token rows' product is bf16; the bag sums stay fp32.
            Some(t) => out.index_add(0, &t.rows, &t.matmul(w).to_kind(out.kind())),
        }
    }

    /// Elementwise dropout: stored entries and dense rows are dropped, zeros stay zero — exactly
    /// dropout applied to the dense matrix.
    pub fn dropout(&self, p: f64, train: bool) -> SparseRows {
        SparseRows {
            rows: self.rows,
            cols: self.cols,
            indices: self.indices.shallow_clone(),
            offsets: self.offsets.shallow_clone(),
            values: crate::torch_dropout::dropout(&self.values, p, train),
            token: self.token.as_ref().map(|t| {
                assert!(
                    t.dropped.is_none(),
                    "dropout applied twice to the same token rows"
                );
                t.with_dropout(p, train)
            }),
        }
    }

    /// Zeroes the columns where `keep` (`[cols]` float 0/1) is 0 (feature masking by column).
    pub fn mask_columns(&self, keep: &Tensor) -> SparseRows {
        SparseRows {
            rows: self.rows,
            cols: self.cols,
            indices: self.indices.shallow_clone(),
            offsets: self.offsets.shallow_clone(),
            values: &self.values * keep.index_select(0, &self.indices),
            token: self.token.as_ref().map(|t| TokenRows {
                rows: t.rows.shallow_clone(),
                vector: &t.vector * keep.unsqueeze(0),
                dropped: t.dropped.as_ref().map(|d| d.shallow_clone()),
            }),
        }
    }

    pub fn to_dense(&self) -> Tensor {
        let eye = Tensor::eye(self.cols, (Kind::Float, self.values.device()));
        self.matmul(&eye)
    }
}

impl NodeInput {
    pub fn num_nodes(&self) -> i64 {
        match self {
            NodeInput::Dense(x) => x.size()[0],
            NodeInput::Sparse(s) => s.rows,
        }
    }

    pub fn num_features(&self) -> i64 {
        match self {
            NodeInput::Dense(x) => x.size()[1],
            NodeInput::Sparse(s) => s.cols,
        }
    }

    /// `x @ w`, `w: [F, D]`.
    pub fn linear(&self, w: &Tensor) -> Tensor {
        match self {
            NodeInput::Dense(x) => x.matmul(w),
            NodeInput::Sparse(s) => s.matmul(w),
        }
    }

    pub fn dropout(&self, p: f64, train: bool) -> NodeInput {
        if p == 0.0 || !train {
            return self.shallow_clone();
        }
        match self {
            NodeInput::Dense(x) => NodeInput::Dense(crate::torch_dropout::dropout(x, p, train)),
            NodeInput::Sparse(s) => NodeInput::Sparse(s.dropout(p, train)),
        }
    }

    /// Zeroes the columns where `keep` (`[F]` float 0/1) is 0.
    pub fn mask_columns(&self, keep: &Tensor) -> NodeInput {
        match self {
            NodeInput::Dense(x) => NodeInput::Dense(x * keep.unsqueeze(0)),
            NodeInput::Sparse(s) => NodeInput::Sparse(s.mask_columns(keep)),
        }
    }

    /// Rows re-ordered: row `i` of the result is row `order[i]` (`[N]` int64).
    pub fn permute_rows(&self, order: &Tensor, host: &CsrMatrix) -> NodeInput {
        match self {
            NodeInput::Dense(x) => NodeInput::Dense(x.index_select(0, order)),
            NodeInput::Sparse(_) => {
                let o: Vec<i64> = Vec::try_from(&order.to_device(tch::Device::Cpu))
                    .expect("row order is an int64 vector");
                NodeInput::Sparse(SparseRows::with_row_sources(host, &o, order.device()))
            }
        }
    }

    pub fn shallow_clone(&self) -> NodeInput {
        match self {
            NodeInput::Dense(x) => NodeInput::Dense(x.shallow_clone()),
            NodeInput::Sparse(s) => NodeInput::Sparse(s.dropout(0.0, false)),
        }
    }

    pub fn to_dense(&self) -> Tensor {
        match self {
            NodeInput::Dense(x) => x.shallow_clone(),
            NodeInput::Sparse(s) => s.to_dense(),
        }
    }
}

/// Row-major dense `[rows, cols]` tensor of a CSR matrix.
pub fn csr_to_tensor(m: &CsrMatrix, device: Device) -> Tensor {
    Tensor::from_slice(&m.to_dense())
        .reshape([m.rows as i64, m.cols as i64])
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> CsrMatrix {
        CsrMatrix::from_dense(
            4,
            5,
            &[
                0., 1., 0., 0., 2., //
                0., 0., 0., 0., 0., //
                3., 0., 0., 4., 0., //
                0., 0., 5., 0., 0.,
            ],
        )
    }

    #[test]
    fn sparse_product_and_its_gradient_equal_the_dense_ones() {
        let m = fixture();
        let dense = csr_to_tensor(&m, Device::Cpu);
        let w = Tensor::randn([5, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let s = SparseRows::from_csr(&m, Device::Cpu);
        let out = s.matmul(&w);
        assert!((&out - dense.matmul(&w)).abs().max().double_value(&[]) < 1e-6);
        let probe = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        (&out * &probe).sum(Kind::Float).backward();
        let expect = dense.transpose(0, 1).matmul(&probe);
        assert!((w.grad() - expect).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn remapped_rows_and_dense_rows_replace_the_right_rows() {
        let m = fixture();
        // Row 0 ← row 2, row 1 ← empty then a dense row, row 2 ← row 2, row 3 ← row 0.
        let token = Tensor::from_slice(&[1f32, 1., 1., 1., 1.]).reshape([1, 5]);
        let s = SparseRows::with_row_sources(&m, &[2, -1, 2, 0], Device::Cpu)
            .with_repeated_row(Tensor::from_slice(&[1i64]), token);
        let got: Vec<f32> = Vec::try_from(&s.to_dense().flatten(0, 1)).unwrap();
        let d = m.to_dense();
        let mut expect = Vec::new();
        expect.extend_from_slice(&d[10..15]);
        expect.extend_from_slice(&[1., 1., 1., 1., 1.]);
        expect.extend_from_slice(&d[10..15]);
        expect.extend_from_slice(&d[0..5]);
        assert_eq!(got, expect);
    }

    #[test]
    fn token_dropout_drops_entries_of_the_repeated_rows() {
        let _g = crate::torch_rng::lock();
        tch::manual_seed(5);
        let (t, f, d) = (60i64, 40i64, 7i64);
        let m = CsrMatrix::zeros(t as usize, f as usize);
        let vector = Tensor::randn([1, f], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let w = Tensor::randn([f, d], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let rows = Tensor::arange(t, (Kind::Int64, Device::Cpu));
        let s = SparseRows::with_row_sources(&m, &[-1; 60], Device::Cpu)
            .with_repeated_row(rows, vector.shallow_clone())
            .dropout(0.3, true);
        let mask = s.token.as_ref().unwrap().dropped.as_ref().unwrap();
        // Every entry is dropped or kept and scaled, about 30 % dropped.
        let v: Vec<f32> = Vec::try_from(mask.flatten(0, -1)).unwrap();
        assert!(v.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.7).abs() < 1e-6));
        let frac = v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
        assert!((frac - 0.3).abs() < 0.05, "{frac}");
        // The product is that of the dropped-out dense rows, and so are the gradients.
        let dense = vector.expand([t, f], false) * mask;
        let probe = Tensor::randn([t, d], (Kind::Float, Device::Cpu));
        let out = s.matmul(&w);
        let expect = dense.matmul(&w);
        assert!((&out - &expect).abs().max().double_value(&[]) < 1e-4);
        let grads = |y: &Tensor| {
            let g = Tensor::run_backward(
                &[(y * &probe).sum(Kind::Float)],
                &[&vector, &w],
                false,
                false,
            );
            (g[0].copy(), g[1].copy())
        };
        let (gv1, gw1) = grads(&out);
        let (gv2, gw2) = grads(&expect);
        assert!((gv1 - gv2).abs().max().double_value(&[]) < 1e-3);
        assert!((gw1 - gw2).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn dropout_keeps_zeros_and_scales_survivors() {
        let m = fixture();
        let s = SparseRows::from_csr(&m, Device::Cpu);
        let d: Vec<f32> = Vec::try_from(&s.dropout(0.5, true).to_dense().flatten(0, 1)).unwrap();
        let orig = m.to_dense();
        for (a, b) in d.iter().zip(&orig) {
            assert!(*a == 0.0 || (*a - 2.0 * b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
