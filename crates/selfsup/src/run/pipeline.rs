//! The stages put together: recipe → data → model → training → evaluation. The command line is a
//! thin layer over these functions, and tests call them directly.
pub use super::data_fingerprint::fingerprint;
use crate::data::{self, ImageSet, ImageSource, TableSet};
use crate::encoders;
use crate::error::{BadInputPolicy, SkipReport};
use crate::eval::{knn, linear_probe};
use crate::methods::{self, Method};
use crate::recipe::{DataConfig, EvalConfig, Recipe};
use crate::stats::collapse::{collapse_stats, CollapseStats};
use crate::views::audio::AudioViews;
use crate::views::image_views::ImageViews;
use crate::views::loader::plain_batch;
use crate::views::series::SeriesViews;
use crate::views::table_corruption::TableViews;
use crate::views::ViewSource;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tch::{nn::VarStore, Device, Tensor};

/// Loaded data: the training set as a view source, the test set (for evaluation) and what was skipped.
pub struct Prepared {
    pub train: Arc<dyn ViewSource>,
    pub test: Option<Arc<dyn ViewSource>>,
    /// What pretraining reads when it is more than the labelled training set (text: the
    /// training sentences and the extra corpora).
    pub pretrain: Option<Arc<dyn ViewSource>>,
    /// The tokenizer the text was encoded with (saved as `tokenizer.json` in the run folder).
    pub tokenizer: Option<Arc<data::text::TextTokenizer>>,
    pub skipped: SkipReport,
    pub fingerprint: String,
}

pub use super::text_data::use_run_tokenizer;

impl Prepared {
    /// The samples pretraining reads.
    pub fn pretraining(&self) -> Arc<dyn ViewSource> {
        self.pretrain.clone().unwrap_or_else(|| self.train.clone())
    }
}

fn first_images(mut s: ImageSet, n: Option<usize>) -> ImageSet {
    if let Some(n) = n.filter(|&n| n < s.len) {
        s.pixels.truncate(n * s.image_len());
        s.len = n;
        if let Some(l) = s.labels.as_mut() {
            l.truncate(n);
        }
        if let Some(p) = s.sources.as_mut() {
            p.truncate(n);
        }
    }
    s
}

fn first_rows(mut t: TableSet, n: Option<usize>) -> TableSet {
    if let Some(n) = n.filter(|&n| n < t.n_rows) {
        t.values.truncate(n * t.n_features());
        t.n_rows = n;
        if let Some(l) = t.labels.as_mut() {
            l.truncate(n);
        }
        if let Some(l) = t.targets.as_mut() {
            l.truncate(n);
        }
    }
    t
}

type Sources = (Arc<dyn ViewSource>, Option<Arc<dyn ViewSource>>);

/// Train and test images as view sources, both with the recipe's augmentation.
pub fn image_sources(
    train: Arc<dyn ImageSource>,
    test: Option<Arc<dyn ImageSource>>,
    recipe: &Recipe,
) -> Sources {
    let aug = recipe.image_augments();
    let source =
        |s: Arc<dyn ImageSource>| Arc::new(ImageViews::new(s, aug.clone())) as Arc<dyn ViewSource>;
    (source(train), test.map(source))
}

/// An image folder in memory, or decoded from disk on demand (`stream = true`), or tar shards
/// (`shards`), cut to `limit`.
fn image_folder_source(
    dir: &std::path::Path,
    shards: bool,
    options: &data::image_folder::ImageFolderOptions,
    policy: BadInputPolicy,
    limit: Option<usize>,
    skipped: &mut SkipReport,
) -> Result<Arc<dyn ImageSource>> {
    Ok(if shards {
        let (mut s, r) = data::image_shards::ImageShards::open(dir, options, policy)?;
        skipped.merge(r);
        if let Some(n) = limit {
            s.truncate(n);
        }
        Arc::new(s)
    } else if options.stream {
        let (mut s, r) = data::image_stream::ImageStream::open(dir, options, policy)?;
        skipped.merge(r);
        if let Some(n) = limit {
            s.truncate(n);
        }
        Arc::new(s)
    } else {
        let (s, r) = data::image_folder::load_image_folder(dir, options, policy)?;
        skipped.merge(r);
        Arc::new(first_images(s, limit))
    })
}

