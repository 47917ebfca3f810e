//! Data and model of a paired (multimodal) recipe: each modality is read as its own recipe
//! would read it, the pairs are drawn by class or read from the manifest, and the model has one
//! encoder per modality (modality 0's under `encoder.`, as any run's, the others under
//! `modalities.<name>.`).
use super::pipeline::{self, Model, Prepared};
use crate::data::pairs::{self, Members, Pairing};
use crate::encoders;
use crate::error::{BadInputPolicy, SkipReport};
use crate::recipe::{DataConfig, Recipe};
use crate::views::paired::PairedViews;
use crate::views::ViewSource;
use anyhow::{Context, Result};
use std::sync::Arc;
use tch::{nn::VarStore, Device};

/// Every modality's data, read by its own recipe (all of it: limits apply to the pairs).
pub fn modality_data(recipe: &Recipe, policy: BadInputPolicy) -> Result<Vec<Prepared>> {
    (0..recipe.modalities().len())
        .map(|k| {
            let sub = recipe.modality_recipe(k).expect("k < modalities");
            let name = &recipe.modalities()[k].name;
            pipeline::prepare_data(&sub, policy, None, None)
                .with_context(|| format!("modality {name}"))
        })
        .collect()
}

pub struct PairedSources {
    pub train: Arc<dyn ViewSource>,
    pub test: Option<Arc<dyn ViewSource>>,
    pub skipped: SkipReport,
}

fn members<'a>(name: &'a str, s: &dyn ViewSource) -> Members<'a> {
    Members {
        name,
        labels: (0..s.len()).map(|i| s.label(i)).collect(),
        sources: (0..s.len()).map(|i| s.source(i)).collect(),
    }
}

/// The pairs of the training and (when every modality has one) the test split.
pub fn paired_sources(
    recipe: &Recipe,
    policy: BadInputPolicy,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<PairedSources> {
    let DataConfig::Paired { pairing, .. } = &recipe.data else {
        anyhow::bail!("not a paired recipe");
    };
    let parts = modality_data(recipe, policy)?;
    let names: Vec<&str> = recipe
        .modalities()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let mut skipped = SkipReport::default();
    for p in &parts {
        skipped.merge(p.skipped.clone());
    }
    let split = |sources: Vec<Arc<dyn ViewSource>>,
                 manifest: Option<&std::path::Path>,
                 what: &str,
                 limit: Option<usize>|
     -> Result<Arc<dyn ViewSource>> {
        let m: Vec<Members> = names
            .iter()
            .zip(&sources)
            .map(|(n, s)| members(n, s.as_ref()))
            .collect();
        let mut tuples = match (pairing, manifest) {
            (Pairing::Label { seed }, _) => {
                pairs::by_label(&m, *seed, what).map_err(anyhow::Error::msg)?
            }
            (Pairing::Manifest { .. }, Some(path)) => pairs::read_manifest(path, &m)?,
            (Pairing::Manifest { .. }, None) => unreachable!("no manifest, no split"),
        };
        if let Some(n) = limit {
            tuples.truncate(n);
        }
        Ok(Arc::new(PairedViews {
            parts: sources,
            pairs: Arc::new(tuples),
        }))
    };
    let (train_manifest, test_manifest) = match pairing {
        Pairing::Manifest { train, test } => (Some(train.as_path()), test.as_deref()),
        Pairing::Label { .. } => (None, None),
    };
    let train = split(
        parts.iter().map(|p| p.train.clone()).collect(),
        train_manifest,
        "training split",
        train_limit,
    )?;
    let tests: Option<Vec<Arc<dyn ViewSource>>> = parts.iter().map(|p| p.test.clone()).collect();
    let test = match (tests, pairing, test_manifest) {
        (Some(t), Pairing::Label { .. }, _) | (Some(t), Pairing::Manifest { .. }, Some(_)) => {
            Some(split(t, test_manifest, "test split", test_limit)?)
        }
        _ => None,
    };
    Ok(PairedSources {
        train,
        test,
        skipped,
    })
}

/// One encoder per modality for inputs of `shapes` (one per modality), and the method over them.
pub fn build_paired_model(recipe: &Recipe, shapes: &[Vec<i64>], device: Device) -> Result<Model> {
    let modalities = recipe.modalities();
    anyhow::ensure!(
        shapes.len() == modalities.len(),
        "{} modalities, but data of {}",
        modalities.len(),
        shapes.len()
    );
    let _init = crate::torch_rng::lock();
    tch::manual_seed(recipe.seed as i64);
    let vs = VarStore::new(device);
    let mut built = Vec::with_capacity(modalities.len());
    for (k, (m, shape)) in modalities.iter().zip(shapes).enumerate() {
        let path = if k == 0 {
            vs.root() / "encoder"
        } else {
            vs.root() / "modalities" / m.name.as_str()
        };
        built.push(
            encoders::build_for(&m.encoder, &path, shape, None)
                .with_context(|| format!("the encoder of modality {}", m.name))?,
        );
    }
    let method = recipe.method.spec().build_paired(&vs, built)?;
    Ok(Model { vs, method })
}
