//! `[data] dataset = "NAME"` in a recipe: the registry's `data` table of that dataset fills in
//! what the recipe leaves out (format, file paths inside the dataset's folder of the data root);
//! what the recipe writes itself wins, so explicit paths keep working.
use super::{template_path, DataRoot, Dataset, Presence, Registry};
use crate::error::DataError;
use crate::rules::RecipeError;
use std::path::PathBuf;

/// The dataset a recipe named, and where it was looked for.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetUse {
    pub dataset: Dataset,
    pub dir: PathBuf,
}

impl DatasetUse {
    /// An error unless every file of the dataset is in its folder: the message names the
    /// command that fetches it.
    pub fn require(&self) -> Result<(), DataError> {
        let d = &self.dataset;
        match d.presence(&self.dir) {
            Presence::Present => Ok(()),
            p => Err(DataError::MissingDataset {
                name: d.name.clone(),
                path: self.dir.clone(),
                partial: matches!(p, Presence::Partial(_)),
            }),
        }
    }
}

/// Replaces `dataset = "NAME"` in the recipe's `[data]` table by the registry's table for it,
/// with its paths inside `root`. Returns the dataset whose folder the recipe now reads, or
/// `None` when it names none or gives every path itself.
/// Adds to `ours` every key of `theirs` it lacks, recursively into tables both have.
fn fill_missing(ours: &mut toml::map::Map<String, toml::Value>, theirs: &toml::Table) {
    for (k, v) in theirs {
        match (ours.get_mut(k), v) {
            (None, _) => {
                ours.insert(k.clone(), v.clone());
            }
            (Some(toml::Value::Table(o)), toml::Value::Table(t)) => fill_missing(o, t),
            _ => {}
        }
    }
}

pub fn resolve(
    value: &mut toml::Value,
    registry: &Registry,
    root: &DataRoot,
) -> Result<Option<DatasetUse>, RecipeError> {
    let Some(data) = value.get_mut("data").and_then(|d| d.as_table_mut()) else {
        return Ok(None);
    };
    let Some(named) = data.remove("dataset") else {
        return Ok(None);
    };
    let Some(name) = named.as_str() else {
        return Err(RecipeError::Dataset(format!(
            "data.dataset = {named}: a dataset name is a string"
        )));
    };
    let Some(d) = registry.get(name) else {
        return Err(RecipeError::Dataset(format!(
            "data.dataset = {name:?}: no such dataset; known: {}",
            registry.names().join(", ")
        )));
    };
    let Some(template) = &d.data else {
        return Err(RecipeError::Dataset(format!(
            "data.dataset = {name:?}: no reader of selfsup reads this dataset yet"
        )));
    };
    let dir = root.dir_of(d);
    let mut reads_root = false;
    for (key, v) in template {
        if let (Some(ours), Some(theirs)) = (data.get(key), v.as_str()) {
            if key == "format" && ours.as_str() != Some(theirs) {
                return Err(RecipeError::Dataset(format!(
                    "data.format = {ours}: the dataset {} is read as format = {theirs:?}",
                    d.name
                )));
            }
        }
        if let Some(ours) = data.get_mut(key) {
            // A table the recipe writes in part (`options = { frames = 64 }`) keeps the
            // dataset's other settings (its split, its sample rate).
            if let (Some(ours), Some(theirs)) = (ours.as_table_mut(), v.as_table()) {
                fill_missing(ours, theirs);
            }
            continue;
        }
        let filled = match v.as_str().and_then(template_path) {
            Some(p) => {
                reads_root = true;
                let path = if p == "." { dir.clone() } else { dir.join(p) };
                toml::Value::String(path.display().to_string())
            }
            None => v.clone(),
        };
        data.insert(key.clone(), filled);
    }
    Ok(reads_root.then(|| DatasetUse {
        dataset: d.clone(),
        dir,
    }))
}
