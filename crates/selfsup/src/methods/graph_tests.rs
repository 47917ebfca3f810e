//! Every registered graph method: forward + backward on a small random graph (finite loss, a
//! gradient on every trainable tensor), its hooks, and training through the trunk's loop.
use super::*;
use crate::data::graph::{CsrMatrix, Graph, GraphSet};
use crate::encoders::graph::gat_stack::GatConfig;
use crate::encoders::graph::gcn::GcnConfig;
use crate::encoders::graph::gin::GinConfig;
use crate::encoders::graph::{ActivationKind, Pooling};
use crate::encoders::EncoderConfig;
use crate::rng::{keyed, Stream};
use crate::train::graph_learner::{embed_graphs, GraphData, GraphLearner};
use crate::views::graph::batch::GraphBatch;
use tch::{nn::VarStore, Device, Kind};

/// A random graph with sparse (or dense-ish) non-negative features.
pub(crate) fn random_graph(n: usize, f: usize, density: f64, seed: u64) -> Graph {
    use rand::Rng;
    let mut rng = keyed(seed, Stream::Eval, 0, 0, 0);
    let dense: Vec<f32> = (0..n * f)
        .map(|_| {
            if rng.gen::<f64>() < density {
                rng.gen::<f32>()
            } else {
                0.0
            }
        })
        .collect();
    let mut edges = Vec::new();
    for i in 0..n as u32 {
        for _ in 0..2 {
            edges.push([i, rng.gen_range(0..n as u32)]);
        }
    }
    let mut g = Graph {
        name: "random".into(),
        num_nodes: n,
        features: CsrMatrix::from_dense(n, f, &dense),
        edges,
        node_labels: (0..n as i64).map(|i| i % 3).collect(),
        num_classes: 3,
        split: None,
    };
    g.canonicalise_edges();
    g
}

fn gat() -> EncoderConfig {
    EncoderConfig::Gat(GatConfig {
        layers: 2,
        hidden: 4,
        heads: 2,
        out: 4,
        out_heads: 2,
        activation: ActivationKind::Prelu,
        feat_drop: 0.2,
        attn_drop: 0.1,
        negative_slope: 0.2,
        residual: true,
        concat_out: true,
    })
}
fn gcn(batch_norm: bool) -> EncoderConfig {
    EncoderConfig::Gcn(GcnConfig {
        dims: vec![8, 6],
        activation: ActivationKind::Prelu,
        dropout: 0.1,
        batch_norm,
    })
}
fn gin() -> EncoderConfig {
    EncoderConfig::Gin(GinConfig {
        layers: 2,
        hidden: 8,
        out: None,
        activation: ActivationKind::Prelu,
        dropout: 0.2,
        batch_norm: true,
    })
}

/// Forward + backward once: the loss is finite and every trainable tensor gets a gradient.
fn smoke(method: &MethodConfig, encoder: &EncoderConfig, batch: &GraphBatch, in_dim: i64) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let m = build_graph(method, encoder, &vs, in_dim).unwrap();
    let loss = m.loss(batch, &mut keyed(0, Stream::Method, 0, 0, 0));
    assert!(loss.double_value(&[]).is_finite(), "{}", method.name());
    loss.backward();
    for (name, t) in vs.variables() {
        if t.requires_grad() {
            let g = t.grad();
            assert!(g.defined(), "{}: no gradient reached {name}", method.name());
            assert!(g.isfinite().all().int64_value(&[]) == 1, "{name}");
        }
    }
    m.after_step(0.5);
    let emb = m.embed(batch);
    assert_eq!(emb.size()[0], batch.num_nodes as i64);
    assert!(emb.isfinite().all().int64_value(&[]) == 1);
    let _ = Kind::Float;
}

