//! Graph attention (GAT, Veličković et al. 2018) as GraphMAE uses it (Hou et al. 2022, its
//! `gat.py`): per-head linear map, additive attention `LeakyReLU(a_lᵀ z_j + a_rᵀ z_i)` softmaxed
//! over each node's in-neighbours (self-loop included), feature dropout on the layer input,
//! attention dropout, optional residual, bias, then the activation; heads concatenated.
//!
//! When a layer widens (input narrower than heads × output, e.g. GraphMAE's decoder 512 → 1433)
//! neighbours are aggregated *before* the linear map: `Σ_j α_ij W h_j = W Σ_j α_ij h_j`, and the
//! attention logits only need `h_j · (W a)`; the result is the same but the wide product runs on
//! the rows asked for ([`GatConv::forward_rows`]) instead of every node.
use super::Activation;
use crate::views::graph::fused_attention::attend;
use crate::views::graph::message::EdgeIndex;
use crate::views::graph::sparse::NodeInput;
use tch::{nn, nn::Init, Kind, Tensor};

/// One GAT layer.
#[derive(Debug)]
pub struct GatConv {
    /// `[in, heads·out]`, no bias.
    fc: Tensor,
    /// `[heads, out]` each.
    attn_l: Tensor,
    attn_r: Tensor,
    bias: Tensor,
    /// Residual projection when input and output widths differ (identity otherwise).
    res_fc: Option<Tensor>,
    residual: bool,
    pub heads: i64,
    pub out: i64,
    in_dim: i64,
    feat_drop: f64,
    attn_drop: f64,
    negative_slope: f64,
    activation: Option<Activation>,
}

#[derive(Debug, Clone, Copy)]
pub struct GatConvConfig {
    pub in_dim: i64,
    pub out: i64,
    pub heads: i64,
    pub feat_drop: f64,
    pub attn_drop: f64,
    /// LeakyReLU slope of the attention logits (0.2 in GAT and GraphMAE).
    pub negative_slope: f64,
    pub residual: bool,
}

/// Xavier-normal with the ReLU gain √2, GraphMAE's (and DGL's) GAT initialisation.
fn xavier(p: &nn::Path, name: &str, dims: &[i64], fan_in: i64, fan_out: i64) -> Tensor {
    let std = 2f64.sqrt() * (2.0 / (fan_in + fan_out) as f64).sqrt();
    p.var(
        name,
        dims,
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )
}

impl GatConv {
    pub fn new(p: &nn::Path, cfg: GatConvConfig, activation: Option<Activation>) -> Self {
        let width = cfg.heads * cfg.out;
        // PyTorch computes fans of a [heads·out, in] weight and of [1, heads, out] attention vectors.
        let fc = xavier(p, "fc", &[cfg.in_dim, width], cfg.in_dim, width);
        let attn_l = xavier(p, "attn_l", &[cfg.heads, cfg.out], width, cfg.out);
        let attn_r = xavier(p, "attn_r", &[cfg.heads, cfg.out], width, cfg.out);
        let bias = p.var("bias", &[width], Init::Const(0.0));
        let res_fc = (cfg.residual && cfg.in_dim != width)
            .then(|| xavier(p, "res_fc", &[cfg.in_dim, width], cfg.in_dim, width));
        GatConv {
            fc,
            attn_l,
            attn_r,
            bias,
            res_fc,
            residual: cfg.residual,
            heads: cfg.heads,
            out: cfg.out,
            in_dim: cfg.in_dim,
            feat_drop: cfg.feat_drop,
            attn_drop: cfg.attn_drop,
            negative_slope: cfg.negative_slope,
            activation,
        }
    }

    /// Output of every node, `[N, heads, out]`.
    pub fn forward(&self, x: &NodeInput, edges: &EdgeIndex, train: bool) -> Tensor {
        self.forward_rows(x, edges, None, train)
    }

