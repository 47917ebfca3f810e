//! Times the pieces of one GraphMAE step on Cora (forward + backward of each piece).
//! `cargo run --release --example graph_step_profile -- ../shared/data/planetoid [bf16]`
//! (`bf16`: each forward under bf16 autocast, as `train.precision = "bf16"` runs it).
use selfsup::encoders::graph::gat::{GatConv, GatConvConfig};
use selfsup::train::precision::{with_precision, Precision};
use selfsup::views::graph::batch::GraphBatch;
use selfsup::views::graph::sparse::NodeInput;
use std::time::Instant;

fn precision() -> Precision {
    match std::env::args().nth(2).as_deref() {
        Some("bf16") => Precision::Bf16,
        _ => Precision::Fp32,
    }
}
use tch::{nn, Device, Kind, Tensor};

fn time(label: &str, reps: usize, mut f: impl FnMut()) {
    let p = precision();
    let mut f = move || with_precision(p, Device::Cpu, &mut f).unwrap();
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{label:<40} {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1000.0 / reps as f64
    );
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or("../shared/data/planetoid".into());
    let mut g = selfsup::data::planetoid::load_planetoid(dir.as_ref(), "cora").unwrap();
    g.features.row_normalise();
    let b = GraphBatch::from_graph(&g, Device::Cpu);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = |i, o, h| GatConvConfig {
        in_dim: i,
        out: o,
        heads: h,
        feat_drop: 0.2,
        attn_drop: 0.1,
        negative_slope: 0.2,
        residual: false,
    };
    let l1 = GatConv::new(&(vs.root() / "l1"), cfg(1433, 128, 4), None);
    let l2 = GatConv::new(&(vs.root() / "l2"), cfg(512, 128, 4), None);
    let dec = GatConv::new(&(vs.root() / "dec"), cfg(512, 1433, 1), None);
    let h = Tensor::randn([2708, 512], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let w = Tensor::randn([512, 512], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let rows = Tensor::arange_start(0, 1354, (Kind::Int64, Device::Cpu));
    for fused in [true, false] {
        selfsup::views::graph::fused_attention::set_fused(fused);
        let tag = if fused { "fused" } else { "ops" };
        time_layers(tag, &l1, &l2, &dec, &b, &h, &rows);
    }
    selfsup::views::graph::fused_attention::set_fused(true);
    let el = Tensor::randn([2708, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let er = Tensor::randn([2708, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let f4 = Tensor::randn([2708, 4, 128], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let el1 = Tensor::randn([2708, 1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let er1 = Tensor::randn([2708, 1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    use selfsup::views::graph::fused_attention::{attend, attend_ops};
    time("attend 4 x 128 fused fwd+bwd", 10, || {
        attend(&b.index, &f4, &el, &er, 0.2, 0.1, true)
            .sum(Kind::Float)
            .backward();
    });
    time("attend 4 x 128 ops fwd+bwd", 10, || {
        attend_ops(&b.index, &f4, &el, &er, 0.2, 0.1, true)
            .sum(Kind::Float)
            .backward();
    });
    time("attend shared 1 x 512 fused fwd+bwd", 10, || {
        attend(&b.index, &h, &el1, &er1, 0.2, 0.1, true)
            .sum(Kind::Float)
            .backward();
    });
    time("attend shared 1 x 512 ops fwd+bwd", 10, || {
        attend_ops(&b.index, &h, &el1, &er1, 0.2, 0.1, true)
            .sum(Kind::Float)
            .backward();
    });
    time("attend 4 x 128 fused fwd", 10, || {
        let _ = attend(&b.index, &f4, &el, &er, 0.2, 0.1, true);
    });
    time("dropout 2708 x 512 (keyed)", 10, || {
        let _ = selfsup::torch_dropout::dropout(&h, 0.2, true);
    });
    time("mask 2708 x 512 (keyed)", 10, || {
        let _ = selfsup::torch_dropout::bernoulli_mask(
            &[2708, 512],
            0.8,
            1.25,
            Kind::Float,
            Device::Cpu,
        );
    });
    time("h * h 2708 x 512", 10, || {
        let _ = &h * &h;
    });
    println!("threads: {}", tch::get_num_threads());
    time("dropout 2708 x 512 (libtorch)", 10, || {
        let _ = h.dropout(0.2, true);
    });
    time("e2d matmul fwd+bwd", 10, || {
        h.matmul(&w).sum(Kind::Float).backward();
    });
    let feat = Tensor::randn([2708, 4, 128], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let alpha =
        Tensor::rand([b.index.num_edges, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    time("gather*alpha+scatter fwd+bwd", 10, || {
        b.index
            .scatter_sum(&(b.index.gather_src(&feat) * alpha.unsqueeze(-1)))
            .sum(Kind::Float)
            .backward();
    });
    time("propagate per head fwd+bwd", 10, || {
        let outs: Vec<Tensor> = (0..4)
            .map(|k| {
                b.index
                    .propagate(&feat.select(1, k), Some(&alpha.select(1, k).contiguous()))
            })
            .collect();
        Tensor::stack(&outs, 1).sum(Kind::Float).backward();
    });
    time("propagate_heads (one bag) fwd+bwd", 10, || {
        b.index
            .propagate_heads(&feat, &alpha)
            .sum(Kind::Float)
            .backward();
    });
    let hs = Tensor::randn([2708, 512], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let a1 =
        Tensor::rand([b.index.num_edges, 1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    time("propagate_heads shared, 1 head x 512", 10, || {
        b.index
            .propagate_heads(&hs, &a1)
            .sum(Kind::Float)
            .backward();
    });
    time("propagate 1 x 512", 10, || {
        b.index
            .propagate(&hs, Some(&a1.select(1, 0).contiguous()))
            .sum(Kind::Float)
            .backward();
    });
    let s =
        Tensor::randn([b.index.num_edges, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    time("edge softmax fwd+bwd", 10, || {
        b.index.edge_softmax(&s).sum(Kind::Float).backward();
    });
    let tok = Tensor::randn([1, 1433], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let w1 = Tensor::randn([1433, 512], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    time("token rows dropout+matmul fwd+bwd", 10, || {
        tok.expand([1286, 1433], false)
            .dropout(0.2, true)
            .matmul(&w1)
            .sum(Kind::Float)
            .backward();
    });
    let recon = Tensor::randn([1354, 1433], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let target = Tensor::randn([1354, 1433], (Kind::Float, Device::Cpu));
    time("sce loss 1354 x 1433 fwd+bwd", 10, || {
        selfsup::objectives::graph::scaled_cosine_error(&recon, &target, 3.0).backward();
    });
    let masked: Vec<i64> = (0..1354).map(|i| 2 * i).collect();
    time("target dense rows", 10, || {
        let _ = selfsup::views::graph::batch::dense_rows(&g.features, Some(&masked), Device::Cpu);
    });
    let pre = Tensor::randn([2708, 512], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let wt = Tensor::from_slice(&[0.25f32]).set_requires_grad(true);
    time("prelu 2708 x 512 fwd+bwd", 10, || {
        pre.prelu(&wt).sum(Kind::Float).backward();
    });
    time("bool mask 1286 x 1433 + nonzero", 10, || {
        let m = selfsup::torch_dropout::bernoulli_mask(
            &[1286, 1433],
            0.2,
            1.0,
            Kind::Bool,
            Device::Cpu,
        );
        let _ = m.nonzero();
    });
    time("token rows keyed dropout+matmul fwd+bwd", 10, || {
        selfsup::torch_dropout::dropout(&tok.expand([1286, 1433], false), 0.2, true)
            .matmul(&w1)
            .sum(Kind::Float)
            .backward();
    });
    let empty = selfsup::data::graph::CsrMatrix::zeros(1286, 1433);
    time("token rows symbolic dropout+matmul fwd+bwd", 10, || {
        selfsup::views::graph::sparse::SparseRows::with_row_sources(
            &empty,
            &[-1; 1286],
            Device::Cpu,
        )
        .with_repeated_row(
            Tensor::arange(1286, (Kind::Int64, Device::Cpu)),
            tok.shallow_clone(),
        )
        .dropout(0.2, true)
        .matmul(&w1)
        .sum(Kind::Float)
        .backward();
    });
    let recipe = selfsup::recipe::Recipe::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../recipes/graph/graphmae-cora.toml"
        )
        .as_ref(),
        &[],
    )
    .unwrap();
    let vs2 = nn::VarStore::new(Device::Cpu);
    let m = selfsup::methods::build_graph(&recipe.method, &recipe.encoder, &vs2, 1433).unwrap();
    let mut rng = selfsup::rng::keyed(0, selfsup::rng::Stream::Method, 0, 0, 0);
    time("graphmae loss forward", 10, || {
        let _ = m.loss(&b, &mut rng);
    });
    time("graphmae loss forward+backward", 10, || {
        m.loss(&b, &mut rng).backward();
    });
    let mask = selfsup::views::graph::masking::NodeMask::draw(2708, 0.5, 0.05, &mut rng);
    time("mask draw + host rows", 10, || {
        let m2 = selfsup::views::graph::masking::NodeMask::draw(2708, 0.5, 0.05, &mut rng);
        let _ = selfsup::views::graph::sparse::SparseRows::with_row_sources(
            &g.features,
            &m2.row_sources(2708),
            Device::Cpu,
        );
        let _ =
            selfsup::views::graph::batch::dense_rows(&g.features, Some(&mask.masked), Device::Cpu);
    });
}

/// One GAT layer of each kind GraphMAE has, forward + backward.
fn time_layers(
    tag: &str,
    l1: &GatConv,
    l2: &GatConv,
    dec: &GatConv,
    b: &GraphBatch,
    h: &Tensor,
    rows: &Tensor,
) {
    time(&format!("layer1 sparse fwd+bwd, {tag}"), 10, || {
        l1.forward(&b.input, &b.index, true)
            .sum(Kind::Float)
            .backward();
    });
    time(&format!("layer2 dense fwd+bwd, {tag}"), 10, || {
        l2.forward(&NodeInput::Dense(h.shallow_clone()), &b.index, true)
            .sum(Kind::Float)
            .backward();
    });
    time(&format!("decoder rows fwd+bwd, {tag}"), 10, || {
        dec.forward_rows(
            &NodeInput::Dense(h.shallow_clone()),
            &b.index,
            Some(rows),
            true,
        )
        .sum(Kind::Float)
        .backward();
    });
}
