//! Recipes: a TOML file that maps 1:1 onto these structs (unknown keys are refused), checked by
//! [`validate`](Recipe::validate) before any work starts. Any field can be overridden with
//! `--set path.to.field=value`.
use crate::data::csv_table::CsvOptions;
use crate::data::image_folder::ImageFolderOptions;
use crate::encoders::EncoderConfig;
use crate::methods::MethodConfig;
use crate::views::image_aug::ImageAugment;
use crate::views::table_corruption::TableCorruption;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub mod modality;
pub mod overrides;
mod validate;
pub use crate::rules::RecipeError;
pub use crate::train::config::{NanPolicy, TrainConfig};
pub use modality::Modality;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Names the run folder (`runs/<name>`) unless `--run-dir` says otherwise.
    pub name: String,
    /// Seeds model initialisation, data order and every augmentation.
    #[serde(default)]
    pub seed: u64,
    /// The seeds of the protocol's table of independent runs (`selfsup graph`: GraphMAE
    /// reports 20 seeds on the node sets, 5 on the graph sets); one run uses `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    pub data: DataConfig,
    #[serde(default)]
    pub views: ViewsConfig,
    pub encoder: EncoderConfig,
    pub method: MethodConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    /// The published figure for this (method, data, protocol), printed beside ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperFigure>,
    /// The registry dataset `[data] dataset = "NAME"` named (its paths are in `data`); checked
    /// for presence when the data is read. Not written: a written recipe holds the paths.
    #[serde(skip)]
    pub dataset: Option<crate::datasets::resolve::DatasetUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperFigure {
    pub mean: f64,
    pub std: f64,
    /// Where the figure comes from (paper, table).
    pub source: String,
}

/// Where the samples come from. Relative paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// IDX files (MNIST, Fashion-MNIST), raw or gzipped. Labels are used only for evaluation.
    Idx {
        train_images: PathBuf,
        train_labels: Option<PathBuf>,
        test_images: Option<PathBuf>,
        test_labels: Option<PathBuf>,
    },
    /// A folder of PNG/JPEG images: class sub-folders (labels) or a flat folder (unlabeled).
    ImageFolder {
        train: PathBuf,
        test: Option<PathBuf>,
        #[serde(default)]
        options: ImageFolderOptions,
    },
    /// Images packed in `.tar` shards (WebDataset layout: `KEY.jpg`/`KEY.png` and `KEY.cls`),
    /// read by offset and decoded in the loader threads (`data/image_shards.rs`); `train` and
    /// `test` are folders of shards (`selfsup data pack` writes them from an image folder).
    ImageShards {
        train: PathBuf,
        test: Option<PathBuf>,
        #[serde(default)]
        options: ImageFolderOptions,
    },
    /// A CSV table; the test file is encoded with the statistics of the training file.
    Csv {
        train: PathBuf,
        test: Option<PathBuf>,
        options: CsvOptions,
        /// Reading options for the test file when they differ (e.g. UCI Adult's test file starts
        /// with an extra line); defaults to `options`.
        test_options: Option<CsvOptions>,
    },
    /// A UCR archive set (`<name>_TRAIN.tsv`, `<name>_TEST.tsv`) from a folder or the archive's
    /// `.tar.xz`: univariate series with class labels.
    Ucr {
        path: PathBuf,
        name: String,
        #[serde(default)]
        options: crate::data::ucr::UcrOptions,
    },
    /// A folder of WAV clips read as log-mel spectrograms `[1, mels, frames]` (`data/audio/`):
    /// labels (and speakers) from FSDD's `{label}_{speaker}_{take}.wav` names or from class
    /// sub-folders; the test set is a second folder or, for FSDD names, the takes below
    /// `options.test_takes`.
    AudioFolder {
        train: PathBuf,
        test: Option<PathBuf>,
        #[serde(default)]
        options: crate::data::audio::AudioFolderOptions,
    },
    /// Text (`data/text/`): a training file of sentences (TSV, CSV, lines or windows of a
    /// corpus) with optional labels, an optional test file, extra unlabelled corpora that
    /// pretraining reads beside the training texts, and the subword tokenizer trained on all
    /// of them.
    Text {
        train: crate::data::text::TextFile,
        test: Option<crate::data::text::TextFile>,
        #[serde(default)]
        corpora: Vec<crate::data::text::TextFile>,
        #[serde(default)]
        tokenizer: crate::data::text::TokenizerOptions,
    },
    /// Images as CSV rows of pixel values and a class (scikit-learn's 8×8 digits), raw or
    /// gzipped (`data/csv_images.rs`); the test set is a second file or a stratified fraction.
    CsvImages {
        train: PathBuf,
        test: Option<PathBuf>,
        options: crate::data::csv_images::CsvImageOptions,
    },
    /// Samples of several modalities in pairs (`data/pairs.rs`): each modality brings a
    /// unimodal recipe's data, views and encoder (`recipe/modality.rs`); a multimodal method
    /// (CLIP) sees one view per modality of every pair.
    Paired {
        modalities: Vec<Modality>,
        #[serde(default)]
        pairing: crate::data::pairs::Pairing,
    },
    /// A Planetoid citation graph, `ind.<name>.*` pickles (Yang et al. 2016), assembled as Kipf
    /// & Welling do; node-level tasks on its public split.
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
    /// A TU graph-classification set (directory or `.tar.xz`): graph-level tasks.
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

