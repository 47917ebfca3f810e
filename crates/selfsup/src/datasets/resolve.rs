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

/// A template value with its paths placed in `dir`: a string that is a template path, or the
/// `path` of a table (a text file's table), or the tables of an array. Returns whether a path
/// was placed.
fn placed(v: &toml::Value, dir: &std::path::Path) -> (toml::Value, bool) {
    let place = |p: &str| {
        let path = if p == "." {
            dir.to_path_buf()
        } else {
            dir.join(p)
        };
        toml::Value::String(path.display().to_string())
    };
    match v {
        toml::Value::String(s) => match template_path(s) {
            Some(p) => (place(p), true),
            None => (v.clone(), false),
        },
        toml::Value::Table(t) => {
            let mut t = t.clone();
            let mut any = false;
            if let Some(p) = t
                .get("path")
                .and_then(|p| p.as_str())
                .and_then(template_path)
            {
                let p = place(p);
                t.insert("path".into(), p);
                any = true;
            }
            (toml::Value::Table(t), any)
        }
        toml::Value::Array(a) => {
            let mut any = false;
            let items = a
                .iter()
                .map(|x| {
                    let (x, p) = placed(x, dir);
                    any |= p;
                    x
                })
                .collect();
            (toml::Value::Array(items), any)
        }
        _ => (v.clone(), false),
    }
}

/// `data.corpora = [{ dataset = "NAME" }, …]` (text): each such entry becomes that dataset's
/// training file, placed in its folder of `root`.
fn resolve_corpora(
    data: &mut toml::map::Map<String, toml::Value>,
    registry: &Registry,
    root: &DataRoot,
) -> Result<(), RecipeError> {
    let Some(toml::Value::Array(corpora)) = data.get_mut("corpora") else {
        return Ok(());
    };
    for c in corpora.iter_mut() {
        let Some(name) = c
            .get("dataset")
            .and_then(|d| d.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        let train = registry
            .get(&name)
            .and_then(|d| Some((d, d.data.as_ref()?.get("train")?.clone())))
            .filter(|(_, t)| t.is_table());
        let Some((d, train)) = train else {
            return Err(RecipeError::Dataset(format!(
                "data.corpora: {name:?} is no text dataset of the registry"
            )));
        };
        let (mut t, _) = placed(&train, &root.dir_of(d));
        if let (Some(t), Some(ours)) = (t.as_table_mut(), c.as_table()) {
            // What the entry writes itself (a window, a policy) wins.
            for (k, v) in ours {
                if k != "dataset" {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        *c = t;
    }
    Ok(())
}

pub fn resolve(
    value: &mut toml::Value,
    registry: &Registry,
    root: &DataRoot,
) -> Result<Option<DatasetUse>, RecipeError> {
    let Some(data) = value.get_mut("data").and_then(|d| d.as_table_mut()) else {
        return Ok(None);
    };
    resolve_corpora(data, registry, root)?;
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
            let (theirs, any) = placed(v, &dir);
            if let (Some(ours), Some(theirs)) = (ours.as_table_mut(), theirs.as_table()) {
                // A file table of the recipe's own with its own path does not read the root.
                reads_root |= any && !ours.contains_key("path");
                fill_missing(ours, theirs);
            }
            continue;
        }
        let (filled, any) = placed(v, &dir);
        reads_root |= any;
        data.insert(key.clone(), filled);
    }
    Ok(reads_root.then(|| DatasetUse {
        dataset: d.clone(),
        dir,
    }))
}