/// The training and test clips of an audio recipe, in the order its view sources hold them:
/// a test folder, or the takes below `test_takes`, or no test set.
pub fn audio_sets(
    data: &DataConfig,
    policy: BadInputPolicy,
) -> Result<(
    data::audio::AudioSet,
    Option<data::audio::AudioSet>,
    SkipReport,
)> {
    let DataConfig::AudioFolder {
        train,
        test,
        options,
    } = data
    else {
        anyhow::bail!("not an audio recipe (data.format = \"audio_folder\")");
    };
    let (set, mut skipped) = data::audio::load_audio_folder(train, options, policy)?;
    let (tr, te) = match (test, options.test_takes) {
        (Some(p), _) => {
            let (t, s) = data::audio::load_audio_folder(p, options, policy)?;
            skipped.merge(s);
            let t = data::audio::folder::align_classes(&set, t)?;
            (set, Some(t))
        }
        (None, Some(k)) => {
            let (a, b) = data::audio::folder::split_by_take(&set, k)?;
            (a, Some(b))
        }
        (None, None) => (set, None),
    };
    Ok((tr, te, skipped))
}

/// Audio sets as spectrogram view sources, normalised by the training set's statistics.
fn audio_sources(
    train: data::audio::AudioSet,
    test: Option<data::audio::AudioSet>,
    options: &data::audio::AudioFolderOptions,
    recipe: &Recipe,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Sources {
    let cut = |s: data::audio::AudioSet, n: Option<usize>| match n.filter(|&n| n < s.len()) {
        Some(n) => s.subset(&(0..n).collect::<Vec<_>>()),
        None => s,
    };
    let train = cut(train, train_limit);
    let offsets = |set: &data::audio::AudioSet| match options.normalise {
        data::audio::AudioNormalise::Dataset => Vec::new(),
        data::audio::AudioNormalise::ClipMean => set.clip_means(),
    };
    let train_offsets = offsets(&train);
    let norm = train.value_stats(&train_offsets);
    let augment = recipe.views.audio.clone().unwrap_or_default();
    let source = |set: data::audio::AudioSet, clip_offsets: Vec<Vec<f32>>| {
        Arc::new(AudioViews {
            clip_offsets,
            set: Arc::new(set),
            frames: options.frames,
            norm,
            silence: (options.mel.log_offset as f32).ln(),
            augment: augment.clone(),
        }) as Arc<dyn ViewSource>
    };
    let test = test.map(|t| {
        let t = cut(t, test_limit);
        let o = offsets(&t);
        source(t, o)
    });
    (source(train, train_offsets), test)
}

/// Reads the recipe's data. `train_limit` keeps only the first N training samples.
pub fn prepare_data(
    recipe: &Recipe,
    policy: BadInputPolicy,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<Prepared> {
    if let Some(d) = &recipe.dataset {
        d.require()?;
    }
    let mut skipped = SkipReport::default();
    let mut pretrain = None;
    let mut tokenizer = None;
    let (train, test): Sources = match &recipe.data {
        DataConfig::Idx {
            train_images,
            train_labels,
            test_images,
            test_labels,
        } => {
            let tr = first_images(
                data::idx::load_idx(train_images, train_labels.as_deref())?,
                train_limit,
            );
            let te = match test_images {
                Some(p) => Some(first_images(
                    data::idx::load_idx(p, test_labels.as_deref())?,
                    test_limit,
                )),
                None => None,
            };
            image_sources(
                Arc::new(tr),
                te.map(|t| Arc::new(t) as Arc<dyn ImageSource>),
                recipe,
            )
        }
        DataConfig::ImageFolder {
            train,
            test,
            options,
        }
        | DataConfig::ImageShards {
            train,
            test,
            options,
        } => {
            let shards = matches!(recipe.data, DataConfig::ImageShards { .. });
            let mut open = |dir: &Path, limit| {
                image_folder_source(dir, shards, options, policy, limit, &mut skipped)
            };
            let tr = open(train, train_limit)?;
            let te = match test {
                Some(p) => Some(open(p, test_limit)?),
                None => None,
            };
            image_sources(tr, te, recipe)
        }
        DataConfig::Csv {
            train,
            test,
            options,
            test_options,
        } => {
            let corruption = recipe.table_corruption();
            let (tr, s) = data::csv_table::load_csv_fit(train, options, policy)?;
            skipped.merge(s);
            let te = match test {
                Some(p) => {
                    let (t, s) = data::csv_table::load_csv_with(
                        p,
                        test_options.as_ref().unwrap_or(options),
                        &tr,
                        policy,
                    )?;
                    skipped.merge(s);
                    Some(first_rows(t, test_limit))
                }
                None => None,
            };
            (
                Arc::new(TableViews {
                    table: Arc::new(first_rows(tr, train_limit)),
                    corruption: corruption.clone(),
                }),
                te.map(|t| {
                    Arc::new(TableViews {
                        table: Arc::new(t),
                        corruption,
                    }) as Arc<dyn ViewSource>
                }),
            )
        }
        DataConfig::Ucr {
            path,
            name,
            options,
        } => {
            let (tr, te, s) = data::ucr::load_ucr(path, name, options, policy)?;
            skipped.merge(s);
            let augment = if recipe.method.needs().own_views {
                crate::views::series::SeriesAugment::IDENTITY
            } else {
                recipe.views.series.clone().unwrap_or_default()
            };
            let source = |mut s: data::ucr::SeriesSet, limit: Option<usize>| {
                if let Some(n) = limit.filter(|&n| n < s.len) {
                    s.values.truncate(n * s.length);
                    s.lengths.truncate(n);
                    s.labels.truncate(n);
                    s.len = n;
                }
                Arc::new(SeriesViews {
                    set: Arc::new(s),
                    augment: augment.clone(),
                    second: recipe.views.series2.clone(),
                }) as Arc<dyn ViewSource>
            };
            (source(tr, train_limit), Some(source(te, test_limit)))
        }
        DataConfig::AudioFolder { options, .. } => {
            let (tr, te, s) = audio_sets(&recipe.data, policy)?;
            skipped.merge(s);
            audio_sources(tr, te, options, recipe, train_limit, test_limit)
        }
        DataConfig::Text {
            train,
            test,
            corpora,
            tokenizer: options,
        } => {
            let t = super::text_data::text_sources(
                recipe,
                train,
                test.as_ref(),
                corpora,
                options,
                policy,
                train_limit,
                test_limit,
            )?;
            skipped.merge(t.skipped);
            pretrain = Some(t.pretrain);
            tokenizer = Some(t.tokenizer);
            (t.train, t.test)
        }
        DataConfig::CsvImages {
            train,
            test,
            options,
        } => {
            let (tr, te, s) =
                data::csv_images::load_split(train, test.as_deref(), options, policy)?;
            skipped.merge(s);
            image_sources(
                Arc::new(first_images(tr, train_limit)),
                te.map(|t| Arc::new(first_images(t, test_limit)) as Arc<dyn ImageSource>),
                recipe,
            )
        }
        DataConfig::Paired { .. } => {
            let p = super::paired_data::paired_sources(recipe, policy, train_limit, test_limit)?;
            skipped.merge(p.skipped);
            (p.train, p.test)
        }
        DataConfig::Planetoid { .. } | DataConfig::PlanetoidNpz { .. } | DataConfig::Tu { .. } => {
            anyhow::bail!(
                "graph data is not read as samples: graph recipes run through `selfsup pretrain` \
                 and `selfsup graph`"
            )
        }
    };
    if skipped.skipped > 0 {
        tracing::warn!(
            "skipped {} bad samples; first: {:?}",
            skipped.skipped,
            skipped.examples
        );
    }
    Ok(Prepared {
        train,
        test,
        pretrain,
        tokenizer,
        skipped,
        fingerprint: fingerprint(&recipe.data)?,
    })
}

/// A method with its parameters: encoder variables live under `encoder.`, heads under `method.`.
pub struct Model {
    pub vs: VarStore,
    pub method: Box<dyn Method>,
}

/// The model of a recipe for the samples of `source` (one encoder per modality for paired data).
pub fn build_model_for(recipe: &Recipe, source: &dyn ViewSource, device: Device) -> Result<Model> {
    if recipe.data.is_paired() {
        return super::paired_data::build_paired_model(recipe, &source.modality_shapes(), device);
    }
    build_model(
        recipe,
        &source.sample_shape(),
        source.feature_spans().as_deref(),
        device,
    )
}

pub fn build_model(
    recipe: &Recipe,
    sample_shape: &[i64],
    spans: Option<&[crate::data::FeatureSpan]>,
    device: Device,
) -> Result<Model> {
    anyhow::ensure!(
        !recipe.data.is_paired(),
        "{}: a paired recipe trains through `selfsup pretrain` and `selfsup multimodal`",
        recipe.name
    );
    // Seeding and initialisation under the generator lock: the initial weights depend on the
    // seed alone, whatever else runs on other threads.
    let _init = crate::torch_rng::lock();
    // Initialisation is the only use of libtorch's generator; every later draw is keyed (rng.rs).
    tch::manual_seed(recipe.seed as i64);
    let vs = VarStore::new(device);
    let make_encoder =
        |p: &tch::nn::Path| encoders::build_for(&recipe.encoder, p, sample_shape, spans);
    let method = methods::build(&recipe.method, &vs, &make_encoder)?;
    Ok(Model { vs, method })
}

/// Representations of the first `n` samples (plain inputs, encoder in evaluation mode), on the CPU.
pub fn embed(
    method: &dyn Method,
    source: &dyn ViewSource,
    n: usize,
    batch: usize,
    device: Device,
) -> Result<Tensor> {
    embed_with(source, n, batch, device, |x| method.embed(x))
}

/// `f` of the plain inputs of the first `n` samples, in batches, without gradient, on the CPU.
pub fn embed_with(
    source: &dyn ViewSource,
    n: usize,
    batch: usize,
    device: Device,
    f: impl Fn(&Tensor) -> Tensor,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut parts = Vec::new();
    for s in (0..n).step_by(batch.max(1)) {
        let x = plain_batch(source, s..(s + batch).min(n));
        stop_on_source_errors(source)?;
        parts.push(f(&x.to_device(device)).to_device(Device::Cpu));
    }
    Ok(Tensor::cat(&parts, 0))
}

/// The plain inputs themselves, flattened: the raw-feature baseline.
pub fn raw_features(source: &dyn ViewSource, n: usize) -> Result<Tensor> {
    let x = plain_batch(source, 0..n).flatten(1, -1);
    stop_on_source_errors(source)?;
    Ok(x)
}

/// The first error a source met while building inputs (an image that no longer decodes).
pub fn stop_on_source_errors(source: &dyn ViewSource) -> Result<()> {
    match source.take_errors().into_iter().next() {
        Some(e) => Err(anyhow::Error::new(e).context("reading the data while it is used")),
        None => Ok(()),
    }
}

pub fn labels(source: &dyn ViewSource, n: usize) -> Result<Tensor> {
    let l: Option<Vec<i64>> = (0..n).map(|i| source.label(i)).collect();
    let l = l.context("evaluation needs labels, and this data set has none")?;
    Ok(Tensor::from_slice(&l))
}

/// One evaluation figure, with everything needed to know what it means.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EvalRecord {
    /// e.g. `knn(k=200,T=0.1,cosine)` or `linear-probe(lbfgs,wd=0.0001,standardised)`.
    pub protocol: String,
    /// `learned` (the encoder's representation) or `raw` (the plain inputs).
    pub features: String,
    pub dim: i64,
    pub train_size: i64,
    pub test_size: i64,
    pub accuracy: f64,
    pub seconds: f64,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Knn,
    Linear,
    /// RBF SVM with C by 5-fold cross-validation (TS2Vec's protocol, eval/svm.rs).
    Svm,
    /// 1-NN under the Euclidean distance (series baselines; raw features only).
    NearestEuclidean,
    /// 1-NN under full-window DTW (series baselines; raw features only).
    NearestDtw,
}

impl Protocol {
    /// The start of its records' `protocol` field.
    pub fn prefix(self) -> &'static str {
        match self {
            Protocol::Knn => "knn",
            Protocol::Linear => "linear-probe",
            Protocol::Svm => "svm",
            Protocol::NearestEuclidean => "1nn-euclidean",
            Protocol::NearestDtw => "1nn-dtw",
        }
    }
    /// The accuracy `records` hold for this protocol (NaN when they hold none).
    pub fn accuracy_in(self, records: &[EvalRecord]) -> f64 {
        records
            .iter()
            .find(|r| r.protocol.starts_with(self.prefix()))
            .map_or(f64::NAN, |r| r.accuracy)
    }
    /// Whether the protocol only makes sense on the raw series.
    pub fn raw_only(self) -> bool {
        matches!(self, Protocol::NearestEuclidean | Protocol::NearestDtw)
    }
}