impl DataConfig {
    pub fn is_table(&self) -> bool {
        matches!(self, DataConfig::Csv { .. })
    }
    /// Graph data: one graph (Planetoid) or a set of graphs (TU).
    pub fn is_graph(&self) -> bool {
        matches!(
            self,
            DataConfig::Planetoid { .. } | DataConfig::PlanetoidNpz { .. } | DataConfig::Tu { .. }
        )
    }
    /// Pairs of samples of several modalities.
    pub fn is_paired(&self) -> bool {
        matches!(self, DataConfig::Paired { .. })
    }
    /// Time series (UCR).
    pub fn is_series(&self) -> bool {
        matches!(self, DataConfig::Ucr { .. })
    }
    /// Audio clips (WAV folders).
    pub fn is_audio(&self) -> bool {
        matches!(self, DataConfig::AudioFolder { .. })
    }
    /// A set of small graphs with one label each (graph-level tasks).
    pub fn is_text(&self) -> bool {
        matches!(self, DataConfig::Text { .. })
    }
    pub fn is_graph_level(&self) -> bool {
        matches!(self, DataConfig::Tu { .. })
    }
    /// Every file or folder the recipe reads, for fingerprints and error messages.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            DataConfig::Idx {
                train_images,
                train_labels,
                test_images,
                test_labels,
            } => {
                let mut v: Vec<&Path> = vec![train_images];
                v.extend(
                    [train_labels, test_images, test_labels]
                        .into_iter()
                        .flatten()
                        .map(PathBuf::as_path),
                );
                v
            }
            DataConfig::ImageFolder { train, test, .. }
            | DataConfig::ImageShards { train, test, .. }
            | DataConfig::AudioFolder { train, test, .. }
            | DataConfig::CsvImages { train, test, .. }
            | DataConfig::Csv { train, test, .. } => {
                let mut v: Vec<&Path> = vec![train];
                v.extend(test.as_deref());
                v
            }
            DataConfig::Paired {
                modalities,
                pairing,
            } => {
                let mut v: Vec<&Path> = modalities.iter().flat_map(|m| m.data.paths()).collect();
                v.extend(pairing.paths());
                v
            }
            DataConfig::Text {
                train,
                test,
                corpora,
                tokenizer,
            } => {
                let mut v: Vec<&Path> = vec![&train.path];
                v.extend(test.as_ref().map(|t| t.path.as_path()));
                v.extend(corpora.iter().map(|c| c.path.as_path()));
                // Not the tokenizer file: it is derived from these (a run's own saved copy),
                // and a run resumed with it reads the same data.
                let _ = tokenizer;
                v
            }
            DataConfig::Planetoid { path, .. }
            | DataConfig::PlanetoidNpz { path, .. }
            | DataConfig::Tu { path, .. }
            | DataConfig::Ucr { path, .. } => vec![path],
        }
    }

    /// The same paths, for rewriting (e.g. making them absolute).
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            DataConfig::Idx {
                train_images,
                train_labels,
                test_images,
                test_labels,
            } => {
                let mut v = vec![train_images];
                v.extend(
                    [train_labels, test_images, test_labels]
                        .into_iter()
                        .flatten(),
                );
                v
            }
            DataConfig::ImageFolder { train, test, .. }
            | DataConfig::ImageShards { train, test, .. }
            | DataConfig::AudioFolder { train, test, .. }
            | DataConfig::CsvImages { train, test, .. }
            | DataConfig::Csv { train, test, .. } => {
                let mut v = vec![train];
                v.extend(test.as_mut());
                v
            }
            DataConfig::Paired {
                modalities,
                pairing,
            } => {
                let mut v: Vec<&mut PathBuf> = Vec::new();
                for m in modalities {
                    v.extend(m.recipe.as_mut());
                    v.extend(m.data.paths_mut());
                }
                v.extend(pairing.paths_mut());
                v
            }
            DataConfig::Text {
                train,
                test,
                corpora,
                tokenizer,
            } => {
                let mut v = vec![&mut train.path];
                v.extend(test.as_mut().map(|t| &mut t.path));
                v.extend(corpora.iter_mut().map(|c| &mut c.path));
                v.extend(tokenizer.file.as_mut());
                v
            }
            DataConfig::Planetoid { path, .. }
            | DataConfig::PlanetoidNpz { path, .. }
            | DataConfig::Tu { path, .. }
            | DataConfig::Ucr { path, .. } => vec![path],
        }
    }
}

