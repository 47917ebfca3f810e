//! What a graph method sees in one step: node features, the edge index (with self-loops), and for
//! graph-level data which graph each node belongs to.
use crate::data::graph::{CsrMatrix, Graph};
use crate::views::graph::message::EdgeIndex;
use crate::views::graph::sparse::{NodeInput, SparseRows};
use tch::{Device, Kind, Tensor};

/// Below this fraction of non-zeros, features stay sparse on the device (citation graphs, ~1 %);
/// above it (one-hot node labels of TU molecules, ~15 %) dense products are cheaper.
const SPARSE_DENSITY: f64 = 0.05;

#[derive(Debug)]
pub struct GraphBatch {
    /// Host copy of the features (masking views re-map its rows).
    pub features: CsrMatrix,
    /// The same features on the device, as the first layer takes them.
    pub input: NodeInput,
    /// Directed edges without self-loops (views drop from these).
    pub edges: Vec<[u32; 2]>,
    /// The edge index with one self-loop per node.
    pub index: EdgeIndex,
    pub num_nodes: usize,
    /// `(graph id of each node [N], number of graphs)` for a batch of graphs.
    pub graphs: Option<(Tensor, i64)>,
    pub device: Device,
}

impl GraphBatch {
    /// One graph (node-level tasks).
    pub fn from_graph(g: &Graph, device: Device) -> Self {
        GraphBatch::from_parts(g.features.clone(), g.edges.clone(), None, device)
    }

    /// The disjoint union of `graphs` (graph-level tasks): node ids offset, features stacked.
    pub fn from_graphs(graphs: &[&Graph], device: Device) -> Self {
        let cols = graphs.first().map(|g| g.features.cols).unwrap_or(0);
        let mut feats = CsrMatrix::zeros(0, cols);
        feats.indptr = vec![0];
        let mut edges = Vec::new();
        let mut owner = Vec::new();
        let mut offset = 0u32;
        for (gi, g) in graphs.iter().enumerate() {
            for r in 0..g.num_nodes {
                for (c, v) in g.features.row(r) {
                    feats.indices.push(c as i64);
                    feats.values.push(v);
                }
                feats.indptr.push(feats.indices.len() as i64);
                owner.push(gi as i64);
            }
            feats.rows += g.num_nodes;
            edges.extend(g.edges.iter().map(|&[a, b]| [a + offset, b + offset]));
            offset += g.num_nodes as u32;
        }
        let graph_ids = Tensor::from_slice(&owner).to_device(device);
        GraphBatch::from_parts(feats, edges, Some((graph_ids, graphs.len() as i64)), device)
    }

    /// From host features, directed edges (no self-loops) and, for a batch of graphs, each
    /// node's graph id with the number of graphs.
    pub fn from_parts(
        features: CsrMatrix,
        edges: Vec<[u32; 2]>,
        graphs: Option<(Tensor, i64)>,
        device: Device,
    ) -> Self {
        let n = features.rows;
        let density = features.nnz() as f64 / ((n * features.cols).max(1)) as f64;
        let input = if density < SPARSE_DENSITY {
            NodeInput::Sparse(SparseRows::from_csr(&features, device))
        } else {
            NodeInput::Dense(dense_rows(&features, None, device))
        };
        GraphBatch {
            index: EdgeIndex::new(&edges, n, true, device),
            features,
            input,
            edges,
            num_nodes: n,
            graphs,
            device,
        }
    }

    /// The same nodes with other edges (a view that dropped some).
    pub fn with_edges(&self, edges: &[[u32; 2]]) -> EdgeIndex {
        EdgeIndex::new(edges, self.num_nodes, true, self.device)
    }

    /// GRACE/BGRL's augmented view: each directed edge dropped with probability `p_edge`, then
    /// each feature column zeroed with probability `p_feature` (draws in that order).
    pub fn dropped_view(
        &self,
        p_edge: f64,
        p_feature: f64,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> (NodeInput, EdgeIndex) {
        let edges = super::masking::drop_edges(&self.edges, p_edge, rng);
        let keep: Vec<f32> =
            super::masking::feature_column_mask(self.features.cols, p_feature, rng)
                .into_iter()
                .map(|k| k as i32 as f32)
                .collect();
        let keep = Tensor::from_slice(&keep).to_device(self.device);
        (self.input.mask_columns(&keep), self.with_edges(&edges))
    }
}

/// Rows `rows` (all when `None`) of a CSR matrix as a dense `[M, cols]` tensor.
pub fn dense_rows(m: &CsrMatrix, rows: Option<&[i64]>, device: Device) -> Tensor {
    let all: Vec<i64>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..m.rows as i64).collect();
            &all
        }
    };
    let mut out = vec![0f32; rows.len() * m.cols];
    for (i, &r) in rows.iter().enumerate() {
        for (c, v) in m.row(r as usize) {
            out[i * m.cols + c] += v;
        }
    }
    Tensor::from_slice(&out)
        .reshape([rows.len() as i64, m.cols as i64])
        .to_kind(Kind::Float)
        .to_device(device)
}
