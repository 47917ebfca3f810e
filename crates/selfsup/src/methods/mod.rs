//! Methods wire views + encoder + heads + objective. A method is one file — its configuration
//! (the `[method]` table), the rules that configuration obeys, what it needs of the data and the
//! encoder ([`MethodSpec`]), and the method itself ([`Method`]) — plus one line in the registry
//! at the end of this file.
//!
//! Method state that is not trained by gradients (EMA teachers, queues, centres) lives in the run's
//! `VarStore` as non-trainable variables, so it is checkpointed, checksummed and restored with the
//! model, and the trainer's non-finite guard restores it together with batch-norm statistics.
use crate::distributed::Collective;
use crate::encoders::{Encoder, EncoderConfig};
use crate::views::graph::batch::GraphBatch;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

pub mod branch;
pub mod ema;
pub mod queue;
pub mod text_batch;

/// Where training stands, for schedules inside a method (EMA momentum, DINO's teacher
/// temperature, SwAV's prototype freezing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Optimiser steps taken before this one.
    pub step: u64,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

impl Progress {
    /// Fraction of training done, in [0, 1].
    pub fn fraction(&self) -> f64 {
        (self.step as f64 / self.total_steps.max(1) as f64).min(1.0)
    }
    /// Epochs done, fractional.
    pub fn epoch(&self) -> f64 {
        self.step as f64 / self.steps_per_epoch.max(1) as f64
    }
    /// A fixed point, for tests and single forward passes.
    pub fn at(step: u64, total_steps: u64, steps_per_epoch: u64) -> Progress {
        Progress {
            step,
            total_steps,
            steps_per_epoch,
        }
    }
}

/// What a method sees of one training step.
pub struct StepInput<'a> {
    /// `views[v]` is `[N, ...]`: the global views first, then any local (multi-crop) views.
    pub views: &'a [Tensor],
    /// Class labels `[N]`, when the data has them (only supervised methods use them).
    pub labels: Option<&'a Tensor>,
    /// Token masks the loader drew for [`Method::mask_spec`] (empty for other methods).
    pub masks: &'a [Tensor],
    pub progress: Progress,
    /// The run's seed: a method that draws per step keys its generator with it and
    /// `progress.step` (`rng::keyed(seed, Stream::Method, 0, step, 0)`), so a resumed run
    /// draws the same.
    pub seed: u64,
}

impl<'a> StepInput<'a> {
    pub fn new(views: &'a [Tensor], progress: Progress) -> Self {
        StepInput {
            views,
            labels: None,
            masks: &[],
            progress,
            seed: 0,
        }
    }
}