/// Augmentations: `[views.image]` for image data, `[views.table]` for tables; the paper defaults
/// apply when the table is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewsConfig {
    pub image: Option<ImageAugment>,
    /// The second view's pipeline when the pair is asymmetric (BYOL: blur with p = 0.1 and
    /// solarisation with p = 0.2 on the second view); defaults to `image`.
    pub image2: Option<ImageAugment>,
    /// Extra low-resolution crops per sample for multi-crop methods (DINO, SwAV).
    #[serde(default)]
    pub local_crops: usize,
    /// Pipeline of the local crops (needed when `local_crops > 0`; e.g. `size = [12, 12]`,
    /// `crop_scale = [0.05, 0.4]`).
    pub local: Option<ImageAugment>,
    pub table: Option<TableCorruption>,
    /// Time-series views (`[views.series]`: jitter, scaling, window slice, segment permutation).
    pub series: Option<crate::views::series::SeriesAugment>,
    /// The second view's series augmentation when it differs from the first (TS-TCC's strong
    /// view: permutation + jitter, beside the weak scaling + jitter of `[views.series]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series2: Option<crate::views::series::SeriesAugment>,
    /// Spectrogram views (`[views.audio]`: random window, gain, mixup, random resized crop,
    /// SpecAugment masks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<crate::views::audio::AudioAugment>,
}

