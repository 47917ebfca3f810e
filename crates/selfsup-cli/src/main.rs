//! `selfsup`: pretrain encoders without labels and measure what they learned.
//!
//! Exit status: 0 success; 1 runtime failure; 2 usage or recipe error; 3 bad input data (a
//! dataset not fetched yet, a file that fails its checksum);
//! 75 interrupted by SIGINT/SIGTERM after writing a checkpoint (continue with `--resume`);
//! 130 a second SIGINT/SIGTERM (immediate exit; the last checkpoint stays valid).
mod args;
mod data_cmd;
mod launch;
mod pfn_cmd;

use args::{Cli, Command, ProtocolArg};
use clap::Parser;
use selfsup::datasets::fetch::FetchError;
use selfsup::error::{BadInputPolicy, DataError};
use selfsup::eval::downstream::MlpProbeConfig;
use selfsup::eval::suite::format_records;
use selfsup::recipe::RecipeError;
use selfsup::run::commands::{self, EvalSource, PretrainArgs};
use selfsup::run::pipeline::format_table;
use selfsup::study::table_file::{save as save_table, saved as saved_table};
use selfsup::study::{compare, tabular};
use selfsup::train::trainer::{self, TrainStop};
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Colour only for a person at a terminal: not into files or pipes, nor under NO_COLOR
    // (no-color.org: any non-empty value).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SELFSUP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    selfsup::backend::keep_freed_memory();
    let cli = Cli::parse();
    if let Some(root) = &cli.data_root {
        // Still one thread here; everything after reads the data root from the environment.
        std::env::set_var(selfsup::datasets::DATA_ROOT_ENV, root);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A command line that asks for something impossible (exit status 2, as clap's own errors).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(TrainStop::Interrupted { .. }) = e.downcast_ref::<TrainStop>() {
        return 75;
    }
    if e.downcast_ref::<RecipeError>().is_some()
        || e.downcast_ref::<Usage>().is_some()
        || e.downcast_ref::<selfsup::run::neighbours::BadRequest>()
            .is_some()
    {
        return 2;
    }
    if e.downcast_ref::<DataError>().is_some() {
        return 3;
    }
    match e.downcast_ref::<FetchError>() {
        Some(FetchError::Unknown { .. }) => 2,
        Some(
            FetchError::Checksum { .. }
            | FetchError::Size { .. }
            | FetchError::NotInMirror { .. }
            | FetchError::Archive(_),
        ) => 3,
        _ => 1,
    }
}

/// Prints a table and, with `--out`, writes its figures there.
fn show(
    text: &str,
    out: Option<std::path::PathBuf>,
    table: &impl serde::Serialize,
) -> anyhow::Result<()> {
    println!("{text}");
    if let Some(out) = out {
        save_table(Some(&out), table)?;
        println!("(figures in {})", out.display());
    }
    Ok(())
}

