//! `selfsup`: pretrain encoders without labels and measure what they learned.
//!
//! Exit status: 0 success; 1 runtime failure; 2 usage or recipe error; 3 bad input data;
//! 75 interrupted by SIGINT/SIGTERM after writing a checkpoint (continue with `--resume`);
//! 130 a second SIGINT/SIGTERM (immediate exit; the last checkpoint stays valid).
use clap::{Parser, Subcommand, ValueEnum};
use selfsup::commands::{self, PretrainArgs, Split};
use selfsup::error::{BadInputPolicy, DataError};
use selfsup::pipeline::{format_table, Protocol};
use selfsup::recipe::RecipeError;
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
    /// Evaluate a run's latest checkpoint with a protocol
    Eval {
        protocol: ProtocolArg,
        #[arg(long)]
        run: PathBuf,
        /// Override an evaluation setting, e.g. --set eval.knn_k=20
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
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

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Knn,
    Linear,
    All,
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
            protocol,
            run,
            overrides,
        } => {
            let protocols = match protocol {
                ProtocolArg::Knn => vec![Protocol::Knn],
                ProtocolArg::Linear => vec![Protocol::Linear],
                ProtocolArg::All => vec![Protocol::Knn, Protocol::Linear],
            };
            let records = commands::eval_run(&run, &overrides, &protocols, device, cli.threads)?;
            println!("{}", format_table(&records));
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
