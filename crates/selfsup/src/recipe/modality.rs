//! One modality of a paired (multimodal) recipe: the data, views and encoder of a unimodal
//! recipe. A recipe names it by file (`recipe = "recipes/audio/byol-a.toml"`), and loading puts
//! that recipe's tables in place, so a written recipe holds them whole.
use super::{DataConfig, Recipe, ViewsConfig};
use crate::datasets::resolve::DatasetUse;
use crate::datasets::DataRoot;
use crate::encoders::EncoderConfig;
use crate::rules::RecipeError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modality {
    /// Names the modality in tables and in the pair manifest's header.
    pub name: String,
    /// The unimodal recipe the tables below came from; `selfsup multimodal` pretrains it with
    /// its own method as the modality's unimodal counterpart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<PathBuf>,
    pub data: DataConfig,
    #[serde(default)]
    pub views: ViewsConfig,
    pub encoder: EncoderConfig,
    /// The registry dataset the modality's recipe named (checked for presence when read).
    #[serde(skip)]
    pub dataset: Option<DatasetUse>,
}

fn parse_error(message: String) -> RecipeError {
    RecipeError::Parse {
        origin: "data.modalities".into(),
        message,
    }
}

/// Fills each `[[data.modalities]]` table that names a `recipe` and has no `data` of its own
/// with that recipe's `data`, `views` and `encoder`, and gives a paired recipe without an
/// `[encoder]` the first modality's (the run's own embedding is the first modality's).
/// Returns the datasets the modality recipes named, in order.
pub(super) fn expand(
    value: &mut toml::Value,
    root: &DataRoot,
    dir: Option<&std::path::Path>,
) -> Result<Vec<Option<DatasetUse>>, RecipeError> {
    let is_paired = value
        .get("data")
        .and_then(|d| d.get("format"))
        .and_then(|f| f.as_str())
        == Some("paired");
    if !is_paired {
        return Ok(Vec::new());
    }
    let Some(list) = value
        .get_mut("data")
        .and_then(|d| d.get_mut("modalities"))
        .and_then(|m| m.as_array_mut())
    else {
        return Ok(Vec::new());
    };
    let mut datasets = Vec::new();
    for (k, entry) in list.iter_mut().enumerate() {
        let Some(table) = entry.as_table_mut() else {
            return Err(parse_error(format!("entry {k} is not a table")));
        };
        let file = table
            .get("recipe")
            .and_then(|r| r.as_str())
            .map(PathBuf::from);
        match file {
            Some(file) if !table.contains_key("data") => {
                let file = match dir {
                    Some(d) if file.is_relative() => d.join(file),
                    _ => file,
                };
                let text = std::fs::read_to_string(&file).map_err(|e| RecipeError::Parse {
                    origin: file.display().to_string(),
                    message: e.to_string(),
                })?;
                let sub = Recipe::from_toml_at(
                    &text,
                    &file.display().to_string(),
                    &[],
                    root,
                    file.parent(),
                )?;
                if sub.data.is_paired() || sub.data.is_graph() {
                    return Err(parse_error(format!(
                        "{}: a modality is a recipe of samples of one kind, not a {} recipe",
                        file.display(),
                        if sub.data.is_paired() {
                            "paired"
                        } else {
                            "graph"
                        }
                    )));
                }
                table.insert("data".into(), to_value(&sub.data)?);
                table.insert("views".into(), to_value(&sub.views)?);
                table.insert("encoder".into(), to_value(&sub.encoder)?);
                table.insert(
                    "recipe".into(),
                    toml::Value::String(file.display().to_string()),
                );
                datasets.push(sub.dataset);
            }
            _ => datasets.push(None),
        }
    }
    let first_encoder = list.first().and_then(|m| m.get("encoder")).cloned();
    if let (Some(top), Some(e)) = (value.as_table_mut(), first_encoder) {
        top.entry("encoder").or_insert(e);
    }
    Ok(datasets)
}

fn to_value<T: Serialize>(v: &T) -> Result<toml::Value, RecipeError> {
    toml::Value::try_from(v).map_err(|e| parse_error(e.to_string()))
}

impl Recipe {
    /// Modality `k` of a paired recipe as a recipe of its own: its data, views and encoder under
    /// this recipe's method, training and evaluation.
    pub fn modality_recipe(&self, k: usize) -> Option<Recipe> {
        let DataConfig::Paired { modalities, .. } = &self.data else {
            return None;
        };
        let m = modalities.get(k)?;
        let mut r = self.clone();
        r.data = m.data.clone();
        r.views = m.views.clone();
        r.encoder = m.encoder.clone();
        r.dataset = m.dataset.clone();
        Some(r)
    }

    /// The modalities of a paired recipe (none for other recipes).
    pub fn modalities(&self) -> &[Modality] {
        match &self.data {
            DataConfig::Paired { modalities, .. } => modalities,
            _ => &[],
        }
    }

    /// Records which registry datasets the modalities named (from [`expand`]).
    pub(super) fn set_modality_datasets(&mut self, datasets: Vec<Option<DatasetUse>>) {
        if let DataConfig::Paired { modalities, .. } = &mut self.data {
            for (m, d) in modalities.iter_mut().zip(datasets) {
                m.dataset = d;
            }
        }
    }
}
