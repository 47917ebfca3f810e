//! `selfsup`: pretrain encoders without labels and measure what they learned.
//!
//! Exit status: 0 success; 1 runtime failure; 2 usage or recipe error; 3 bad input data;
//! 75 interrupted by SIGINT/SIGTERM after writing a checkpoint (continue with `--resume`);
//! 130 a second SIGINT/SIGTERM (immediate exit; the last checkpoint stays valid).
use clap::{Parser, Subcommand, ValueEnum};
use selfsup::error::{BadInputPolicy, DataError};
use selfsup::eval::suite::{format_records, SuiteConfig, SuiteProtocol};
use selfsup::recipe::RecipeError;
use selfsup::run::commands::{self, EvalSource, PretrainArgs, Split};
use selfsup::run::pipeline::format_table;
use selfsup::train::trainer::{self, TrainStop};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "selfsup",
    version,
    about = "Self-supervised pretraining and evaluation on libtorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// cpu, cuda or cuda:N
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// libtorch threads (0 = all cores)
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain the recipe's encoder without labels, then evaluate it (kNN + linear probe,
    /// beside the raw-input baselines) when the recipe has a labelled test split.
    Pretrain {
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
        /// one of these), fine-tune
        #[arg(required = true, value_enum)]
        protocols: Vec<ProtocolArg>,
        /// A run folder
        #[arg(long, conflicts_with_all = ["train", "test"])]
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
        /// Use seeds 0..N instead of the recipes' seed lists
        #[arg(long)]
        seeds: Option<u64>,
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
    Bench {
        /// grad, w1, w2, w3, w3sdpa, w3explicit, w4, pipeline, graph-epoch, e2e (default: w1
        /// w2 w3 w4 pipeline). graph-epoch: pretraining epochs of --graph-recipe. e2e: whole pretraining runs of --e2e-recipe against
        /// torch_e2e_reference.py, one per seed 0..rounds, interleaved
        #[arg(value_enum)]
        workloads: Vec<WorkloadArg>,
        /// Timed steps per workload and round
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Rounds, each running ours then the reference
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python with torch for the reference (default: python3 if it imports torch)
        #[arg(long)]
        python: Option<PathBuf>,
        /// No reference run
        #[arg(long)]
        no_reference: bool,
        /// The PyTorch reference script
        #[arg(long, default_value = "../shared/bench/torch_reference.py")]
        script: PathBuf,
        /// Recipes whose view pipeline is timed
        #[arg(long = "pipeline-recipe", default_values = ["recipes/quickstart.toml", "recipes/scarf-adult.toml"])]
        pipeline_recipes: Vec<PathBuf>,
        /// The node-level graph recipe timed by graph-epoch
        #[arg(long, default_value = "recipes/graph/graphmae-cora.toml")]
        graph_recipe: PathBuf,
        /// e2e: the recipe both engines run (its model, views, batch and optimiser must be ones
        /// the reference can express)
        #[arg(long, default_value = "recipes/quickstart.toml")]
        e2e_recipe: PathBuf,
        /// e2e: recipe overrides (repeatable); the default gives the reference's CNN
        #[arg(long = "e2e-set", value_name = "KEY=VALUE", default_values = ["encoder.widths=[32,64,128,256]"])]
        e2e_overrides: Vec<String>,
        /// e2e: the PyTorch + torchvision reference pipeline
        #[arg(long, default_value = "../shared/bench/torch_e2e_reference.py")]
        e2e_script: PathBuf,
        /// e2e: the reference's DataLoader worker processes
        #[arg(long, default_value_t = 2)]
        e2e_workers: usize,
        /// e2e: stop each run after N steps (smoke runs)
        #[arg(long)]
        e2e_max_steps: Option<u64>,
        /// e2e: timed model-only steps per seed (0: skip)
        #[arg(long, default_value_t = 20)]
        e2e_model_steps: usize,
        /// e2e: where our run folders go (scratch: ours-seed<k> there is replaced on each run)
        #[arg(long, default_value = "runs/bench-e2e")]
        e2e_runs: PathBuf,
        /// Also write the results as JSON ({"steps": [...], "e2e": {...}})
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a run's representations of a split to .npy or .safetensors
    Embed {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum ProtocolArg {
    Knn,
    KnnGrid,
    Linear,
    LabelFractions,
    FewShot,
    Cluster,
    Calibration,
    /// Fine-tune the run's whole encoder with a fresh head (needs --run; not part of `all`)
    FineTune,
    All,
}

impl ProtocolArg {
    fn protocols(args: &[ProtocolArg]) -> Vec<SuiteProtocol> {
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
                ProtocolArg::FineTune => &[],
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
enum WorkloadArg {
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
enum SplitArg {
    Train,
    Test,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SELFSUP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(TrainStop::Interrupted { .. }) = e.downcast_ref::<TrainStop>() {
        return 75;
    }
    if e.downcast_ref::<RecipeError>().is_some() {
        return 2;
    }
    if e.downcast_ref::<DataError>().is_some() {
        return 3;
    }
    1
}

/// With `resume`, the results file an earlier `--out` of the command `what` left (none if it
/// does not exist yet), to continue from it.
fn saved_table<T: serde::de::DeserializeOwned>(
    out: Option<&std::path::Path>,
    resume: bool,
    what: &str,
) -> anyhow::Result<Option<T>> {
    let Some(path) = out.filter(|p| resume && p.exists()) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: not a results file of `{what}` ({e})", path.display()))
}

/// Writes a results file (a table so far) to `--out`, atomically, when one was given: an
/// interruption leaves the previous version whole, never a truncated file.
fn save_table(out: Option<&std::path::Path>, table: &impl serde::Serialize) -> anyhow::Result<()> {
    match out {
        Some(path) => selfsup::run::folder::atomic_write(
            path,
            serde_json::to_string_pretty(table)?.as_bytes(),
        ),
        None => Ok(()),
    }
}

/// Runs graph recipes in order, one run folder per recipe and seed under `runs`. With `out`,
/// the results so far are written there after every seed; with `resume`, seeds already in
/// `out` are reused (same recipe settings only) and interrupted runs continue.
fn run_graph_table(
    recipes: &[PathBuf],
    overrides: &[String],
    seeds: Option<u64>,
    opts: &selfsup::study::graph_table::TableOptions,
    out: Option<&std::path::Path>,
) -> anyhow::Result<Vec<selfsup::study::graph_table::GraphRunResult>> {
    use selfsup::study::graph_table::{load_recipes, run_table, GraphRunResult};
    // Check every recipe before spending time on the first.
    let parsed = load_recipes(recipes, overrides, seeds)?;
    let previous: Vec<GraphRunResult> =
        saved_table(out, opts.run.resume, "selfsup graph --out")?.unwrap_or_default();
    let mut results: Vec<GraphRunResult> = Vec::new();
    for r in &parsed {
        let before = previous.iter().find(|p| p.recipe == r.name);
        let done = &results;
        let result = run_table(
            r,
            opts,
            before,
            |so_far| {
                let all: Vec<&GraphRunResult> =
                    done.iter().chain(std::iter::once(so_far)).collect();
                save_table(out, &all)
            },
            |line| eprintln!("{line}"),
        )?;
        results.push(result);
    }
    Ok(results)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = selfsup::backend::parse_device(&cli.device)?;
    match cli.command {
        Command::Pretrain {
            recipe,
            overrides,
            run_dir,
            resume,
            on_bad_input,
            no_eval,
            quiet,
        } => {
            let stop = trainer::install_signal_handlers()?;
            let report = commands::pretrain(PretrainArgs {
                recipe,
                overrides,
                run_dir,
                resume,
                device,
                threads: cli.threads,
                on_bad_input,
                evaluate: !no_eval,
                progress: !quiet,
                stop,
            })?;
            if !report.eval.is_empty() {
                println!("{}", format_table(&report.eval));
                println!("(results in {}/eval.json)", report.run_dir.display());
            }
        }
        Command::Eval {
            protocols,
            run,
            train,
            test,
            seeds,
            first_seed,
            overrides,
            out,
            from_scratch,
        } => {
            let source = match (run, train, test) {
                (Some(r), None, None) => EvalSource::Run(r),
                (None, Some(train), Some(test)) => EvalSource::Files { train, test },
                _ => anyhow::bail!("give --run DIR, or --train FILE and --test FILE"),
            };
            let cfg = SuiteConfig {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                ..Default::default()
            };
            let seeds = cfg.seeds.clone();
            let feature_protocols = ProtocolArg::protocols(&protocols);
            let mut records = if feature_protocols.is_empty() {
                Vec::new()
            } else {
                commands::eval_suite(
                    &source,
                    &overrides,
                    &feature_protocols,
                    cfg,
                    device,
                    cli.threads,
                )?
            };
            if protocols.contains(&ProtocolArg::FineTune) {
                let EvalSource::Run(dir) = &source else {
                    anyhow::bail!("fine-tune needs --run: it trains the run's encoder");
                };
                records.extend(commands::fine_tune_run(
                    dir,
                    &overrides,
                    &seeds,
                    from_scratch,
                    device,
                    cli.threads,
                )?);
            }
            println!("{}", format_records(&records));
            if let Some(out) = out {
                save_table(Some(&out), &records)?;
                println!("(records in {})", out.display());
            }
        }
        Command::Graph {
            recipes,
            overrides,
            seeds,
            runs,
            out,
            resume,
            save_embeddings,
        } => {
            let opts = selfsup::study::graph_table::TableOptions {
                runs,
                save_embeddings,
                run: commands::RunOptions {
                    run_dir: None,
                    resume,
                    device,
                    threads: cli.threads,
                    on_bad_input: BadInputPolicy::Fail,
                    evaluate: true,
                    progress: false,
                    stop: trainer::install_signal_handlers()?,
                },
            };
            let results = run_graph_table(&recipes, &overrides, seeds, &opts, out.as_deref())?;
            println!("{}", selfsup::study::graph_table::format_results(&results));
            if let Some(out) = out {
                save_table(Some(&out), &results)?;
                println!("(per-seed results in {})", out.display());
            }
        }
        Command::Compare {
            recipes,
            overrides,
            seeds,
            first_seed,
            runs,
            out,
            resume,
            jobs,
        } => {
            let stop = trainer::install_signal_handlers()?;
            let previous = saved_table(out.as_deref(), resume, "selfsup compare --out")?;
            let report = selfsup::study::compare::compare(
                selfsup::study::compare::CompareArgs {
                    recipes,
                    overrides,
                    seeds: (first_seed..first_seed + seeds).collect(),
                    runs,
                    device,
                    threads: cli.threads,
                    stop,
                    resume,
                    jobs: jobs as usize,
                },
                previous.as_ref(),
                |so_far| save_table(out.as_deref(), so_far),
                |line| eprintln!("{line}"),
            )?;
            println!("{}", selfsup::study::compare::format_report(&report));
            if let Some(out) = out {
                save_table(Some(&out), &report)?;
                println!("(per-seed results in {})", out.display());
            }
        }
        Command::Tabular {
            recipes,
            overrides,
            seeds,
            first_seed,
            runs,
            val_fraction,
            test_fraction,
            mlp_epochs,
            no_gbdt,
            out,
            resume,
        } => {
            let stop = trainer::install_signal_handlers()?;
            let previous = saved_table(out.as_deref(), resume, "selfsup tabular --out")?;
            let report = selfsup::study::tabular::tabular(
                selfsup::study::tabular::TabularArgs {
                    recipes,
                    overrides,
                    seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                    runs,
                    val_fraction,
                    test_fraction,
                    probe: selfsup::eval::downstream::MlpProbeConfig {
                        max_epochs: mlp_epochs,
                        ..Default::default()
                    },
                    gbdt: !no_gbdt,
                    device,
                    threads: cli.threads,
                    stop,
                    resume,
                },
                previous.as_ref(),
                |so_far| save_table(out.as_deref(), so_far),
                |line| eprintln!("{line}"),
            )?;
            println!("{}", selfsup::study::tabular::format_report(&report));
            if let Some(out) = out {
                save_table(Some(&out), &report)?;
                println!("(per-seed results in {})", out.display());
            }
        }
        Command::Bench {
            workloads,
            steps,
            rounds,
            python,
            no_reference,
            script,
            pipeline_recipes,
            graph_recipe,
            e2e_recipe,
            e2e_overrides,
            e2e_script,
            e2e_workers,
            e2e_max_steps,
            e2e_model_steps,
            e2e_runs,
            out,
        } => {
            use selfsup::bench::e2e as bench_e2e;
            use selfsup::bench::{self, Workload};
            let all = [
                WorkloadArg::W1,
                WorkloadArg::W2,
                WorkloadArg::W3,
                WorkloadArg::W4,
                WorkloadArg::Pipeline,
            ];
            let chosen = if workloads.is_empty() {
                &all[..]
            } else {
                &workloads[..]
            };
            let run_e2e = chosen.iter().any(|w| matches!(w, WorkloadArg::E2e));
            let workloads = chosen
                .iter()
                .filter(|w| !matches!(w, WorkloadArg::E2e))
                .map(|w| match w {
                    WorkloadArg::W1 => Workload::W1,
                    WorkloadArg::W2 => Workload::W2,
                    WorkloadArg::W3 => Workload::W3,
                    WorkloadArg::W3sdpa => Workload::W3Sdpa,
                    WorkloadArg::W3explicit => Workload::W3Explicit,
                    WorkloadArg::W4 => Workload::W4,
                    WorkloadArg::Pipeline => Workload::Pipeline,
                    WorkloadArg::Grad => Workload::Grad,
                    WorkloadArg::GraphEpoch => Workload::GraphEpoch,
                    WorkloadArg::E2e => unreachable!("filtered above"),
                })
                .collect::<Vec<_>>();
            let python = if no_reference {
                None
            } else {
                let py = python.unwrap_or_else(|| PathBuf::from("python3"));
                let has_torch = std::process::Command::new(&py)
                    .args(["-c", "import torch"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                if has_torch && script.exists() {
                    Some(py)
                } else {
                    eprintln!(
                        "bench: no PyTorch reference ({} cannot import torch, or {} is missing); selfsup only",
                        py.display(),
                        script.display()
                    );
                    None
                }
            };
            let threads = selfsup::backend::set_threads(cli.threads);
            eprintln!("bench: {threads} libtorch threads; the reference is pinned with REF_THREADS={threads}");
            std::env::set_var("REF_THREADS", threads.to_string());
            let results = if workloads.is_empty() {
                Vec::new()
            } else {
                bench::bench(
                    &bench::BenchArgs {
                        workloads,
                        steps,
                        rounds,
                        python: python.clone(),
                        script,
                        pipeline_recipes,
                        graph_recipe,
                        device,
                    },
                    |line| eprintln!("{line}"),
                )?
            };
            if !results.is_empty() {
                println!("{}", bench::format_results(&results));
            }
            let e2e = if run_e2e {
                let e2e_python = python.filter(|py| {
                    let ok = e2e_script.exists()
                        && std::process::Command::new(py)
                            .args(["-c", "import torch, torchvision"])
                            .output()
                            .map(|o| o.status.success())
                            .unwrap_or(false);
                    if !ok {
                        eprintln!(
                            "bench e2e: no reference ({} cannot import torchvision, or {} is missing); selfsup only",
                            py.display(),
                            e2e_script.display()
                        );
                    }
                    ok
                });
                let report = bench_e2e::bench_e2e(
                    &bench_e2e::E2eArgs {
                        exe: std::env::current_exe()?,
                        recipe: e2e_recipe,
                        overrides: e2e_overrides,
                        seeds: rounds as u64,
                        python: e2e_python,
                        script: e2e_script,
                        threads,
                        reference_workers: e2e_workers,
                        max_steps: e2e_max_steps,
                        model_steps: e2e_model_steps,
                        work_dir: e2e_runs,
                    },
                    |line| eprintln!("{line}"),
                )?;
                println!("{}", bench_e2e::format_report(&report));
                Some(report)
            } else {
                None
            };
            save_table(
                out.as_deref(),
                &serde_json::json!({"steps": results, "e2e": e2e}),
            )?;
        }
        Command::SelfPretrain {
            recipe,
            overrides,
            seeds,
            runs,
            out,
        } => {
            use selfsup::study::self_pretrain::{format_report, self_pretrain, SelfPretrainArgs};
            let report = self_pretrain(
                &SelfPretrainArgs {
                    recipe,
                    overrides,
                    seeds,
                    runs,
                    device,
                    threads: cli.threads,
                },
                |line| eprintln!("{line}"),
            )?;
            println!("{}", format_report(&report));
            save_table(out.as_deref(), &report)?;
        }
        Command::Embed { run, out, split } => {
            let split = match split {
                SplitArg::Train => Split::Train,
                SplitArg::Test => Split::Test,
            };
            let (n, d) = commands::embed_run(&run, &out, split, device, cli.threads)?;
            println!("wrote {n} × {d} embeddings to {}", out.display());
        }
    }
    Ok(())
}