/// Evaluation protocols run after pretraining (and by `selfsup eval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Weighted kNN (Wu et al. 2018): neighbours and temperature.
    pub knn_k: usize,
    pub knn_temperature: f64,
    /// Linear probe: L-BFGS iterations and L2 coefficient.
    pub probe_iters: usize,
    pub probe_weight_decay: f64,
    /// Run the same protocols on the raw inputs beside the learned representation.
    pub raw_baseline: bool,
    /// Online kNN monitor every N epochs during pretraining (0: off).
    pub monitor_every: u64,
    /// Training samples used as the monitor's kNN memory bank.
    pub monitor_train_samples: usize,
    /// Use only the first N samples of the evaluation train / test sets.
    pub max_train_samples: Option<usize>,
    pub max_test_samples: Option<usize>,
    /// Samples per forward pass when embedding.
    pub batch: usize,
    /// Fine-tuning protocol (`selfsup eval fine-tune`): epochs, Adam learning rate, batch and the
    /// stratified fraction of training labels used.
    pub finetune_epochs: u64,
    pub finetune_lr: f64,
    pub finetune_batch: usize,
    pub finetune_label_fraction: f64,
    /// Layer-wise learning-rate decay for encoders that declare layers (ViT): layer l of n gets
    /// lr·decay^(n−1−l), as MAE fine-tunes (He et al. 2022, appendix A.2: 0.75 for ViT-B).
    pub finetune_layer_decay: Option<f64>,
    /// Decoupled weight decay (AdamW; 0 = plain Adam).
    pub finetune_weight_decay: f64,
    /// Cosine decay of the learning rate to 0 over fine-tuning (else constant).
    pub finetune_cosine: bool,
    /// Exempt biases, norm parameters (every 1-D tensor), the class token and the position
    /// embedding from the weight decay, as MAE's fine-tuning does (off: every tensor decays, the
    /// setting the shipped ViT figures were measured with).
    pub finetune_exclude_bias_and_norm: bool,
    /// What fine-tuning optimises: `{ name = "cross_entropy" }` (default), `{ name = "sla",
    /// rotations = 4, aggregate = true }` (SLA) or `{ name = "ps_kd", alpha_t = 0.8 }` (PS-KD).
    /// (Left out of the written recipe at their defaults, so that recipes and run hashes from
    /// before these settings existed read back the same.)
    #[serde(
        skip_serializing_if = "crate::eval::supervised::SupervisedObjective::is_cross_entropy"
    )]
    pub finetune_objective: crate::eval::supervised::SupervisedObjective,
    /// SAM or ASAM around fine-tuning's optimiser: `{ rho = 0.05, adaptive = false }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetune_sam: Option<crate::train::sam::SamConfig>,
    /// Self-training after fine-tuning (`selfsup eval self-train`): rounds, confidence threshold
    /// of the pseudo-labels, epochs of each student.
    #[serde(skip_serializing_if = "crate::eval::self_training::SelfTrainingConfig::is_default")]
    pub self_training: crate::eval::self_training::SelfTrainingConfig,
    /// Also score with an RBF SVM, C chosen by 5-fold cross-validation (TS2Vec's protocol).
    pub svm: bool,
    /// With the raw baseline, also 1-NN under the Euclidean distance and DTW (series data).
    pub nearest_raw: bool,
    /// The protocol that scores graph embeddings (`[eval.graph]`; graph data only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<crate::eval::graph::protocol::GraphEvalConfig>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            knn_k: 200,
            knn_temperature: 0.1,
            probe_iters: 500,
            probe_weight_decay: 1e-4,
            raw_baseline: true,
            monitor_every: 0,
            monitor_train_samples: 10_000,
            max_train_samples: None,
            max_test_samples: None,
            batch: 1000,
            finetune_epochs: 5,
            finetune_lr: 1e-3,
            finetune_batch: 256,
            finetune_label_fraction: 1.0,
            finetune_layer_decay: None,
            finetune_weight_decay: 0.0,
            finetune_cosine: false,
            finetune_exclude_bias_and_norm: false,
            finetune_objective: Default::default(),
            finetune_sam: None,
            self_training: Default::default(),
            svm: false,
            nearest_raw: false,
            graph: None,
        }
    }
}