/// The protocols a recipe's `[eval]` asks for after pretraining: kNN and the linear probe, the
/// SVM with `svm = true`, the 1-NN series baselines with `nearest_raw = true`.
pub fn recipe_protocols(cfg: &EvalConfig) -> Vec<Protocol> {
    let mut p = vec![Protocol::Knn, Protocol::Linear];
    if cfg.svm {
        p.push(Protocol::Svm);
    }
    if cfg.nearest_raw {
        p.extend([Protocol::NearestEuclidean, Protocol::NearestDtw]);
    }
    p
}

/// Runs `protocols` on (train, test) features.
pub fn evaluate_features(
    features: &str,
    train: &Tensor,
    ytr: &Tensor,
    test: &Tensor,
    yte: &Tensor,
    n_classes: i64,
    cfg: &EvalConfig,
    protocols: &[Protocol],
) -> Vec<EvalRecord> {
    let mut out = Vec::new();
    let base =
        |protocol: String, accuracy: f64, seconds: f64, details: serde_json::Value| EvalRecord {
            protocol,
            features: features.to_string(),
            dim: train.size()[1],
            train_size: train.size()[0],
            test_size: test.size()[0],
            accuracy,
            seconds,
            details,
        };
    for p in protocols {
        let t = Instant::now();
        match p {
            Protocol::Knn => {
                let kc = knn::KnnConfig {
                    k: cfg.knn_k,
                    temperature: cfg.knn_temperature,
                    ..Default::default()
                };
                let (a, b) = knn::knn_inputs(features, train, test);
                let acc = knn::knn_accuracy(&a, ytr, &b, yte, n_classes, &kc);
                out.push(base(
                    format!("knn(k={},T={},cosine)", cfg.knn_k, cfg.knn_temperature),
                    acc,
                    t.elapsed().as_secs_f64(),
                    serde_json::json!({}),
                ));
            }
            Protocol::Linear => {
                let lc = linear_probe::LinearProbeConfig {
                    max_iters: cfg.probe_iters,
                    weight_decay: cfg.probe_weight_decay,
                    ..Default::default()
                };
                let r = linear_probe::linear_probe(train, ytr, test, yte, n_classes, &lc);
                let details = serde_json::to_value(&r).unwrap_or_default();
                out.push(base(
                    format!(
                        "linear-probe(lbfgs,wd={},standardised)",
                        cfg.probe_weight_decay
                    ),
                    r.test_accuracy,
                    t.elapsed().as_secs_f64(),
                    details,
                ));
            }
            Protocol::Svm => {
                match crate::eval::svm::svm_protocol(train, ytr, test, yte, n_classes as usize) {
                    Ok(r) => out.push(base(
                        "svm(rbf,gamma=scale,C by 5-fold CV)".into(),
                        r.accuracy,
                        t.elapsed().as_secs_f64(),
                        serde_json::to_value(&r).unwrap_or_default(),
                    )),
                    Err(e) => {
                        tracing::warn!("the SVM protocol failed on {features} features: {e:#}")
                    }
                }
            }
            Protocol::NearestEuclidean | Protocol::NearestDtw => {
                use crate::eval::nearest::{one_nn_accuracy, SeriesDistance};
                let distance = if *p == Protocol::NearestDtw {
                    SeriesDistance::Dtw { window: None }
                } else {
                    SeriesDistance::Euclidean
                };
                let acc = one_nn_accuracy(train, ytr, test, yte, distance);
                out.push(base(
                    p.prefix().into(),
                    acc,
                    t.elapsed().as_secs_f64(),
                    serde_json::json!({}),
                ));
            }
        }
    }
    out
}