/// A self-supervised method: a loss on a batch of views, and the encoder it trains.
///
/// The trainer calls, per step: [`loss`](Method::loss), backward,
/// [`before_update`](Method::before_update), the optimiser step and then
/// [`after_update`](Method::after_update). When the step is rejected (non-finite loss or
/// gradient) neither hook is called and every non-trainable variable is restored, so state
/// changes belong in `after_update`.
pub trait Method {
    fn name(&self) -> &'static str;
    /// How many global views of each sample the loss needs.
    fn n_views(&self) -> usize {
        2
    }
    /// Whether extra low-resolution local crops may follow the global views (multi-crop).
    fn accepts_local_crops(&self) -> bool {
        false
    }
    /// Whether the loss needs class labels (supervised contrastive).
    fn needs_labels(&self) -> bool {
        false
    }
    /// The masks the loader should draw with each batch (masked methods).
    fn mask_spec(&self) -> Option<crate::views::masking::MaskSpec> {
        None
    }
    /// The training loss for one batch.
    fn loss(&self, input: &StepInput) -> Tensor;
    /// This rank's part of the loss when the batch is split over the ranks of `comm`
    /// (`docs/distributed.md`): the mean over ranks of it and of its gradients must equal the
    /// one-process loss of the whole batch. Methods whose objective has not been written
    /// across ranks refuse.
    fn loss_across(&self, input: &StepInput, _comm: &dyn Collective) -> anyhow::Result<Tensor> {
        if self.per_sample_loss() {
            return Ok(self.loss(input));
        }
        anyhow::bail!(
            "{} does not train across processes yet (docs/distributed.md lists the methods \
             that do); run it in one process",
            self.name()
        )
    }
    /// Whether [`Method::loss_across`] is implemented.
    fn trains_across_ranks(&self) -> bool {
        self.per_sample_loss()
    }
    /// Whether the loss is a mean of per-sample terms and nothing else in the step depends on
    /// the other samples of the batch (batch norm aside): each rank's loss is then its share of
    /// the one-process loss as it is, and the gradient average does the rest.
    fn per_sample_loss(&self) -> bool {
        false
    }
    /// After backward, before the optimiser: adjust gradients (e.g. freeze a layer early on).
    fn before_update(&self, _progress: Progress) {}
    /// After a successful optimiser step: EMA teachers, queues, centres.
    fn after_update(&self, _progress: Progress) {}
    /// The representation used downstream (encoder output, evaluation mode; caller disables grad).
    fn embed(&self, x: &Tensor) -> Tensor;
    fn encoder(&self) -> &dyn Encoder;
    /// How many modalities the method encodes (one encoder each; multimodal methods only).
    fn modalities(&self) -> usize {
        1
    }
    /// Modality `m`'s representation: its encoder's output, in evaluation mode.
    fn embed_modality(&self, m: usize, x: &Tensor) -> Tensor {
        assert_eq!(m, 0, "{} encodes one modality", self.name());
        self.embed(x)
    }
    /// Modality `m`'s embedding in the space all modalities share (multimodal methods only).
    fn shared_embedding(&self, _m: usize, _x: &Tensor) -> Option<Tensor> {
        None
    }
}

/// A graph pretraining method: a loss on a batch of graphs (one whole graph, or a disjoint union
/// of small ones), and the node embeddings it learns. Its parameters (and any target network)
/// live in the run's `VarStore`, so checkpoints cover them.
pub trait GraphMethod: std::fmt::Debug {
    /// The loss of one step on `batch`; every random draw comes from `rng` (keyed by seed,
    /// epoch and batch), dropout from libtorch's generator.
    fn loss(&self, batch: &GraphBatch, rng: &mut ChaCha8Rng) -> Tensor;
    /// Node embeddings `[N, D]` of the un-augmented batch, inference mode, no gradient.
    fn embed(&self, batch: &GraphBatch) -> Tensor;
    /// After each applied optimiser step, with the fraction of training done after it (EMA
    /// targets).
    fn after_step(&self, _progress: f64) {}
    /// One step of joint training with labels (SelfTask-GNN's setting, `[eval.graph] protocol =
    /// "joint"`): the training-mode node embeddings, the edges they were propagated over and
    /// the method's loss on them. `with_task = false` gives the embeddings of the plain graph
    /// and no loss (the supervised control). `None` for methods built for pretraining only.
    fn joint_step(
        &self,
        _batch: &GraphBatch,
        _rng: &mut ChaCha8Rng,
        _with_task: bool,
    ) -> Option<JointStep> {
        None
    }
}

/// What [`GraphMethod::joint_step`] returns.
pub struct JointStep {
    /// Node embeddings `[N, D]`, with gradient.
    pub hidden: Tensor,
    /// The edges `hidden` was computed over when the step changed them (edge masking); `None`:
    /// the batch's own.
    pub edges: Option<crate::views::graph::message::EdgeIndex>,
    /// The method's loss (`None` without the task).
    pub loss: Option<Tensor>,
}

/// What a method trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    /// Samples turned into views (images, table rows): a [`Method`].
    Samples,
    /// Graphs (Planetoid, TU): a [`GraphMethod`].
    Graphs,
}

/// What a method needs of the data and the encoder; the recipe's rules and the loader read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The data it trains on.
    pub modality: Modality,
    /// Global views per sample: two for joint-embedding methods, one for masked ones.
    pub global_views: usize,
    /// One view plus a token mask, on a token encoder (masked prediction).
    pub masked: bool,
    /// Defined on table features only.
    pub tables: bool,
    /// Multi-crop local views may be added (`views.local_crops`).
    pub local_crops: bool,
    /// Training needs class labels.
    pub labels: bool,
    /// The method draws its own views from the plain samples (TS2Vec's crops), so the loader
    /// hands it each sample unaugmented.
    pub own_views: bool,
    /// The `encoder.kind`s it works on (empty: any encoder of its modality).
    pub encoders: &'static [&'static str],
    /// Smallest batch for which the objective is defined (contrastive losses need a negative;
    /// batch statistics need two samples).
    pub min_batch: usize,
}

