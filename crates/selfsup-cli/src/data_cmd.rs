//! `selfsup data fetch` and `selfsup data list`: the registry's datasets in the data root.
use crate::args::DataCommand;
use selfsup::datasets::fetch::{fetch, FetchError, FetchOptions};
use selfsup::datasets::{DataRoot, Presence, Registry};

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let registry = Registry::builtin();
    let root = DataRoot::from_env();
    match cmd {
        DataCommand::Fetch {
            names,
            all,
            from,
            attempts,
            quiet,
        } => {
            let names = if all {
                registry.names().into_iter().map(String::from).collect()
            } else {
                names
            };
            // Every name is checked before anything is fetched.
            let datasets = names
                .iter()
                .map(|n| {
                    registry.get(n).ok_or_else(|| FetchError::Unknown {
                        name: n.clone(),
                        known: registry.names().join(", "),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let opts = FetchOptions {
                from,
                progress: !quiet,
                attempts,
                ..FetchOptions::default()
            };
            for d in datasets {
                let report = fetch(d, &root, &opts)?;
                let dir = root.dir_of(d);
                if report.written == 0 {
                    println!(
                        "{}: present, {} file(s) verified, in {}",
                        d.name,
                        report.kept,
                        dir.display()
                    );
                } else {
                    println!(
                        "{}: {} file(s) {} and verified ({}){}, in {}",
                        d.name,
                        report.written,
                        if opts.from.is_some() {
                            "imported"
                        } else {
                            "downloaded"
                        },
                        megabytes(report.bytes),
                        if report.kept > 0 {
                            format!(", {} already there", report.kept)
                        } else {
                            String::new()
                        },
                        dir.display()
                    );
                }
                if let Some(note) = &d.note {
                    println!("  note: {note}");
                }
            }
        }
        DataCommand::Inspect {
            recipe,
            overrides,
            on_bad_input,
            out,
        } => {
            use selfsup::run::inspect::{format_summary, inspect};
            let recipe = selfsup::recipe::Recipe::load(&recipe, &overrides)?;
            let summary = inspect(&recipe, on_bad_input)?;
            print!("{}", format_summary(&summary));
            if let Some(out) = out {
                selfsup::study::table_file::save(Some(&out), &summary)?;
            }
        }
        DataCommand::Pack {
            folder,
            out,
            per_shard,
        } => {
            let (images, shards) = selfsup::data::image_shards::pack(&folder, &out, per_shard)?;
            println!(
                "{images} images of {} packed into {shards} shard(s) in {}",
                folder.display(),
                out.display()
            );
        }
        DataCommand::List => {
            println!("data root: {}", root.path().display());
            let width = registry
                .datasets
                .iter()
                .map(|d| d.name.len())
                .max()
                .unwrap_or(4);
            for d in &registry.datasets {
                let state = match d.presence(&root.dir_of(d)) {
                    Presence::Present => "present".to_string(),
                    Presence::Partial(n) => format!("{n} of {} files", d.files.len()),
                    Presence::Absent => "absent".to_string(),
                };
                println!(
                    "{:width$}  {:>13}  {:>9}  {}",
                    d.name,
                    state,
                    megabytes(d.size()),
                    d.title
                );
                println!(
                    "{:width$}  source: {}; licence: {}",
                    "", d.source, d.licence
                );
                if let Some(note) = &d.note {
                    println!("{:width$}  note: {note}", "");
                }
            }
            println!(
                "(`selfsup data fetch NAME` downloads one; `--from DIR` imports it from an offline copy)"
            );
        }
    }
    Ok(())
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