/// Writes the HTML report of a table's results file beside it; a report that cannot be drawn
/// is a warning, never the loss of the table.
fn table_report(json: &std::path::Path, ucr_reference: &std::path::Path) {
    match selfsup::study::table_report::write_table_report(json, ucr_reference) {
        Ok(p) => eprintln!("(report in {})", p.display()),
        Err(e) => eprintln!("warning: no report of {}: {e:#}", json.display()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device =
        selfsup::backend::parse_device(&cli.device).map_err(|e| Usage(format!("{e:#}")))?;
    match cli.command {
        Command::Launch {
            nproc_per_node,
            nnodes,
            node_rank,
            master_addr,
            master_port,
            command,
        } => {
            let code = launch::launch(launch::LaunchArgs {
                nproc_per_node,
                nnodes,
                node_rank,
                master_addr,
                master_port,
                threads: cli.threads,
                device: cli.device.clone(),
                command,
            })?;
            if code != 0 {
                std::process::exit(code);
            }
        }
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
            // The page a person looks at; a run whose report cannot be drawn is still a run.
            // In a data-parallel run only rank 0 owns the folder.
            let secondary =
                selfsup::distributed::WorldEnv::from_process()?.is_some_and(|e| e.rank > 0);
            if secondary {
                return Ok(());
            }
            match selfsup::run::report::write_run_report(&report.run_dir, device) {
                Ok(p) => println!("(report in {})", p.display()),
                Err(e) => tracing::warn!("no report.html: {e:#}"),
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
                _ => {
                    return Err(
                        Usage("give --run DIR, or --train FILE and --test FILE".into()).into(),
                    )
                }
            };
            let records = commands::evaluate(
                &source,
                &overrides,
                &ProtocolArg::protocols(&protocols),
                protocols.contains(&ProtocolArg::FineTune),
                protocols.contains(&ProtocolArg::SelfTrain),
                (first_seed..first_seed + seeds.max(1)).collect(),
                from_scratch,
                device,
                cli.threads,
            )?;
            show(&format_records(&records), out, &records)?;
        }
        Command::Graph {
            recipes,
            overrides,
            seeds,
            first_seed,
            runs,
            out,
            resume,
            save_embeddings,
        } => {
            use selfsup::study::graph_table::{format_results, load_recipes, run_tables};
            let opts = selfsup::study::graph_table::TableOptions {
                runs,
                save_embeddings,
                run: table_run_options(device, cli.threads, resume)?,
            };
            // Every recipe is checked before time is spent on the first.
            let seeds = seeds.map(|n| (first_seed..first_seed + n.max(1)).collect());
            let recipes = load_recipes(&recipes, &overrides, seeds)?;
            let results = run_tables(&recipes, &opts, out.as_deref())?;
            show(&format_results(&results), out.clone(), &results)?;
            if let Some(o) = &out {
                table_report(o, std::path::Path::new(""));
            }
        }
        Command::AudioTable {
            recipes,
            overrides,
            seeds,
            first_seed,
            runs,
            out,
        } => {
            use selfsup::study::audio_table;
            // Every recipe is checked before time is spent on the first.
            let recipes = recipes
                .iter()
                .map(|p| selfsup::recipe::Recipe::load(p, &overrides))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = audio_table::AudioTableOptions {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
            };
            let started = std::time::Instant::now();
            let table = audio_table::run_audio_table(&recipes, &opts, |line| eprintln!("{line}"))?;
            let text = audio_table::format_table(&table);
            eprintln!(
                "wall time of this invocation: {:.1} min",
                started.elapsed().as_secs_f64() / 60.0
            );
            selfsup::run::folder::atomic_write(&runs.join("table.md"), text.as_bytes())?;
            table_report(&runs.join("table.json"), std::path::Path::new(""));
            if let Some(o) = &out {
                selfsup::run::folder::atomic_write(o, text.as_bytes())?;
            }
            print!("{text}");
        }
        Command::Multimodal {
            recipe,
            overrides,
            seeds,
            first_seed,
            runs,
            out,
        } => {
            use selfsup::study::multimodal_table as mm;
            let recipe = selfsup::recipe::Recipe::load(&recipe, &overrides)?;
            let opts = mm::MultimodalOptions {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
            };
            let started = std::time::Instant::now();
            let table = mm::run_multimodal_table(&recipe, &opts, |line| eprintln!("{line}"))?;
            let text = mm::format_table(&table);
            eprintln!(
                "wall time of this invocation: {:.1} min",
                started.elapsed().as_secs_f64() / 60.0
            );
            selfsup::run::folder::atomic_write(&runs.join("table.md"), text.as_bytes())?;
            table_report(&runs.join("table.json"), std::path::Path::new(""));
            if let Some(o) = &out {
                selfsup::run::folder::atomic_write(o, text.as_bytes())?;
            }
            print!("{text}");
        }
        Command::FewLabels {
            recipe,
            overrides,
            seeds,
            first_seed,
            fractions,
            steps,
            batch,
            sam_rho,
            runs,
            out,
        } => {
            use selfsup::study::few_labels;
            let recipe = selfsup::recipe::Recipe::load(&recipe, &overrides)?;
            let opts = few_labels::FewLabelsOptions {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                fractions,
                steps,
                batch,
                sam_rho,
                out: None,
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
            };
            let table = few_labels::run_few_labels(&recipe, &opts, |l| eprintln!("{l}"))?;
            let text = few_labels::format_table(&table);
            table_report(&runs.join("few-labels.json"), std::path::Path::new(""));
            if let Some(p) = out {
                selfsup::run::folder::atomic_write(&p, text.as_bytes())?;
            }
            println!("{text}");
        }
        Command::SimcoreTable {
            recipe,
            overrides,
            seeds,
            first_seed,
            target_classes,
            digits,
            budget,
            clusters,
            stop_tau,
            steps,
            runs,
            out,
        } => {
            use selfsup::study::simcore_table;
            let recipe = selfsup::recipe::Recipe::load(&recipe, &overrides)?;
            let opts = simcore_table::SimcoreOptions {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                target_classes,
                digits,
                coreset: selfsup::eval::coreset::CoresetConfig {
                    clusters,
                    budget,
                    stop: stop_tau.map(|tau| selfsup::eval::coreset::StopRule {
                        tau,
                        ..Default::default()
                    }),
                    seed: 0,
                },
                steps,
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
            };
            let table = simcore_table::run_simcore_table(&recipe, &opts, |l| eprintln!("{l}"))?;
            let text = simcore_table::format_table(&table);
            table_report(&runs.join("simcore.json"), std::path::Path::new(""));
            if let Some(p) = out {
                selfsup::run::folder::atomic_write(&p, text.as_bytes())?;
            }
            println!("{text}");
        }
        Command::TextTable {
            recipes,
            overrides,
            seeds,
            first_seed,
            budget_minutes,
            fine_tune_epochs,
            fine_tune_labels,
            sms,
            runs,
            out,
        } => {
            use selfsup::study::text_table;
            let recipes = recipes
                .iter()
                .map(|p| selfsup::recipe::Recipe::load(p, &overrides))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = text_table::TextTableOptions {
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
                budget_minutes: (budget_minutes > 0.0).then_some(budget_minutes),
                // BERT-style fine-tuning: AdamW, warm-free cosine decay, small batches.
                fine_tune: selfsup::eval::fine_tune::FineTuneConfig {
                    epochs: fine_tune_epochs,
                    label_fraction: fine_tune_labels,
                    batch: 32,
                    lr: 2e-4,
                    weight_decay: 0.01,
                    cosine: true,
                    ..Default::default()
                },
                sms: match sms {
                    Some(p) => p,
                    None => text_table::default_sms_path()?,
                },
            };
            let started = std::time::Instant::now();
            let table = text_table::run_text_table(&recipes, &opts, |line| eprintln!("{line}"))?;
            let text = text_table::format_table(&table);
            eprintln!(
                "wall time of this invocation: {:.1} min",
                started.elapsed().as_secs_f64() / 60.0
            );
            selfsup::run::folder::atomic_write(&runs.join("table.md"), text.as_bytes())?;
            table_report(&runs.join("table.json"), std::path::Path::new(""));
            if let Some(o) = &out {
                selfsup::run::folder::atomic_write(o, text.as_bytes())?;
            }
            print!("{text}");
        }
        Command::UcrTable {
            recipe,
            overrides,
            sets,
            seeds,
            first_seed,
            reference,
            runs,
            out,
            finished_only,
        } => {
            use selfsup::study::ucr_table;
            let r = selfsup::recipe::Recipe::load(&recipe, &overrides)?;
            let published = ucr_table::read_published(&reference)?;
            let sets: Vec<String> = if sets == "all" {
                published.keys().cloned().collect()
            } else {
                sets.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            let runs = runs.unwrap_or_else(|| std::path::PathBuf::from("runs/ucr").join(&r.name));
            let opts = ucr_table::UcrTableOptions {
                sets: sets.clone(),
                seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                runs: runs.clone(),
                run: table_run_options(device, cli.threads, false)?,
                finished_only,
            };
            let started = std::time::Instant::now();
            let table = ucr_table::run_ucr_table(&r, &opts, |line| eprintln!("{line}"))?;
            let rows = ucr_table::rows(&table, &sets, &published);
            let text = ucr_table::format_table(&table, &rows);
            eprintln!(
                "wall time of this invocation: {:.1} min",
                started.elapsed().as_secs_f64() / 60.0
            );
            if !finished_only {
                selfsup::run::folder::atomic_write(&runs.join("table.md"), text.as_bytes())?;
                table_report(&runs.join("table.json"), &reference);
            }
            if let Some(o) = &out {
                selfsup::run::folder::atomic_write(o, text.as_bytes())?;
            }
            print!("{text}");
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
            let report = compare::compare(
                compare::CompareArgs {
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
            show(&compare::format_report(&report), out.clone(), &report)?;
            if let Some(o) = &out {
                table_report(o, std::path::Path::new(""));
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
            let report = tabular::tabular(
                tabular::TabularArgs {
                    recipes,
                    overrides,
                    seeds: (first_seed..first_seed + seeds.max(1)).collect(),
                    runs,
                    val_fraction,
                    test_fraction,
                    probe: MlpProbeConfig {
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
            show(&tabular::format_report(&report), out.clone(), &report)?;
            if let Some(o) = &out {
                table_report(o, std::path::Path::new(""));
            }
        }
        Command::Bench(b) => {
            let out = b.out.clone();
            let figures = selfsup::bench::command::run(b.command(device, cli.threads))?;
            save_table(out.as_deref(), &figures)?;
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
            show(&format_report(&report), out, &report)?;
        }
        Command::Data(cmd) => data_cmd::run(cmd)?,
        Command::Pfn(cmd) => pfn_cmd::run(cmd, device, cli.threads)?,
        Command::Report { run, reference } => {
            selfsup::backend::set_threads(cli.threads);
            let path = if run.is_file() {
                selfsup::study::table_report::write_table_report(&run, &reference)?
            } else {
                selfsup::run::report::write_run_report(&run, device)?
            };
            println!("wrote {}", path.display());
        }
        Command::Neighbors {
            run,
            memory,
            queries,
            query,
            rows,
            k,
            split,
            out,
            html,
        } => {
            use selfsup::run::neighbours::{format_report, neighbours, NeighbourSource};
            let listed: Vec<i64> = if query.is_empty() {
                rows
            } else {
                (0..query.len() as i64).collect()
            };
            let source = match (run, memory, queries) {
                (Some(dir), None, None) if !query.is_empty() => {
                    NeighbourSource::RunWithImages { dir, images: query }
                }
                (Some(dir), None, None) => NeighbourSource::Run {
                    dir,
                    split: split.into(),
                },
                (None, Some(memory), Some(queries)) => NeighbourSource::Files { memory, queries },
                _ => {
                    return Err(
                        Usage("give --run DIR, or --memory FILE and --queries FILE".into()).into(),
                    )
                }
            };
            let report = neighbours(&source, &listed, k, device, cli.threads)?;
            let text = format_report(&report);
            if let Some(path) = html {
                let body = match &report.image_grid {
                    Some(grid) => grid.clone(),
                    None => format!("<pre>{}</pre>\n", selfsup::run::charts::escape(&text)),
                };
                let page = selfsup::run::charts::page("selfsup neighbors", &body);
                selfsup::run::folder::atomic_write(&path, page.as_bytes())?;
                eprintln!("(page in {})", path.display());
            }
            show(&text, out, &report)?;
        }
        Command::Embed {
            run,
            out,
            split,
            format,
        } => {
            let format = match format {
                Some(f) => f.into(),
                None => selfsup::run::export::EmbedFormat::from_path(&out)
                    .map_err(|e| Usage(format!("{e:#}")))?,
            };
            let (n, d) =
                commands::embed_run_as(&run, &out, format, split.into(), device, cli.threads)?;
            println!("wrote {n} × {d} embeddings to {}", out.display());
        }
    }
    Ok(())
}

/// How a table command makes each of its runs: evaluated, quiet, stopping cleanly on a signal.
fn table_run_options(
    device: tch::Device,
    threads: usize,
    resume: bool,
) -> anyhow::Result<selfsup::run::RunOptions> {
    Ok(selfsup::run::RunOptions {
        run_dir: None,
        resume,
        device,
        threads,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: true,
        progress: false,
        stop: trainer::install_signal_handlers()?,
    })
}