impl Needs {
    /// Two augmented views of each sample, any sample encoder.
    pub const JOINT: Needs = Needs {
        modality: Modality::Samples,
        global_views: 2,
        masked: false,
        tables: false,
        local_crops: false,
        labels: false,
        own_views: false,
        encoders: &[],
        min_batch: 2,
    };
    /// One view and a patch mask, on a ViT (MAE, SimMIM, CAE, I-JEPA).
    pub const MASKED_VIT: Needs = Needs {
        global_views: 1,
        masked: true,
        encoders: &["vit"],
        ..Needs::JOINT
    };
    /// A graph (or a batch of graphs) and a graph encoder.
    pub const GRAPH: Needs = Needs {
        modality: Modality::Graphs,
        global_views: 0,
        encoders: &["gcn", "gat", "gin"],
        ..Needs::JOINT
    };
}

/// What a method's configuration knows about the method: what it needs of the data and the
/// encoder, the rules its fields obey, and how to build it. Implemented by each method's config
/// type, next to the method; the registry dispatches to it.
pub trait MethodSpec {
    /// What the method needs of the data and the encoder.
    fn needs(&self) -> Needs {
        Needs::JOINT
    }
    /// The rules of the method's own fields (`method.*`).
    fn validate(&self) -> crate::rules::R;
    /// Builds the method around `encoder` (under `encoder.`); its own variables go under
    /// `method.`; methods with a momentum target build a second encoder with `make_encoder`.
    fn build(
        &self,
        _vs: &nn::VarStore,
        _encoder: Box<dyn Encoder>,
        _make_encoder: &EncoderFactory,
    ) -> anyhow::Result<Box<dyn Method>> {
        anyhow::bail!("this method trains on graphs, not on samples")
    }
    /// Builds a method over paired modalities with one encoder per modality (CLIP).
    fn build_paired(
        &self,
        _vs: &nn::VarStore,
        _encoders: Vec<Box<dyn Encoder>>,
    ) -> anyhow::Result<Box<dyn Method>> {
        anyhow::bail!(
            "this method trains on one modality; paired data takes method.name = \"clip\""
        )
    }
    /// Builds a graph method, with its encoder, under `vs`'s root for `in_dim` node features.
    fn build_graph(
        &self,
        _vs: &nn::VarStore,
        _encoder: &EncoderConfig,
        _in_dim: i64,
    ) -> anyhow::Result<Box<dyn GraphMethod>> {
        anyhow::bail!("this method trains on samples, not on graphs")
    }
}

/// Builds an encoder under a path: the online encoder under `encoder`, and a second copy for
/// methods with a momentum target.
pub type EncoderFactory<'a> = dyn Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> + 'a;

/// Declares the method modules and the `[method]` table: one line per method,
/// `module: Variant(ConfigType) = "name"`, where `name` is the recipe's `method.name`.
macro_rules! registry {
    ($($module:ident: $variant:ident($config:ident) = $name:literal,)+) => {
        $(pub mod $module;)+

        /// The `[method]` table of a recipe: `name` picks the method, the other keys are its
        /// configuration (every one has the paper's default).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name", deny_unknown_fields)]
        pub enum MethodConfig {
            $(#[serde(rename = $name)] $variant($module::$config),)+
        }

        impl MethodConfig {
            /// Every method, with its defaults, in registry order.
            pub fn all_defaults() -> Vec<MethodConfig> {
                vec![$(MethodConfig::$variant(Default::default()),)+]
            }
            /// The recipe's `method.name`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(MethodConfig::$variant(_) => $name,)+
                }
            }
            /// The method's configuration, behind the trait every method implements.
            pub fn spec(&self) -> &dyn MethodSpec {
                match self {
                    $(MethodConfig::$variant(c) => c,)+
                }
            }
        }
    };
}

