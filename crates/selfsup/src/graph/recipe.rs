//! Graph recipes: one TOML file per (method, dataset), with the paper's hyper-parameters and the
//! paper's figure to print beside ours.
use super::encoders::{GraphEncoderConfig, Pooling};
use super::eval::GraphCvConfig;
use super::methods::GraphMethodConfig;
use super::train::GraphTrainConfig;
use crate::recipe::{overrides, RecipeError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphRecipe {
    pub name: String,
    /// Pretraining seeds; each seed pretrains a fresh model and is evaluated on its own
    /// (GraphMAE: 20 seeds for node classification, 5 for graph classification).
    #[serde(default = "seed0")]
    pub seeds: Vec<u64>,
    pub data: GraphDataConfig,
    pub encoder: GraphEncoderConfig,
    pub method: GraphMethodConfig,
    pub train: GraphTrainConfig,
    pub eval: GraphEvalConfig,
    /// The published figure for this (method, dataset, protocol).
    #[serde(default)]
    pub paper: Option<PaperFigure>,
}

fn seed0() -> Vec<u64> {
    vec![0]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperFigure {
    pub mean: f64,
    pub std: f64,
    /// Where the figure comes from (paper, table).
    pub source: String,
}

/// Where the graph comes from. Relative paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum GraphDataConfig {
    /// `ind.<name>.*` pickles (Yang et al. 2016), assembled as Kipf & Welling do.
    Planetoid {
        path: PathBuf,
        name: String,
        /// Scale feature rows to sum 1 (what DGL, PyG and every paper here use).
        #[serde(default = "yes")]
        row_normalise: bool,
    },
    /// The same graphs as a `.npz` (CSR features, `edge_index`, split indices).
    PlanetoidNpz {
        path: PathBuf,
        #[serde(default = "yes")]
        row_normalise: bool,
    },
    /// A TU graph-classification set (directory or `.tar.xz`).
    Tu {
        path: PathBuf,
        name: String,
        /// Append continuous node attributes to the one-hot node labels.
        #[serde(default)]
        with_attributes: bool,
    },
}

fn yes() -> bool {
    true
}

impl GraphDataConfig {
    pub fn path(&self) -> &Path {
        match self {
            GraphDataConfig::Planetoid { path, .. }
            | GraphDataConfig::PlanetoidNpz { path, .. }
            | GraphDataConfig::Tu { path, .. } => path,
        }
    }
    pub fn is_graph_level(&self) -> bool {
        matches!(self, GraphDataConfig::Tu { .. })
    }
}

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
            GraphEvalConfig::GraphCv { pooling, folds, .. } => format!(
                "{folds}-fold stratified CV, logistic regression (L2 by inner 5-fold CV) on {pooling:?}-pooled embeddings"
            ),
        }
    }
}

fn invalid(origin: &str, message: impl Into<String>) -> RecipeError {
    RecipeError::Parse {
        origin: origin.into(),
        message: message.into(),
    }
}