#[test]
fn every_node_level_method_runs_forward_and_backward() {
    let g = random_graph(40, 30, 0.03, 1);
    let b = GraphBatch::from_graph(&g, Device::Cpu);
    assert!(matches!(
        b.input,
        crate::views::graph::sparse::NodeInput::Sparse(_)
    ));
    let mae = MethodConfig::Graphmae(graphmae::GraphMaeConfig {
        mask_rate: 0.5,
        replace_rate: 0.2,
        alpha: 2.0,
        decoder_heads: 1,
    });
    smoke(&mae, &gat(), &b, 30);
    smoke(&MethodConfig::Dgi(dgi::DgiConfig {}), &gcn(false), &b, 30);
    smoke(&MethodConfig::Dgi(dgi::DgiConfig {}), &gat(), &b, 30);
    let grace = MethodConfig::Grace(grace::GraceConfig {
        tau: 0.5,
        drop_edge: [0.2, 0.4],
        drop_feature: [0.3, 0.4],
        proj_hidden: 8,
    });
    smoke(&grace, &gcn(false), &b, 30);
    let bgrl = MethodConfig::Bgrl(bgrl::BgrlConfig {
        drop_edge: [0.2, 0.3],
        drop_feature: [0.3, 0.2],
        predictor_hidden: 16,
        base_momentum: 0.99,
    });
    smoke(&bgrl, &gcn(true), &b, 30);
    let selftask = MethodConfig::SelfTask(selftask::SelfTaskConfig {
        pairs_per_class: 20,
        similarity_pairs: 30,
        ..Default::default()
    });
    smoke(&selftask, &gcn(false), &b, 30);
    // Every task on, Distance2Clusters included (the smoke test wants a gradient in every head).
    let with_clusters = MethodConfig::SelfTask(selftask::SelfTaskConfig {
        pairs_per_class: 20,
        similarity_pairs: 30,
        cluster_distance: 100.0,
        clusters: 4,
        ..Default::default()
    });
    smoke(&with_clusters, &gcn(false), &b, 30);
    let pareto = pareto_gnn::ParetoGnnConfig {
        head_hidden: 8,
        link_edges: 16,
        ..Default::default()
    };
    smoke(&MethodConfig::ParetoGnn(pareto.clone()), &gcn(true), &b, 30);
    let equal = pareto_gnn::ParetoGnnConfig {
        weighting: pareto_gnn::TaskWeighting::Equal,
        ..pareto
    };
    smoke(&MethodConfig::ParetoGnn(equal), &gcn(false), &b, 30);
}

#[test]
fn graphmae_runs_on_a_batch_of_small_graphs_with_gin() {
    let graphs: Vec<Graph> = (0..5)
        .map(|i| random_graph(6 + i, 5, 0.4, 10 + i as u64))
        .collect();
    let refs: Vec<&Graph> = graphs.iter().collect();
    let b = GraphBatch::from_graphs(&refs, Device::Cpu);
    assert!(matches!(
        b.input,
        crate::views::graph::sparse::NodeInput::Dense(_)
    ));
    let mae = MethodConfig::Graphmae(graphmae::GraphMaeConfig {
        mask_rate: 0.75,
        replace_rate: 0.1,
        alpha: 2.0,
        decoder_heads: 1,
    });
    smoke(&mae, &gin(), &b, 5);
    smoke(
        &MethodConfig::Dsla(dsla::DslaConfig {
            hops: 2,
            ..Default::default()
        }),
        &gin(),
        &b,
        5,
    );
    // Pretraining + pooled embeddings over a set.
    let set = GraphSet {
        name: "set".into(),
        labels: (0..5).map(|i| i % 2).collect(),
        graphs,
        num_classes: 2,
        label_values: vec![0, 1],
        num_features: 5,
    };
    // Two epochs of mini-batches through the trunk's loop, then pooled embeddings.
    let data = GraphData::Graphs(set);
    let vs = VarStore::new(Device::Cpu);
    let m = build_graph(&mae, &gin(), &vs, 5).unwrap();
    let mut learner = GraphLearner::new(m.as_ref(), "graphmae", &data, 2, Device::Cpu);
    let dir = tempfile::tempdir().unwrap();
    let train: crate::recipe::TrainConfig =
        toml::from_str("epochs = 2\nbatch_size = 2\noptimizer = { name = \"adam\", lr = 1e-3 }")
            .unwrap();
    let summary = crate::train::trainer::train(
        crate::train::trainer::TrainContext {
            train: &train,
            seed: 0,
            training_hash: "t".into(),
            monitor_every: 0,
            vs: &vs,
            learner: &mut learner,
            device: Device::Cpu,
            checkpoints: dir.path().join("checkpoints"),
            metrics_path: dir.path().join("metrics.jsonl"),
            data_fingerprint: "d".into(),
            progress: false,
            stop: Default::default(),
            monitor: None,
            ranks: None,
            holds_generator_lock: false,
        },
        None,
    )
    .unwrap();
    // 5 graphs in batches of 2: 3 steps an epoch, the last with one graph.
    assert_eq!((summary.steps, summary.epochs_completed), (6, 2));
    let GraphData::Graphs(set) = &data else {
        unreachable!()
    };
    let emb = embed_graphs(m.as_ref(), set, Pooling::Sum, 2, Device::Cpu);
    assert_eq!(emb.size(), vec![5, 8]);
}

#[test]
fn graphmae_rejects_a_gcn_encoder() {
    let vs = VarStore::new(Device::Cpu);
    let mae = MethodConfig::Graphmae(graphmae::GraphMaeConfig {
        mask_rate: 0.5,
        replace_rate: 0.0,
        alpha: 2.0,
        decoder_heads: 1,
    });
    assert!(build_graph(&mae, &gcn(false), &vs, 4).is_err());
}
