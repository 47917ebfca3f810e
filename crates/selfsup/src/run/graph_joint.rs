//! A graph run under the joint protocol (`[eval.graph] protocol = "joint"`): instead of
//! pretraining and scoring frozen embeddings, the method's encoder is trained together with an
//! output layer on the labels (SelfTask-GNN's setting, `eval::graph::joint`), and the same
//! network from the same initial weights is trained without the task beside it. A few seconds
//! on a Planetoid graph, so the run keeps no checkpoint: its folder holds the manifest, the
//! summary and `eval.json`.
use super::graph::{build_model, GraphModel};
use super::{PretrainReport, RunOptions};
use crate::eval::graph::joint::{train_joint, JointConfig, JointResult};
use crate::eval::graph::protocol::GraphEvalConfig;
use crate::recipe::Recipe;
use crate::run::folder::RunFolder;
use crate::run::pipeline::EvalRecord;
use crate::train::graph_learner::GraphData;
use crate::train::trainer::TrainSummary;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::Instant;

/// Trains `model` jointly and the supervised control beside it; writes the run's summary and
/// evaluation. The caller holds libtorch's generator (dropout) from `model`'s seeding on.
pub fn joint_run(
    run: RunFolder,
    recipe: &Recipe,
    data: &GraphData,
    model: GraphModel,
    cfg: &JointConfig,
    args: &RunOptions,
) -> Result<PretrainReport> {
    let GraphData::Nodes(g) = data else {
        bail!("the joint protocol trains on one graph's node labels, not on a set of graphs");
    };
    let split = g
        .split
        .as_ref()
        .context("the joint protocol needs the data's public split")?;
    let started = Instant::now();
    let joint = train_joint(
        model.method.as_ref(),
        &model.vs,
        g,
        split,
        cfg,
        recipe.seed,
        args.device,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    drop(model);
    let control_started = Instant::now();
    let control_model = build_model(recipe, data, args.device)?;
    let control_cfg = JointConfig {
        ssl_weight: 0.0,
        ..*cfg
    };
    let control = train_joint(
        control_model.method.as_ref(),
        &control_model.vs,
        g,
        split,
        &control_cfg,
        recipe.seed,
        args.device,
    )?;
    let control_seconds = control_started.elapsed().as_secs_f64();
    let protocol = recipe
        .eval
        .graph
        .as_ref()
        .map(GraphEvalConfig::describe)
        .unwrap_or_default();
    let record = |features: &str, r: &JointResult, secs: f64, other: Option<&JointResult>| {
        let mut details = json!({
            "best_val": 100.0 * r.best.val,
            "best_epoch": r.best.epoch,
            "final_epoch_test": 100.0 * r.final_test,
        });
        if let Some(o) = other {
            details["supervised"] = json!(100.0 * o.best.test);
            details["supervised_best_val"] = json!(100.0 * o.best.val);
        }
        EvalRecord {
            protocol: protocol.clone(),
            features: features.into(),
            dim: 0,
            train_size: split.train.len() as i64,
            test_size: split.test.len() as i64,
            accuracy: r.best.test,
            seconds: secs,
            details,
        }
    };
    let records = vec![
        record("learned", &joint, seconds, Some(&control)),
        record("supervised", &control, control_seconds, None),
    ];
    eprintln!(
        "selfsup: joint training {:.2} % (best validation epoch {}), without the task {:.2} %",
        100.0 * joint.best.test,
        joint.best.epoch,
        100.0 * control.best.test
    );
    let summary = TrainSummary {
        steps: cfg.epochs as u64,
        epochs_completed: cfg.epochs as u64,
        final_loss: Some(joint.final_loss),
        samples_per_s: 0.0,
        seconds,
        nan_skips: 0,
        best_monitor: None,
        final_monitor: None,
        kept_epoch: Some(joint.best.epoch as u64),
        stopped_early: false,
    };
    super::finish_training(&run, &summary)?;
    super::write_eval(&run, &records, None, summary.steps)?;
    Ok(PretrainReport {
        run_dir: run.dir,
        summary,
        eval: records,
        test_collapse: None,
    })
}