impl GraphRecipe {
    /// Parses TOML text, applies `--set` overrides, checks every rule.
    pub fn from_toml(text: &str, origin: &str, sets: &[String]) -> Result<Self, RecipeError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| invalid(origin, e.to_string()))?;
        for s in sets {
            overrides::apply(&mut value, s)?;
        }
        let recipe: GraphRecipe = value
            .try_into()
            .map_err(|e: toml::de::Error| invalid(origin, e.to_string()))?;
        recipe.validate(origin)?;
        Ok(recipe)
    }

    pub fn load(path: &Path, sets: &[String]) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(&path.display().to_string(), e.to_string()))?;
        Self::from_toml(&text, &path.display().to_string(), sets)
    }

    /// True when a TOML text is a graph recipe (its `data.format` is a graph format).
    pub fn is_graph_recipe(text: &str) -> bool {
        let Ok(v) = toml::from_str::<toml::Value>(text) else {
            return false;
        };
        matches!(
            v.get("data")
                .and_then(|d| d.get("format"))
                .and_then(|f| f.as_str()),
            Some("planetoid" | "planetoid_npz" | "tu")
        )
    }

    fn validate(&self, origin: &str) -> Result<(), RecipeError> {
        // Every number of a graph recipe must be finite (TOML allows nan and inf).
        let value = toml::Value::try_from(self).map_err(|e| invalid(origin, e.to_string()))?;
        if let Some(path) = first_non_finite(&value, "") {
            return Err(invalid(origin, format!("{path}: must be a finite number")));
        }
        if self.seeds.is_empty() {
            return Err(invalid(origin, "seeds: at least one seed is needed"));
        }
        self.train
            .validate()
            .map_err(|e| invalid(origin, e.to_string()))?;
        let rate = |name: &str, v: f64| -> Result<(), RecipeError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    origin,
                    format!("{name} = {v}: a rate must be in [0, 1]"),
                ))
            }
        };
        match &self.method {
            GraphMethodConfig::Graphmae(c) => {
                rate("method.mask_rate", c.mask_rate)?;
                rate("method.replace_rate", c.replace_rate)?;
                if c.mask_rate == 0.0 {
                    return Err(invalid(
                        origin,
                        "method.mask_rate = 0: nothing to reconstruct",
                    ));
                }
                if c.alpha < 1.0 {
                    return Err(invalid(
                        origin,
                        format!(
                            "method.alpha = {}: GraphMAE's exponent must be >= 1",
                            c.alpha
                        ),
                    ));
                }
                if matches!(self.encoder, GraphEncoderConfig::Gcn(_)) {
                    return Err(invalid(origin, "graphmae needs encoder.kind = gat or gin"));
                }
            }
            GraphMethodConfig::Grace(c) => {
                if c.tau <= 0.0 {
                    return Err(invalid(
                        origin,
                        format!("method.tau = {}: a temperature must be > 0", c.tau),
                    ));
                }
                for v in c.drop_edge.iter().chain(&c.drop_feature) {
                    rate("method.drop_edge/drop_feature", *v)?;
                }
            }
            GraphMethodConfig::Bgrl(c) => {
                for v in c.drop_edge.iter().chain(&c.drop_feature) {
                    rate("method.drop_edge/drop_feature", *v)?;
                }
                rate("method.base_momentum", c.base_momentum)?;
            }
            GraphMethodConfig::Dgi(_) => {}
        }
        let graph_level = self.data.is_graph_level();
        let graph_protocol = matches!(self.eval, GraphEvalConfig::GraphCv { .. });
        if graph_level != graph_protocol {
            return Err(invalid(
                origin,
                "eval.protocol: graph_cv goes with tu data, the node protocols with planetoid data",
            ));
        }
        let layers = match &self.encoder {
            GraphEncoderConfig::Gcn(c) => c.dims.len(),
            GraphEncoderConfig::Gat(c) => c.layers,
            GraphEncoderConfig::Gin(c) => c.layers,
        };
        if layers == 0 {
            return Err(invalid(origin, "encoder: at least one layer is needed"));
        }
        Ok(())
    }
}

/// The dotted path of the first NaN or infinite float in `v`.
fn first_non_finite(v: &toml::Value, path: &str) -> Option<String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some(path.to_string()),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| first_non_finite(x, &join(k))),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_non_finite(x, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORA: &str = r#"
name = "graphmae-cora"
seeds = [0, 1]
[data]
format = "planetoid"
path = "data/planetoid"
name = "cora"
[encoder]
kind = "gat"
hidden = 128
heads = 4
out = 128
out_heads = 4
feat_drop = 0.2
attn_drop = 0.1
[method]
name = "graphmae"
mask_rate = 0.5
replace_rate = 0.05
alpha = 3.0
[train]
epochs = 1500
optimizer = { name = "adam", lr = 0.001, weight_decay = 2e-4 }
decay = "cosine"
[eval]
protocol = "public_split"
lr = 0.01
weight_decay = 1e-4
epochs = 300
"#;

    #[test]
    fn a_graphmae_recipe_parses_and_is_recognised() {
        assert!(GraphRecipe::is_graph_recipe(CORA));
        let r = GraphRecipe::from_toml(CORA, "t", &[]).unwrap();
        assert_eq!(r.seeds, vec![0, 1]);
        assert!(r.eval.describe().contains("best val"));
    }

    #[test]
    fn each_rule_is_checked() {
        let bad = [
            ("method.mask_rate=1.5", "rate must be in"),
            ("method.mask_rate=0.0", "nothing to reconstruct"),
            ("method.alpha=0.5", "exponent"),
            ("train.epochs=0", "epochs"),
            ("encoder.layers=0", "at least one layer"),
            ("method.unknown=1", "unknown field"),
        ];
        for (set, msg) in bad {
            let e = GraphRecipe::from_toml(CORA, "t", &[set.to_string()]).unwrap_err();
            assert!(e.to_string().contains(msg), "{set}: {e}");
        }
        let graph_cv = CORA.replace(
            "protocol = \"public_split\"\nlr = 0.01\nweight_decay = 1e-4\nepochs = 300",
            "protocol = \"graph_cv\"",
        );
        let e = GraphRecipe::from_toml(&graph_cv, "t", &[]).unwrap_err();
        assert!(e.to_string().contains("graph_cv goes with tu"), "{e}");
        let e = GraphRecipe::from_toml(&CORA.replace("seeds = [0, 1]", "seeds = []"), "t", &[])
            .unwrap_err();
        assert!(e.to_string().contains("at least one seed"));
    }
}