/// Evaluates a trained method on the prepared train/test split, with the raw baseline when the
/// recipe asks for it.
pub fn evaluate(
    method: &dyn Method,
    prepared: &Prepared,
    cfg: &EvalConfig,
    protocols: &[Protocol],
    device: Device,
) -> Result<Vec<EvalRecord>> {
    Ok(evaluate_with_collapse(method, prepared, cfg, protocols, device)?.0)
}

/// [`evaluate`], also returning the collapse diagnostics (RankMe, normalised std) of the learned
/// test-split representations it has already computed.
pub fn evaluate_with_collapse(
    method: &dyn Method,
    prepared: &Prepared,
    cfg: &EvalConfig,
    protocols: &[Protocol],
    device: Device,
) -> Result<(Vec<EvalRecord>, CollapseStats)> {
    let test = prepared
        .test
        .as_ref()
        .context("the recipe names no test split to evaluate on")?;
    let (train, test) = (prepared.train.as_ref(), test.as_ref());
    let n_classes = train.n_classes().max(test.n_classes()) as i64;
    anyhow::ensure!(
        n_classes >= 2,
        "evaluation needs at least two classes in the labels"
    );
    let (ntr, nte) = (
        cfg.max_train_samples.unwrap_or(usize::MAX).min(train.len()),
        cfg.max_test_samples.unwrap_or(usize::MAX).min(test.len()),
    );
    let (ytr, yte) = (labels(train, ntr)?, labels(test, nte)?);
    let t = Instant::now();
    let ftr = embed(method, train, ntr, cfg.batch, device)?;
    let fte = embed(method, test, nte, cfg.batch, device)?;
    tracing::info!(
        "embedded {ntr} + {nte} samples in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let collapse = collapse_stats(&fte);
    tracing::info!(
        "test embeddings: RankMe {:.1} of {}, normalised std {:.4} (1/sqrt(D) = {:.4})",
        collapse.rankme,
        collapse.dim,
        collapse.normalised_std,
        1.0 / (collapse.dim as f64).sqrt()
    );
    let learned: Vec<Protocol> = protocols
        .iter()
        .copied()
        .filter(|p| !p.raw_only())
        .collect();
    let mut out = evaluate_features("learned", &ftr, &ytr, &fte, &yte, n_classes, cfg, &learned);
    // Token ids are not features: text has no raw baseline (text-table has TF-IDF's).
    if cfg.raw_baseline && prepared.tokenizer.is_none() {
        out.extend(evaluate_features(
            "raw",
            &raw_features(train, ntr)?,
            &ytr,
            &raw_features(test, nte)?,
            &yte,
            n_classes,
            cfg,
            protocols,
        ));
    }
    Ok((out, collapse))
}

/// Online kNN accuracy on a subset (the monitor during pretraining).
pub fn monitor_knn(
    method: &dyn Method,
    prepared: &Prepared,
    cfg: &EvalConfig,
    device: Device,
) -> Result<f64> {
    let test = prepared
        .test
        .as_ref()
        .context("the online monitor needs a test split")?;
    let (train, test) = (prepared.train.as_ref(), test.as_ref());
    let n_classes = train.n_classes().max(test.n_classes()) as i64;
    let ntr = cfg.monitor_train_samples.min(train.len());
    let nte = cfg.max_test_samples.unwrap_or(usize::MAX).min(test.len());
    let ftr = embed(method, train, ntr, cfg.batch, device)?;
    let fte = embed(method, test, nte, cfg.batch, device)?;
    let kc = knn::KnnConfig {
        k: cfg.knn_k,
        temperature: cfg.knn_temperature,
        ..Default::default()
    };
    Ok(knn::knn_accuracy(
        &ftr,
        &labels(train, ntr)?,
        &fte,
        &labels(test, nte)?,
        n_classes,
        &kc,
    ))
}

/// A plain-text table of evaluation records.
pub fn format_table(records: &[EvalRecord]) -> String {
    // The protocol column is as wide as its longest name (graph protocols describe themselves
    // at length).
    let w = records
        .iter()
        .map(|r| r.protocol.chars().count())
        .max()
        .unwrap_or(0)
        .max(42);
    let mut s = format!(
        "{:<8} {:<w$} {:>6} {:>7} {:>7} {:>9} {:>7}\n",
        "features", "protocol", "dim", "train", "test", "accuracy", "time"
    );
    for r in records {
        s.push_str(&format!(
            "{:<8} {:<w$} {:>6} {:>7} {:>7} {:>8.2}% {:>6.1}s\n",
            r.features,
            r.protocol,
            r.dim,
            r.train_size,
            r.test_size,
            r.accuracy * 100.0,
            r.seconds
        ));
    }
    s
}
