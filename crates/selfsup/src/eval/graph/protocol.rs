//! The graph evaluation protocols a recipe names in `[eval.graph]`: node classification on the
//! public split (GraphMAE's, DGI's), on random splits (GRACE's), and graph classification by
//! cross-validation (GraphMAE's TU protocol).
use crate::encoders::graph::Pooling;
use crate::eval::graph::GraphCvConfig;
use crate::rules::{self, RecipeError};
use serde::{Deserialize, Serialize};

/// How the frozen embeddings are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case", deny_unknown_fields)]
pub enum GraphEvalConfig {
    /// Public split; logistic regression trained by Adam on the train nodes, test accuracy at
    /// the best validation epoch (GraphMAE's protocol; the final-epoch figure is kept too).
    PublicSplit {
        lr: f64,
        weight_decay: f64,
        epochs: usize,
    },
    /// Public split; 50 logistic regressions (100 Adam epochs, lr 0.01) on the train nodes,
    /// mean test accuracy (DGI's protocol).
    DgiLogreg {
        #[serde(default = "fifty")]
        runs: usize,
        #[serde(default = "hundred")]
        epochs: usize,
        #[serde(default = "lr_dgi")]
        lr: f64,
    },
    /// Random `train_fraction` / rest split of the labelled nodes, C by 5-fold CV (GRACE's).
    RandomSplit {
        #[serde(default = "tenth")]
        train_fraction: f64,
        #[serde(default = "three")]
        repeats: usize,
    },
    /// Public split; the method's encoder and a GCN output layer trained together from the
    /// run's initial weights on the train nodes' labels, the method's loss added with weight
    /// `ssl_weight` (SelfTask-GNN's joint training, `eval::graph::joint`); test accuracy at the
    /// best validation epoch, beside the same training without the task (a supervised GCN).
    /// Defaults: the authors' `scripts/basic/run.sh` (200 epochs, lr 0.01, wd 5e-4, dropout
    /// 0.5).
    Joint(crate::eval::graph::joint::JointConfig),
    /// Graph embeddings (pooled), stratified k-fold CV of a logistic regression.
    GraphCv {
        #[serde(default)]
        pooling: Pooling,
        #[serde(default = "ten")]
        folds: usize,
        #[serde(default)]
        cv: Option<GraphCvConfig>,
    },
}

fn fifty() -> usize {
    50
}
fn hundred() -> usize {
    100
}
fn lr_dgi() -> f64 {
    0.01
}
fn tenth() -> f64 {
    0.1
}
fn three() -> usize {
    3
}
fn ten() -> usize {
    10
}

impl GraphEvalConfig {
    /// The protocol's name as printed beside every figure.
    pub fn describe(&self) -> String {
        match self {
            GraphEvalConfig::PublicSplit {
                lr,
                weight_decay,
                epochs,
            } => format!(
                "public split, Adam logistic regression ({epochs} epochs, lr {lr}, wd {weight_decay}), test acc at best val"
            ),
            GraphEvalConfig::DgiLogreg { runs, epochs, lr } => format!(
                "public split, {runs} × logistic regression ({epochs} Adam epochs, lr {lr}), mean test acc"
            ),
            GraphEvalConfig::RandomSplit {
                train_fraction,
                repeats,
            } => format!(
                "random {:.0} %/{:.0} % split × {repeats}, logistic regression with C by 5-fold CV",
                train_fraction * 100.0,
                (1.0 - train_fraction) * 100.0
            ),
            GraphEvalConfig::Joint(joint) => joint.describe(),
            GraphEvalConfig::GraphCv { pooling, folds, .. } => format!(
                "{folds}-fold stratified CV, logistic regression (L2 by inner 5-fold CV) on {pooling:?}-pooled embeddings"
            ),
        }
    }

    /// Whether the protocol scores graphs (else nodes).
    pub fn is_graph_level(&self) -> bool {
        matches!(self, GraphEvalConfig::GraphCv { .. })
    }

    /// The rules of `[eval.graph]`.
    pub fn validate(&self) -> rules::R {
        match self {
            GraphEvalConfig::PublicSplit {
                lr,
                weight_decay,
                epochs,
            } => {
                rules::positive("eval.graph.lr", *lr)?;
                rules::non_negative("eval.graph.weight_decay", *weight_decay)?;
                rules::widths("eval.graph.epochs", [*epochs as i64])
            }
            GraphEvalConfig::DgiLogreg { runs, epochs, lr } => {
                rules::positive("eval.graph.lr", *lr)?;
                rules::widths("eval.graph.runs", [*runs as i64])?;
                rules::widths("eval.graph.epochs", [*epochs as i64])
            }
            GraphEvalConfig::RandomSplit {
                train_fraction,
                repeats,
            } => {
                rules::open_fraction("eval.graph.train_fraction", *train_fraction)?;
                rules::widths("eval.graph.repeats", [*repeats as i64])
            }
            GraphEvalConfig::Joint(joint) => joint.validate(),
            GraphEvalConfig::GraphCv { folds, cv, .. } => {
                if *folds < 2 {
                    return Err(RecipeError::BadRange {
                        field: "eval.graph.folds",
                        lo: *folds as f64,
                        hi: *folds as f64,
                        rule: "cross-validation needs at least 2 folds",
                    });
                }
                if let Some(cv) = cv {
                    cv.validate().map_err(|e| RecipeError::Parse {
                        origin: "eval.graph.cv".into(),
                        message: e.to_string(),
                    })?;
                }
                Ok(())
            }
        }
    }
}
