//! The rules a recipe's values are held to: one error variant per rule ([`RecipeError`]), and
//! the checks shared by the recipe's own validation and every method's and protocol's
//! `validate`. In the core layer, so that each layer can state the rules of its own settings.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecipeError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// `data.dataset` names no dataset the registry has, or one no reader reads.
    #[error("{0}")]
    Dataset(String),
    #[error("--set {spec}: {message}")]
    Override { spec: String, message: String },
    #[error("{field} = {value}: a temperature must be > 0")]
    TemperatureNotPositive { field: &'static str, value: f64 },
    #[error("train.batch_size = {batch}: {method} needs at least {min} samples per batch")]
    BatchTooSmall {
        method: &'static str,
        batch: usize,
        min: usize,
    },
    #[error("data.format = \"paired\" aligns modalities with method.name = \"clip\", not {0}")]
    PairedNeedsClip(&'static str),
    #[error("method.name = \"clip\" needs paired data ([data] format = \"paired\")")]
    ClipNeedsPaired,
    #[error("method.predictor ends at width {predictor}, method.projector at {projector}: the prediction lives in the projections' space, so they must agree")]
    PredictorWidth { projector: i64, predictor: i64 },
    #[error("method.neighbours = {neighbours} exceeds method.memory = {memory}")]
    TooManyNeighbours { neighbours: i64, memory: i64 },
    #[error("data.modalities: {0}")]
    Modalities(String),
    #[error("{0}")]
    CsvImages(String),
    #[error("train.epochs = 0 (or train.steps = 0): nothing to train")]
    ZeroEpochs,
    #[error(
        "encoder.kernel = {0}: the dilated convolutions need an odd kernel (\"same\" padding)"
    )]
    EvenKernel(i64),
    #[error(
        "method.name = {method} makes its own views of each series; remove [views.series] \
         (its crops and masks are set under [method])"
    )]
    OwnViews { method: &'static str },
    #[error("eval.nearest_raw = true: 1-NN Euclidean/DTW baselines are defined on series data (format = \"ucr\")")]
    NearestNeedsSeries,
    #[error("train.epochs and train.steps are both set: give one length of training")]
    EpochsAndSteps,
    #[error("train.optimizer.lr = {0}: the learning rate must be > 0")]
    LearningRateNotPositive(f64),
    #[error("{field} = {value}: must be >= 0")]
    Negative { field: &'static str, value: f64 },
    #[error("train.optimizer.momentum = {0}: must be in [0, 1)")]
    MomentumOutOfRange(f64),
    #[error("train.optimizer.betas = {0:?}: each must be in [0, 1)")]
    BetasOutOfRange([f64; 2]),
    #[error("{field} = {value}: a probability must be in [0, 1]")]
    ProbabilityOutOfRange { field: &'static str, value: f64 },
    #[error("{field} = [{lo}, {hi}]: {rule}")]
    BadRange {
        field: &'static str,
        lo: f64,
        hi: f64,
        rule: &'static str,
    },
    #[error("{field} is empty: at least one layer is needed")]
    NoLayers { field: &'static str },
    #[error("{field} has a width of {value}: widths must be > 0")]
    NonPositiveWidth { field: &'static str, value: i64 },
    #[error("method.lambda = {0}: the Barlow Twins trade-off must be > 0")]
    LambdaNotPositive(f64),
    #[error("eval.knn_k = 0: kNN needs at least one neighbour")]
    KnnKZero,
    #[error(
        "views.local_crops = {0}: local crops need a [views.local] pipeline (at least its size)"
    )]
    LocalCropsWithoutPipeline(usize),
    #[error("{field}: only [views.image] sets the evaluation input")]
    EvalSizeNotInImage { field: &'static str },
    #[error(
        "views.image.eval_size differs from views.image.size, but a {encoder} encoder takes one \
         input size (small_cnn and resnet18 take any)"
    )]
    EvalSizeNeedsAnySize { encoder: &'static str },
    #[error("views.local_crops: {method} does not use multi-crop views (DINO and SwAV do)")]
    NoMultiCrop { method: &'static str },
    #[error("[views.{given}] does not apply to {data} data")]
    ViewsMismatch {
        given: &'static str,
        data: &'static str,
    },
    #[error("encoder.kind = {encoder}: it takes images, but the data is a table (use mlp)")]
    EncoderNeedsImages { encoder: &'static str },
    #[error("train.warmup_epochs = {warmup}: longer than train.epochs = {epochs}")]
    WarmupTooLong { warmup: f64, epochs: u64 },
    #[error("train.grad_clip = {0}: must be > 0 (leave it out for no clipping)")]
    GradClipNotPositive(f64),
    #[error("{field} = 0: must be at least 1")]
    ZeroCount { field: &'static str },
    #[error("views.image.blur_kernel = {0}: the Gaussian blur kernel must be odd (or 0 for 10% of the size)")]
    EvenBlurKernel(usize),
    #[error("views.image.std contains {0}: normalisation std must be > 0")]
    NonPositiveStd(f32),
    #[error("{field} = {value}: must be strictly between 0 and 1")]
    NotOpenFraction { field: &'static str, value: f64 },
    #[error("method.name = {method}: it needs encoder.kind = {kind}")]
    NeedsEncoder { method: &'static str, kind: String },
    #[error("{field} = {value}: must be > 0")]
    NotPositive { field: &'static str, value: f64 },
    #[error("{what} = {value}: {}", if *graph_data { "the data is a graph, which needs a graph method (graphmae, dgi, grace, bgrl) and a graph encoder (gcn, gat, gin)" } else { "graph methods and encoders need graph data (data.format = planetoid, planetoid_npz or tu)" })]
    ModalityMismatch {
        what: &'static str,
        value: String,
        graph_data: bool,
    },
    #[error("[eval.graph] names a graph protocol, but the data is not a graph")]
    GraphProtocolWithoutGraphs,
    #[error("graph data needs [eval.graph] with a protocol (public_split, dgi_logreg, random_split or graph_cv)")]
    NoGraphProtocol,
    #[error(
        "eval.graph.protocol: graph_cv goes with tu data, the node protocols with planetoid data"
    )]
    ProtocolLevel,
    #[error("seeds = []: at least one seed is needed")]
    NoSeeds,
    #[error(
        "encoder.kind = {encoder}: series data (format = \"ucr\") takes cnn1d, dilated_conv, \
         tstcc_conv or mlp, and the first three take series data"
    )]
    NeedsSeriesEncoder { encoder: &'static str },
    #[error(
        "encoder.kind = {encoder}: audio data takes audio_cnn, frame_transformer, vit, small_cnn, \
         resnet18 or mlp, and the first two take audio data only"
    )]
    NeedsAudioEncoder { encoder: &'static str },
    #[error("data.options: {0}")]
    AudioOptions(String),
    #[error(
        "encoder.kind = {encoder}: text data (format = \"text\") takes text_transformer, and \
         text_transformer takes text data only"
    )]
    NeedsTextEncoder { encoder: &'static str },
    #[error("{0}")]
    TextOptions(String),
    #[error("{field} = {value}: must be a finite number")]
    NotFinite { field: &'static str, value: f64 },
    /// A multi-task method with every task weighted 0.
    #[error("{method}: no pretext task is on ({tasks})")]
    NoTask {
        method: &'static str,
        tasks: &'static str,
    },
}

pub type R = Result<(), RecipeError>;

pub fn finite(field: &'static str, value: f64) -> R {
    if value.is_finite() {
        Ok(())
    } else {
        Err(RecipeError::NotFinite { field, value })
    }
}
pub fn probability(field: &'static str, value: f64) -> R {
    finite(field, value)?;
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(RecipeError::ProbabilityOutOfRange { field, value })
    }
}
pub fn non_negative(field: &'static str, value: f64) -> R {
    finite(field, value)?;
    if value >= 0.0 {
        Ok(())
    } else {
        Err(RecipeError::Negative { field, value })
    }
}
/// An ordered range of fractions: 0 < lo <= hi <= 1 (or < 1 when `one_allowed` is false).
pub fn fraction_range(field: &'static str, [lo, hi]: [f64; 2], one_allowed: bool) -> R {
    let hi_ok = if one_allowed { hi <= 1.0 } else { hi < 1.0 };
    if lo > 0.0 && lo <= hi && hi_ok {
        Ok(())
    } else {
        Err(RecipeError::BadRange {
            field,
            lo,
            hi,
            rule: if one_allowed {
                "need 0 < lo <= hi <= 1"
            } else {
                "need 0 < lo <= hi < 1"
            },
        })
    }
}
pub fn open_fraction(field: &'static str, value: f64) -> R {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(RecipeError::NotOpenFraction { field, value })
    }
}
pub fn positive(field: &'static str, value: f64) -> R {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RecipeError::NotPositive { field, value })
    }
}
pub fn temperature(field: &'static str, value: f64) -> R {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RecipeError::TemperatureNotPositive { field, value })
    }
}
pub fn widths(field: &'static str, dims: impl IntoIterator<Item = i64>) -> R {
    let mut any = false;
    for d in dims {
        any = true;
        if d <= 0 {
            return Err(RecipeError::NonPositiveWidth { field, value: d });
        }
    }
    if any {
        Ok(())
    } else {
        Err(RecipeError::NoLayers { field })
    }
}

/// A momentum (EMA coefficient, centre momentum): in [0, 1].
pub fn momentum(field: &'static str, m: f64) -> R {
    if (0.0..=1.0).contains(&m) {
        Ok(())
    } else {
        Err(RecipeError::BadRange {
            field,
            lo: m,
            hi: m,
            rule: "a momentum must be in [0, 1]",
        })
    }
}
