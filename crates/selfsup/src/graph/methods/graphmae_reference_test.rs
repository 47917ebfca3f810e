//! GraphMAE against its authors' code, step for step: `testdata/graphmae_reference_steps.py`
//! ran 30 Adam steps of THUDM/GraphMAE's model (MUTAG configuration, feature dropout 0) on the
//! first 64 MUTAG graphs and saved its initial weights, its mask and its losses. Here the same
//! weights and mask go through our GraphMAE and optimiser; the losses must follow the same path.
//! Float summation order differs between the two, and Adam turns tiny gradient differences of
//! near-zero entries into whole steps, so the paths separate slowly: on the machine that wrote the
//! fixture the largest relative gap over the 30 steps was about 2e-4.
use super::graphmae::{GraphMae, GraphMaeConfig};
use crate::data::pickle::test_support::shared_data;
use crate::data::tu::load_tu;
use crate::graph::batch::GraphBatch;
use crate::graph::encoders::gin::GinConfig;
use crate::graph::encoders::{ActivationKind, GraphEncoderConfig};
use crate::graph::masking::NodeMask;
use crate::graph::Graph;
use crate::train::optim::{Optimizer, OptimizerConfig};
use serde::Deserialize;
use tch::{nn::VarStore, Device};

#[derive(Deserialize)]
struct Fixture {
    graphs: usize,
    nodes: usize,
    masked: Vec<i64>,
    token: Vec<i64>,
    noise: Vec<(i64, i64)>,
    lr: f64,
    losses: Vec<f64>,
}

#[test]
fn thirty_steps_on_mutag_follow_the_authors_code() {
    let Some(archive) = shared_data("tudataset/tu_mutag_proteins.tar.xz") else {
        return;
    };
    let fx: Fixture =
        serde_json::from_str(include_str!("testdata/graphmae_mutag_steps.json")).unwrap();
    let set = load_tu(&archive, "MUTAG", false).unwrap();
    let graphs: Vec<&Graph> = set.graphs.iter().take(fx.graphs).collect();
    let batch = GraphBatch::from_graphs(&graphs, Device::Cpu);
    assert_eq!(
        batch.num_nodes, fx.nodes,
        "the reference's batch has other nodes"
    );

    let mut vs = VarStore::new(Device::Cpu);
    let encoder = GraphEncoderConfig::Gin(GinConfig {
        layers: 5,
        hidden: 32,
        out: None,
        activation: ActivationKind::Prelu,
        dropout: 0.0,
        batch_norm: true,
    });
    let cfg = GraphMaeConfig {
        mask_rate: 0.75,
        replace_rate: 0.1,
        alpha: 2.0,
        decoder_heads: 1,
    };
    let model = GraphMae::new(&vs.root(), &cfg, &encoder, set.num_features as i64).unwrap();
    // Fails if any of our variables is missing from the file or has another shape.
    vs.load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/graph/methods/testdata/graphmae_mutag_init.safetensors"
    ))
    .unwrap();
    let mask = NodeMask {
        masked: fx.masked,
        token: fx.token,
        noise: fx.noise,
    };
    let mut opt = Optimizer::new(
        OptimizerConfig::Adam {
            lr: fx.lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        },
        &vs,
    );
    for (step, &want) in fx.losses.iter().enumerate() {
        let loss = model.loss_with_mask(&batch, &mask);
        let got = loss.double_value(&[]);
        assert!(
            (got - want).abs() <= 2e-3 * want,
            "step {step}: ours {got}, the authors' code {want}"
        );
        opt.zero_grad();
        loss.backward();
        opt.step(fx.lr);
    }
    // The path is not flat: a model that did not learn could not pass the checks above.
    assert!(fx.losses[fx.losses.len() - 1] < 0.5 * fx.losses[0]);
}
