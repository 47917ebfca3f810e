//! Graphs as the graph readers (`planetoid`, `tu`) produce them: one graph with node features,
//! edges, labels and a split (node-level tasks), or a set of small labelled graphs (graph-level).

/// A sparse matrix in compressed-sparse-row form (node features of citation graphs are ~1 % dense).
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    pub rows: usize,
    pub cols: usize,
    /// `rows + 1` offsets into `indices`/`values`; non-decreasing, first 0, last `nnz`.
    pub indptr: Vec<i64>,
    /// Column of each stored entry, `< cols`.
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
}

impl CsrMatrix {
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// An all-zero `rows × cols` matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        CsrMatrix {
            rows,
            cols,
            indptr: vec![0; rows + 1],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Builds from a dense row-major buffer, keeping the non-zero entries.
    pub fn from_dense(rows: usize, cols: usize, dense: &[f32]) -> Self {
        assert_eq!(
            dense.len(),
            rows * cols,
            "dense buffer has the wrong length"
        );
        let mut m = CsrMatrix::zeros(rows, cols);
        for r in 0..rows {
            for (c, &v) in dense[r * cols..(r + 1) * cols].iter().enumerate() {
                if v != 0.0 {
                    m.indices.push(c as i64);
                    m.values.push(v);
                }
            }
            m.indptr[r + 1] = m.indices.len() as i64;
        }
        m
    }

    /// The dense row-major `rows × cols` buffer.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for r in 0..self.rows {
            for k in self.indptr[r] as usize..self.indptr[r + 1] as usize {
                out[r * self.cols + self.indices[k] as usize] += self.values[k];
            }
        }
        out
    }

    /// `(column, value)` pairs of row `r`.
    pub fn row(&self, r: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (a, b) = (self.indptr[r] as usize, self.indptr[r + 1] as usize);
        self.indices[a..b]
            .iter()
            .zip(&self.values[a..b])
            .map(|(&c, &v)| (c as usize, v))
    }

    /// Scales every row to sum 1 (rows summing to 0 stay 0) — the feature preprocessing of the
    /// Planetoid benchmarks (Kipf & Welling 2017; DGL's and PyG's `NormalizeFeatures`).
    pub fn row_normalise(&mut self) {
        for r in 0..self.rows {
            let (a, b) = (self.indptr[r] as usize, self.indptr[r + 1] as usize);
            let s: f32 = self.values[a..b].iter().sum();
            if s != 0.0 {
                for v in &mut self.values[a..b] {
                    *v /= s;
                }
            }
        }
    }
}

/// Which nodes train, select (validation) and test a node-level probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSplit {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// One graph: node features, directed edge list, optional node labels and split.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub name: String,
    pub num_nodes: usize,
    /// `num_nodes × num_features`.
    pub features: CsrMatrix,
    /// Directed edges `(source, target)`; an undirected graph lists both directions. Unique, no
    /// self-loops (encoders that want them add them).
    pub edges: Vec<[u32; 2]>,
    /// Class per node, -1 where unknown (e.g. CiteSeer's isolated test-range nodes).
    pub node_labels: Vec<i64>,
    /// Number of node classes (0 when the graph has no node labels).
    pub num_classes: usize,
    /// The public split, where the source defines one.
    pub split: Option<NodeSplit>,
}

impl Graph {
    pub fn num_features(&self) -> usize {
        self.features.cols
    }

    /// Makes the edge list symmetric, unique and free of self-loops, sorted by (source, target).
    pub fn canonicalise_edges(&mut self) {
        let mut e: Vec<[u32; 2]> = self
            .edges
            .iter()
            .filter(|[a, b]| a != b)
            .flat_map(|&[a, b]| [[a, b], [b, a]])
            .collect();
        e.sort_unstable();
        e.dedup();
        self.edges = e;
    }
}

/// Many small graphs with one label each (graph classification, TU format).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSet {
    pub name: String,
    pub graphs: Vec<Graph>,
    /// Class per graph, mapped to 0..num_classes in order of the sorted original label values.
    pub labels: Vec<i64>,
    pub num_classes: usize,
    /// The original label value of each class index (e.g. MUTAG's -1 and 1).
    pub label_values: Vec<i64>,
    pub num_features: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_round_trips_dense_and_row_normalises() {
        let dense = [0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0];
        let mut m = CsrMatrix::from_dense(3, 3, &dense);
        assert_eq!(m.nnz(), 4);
        assert_eq!(m.to_dense(), dense);
        m.row_normalise();
        assert_eq!(
            m.to_dense(),
            [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.25, 0.0, 0.75]
        );
    }

    #[test]
    fn canonical_edges_are_symmetric_unique_and_loop_free() {
        let mut g = Graph {
            name: "t".into(),
            num_nodes: 3,
            features: CsrMatrix::zeros(3, 1),
            edges: vec![[0, 1], [1, 0], [2, 2], [1, 2], [1, 2]],
            node_labels: vec![-1; 3],
            num_classes: 0,
            split: None,
        };
        g.canonicalise_edges();
        assert_eq!(g.edges, vec![[0, 1], [1, 0], [1, 2], [2, 1]]);
    }
}