    /// Output of the nodes in `rows` (`[M]` int64; all nodes when `None`), `[M, heads, out]`.
    pub fn forward_rows(
        &self,
        x: &NodeInput,
        edges: &EdgeIndex,
        rows: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let h = x.dropout(self.feat_drop, train);
        let width = self.heads * self.out;
        let n = h.num_nodes();
        let fc3 = self.fc.view([self.in_dim, self.heads, self.out]);
        let aggregate_first = matches!(h, NodeInput::Dense(_)) && self.in_dim < width;
        let mut rst = if aggregate_first {
            let NodeInput::Dense(hd) = &h else {
                unreachable!("checked above")
            };
            // Attention logits without forming W h: a·(W h_j) = h_j·(W a).
            let wl = (&fc3 * self.attn_l.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
            let wr = (&fc3 * self.attn_r.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
            // z_i^h = Σ_j α_ij^h h_j.
            let mut z = self.attend(edges, hd, &hd.matmul(&wl), &hd.matmul(&wr), train); // [N, heads, in]
            if let Some(r) = rows {
                z = z.index_select(0, r);
            }
            // [heads, M, in] × [heads, in, out] → [M, heads, out]
            z.transpose(0, 1)
                .bmm(&fc3.permute([1, 0, 2]))
                .transpose(0, 1)
        } else {
            let feat = h.linear(&self.fc).view([n, self.heads, self.out]);
            let el = (&feat * self.attn_l.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
            let er = (&feat * self.attn_r.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
            let out = self.attend(edges, &feat, &el, &er, train);
            match rows {
                Some(r) => out.index_select(0, r),
                None => out,
            }
        };
        if self.residual {
            let res = match &self.res_fc {
                Some(w) => h.linear(w),
                None => h.to_dense(),
            };
            let res = match rows {
                Some(r) => res.index_select(0, r),
                None => res,
            };
            rst = rst + res.view([-1, self.heads, self.out]);
        }
        rst = rst + self.bias.view([1, self.heads, self.out]);
        match &self.activation {
            Some(a) => a.apply(&rst),
            None => rst,
        }
    }

    /// `Σ_j α_ij^h feat_j^h` with the normalised, dropped-out attention coefficients of the
    /// per-node logits `el` (sources) and `er` (targets).
    fn attend(
        &self,
        edges: &EdgeIndex,
        feat: &Tensor,
        el: &Tensor,
        er: &Tensor,
        train: bool,
    ) -> Tensor {
        attend(
            edges,
            feat,
            el,
            er,
            self.negative_slope,
            self.attn_drop,
            train,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn aggregate_first_equals_project_first_on_the_requested_rows() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = GatConvConfig {
            in_dim: 4,
            out: 9,
            heads: 2,
            feat_drop: 0.0,
            attn_drop: 0.0,
            negative_slope: 0.2,
            residual: true,
        };
        let conv = GatConv::new(&vs.root(), cfg, None);
        let edges = EdgeIndex::new(
            &[[0, 1], [1, 0], [1, 2], [2, 3], [3, 1], [4, 2]],
            5,
            true,
            Device::Cpu,
        );
        let x = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let rows = Tensor::from_slice(&[1i64, 3, 4]);
        let fast = conv.forward_rows(
            &NodeInput::Dense(x.shallow_clone()),
            &edges,
            Some(&rows),
            false,
        );
        // The same layer computed the plain way, on a dense 0/1 attention matrix.
        let n = 5;
        let feat = x.matmul(&conv.fc).view([n, 2, 9]);
        let el = (&feat * conv.attn_l.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
        let er = (&feat * conv.attn_r.unsqueeze(0)).sum_dim_intlist(-1, false, Kind::Float);
        let mut adj = vec![0f32; 25];
        for [s, t] in [[0, 1], [1, 0], [1, 2], [2, 3], [3, 1], [4, 2]] {
            adj[t * 5 + s] = 1.0;
        }
        for i in 0..5 {
            adj[i * 5 + i] = 1.0;
        }
        let adj = Tensor::from_slice(&adj).reshape([5, 5]);
        let mut outs = Vec::new();
        for k in 0..2 {
            // logits[i][j] = er_i + el_j
            let logits = er.select(1, k).unsqueeze(1) + el.select(1, k).unsqueeze(0);
            let logits = logits.maximum(&(&logits * 0.2));
            let masked = logits.masked_fill(&adj.eq(0.0), f64::NEG_INFINITY);
            let alpha = masked.softmax(1, Kind::Float);
            outs.push(alpha.matmul(&feat.select(1, k)));
        }
        let dense = Tensor::stack(&outs, 1)
            + x.matmul(conv.res_fc.as_ref().unwrap()).view([5, 2, 9])
            + conv.bias.view([1, 2, 9]);
        let expect = dense.index_select(0, &rows);
        assert!((&fast - &expect).abs().max().double_value(&[]) < 1e-5);
        // And the project-first path (sparse-capable) gives the same on all rows.
        let all = conv.forward(&NodeInput::Dense(x.shallow_clone()), &edges, false);
        let wide_first = {
            let sparse = crate::data::graph::CsrMatrix::from_dense(
                5,
                4,
                &Vec::<f32>::try_from(&x.flatten(0, 1)).unwrap(),
            );
            conv.forward(
                &NodeInput::Sparse(crate::views::graph::sparse::SparseRows::from_csr(
                    &sparse,
                    Device::Cpu,
                )),
                &edges,
                false,
            )
        };
        assert!((&all - &dense).abs().max().double_value(&[]) < 1e-5);
        assert!((&wide_first - &dense).abs().max().double_value(&[]) < 1e-5);
    }
}