impl Recipe {
    /// Parses TOML text (`origin` names it in errors), applies overrides, resolves a dataset
    /// name against the data root of the environment ([`DataRoot::from_env`]), validates.
    ///
    /// [`DataRoot::from_env`]: crate::datasets::DataRoot::from_env
    pub fn from_toml(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Recipe, RecipeError> {
        Self::from_toml_in(
            text,
            origin,
            overrides,
            &crate::datasets::DataRoot::from_env(),
        )
    }

    /// As [`Recipe::from_toml`], with dataset names resolved against `root`.
    pub fn from_toml_in(
        text: &str,
        origin: &str,
        overrides: &[String],
        root: &crate::datasets::DataRoot,
    ) -> Result<Recipe, RecipeError> {
        Self::from_toml_at(text, origin, overrides, root, None)
    }

    /// As [`Recipe::from_toml_in`]; a paired recipe's modality files are relative to `dir`
    /// (the recipe's own folder) when given, else to the working directory.
    pub fn from_toml_at(
        text: &str,
        origin: &str,
        overrides: &[String],
        root: &crate::datasets::DataRoot,
        dir: Option<&Path>,
    ) -> Result<Recipe, RecipeError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| RecipeError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        for o in overrides {
            overrides::apply(&mut value, o)?;
        }
        let modality_datasets = modality::expand(&mut value, root, dir)?;
        let dataset = crate::datasets::resolve::resolve(
            &mut value,
            crate::datasets::Registry::builtin(),
            root,
        )?;
        let mut recipe: Recipe =
            value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| RecipeError::Parse {
                    origin: origin.into(),
                    message: e.to_string(),
                })?;
        if recipe.data.is_graph() {
            // Every number of a graph recipe must be finite (TOML allows nan and inf).
            if let Some(path) = validate::first_non_finite(&value, "") {
                return Err(RecipeError::Parse {
                    origin: origin.into(),
                    message: format!("{path}: must be a finite number"),
                });
            }
        }
        recipe.fill_text_vocab();
        recipe.set_modality_datasets(modality_datasets);
        recipe.validate()?;
        recipe.dataset = dataset;
        Ok(recipe)
    }

    pub fn load(path: &Path, overrides: &[String]) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError::Parse {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_at(
            &text,
            &path.display().to_string(),
            overrides,
            &crate::datasets::DataRoot::from_env(),
            path.parent(),
        )
    }

    /// A text encoder's vocabulary, when the recipe has one.
    pub fn encoder_vocab(&self) -> Option<i64> {
        match &self.encoder {
            crate::encoders::EncoderConfig::TextTransformer { vocab, .. } => *vocab,
            _ => None,
        }
    }

    /// A text encoder without `vocab` takes the tokenizer's vocabulary size.
    fn fill_text_vocab(&mut self) {
        if let (
            crate::encoders::EncoderConfig::TextTransformer { vocab, .. },
            DataConfig::Text { tokenizer, .. },
        ) = (&mut self.encoder, &self.data)
        {
            vocab.get_or_insert(tokenizer.vocab_size as i64);
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not serialise the recipe: {e}\n"))
    }

    /// A copy with the fields that schedule and log the work (workers, prefetch, logging and
    /// checkpoint cadence) set to fixed values: they change no trained weight and no figure.
    fn without_scheduling(&self) -> Recipe {
        let mut r = self.clone();
        r.seeds = None;
        r.paper = None;
        r.train.workers = 1;
        r.train.prefetch = 1;
        r.train.log_every = 1;
        r.train.checkpoint_every = 0;
        r.train.checkpoint_every_epochs = None;
        r.train.keep_checkpoints = 1;
        r
    }

    /// Hash of everything that shapes the trained weights; a resume with a different hash is refused.
    /// Fields that cannot change the result (threads, logging, evaluation) are left out.
    pub fn training_hash(&self) -> String {
        let mut r = self.without_scheduling();
        r.eval = EvalConfig::default();
        if let Some(a) = r.views.image.as_mut() {
            a.eval_size = None;
        }
        r.name = String::new();
        r.train.max_steps = None;
        // A text run resumes with the tokenizer it saved: the same training.
        if let DataConfig::Text { tokenizer, .. } = &mut r.data {
            tokenizer.file = None;
        }
        blake3::hash(r.to_toml().as_bytes()).to_hex()[..16].to_string()
    }

    /// blake3 of everything one seed's figures depend on — training and evaluation, all but the
    /// seed: a saved result (`selfsup compare` / `tabular --resume`) is reused only under the
    /// same fingerprint.
    pub fn results_fingerprint(&self) -> String {
        let mut r = self.without_scheduling();
        r.seed = 0;
        blake3::hash(r.to_toml().as_bytes()).to_hex().to_string()
    }

    /// The augmentation for image data (paper defaults when `[views.image]` is absent).
    pub fn image_augment(&self) -> ImageAugment {
        self.views.image.clone().unwrap_or_default()
    }
    /// One pipeline per view: the first global view, the second, then the local crops (the
    /// view source reuses the last entry for every further view).
    pub fn image_augments(&self) -> Vec<ImageAugment> {
        let first = self.image_augment();
        let second = self.views.image2.clone().unwrap_or_else(|| first.clone());
        let mut v = vec![first, second];
        if self.views.local_crops > 0 {
            v.extend(self.views.local.clone());
        }
        v
    }
    /// Views per sample in a training batch: the method's global views plus local crops.
    pub fn n_views(&self) -> usize {
        self.method.n_global_views() + self.views.local_crops
    }
    pub fn table_corruption(&self) -> TableCorruption {
        self.views.table.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
