//! The command line: subcommands, their arguments and help, as clap parses them.
use clap::{Parser, Subcommand, ValueEnum};
use selfsup::error::BadInputPolicy;
use selfsup::eval::suite::SuiteProtocol;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "selfsup",
    version,
    about = "Self-supervised pretraining and evaluation on libtorch"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// cpu, cuda or cuda:N
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// libtorch threads (0 = all cores)
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
    /// The folder that holds fetched datasets (default $SELFSUP_DATA, else
    /// ~/.cache/selfsup/data or the platform's cache folder)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a subcommand as a data-parallel job: start --nproc-per-node processes on this node
    /// (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), each
    /// with its share of --threads; train.batch_size stays the global batch
    /// (docs/distributed.md). Example: selfsup launch --nproc-per-node 2 pretrain recipes/quickstart.toml
    Launch {
        /// Processes on this node
        #[arg(long, default_value_t = 1)]
        nproc_per_node: usize,
        /// Nodes in the job
        #[arg(long, default_value_t = 1)]
        nnodes: usize,
        /// This node's index (0 .. nnodes-1)
        #[arg(long, default_value_t = 0)]
        node_rank: usize,
        /// Address of node 0, where rank 0 serves the rendezvous
        #[arg(long, default_value = "127.0.0.1")]
        master_addr: String,
        /// Port of the rendezvous (default: a free port on one node; required on several)
        #[arg(long)]
        master_port: Option<u16>,
        /// The subcommand and its arguments, e.g. pretrain recipes/quickstart.toml
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Pretrain the recipe's encoder without labels, then evaluate it (kNN + linear probe,
    /// beside the raw-input baselines) when the recipe has a labelled test split; a graph
    /// recipe is scored by its [eval.graph] protocol beside the raw node features.
    Pretrain {
        /// The recipe (TOML), e.g. recipes/quickstart.toml or recipes/graph/dgi-cora.toml
        recipe: PathBuf,
        /// Override a recipe field, e.g. --set train.epochs=5 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Run folder (default runs/<recipe name>)
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Continue the run in the run folder from its newest valid checkpoint
        #[arg(long)]
        resume: bool,
        /// What to do with unreadable samples: fail (default) or skip and count them
        #[arg(long, default_value = "fail")]
        on_bad_input: BadInputPolicy,
        /// Skip the evaluation after pretraining
        #[arg(long)]
        no_eval: bool,
        /// No progress bar
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate representations: a run's latest checkpoint (with the raw-input baseline beside
    /// it) or exported embeddings, under one or more protocols
    Eval {
        /// knn, knn-grid, linear, label-fractions, few-shot, cluster, calibration, all (every
        /// one of these), fine-tune, self-train
        #[arg(required = true, value_enum)]
        protocols: Vec<ProtocolArg>,
        /// A run folder
        #[arg(long, conflicts_with_all = ["train", "test"], required_unless_present = "train")]
        run: Option<PathBuf>,
        /// Embeddings to fit probes / kNN memory on (.npy with .labels.npy, or .safetensors)
        #[arg(long, requires = "test")]
        train: Option<PathBuf>,
        /// Embeddings to score
        #[arg(long, requires = "train")]
        test: Option<PathBuf>,
        /// Seeds 0..N for protocols with randomness (label subsets, episodes, k-means)
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// First seed (seeds are first-seed..first-seed+N)
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Override an evaluation setting of the run's recipe, e.g. --set eval.knn_k=20
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Also write the records as JSON to this file
        #[arg(long)]
        out: Option<PathBuf>,
        /// fine-tune: start from a freshly initialised encoder (seeded per seed) instead of the
        /// run's checkpoint — the from-scratch control with the same budget
        #[arg(long)]
        from_scratch: bool,
    },
    /// Graph recipes (Planetoid node classification, TU graph classification): pretrain one
    /// fresh model per seed, score it with the recipe's protocol, print the table beside the
    /// raw-feature baseline and the paper's figure
    Graph {
        /// One or more graph recipes (e.g. recipes/graph/*.toml)
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a recipe field in every recipe, e.g. --set train.epochs=100 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Use seeds first-seed..first-seed+N instead of the recipes' seed lists
        #[arg(long)]
        seeds: Option<u64>,
        /// First seed with --seeds, e.g. to add seeds to an earlier table
        #[arg(long, default_value_t = 0, requires = "seeds")]
        first_seed: u64,
        /// Folder for the run folders (one per recipe and seed; must not hold them yet, unless
        /// resuming)
        #[arg(long, default_value = "runs/graph")]
        runs: PathBuf,
        /// Write every result (per seed, with details) as JSON to this file, rewritten after
        /// each seed so that an interrupted table keeps its finished seeds
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted table: seeds already in the --out file are taken from it
        /// (refused if their recipe's settings changed), an interrupted pretraining continues
        /// from its run folder's last checkpoint, the rest are run
        #[arg(long, requires = "out")]
        resume: bool,
        /// Also write each seed's embeddings and labels as .npy files into this folder
        #[arg(long)]
        save_embeddings: Option<PathBuf>,
    },
    /// Audio recipes (one per method) on labelled clips with speakers (FSDD): one pretraining
    /// per recipe and seed, frozen representations scored by kNN and a linear probe on the
    /// official split and leave-one-speaker-out, beside MFCC statistics, the raw log-mel and
    /// each encoder at random initialisation. Run the same command again to continue
    AudioTable {
        /// Audio recipes (data.format = "audio_folder"), all reading the same clips
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a field in every recipe, e.g. --set train.epochs=5 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// The table's folder: table.json, table.md and one run folder per recipe and seed
        #[arg(long, default_value = "runs/audio")]
        runs: PathBuf,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A paired recipe (CLIP over several modalities) per seed: zero-shot cross-modal retrieval
    /// beside chance and the model at random initialisation, and each encoder's kNN and linear
    /// probe beside its modality's unimodal recipe, the random-init encoder and the raw inputs.
    /// Run the same command again to continue
    Multimodal {
        /// A paired recipe (data.format = "paired")
        recipe: PathBuf,
        /// Override a field of the recipe, e.g. --set train.epochs=5 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// The table's folder: table.json, table.md and one run folder per recipe and seed
        #[arg(long, default_value = "runs/multimodal")]
        runs: PathBuf,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Text recipes (one per method) pretrained at one equal compute budget per seed: SST-2
    /// frozen-probe and fine-tuned accuracy on dev, SMS spam macro-F1 with 1 %, 10 % and 100 %
    /// of the labels, beside TF-IDF + logistic regression and each encoder at random
    /// initialisation. Run the same command again to continue
    TextTable {
        /// Text recipes (data.format = "text"), all reading the same data
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a field in every recipe, e.g. --set train.batch_size=32 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Pretraining minutes per run (each recipe's steps calibrated to it on this machine);
        /// 0: each recipe's own train settings
        #[arg(long, default_value_t = 3.0)]
        budget_minutes: f64,
        /// Fine-tuning epochs over SST-2's training sentences
        #[arg(long, default_value_t = 1)]
        fine_tune_epochs: u64,
        /// Share of SST-2's training labels the fine-tuning uses (stratified per seed)
        #[arg(long, default_value_t = 0.5)]
        fine_tune_labels: f64,
        /// The SMS spam collection (default: the registry's sms-spam in the data root)
        #[arg(long)]
        sms: Option<PathBuf>,
        /// The table's folder: table.json, table.md and one run folder per recipe and seed
        #[arg(long, default_value = "runs/text")]
        runs: PathBuf,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Few labels beyond pretraining: the recipe pretrained once per seed, then fine-tuned at
    /// each label fraction as the baseline and with self-training, SLA, PS-KD and SAM, each
    /// against the baseline of its own seed. Run the same command again to continue
    FewLabels {
        /// An image recipe with a labelled test split
        recipe: PathBuf,
        /// Override a recipe field, e.g. --set train.epochs=2 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Label fractions (stratified subsets of the training labels)
        #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,1")]
        fractions: Vec<f64>,
        /// Fine-tuning steps of every arm
        #[arg(long, default_value_t = 600)]
        steps: u64,
        /// Fine-tuning batch (halved for small labelled sets)
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// SAM's radius
        #[arg(long, default_value_t = 0.05)]
        sam_rho: f64,
        /// The table's folder: one run folder per seed and few-labels.json
        #[arg(long, default_value = "runs/few-labels")]
        runs: PathBuf,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// SimCore (coreset sampling from an open-set pool): an image recipe pretrained per seed on
    /// some Fashion-MNIST classes alone, on them plus the pool samples most like them (the
    /// coreset, retrieved with the target-alone encoder), and on them plus a random pool subset
    /// of the same size; linear probe and kNN on the target classes. Run again to continue
    SimcoreTable {
        /// A Fashion-MNIST (IDX) image recipe
        recipe: PathBuf,
        /// Override a recipe field (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// The target classes; the other classes' training images form the pool
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
        target_classes: Vec<i64>,
        /// scikit-learn's digits.csv.gz, upsampled to 28×28 and added to the pool
        #[arg(long)]
        digits: Option<PathBuf>,
        /// Most pool samples in the coreset (and in the random subset)
        #[arg(long, default_value_t = 10_000)]
        budget: usize,
        /// k-means centroids of the target embeddings
        #[arg(long, default_value_t = 100)]
        clusters: usize,
        /// Also stop the selection when a round's similarity drops below tau × round 20's
        #[arg(long)]
        stop_tau: Option<f64>,
        /// Pretraining steps of every arm
        #[arg(long, default_value_t = 1200)]
        steps: u64,
        /// The table's folder: run folders per arm and seed, the selected ids, simcore.json
        #[arg(long, default_value = "runs/simcore")]
        runs: PathBuf,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A series recipe over many UCR sets (TS2Vec's table): one pretraining per set and seed,
    /// scored by the recipe's protocol beside the raw-series SVM, 1-NN ED and 1-NN DTW and the
    /// published per-set figures, with mean accuracy and average rank. Run the same command
    /// again to continue an interrupted table
    UcrTable {
        /// A series recipe (data.format = "ucr"); its data.name is replaced by each set
        recipe: PathBuf,
        /// Override a recipe field, e.g. --set train.steps=100 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Comma-separated set names, or `all`: every set of the --reference file
        #[arg(long, default_value = "all")]
        sets: String,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Published per-set accuracies (tab-separated: dataset, then one column per method)
        #[arg(long, default_value = "../shared/bench/ucr_reference_accuracy.tsv")]
        reference: PathBuf,
        /// The table's folder: table.json, table.md and one run folder per set and seed
        /// (default runs/ucr/<recipe name>)
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Also write the Markdown table here
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the table of the finished cells only, running nothing (e.g. while another
        /// process runs the table)
        #[arg(long)]
        finished_only: bool,
    },
    /// Compare methods at an equal budget: pretrain each recipe once per seed, score kNN and
    /// linear-probe accuracy and the effective rank on the test split, beside the raw inputs
    /// and an untrained encoder measured by the same code
    Compare {
        /// One recipe per method (e.g. recipes/fmnist/*.toml); epochs, batch, encoder and
        /// training samples must agree (force them with --set)
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a field in every recipe, e.g. --set train.epochs=2 (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// First seed, e.g. to add seeds to an earlier comparison
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Folder for the run folders (one per recipe and seed; must not hold them yet, unless
        /// resuming)
        #[arg(long, default_value = "runs/compare")]
        runs: PathBuf,
        /// Write every figure (per seed) as JSON to this file, rewritten after each seed so
        /// that an interrupted comparison keeps its finished seeds
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted comparison: seeds already in the --out file are taken from it
        /// (refused if their recipe's settings changed), an interrupted pretraining continues
        /// from its run folder's last checkpoint, the rest are run
        #[arg(long, requires = "out")]
        resume: bool,
        /// Pretrainings run at once, each with --threads / N libtorch threads; the figures are
        /// those of a sequential comparison at that thread count
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: u64,
    },
    /// Tables, as tabular SSL papers report them: per seed, pretrain each recipe's method on the
    /// training rows, then train the same MLP on its frozen representations, on the raw
    /// features, and gradient-boosted trees on the raw features; accuracy or RMSE on the test rows
    Tabular {
        /// One recipe per method, all on the same table (e.g. recipes/tables/*-adult.toml)
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a field in every recipe (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds first-seed..first-seed+N
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// First seed, e.g. to add seeds to an earlier table
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Folder for the run folders (one per recipe and seed)
        #[arg(long, default_value = "runs/tabular")]
        runs: PathBuf,
        /// Fraction of the training rows used for early stopping
        #[arg(long, default_value_t = 0.2)]
        val_fraction: f64,
        /// Without a test file: fraction of the rows held out for testing
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Most epochs of the downstream MLP (early stopping usually ends it sooner)
        #[arg(long, default_value_t = 100)]
        mlp_epochs: usize,
        /// Skip the gradient-boosted-trees baseline
        #[arg(long)]
        no_gbdt: bool,
        /// Write every figure (per seed) as JSON to this file, rewritten after each seed so
        /// that an interrupted table keeps its finished seeds
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted table: seeds already in the --out file are taken from it
        /// (refused if the settings changed), an interrupted pretraining continues from its
        /// run folder's last checkpoint, the rest are run
        #[arg(long, requires = "out")]
        resume: bool,
    },
    /// Self-pretraining ("never train from scratch"): pretrain the recipe's method on the task's
    /// own training inputs, fine-tune with the recipe's eval.finetune_* protocol, and print it
    /// beside two from-scratch controls (same fine-tune; fine-tune for as many epochs in all)
    SelfPretrain {
        /// The recipe (TOML) whose method and fine-tuning protocol are run
        recipe: PathBuf,
        /// Override a recipe field (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seeds 0..N
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Folder for the run folders (one per seed)
        #[arg(long, default_value = "runs/self-pretrain")]
        runs: PathBuf,
        /// Write every figure (per seed) as JSON to this file
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Performance: the reference workloads (W1 SimCLR step, W2 Barlow Twins step, W3 MAE step,
    /// W4 matmul), the view pipeline alone, a graph pretraining epoch, and whole end-to-end runs,
    /// with the PyTorch reference interleaved when a Python with torch is found; prints
    /// samples/s (median, p10/p90), peak memory and the ratio
    Bench(BenchCli),
    /// Nearest neighbours in the learned space (cosine, exact): of test samples among the
    /// training split (what kNN votes with), of nodes among a graph's nodes, or among exported
    /// embeddings; with the rate at which their labels agree with the query's
    #[command(alias = "neighbours")]
    Neighbors {
        /// A run folder
        #[arg(long, conflicts_with_all = ["memory", "queries"], required_unless_present = "memory")]
        run: Option<PathBuf>,
        /// Exported embeddings searched in (.npy with .labels.npy, or .safetensors)
        #[arg(long, requires = "queries")]
        memory: Option<PathBuf>,
        /// Exported embeddings of the queries (the memory's file: queries from the memory)
        #[arg(long, requires = "memory")]
        queries: Option<PathBuf>,
        /// An image file of one's own as a query (repeatable; PNG or JPEG): converted to the
        /// run's channels and input size, embedded by the run, searched among its training split
        #[arg(
            long = "query",
            value_name = "FILE",
            requires = "run",
            conflicts_with = "rows"
        )]
        query: Vec<PathBuf>,
        /// Query rows to list (repeatable); without it every query is searched and only the
        /// label agreement is printed
        #[arg(long = "index", value_name = "N")]
        rows: Vec<i64>,
        /// Neighbours per query
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// A run's queries: the test split, or the training split itself (each row then never
        /// its own neighbour). Graph runs search every node or graph among the others
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
        /// Also write the report as JSON to this file
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the queries and their neighbours as an HTML page: a grid of pictures for
        /// image runs, the listing otherwise
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Write a run folder's report.html: training curves, the evaluation table and a map of
    /// the test embeddings, in one self-contained page (pretrain writes it at the end)
    Report {
        /// A run folder, or the JSON of a table command (`compare`, `graph`, `tabular` --out;
        /// `ucr-table`'s, `audio-table`'s or `text-table`'s `<runs>/table.json`; `few-labels`'
        /// `few-labels.json`): a table becomes `<file>.html`, bar charts with error bars beside
        /// the baselines and published figures
        run: PathBuf,
        /// The published per-set accuracies a `ucr-table` JSON is drawn beside
        #[arg(long, default_value = "../shared/bench/ucr_reference_accuracy.tsv")]
        reference: PathBuf,
    },
    /// Datasets by name: fetch them into the data root (checked against their sha256), list
    /// what is there. Recipes name them with [data] dataset = "NAME"
    #[command(subcommand)]
    Data(DataCommand),
    /// Prior-data fitted networks (Müller et al. 2022): train one on functions drawn from a
    /// Gaussian-process prior, and measure its posterior predictive against the exact GP's
    #[command(subcommand)]
    Pfn(crate::pfn_cmd::PfnCommand),
    /// Write a run's representations of a split to .npy, .safetensors, .parquet or .csv
    Embed {
        /// The run folder whose latest checkpoint embeds
        #[arg(long)]
        run: PathBuf,
        /// Output file, its format by extension unless --format says: .npy (labels beside it
        /// in .labels.npy), .safetensors, .parquet (id, label, source, embedding list per row)
        /// or .csv (id,label,e0,e1,…)
        #[arg(long)]
        out: PathBuf,
        /// The file format, whatever the extension of --out
        #[arg(long, value_enum)]
        format: Option<EmbedFormatArg>,
        /// Which split of the recipe's data (graph runs export every node or graph)
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
    },
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Download datasets (HTTPS) or import them from an offline copy (--from), verifying every
    /// file's size and sha256 before it gets its final name; files already verified are kept
    Fetch {
        /// Dataset names (`selfsup data list` shows them), e.g. cora adult mutag
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        names: Vec<String>,
        /// Every dataset of the registry
        #[arg(long)]
        all: bool,
        /// Import from this folder instead of downloading: a file may be there as itself, gzipped
        /// (.gz), in the dataset's sub-folder, or inside the archive the registry names
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Tries per downloaded file (a broken-off download is tried again)
        #[arg(long, default_value_t = 3)]
        attempts: usize,
        /// No progress bar
        #[arg(long)]
        quiet: bool,
    },
    /// Every dataset the registry knows: whether the data root holds it, its size and source
    List,
    /// What a recipe's data resolves to, read as a run reads it, before any training: files,
    /// samples, input shape, classes and their balance, non-finite inputs, skipped samples
    Inspect {
        /// The recipe (TOML)
        recipe: PathBuf,
        /// Override a recipe field, e.g. --set data.dataset=citeseer (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// What to do with unreadable samples: fail (default) or skip and count them
        #[arg(long, default_value = "fail")]
        on_bad_input: BadInputPolicy,
        /// Also write the summary as JSON to this file
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pack an image folder into .tar shards (WebDataset layout, the folder's sample order) for
    /// `[data] format = "image_shards"`: a few large files instead of one per image
    Pack {
        /// The image folder (class sub-folders, or a flat folder)
        folder: PathBuf,
        /// Where the shards go (shard-000000.tar, …)
        out: PathBuf,
        /// Images per shard
        #[arg(long, default_value_t = 10_000)]
        per_shard: usize,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum ProtocolArg {
    Knn,
    KnnGrid,
    Linear,
    LabelFractions,
    FewShot,
    Cluster,
    Calibration,
    /// Fine-tune the run's whole encoder with a fresh head (needs --run; not part of `all`)
    FineTune,
    /// Fine-tune, then the recipe's eval.self_training rounds: pseudo-labels on the unlabelled
    /// rest of the training split, a student from the run's weights (needs --run)
    SelfTrain,
    All,
}

impl ProtocolArg {
    pub fn protocols(args: &[ProtocolArg]) -> Vec<SuiteProtocol> {
        let mut v = Vec::new();
        for a in args {
            let add: &[SuiteProtocol] = match a {
                ProtocolArg::Knn => &[SuiteProtocol::Knn],
                ProtocolArg::KnnGrid => &[SuiteProtocol::KnnGrid],
                ProtocolArg::Linear => &[SuiteProtocol::Linear],
                ProtocolArg::LabelFractions => &[SuiteProtocol::LabelFractions],
                ProtocolArg::FewShot => &[SuiteProtocol::FewShot],
                ProtocolArg::Cluster => &[SuiteProtocol::Cluster],
                ProtocolArg::Calibration => &[SuiteProtocol::Calibration],
                ProtocolArg::FineTune | ProtocolArg::SelfTrain => &[],
                ProtocolArg::All => &SuiteProtocol::ALL,
            };
            for p in add {
                if !v.contains(p) {
                    v.push(*p);
                }
            }
        }
        v
    }
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum WorkloadArg {
    W1,
    W2,
    W3,
    W3sdpa,
    W3explicit,
    W4,
    Pipeline,
    Grad,
    E2e,
    GraphEpoch,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EmbedFormatArg {
    Npy,
    Safetensors,
    Parquet,
    Csv,
}

impl From<EmbedFormatArg> for selfsup::run::export::EmbedFormat {
    fn from(f: EmbedFormatArg) -> Self {
        match f {
            EmbedFormatArg::Npy => Self::Npy,
            EmbedFormatArg::Safetensors => Self::Safetensors,
            EmbedFormatArg::Parquet => Self::Parquet,
            EmbedFormatArg::Csv => Self::Csv,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
}

impl WorkloadArg {
    /// The library's workload, or `None` for the end-to-end runs (`e2e`).
    pub fn workload(self) -> Option<selfsup::bench::Workload> {
        use selfsup::bench::Workload;
        Some(match self {
            WorkloadArg::W1 => Workload::W1,
            WorkloadArg::W2 => Workload::W2,
            WorkloadArg::W3 => Workload::W3,
            WorkloadArg::W3sdpa => Workload::W3Sdpa,
            WorkloadArg::W3explicit => Workload::W3Explicit,
            WorkloadArg::W4 => Workload::W4,
            WorkloadArg::Pipeline => Workload::Pipeline,
            WorkloadArg::Grad => Workload::Grad,
            WorkloadArg::GraphEpoch => Workload::GraphEpoch,
            WorkloadArg::E2e => return None,
        })
    }
}

impl From<SplitArg> for selfsup::run::commands::Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => selfsup::run::commands::Split::Train,
            SplitArg::Test => selfsup::run::commands::Split::Test,
        }
    }
}

/// `selfsup bench`'s arguments.
#[derive(clap::Args)]
pub struct BenchCli {
    /// grad, w1, w2, w3, w3sdpa, w3explicit, w4, pipeline, graph-epoch, e2e (default: w1
    /// w2 w3 w4 pipeline). graph-epoch: pretraining epochs of --graph-recipe. e2e: whole pretraining runs of --e2e-recipe against
    /// torch_e2e_reference.py, one per seed 0..rounds, interleaved
    #[arg(value_enum)]
    pub workloads: Vec<WorkloadArg>,
    /// Timed steps per workload and round
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Rounds, each running ours then the reference
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Python with torch for the reference (default: python3 if it imports torch)
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// No reference run
    #[arg(long)]
    pub no_reference: bool,
    /// The PyTorch reference script
    #[arg(long, default_value = "../shared/bench/torch_reference.py")]
    pub script: PathBuf,
    /// Recipes whose view pipeline is timed
    #[arg(long = "pipeline-recipe", default_values = ["recipes/quickstart.toml", "recipes/scarf-adult.toml"])]
    pub pipeline_recipes: Vec<PathBuf>,
    /// The node-level graph recipe timed by graph-epoch
    #[arg(long, default_value = "recipes/graph/graphmae-cora.toml")]
    pub graph_recipe: PathBuf,
    /// e2e: the recipe both engines run (its model, views, batch and optimiser must be ones
    /// the reference can express)
    #[arg(long, default_value = "recipes/quickstart.toml")]
    pub e2e_recipe: PathBuf,
    /// e2e: recipe overrides (repeatable); the default gives the reference's CNN
    #[arg(long = "e2e-set", value_name = "KEY=VALUE", default_values = ["encoder.widths=[32,64,128,256]"])]
    pub e2e_overrides: Vec<String>,
    /// e2e: the PyTorch + torchvision reference pipeline
    #[arg(long, default_value = "../shared/bench/torch_e2e_reference.py")]
    pub e2e_script: PathBuf,
    /// e2e: the reference's DataLoader worker processes
    #[arg(long, default_value_t = 2)]
    pub e2e_workers: usize,
    /// e2e: stop each run after N steps (smoke runs)
    #[arg(long)]
    pub e2e_max_steps: Option<u64>,
    /// e2e: timed model-only steps per seed (0: skip)
    #[arg(long, default_value_t = 20)]
    pub e2e_model_steps: usize,
    /// e2e: where our run folders go (scratch: ours-seed<k> there is replaced on each run)
    #[arg(long, default_value = "runs/bench-e2e")]
    pub e2e_runs: PathBuf,
    /// Precisions of the model steps and graph epochs, each timed in every round beside the
    /// reference in the same precision (bf16: forward under autocast, ours and torch.autocast)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    pub precision: Vec<PrecisionArg>,
    /// W1 with the CNN's kernels and images in channels-last memory format, on both sides
    #[arg(long)]
    pub channels_last: bool,
    /// graph-epoch: also time graph attention's edge passes op by op (the libtorch ops the fused
    /// CPU kernel replaces), interleaved with the kernel in every round
    #[arg(long)]
    pub gat_ops: bool,
    /// Override a field of the pipeline and graph-epoch recipes, e.g. data.train=DIR (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub recipe_overrides: Vec<String>,
    /// Also write the results as JSON ({"hardware": ..., "steps": [...], "e2e": {...}})
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
}

impl BenchCli {
    /// The library's benchmark request (no workload named: W1–W4 and the view pipeline).
    pub fn command(
        self,
        device: tch::Device,
        threads: usize,
    ) -> selfsup::bench::command::BenchCommand {
        use WorkloadArg as W;
        let chosen = if self.workloads.is_empty() {
            vec![W::W1, W::W2, W::W3, W::W4, W::Pipeline]
        } else {
            self.workloads
        };
        selfsup::bench::command::BenchCommand {
            workloads: chosen.iter().filter_map(|w| w.workload()).collect(),
            e2e: chosen.contains(&W::E2e),
            steps: self.steps,
            rounds: self.rounds,
            python: self.python,
            no_reference: self.no_reference,
            script: self.script,
            pipeline_recipes: self.pipeline_recipes,
            graph_recipe: self.graph_recipe,
            e2e_recipe: self.e2e_recipe,
            e2e_overrides: self.e2e_overrides,
            e2e_script: self.e2e_script,
            e2e_workers: self.e2e_workers,
            e2e_max_steps: self.e2e_max_steps,
            e2e_model_steps: self.e2e_model_steps,
            e2e_runs: self.e2e_runs,
            device,
            threads,
            precisions: self
                .precision
                .iter()
                .map(|p| match p {
                    PrecisionArg::Fp32 => selfsup::train::precision::Precision::Fp32,
                    PrecisionArg::Bf16 => selfsup::train::precision::Precision::Bf16,
                })
                .collect(),
            channels_last: self.channels_last,
            gat_ops: self.gat_ops,
            recipe_overrides: self.recipe_overrides,
        }
    }
}