impl MethodConfig {
    pub fn needs(&self) -> Needs {
        self.spec().needs()
    }
    pub fn n_global_views(&self) -> usize {
        self.needs().global_views
    }
    pub fn is_masked(&self) -> bool {
        self.needs().masked
    }
    pub fn needs_tables(&self) -> bool {
        self.needs().tables
    }
    pub fn accepts_local_crops(&self) -> bool {
        self.needs().local_crops
    }
    pub fn needs_labels(&self) -> bool {
        self.needs().labels
    }
    pub fn min_batch(&self) -> usize {
        self.needs().min_batch
    }
    pub fn modality(&self) -> Modality {
        self.needs().modality
    }
}

/// Builds the method named in `cfg`; the encoder's variables live under `encoder.`, the
/// method's own (heads, targets, queues) under `method.`.
pub fn build(
    cfg: &MethodConfig,
    vs: &nn::VarStore,
    make_encoder: &EncoderFactory,
) -> anyhow::Result<Box<dyn Method>> {
    let encoder = make_encoder(&(vs.root() / "encoder"))?;
    cfg.spec().build(vs, encoder, make_encoder)
}

/// Builds the graph method named in `cfg`, with its `encoder`, for `in_dim` node features.
pub fn build_graph(
    cfg: &MethodConfig,
    encoder: &EncoderConfig,
    vs: &nn::VarStore,
    in_dim: i64,
) -> anyhow::Result<Box<dyn GraphMethod>> {
    cfg.spec().build_graph(vs, encoder, in_dim)
}

// The registry. Adding a method: its file in this folder and one line here.
registry! {
    simclr: Simclr(SimclrConfig) = "simclr",
    barlow_twins: BarlowTwins(BarlowTwinsConfig) = "barlow_twins",
    byol: Byol(ByolConfig) = "byol",
    simsiam: Simsiam(SimSiamConfig) = "simsiam",
    moco: MocoV2(MocoV2Config) = "moco_v2",
    moco_v3: MocoV3(MocoV3Config) = "moco_v3",
    vicreg: Vicreg(VicregConfig) = "vicreg",
    dino: Dino(DinoConfig) = "dino",
    swav: Swav(SwavConfig) = "swav",
    nnclr: Nnclr(NnclrConfig) = "nnclr",
    supcon: Supcon(SupConConfig) = "supcon",
    mae: Mae(MaeConfig) = "mae",
    cae: Cae(CaeConfig) = "cae",
    simmim: Simmim(SimMimConfig) = "simmim",
    ijepa: Ijepa(IjepaConfig) = "ijepa",
    tjepa: Tjepa(TjepaConfig) = "tjepa",
    vime: Vime(VimeConfig) = "vime",
    graphmae: Graphmae(GraphMaeConfig) = "graphmae",
    dgi: Dgi(DgiConfig) = "dgi",
    grace: Grace(GraceConfig) = "grace",
    bgrl: Bgrl(BgrlConfig) = "bgrl",
    dsla: Dsla(DslaConfig) = "dsla",
    selftask: SelfTask(SelfTaskConfig) = "selftask",
    pareto_gnn: ParetoGnn(ParetoGnnConfig) = "pareto_gnn",
    ts2vec: Ts2Vec(Ts2VecConfig) = "ts2vec",
    ts_tcc: TsTcc(TsTccConfig) = "ts_tcc",
    ssast: Ssast(SsastConfig) = "ssast",
    tera: Tera(TeraConfig) = "tera",
    mlm: Mlm(MlmConfig) = "mlm",
    rts: Rts(RtsConfig) = "rts",
    slm: Slm(SlmConfig) = "slm",
    simcse: Simcse(SimcseConfig) = "simcse",
    clip: Clip(ClipConfig) = "clip",
    obow: Obow(ObowConfig) = "obow",
    mugs: Mugs(MugsConfig) = "mugs",
    mixed_ae: MixedAe(MixedAeConfig) = "mixed_ae",
}

#[cfg(test)]
pub(crate) mod graph_tests;
#[cfg(test)]
mod graphmae_reference_test;
#[cfg(test)]
mod tests;
