//! `selfsup pfn`: prior-data fitted networks.
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PfnCommand {
    /// Train a PFN on functions drawn from a Gaussian-process prior (RBF kernel, inputs uniform
    /// on [0, 1]^d) and save it to a folder (pfn.json + weights.safetensors)
    TrainGp {
        /// The folder the model is written to
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        steps: u64,
        /// Functions per step
        #[arg(long, default_value_t = 64)]
        batch: i64,
        /// Context sizes are drawn from 1..=this per step
        #[arg(long, default_value_t = 50)]
        max_context: i64,
        /// Held-out points scored per function and step
        #[arg(long, default_value_t = 50)]
        queries: i64,
        #[arg(long, default_value_t = 128)]
        width: i64,
        #[arg(long, default_value_t = 4)]
        depth: usize,
        /// Buckets of the output density
        #[arg(long, default_value_t = 500)]
        buckets: i64,
        #[arg(long, default_value_t = 5e-4)]
        lr: f64,
        #[arg(long, default_value_t = 1)]
        dims: i64,
        #[arg(long, default_value_t = 0.1)]
        lengthscale: f64,
        #[arg(long, default_value_t = 0.1)]
        outputscale: f64,
        /// Observation noise variance
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        /// Draw ℓ, s² and σ² per function from log-spaced grids (the three fixed values above
        /// are then unused): by default ℓ 0.05–0.8 (6 points), s² 0.05–1 (4), σ² 0.01–0.2 (4)
        #[arg(long)]
        hyper_grid: bool,
        /// The length-scale grid as LOW,HIGH,POINTS (implies --hyper-grid)
        #[arg(long, value_parser = selfsup::pfn::gp::GridAxis::parse)]
        lengthscale_grid: Option<selfsup::pfn::gp::GridAxis>,
        /// The signal-variance grid as LOW,HIGH,POINTS (implies --hyper-grid)
        #[arg(long, value_parser = selfsup::pfn::gp::GridAxis::parse)]
        outputscale_grid: Option<selfsup::pfn::gp::GridAxis>,
        /// The noise-variance grid as LOW,HIGH,POINTS (implies --hyper-grid)
        #[arg(long, value_parser = selfsup::pfn::gp::GridAxis::parse)]
        noise_grid: Option<selfsup::pfn::gp::GridAxis>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// A PFN's negative log-likelihood of held-out points beside the exact GP posterior's, on
    /// fresh draws from the prior it was trained on, by context size
    GpCompare {
        /// The folder `selfsup pfn train-gp` wrote
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "5,20,50")]
        contexts: Vec<i64>,
        /// Functions per context size
        #[arg(long, default_value_t = 1000)]
        functions: i64,
        /// Held-out points per function
        #[arg(long, default_value_t = 10)]
        queries: i64,
        /// Seed of the draws (training used the model's own seed)
        #[arg(long, default_value_t = 1_000_003)]
        seed: u64,
        /// Also write the rows as JSON
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train a PFN classifier on small tables drawn from a prior (labels of random MLPs of up
    /// to --features features and --classes classes) and save it to a folder
    TrainClassifier {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        steps: u64,
        /// Tables per step
        #[arg(long, default_value_t = 16)]
        batch: i64,
        /// Context (training-row) counts are drawn from 8..=this per step
        #[arg(long, default_value_t = 256)]
        max_context: i64,
        #[arg(long, default_value_t = 64)]
        queries: i64,
        #[arg(long, default_value_t = 64)]
        features: i64,
        #[arg(long, default_value_t = 10)]
        classes: i64,
        #[arg(long, default_value_t = 128)]
        width: i64,
        #[arg(long, default_value_t = 4)]
        depth: usize,
        #[arg(long, default_value_t = 5e-4)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Classify the rows of --test from the labelled rows of --train in one forward pass (CSV:
    /// numeric features, the class 0..k last; a first line that is not numbers is a header)
    Predict {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        /// Write `row,class,p0,p1,…` per test row here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The classifier on small tables it never saw, beside logistic regression and GBDT on the
    /// same random splits
    SmallTables {
        #[arg(long)]
        model: PathBuf,
        /// Tables (CSV as for `predict`)
        #[arg(required = true)]
        tables: Vec<PathBuf>,
        #[arg(long, default_value_t = 10)]
        splits: u64,
        /// Share of the rows used for training (at most 1,024 rows)
        #[arg(long, default_value_t = 0.5)]
        train_fraction: f64,
        /// Also write the accuracies as JSON
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: PfnCommand, device: tch::Device, threads: usize) -> anyhow::Result<()> {
    use selfsup::pfn::train_gp::{
        compare_with_exact, format_rows, train_gp_pfn, GpPfn, GpTraining,
    };
    selfsup::backend::set_threads(threads);
    match cmd {
        PfnCommand::TrainGp {
            out,
            steps,
            batch,
            max_context,
            queries,
            width,
            depth,
            buckets,
            lr,
            dims,
            lengthscale,
            outputscale,
            noise,
            hyper_grid,
            lengthscale_grid,
            outputscale_grid,
            noise_grid,
            seed,
        } => {
            let mut t = GpTraining {
                steps,
                batch,
                max_context,
                queries,
                lr,
                seed,
                ..Default::default()
            };
            t.prior = selfsup::pfn::gp::GpPrior {
                dims,
                lengthscale,
                outputscale,
                noise,
                hyper: None,
            };
            let any_axis =
                lengthscale_grid.is_some() || outputscale_grid.is_some() || noise_grid.is_some();
            if hyper_grid || any_axis {
                let d = selfsup::pfn::gp::HyperGrid::default();
                t.prior.hyper = Some(selfsup::pfn::gp::HyperGrid {
                    lengthscale: lengthscale_grid.unwrap_or(d.lengthscale),
                    outputscale: outputscale_grid.unwrap_or(d.outputscale),
                    noise: noise_grid.unwrap_or(d.noise),
                });
            }
            t.shape.dims = dims;
            t.shape.width = width;
            t.shape.depth = depth;
            t.shape.outputs = buckets;
            let model = train_gp_pfn(&t, device, 500, |l| eprintln!("{l}"))?;
            model.save(&out)?;
            println!("wrote {}", out.display());
        }
        PfnCommand::GpCompare {
            model,
            contexts,
            functions,
            queries,
            seed,
            out,
        } => {
            let m = GpPfn::load(&model, device)?;
            let rows = compare_with_exact(&m, &contexts, functions, queries, seed, device)?;
            print!("{}", format_rows(&rows));
            if let Some(o) = out {
                selfsup::run::folder::atomic_write(
                    &o,
                    serde_json::to_string_pretty(&rows)?.as_bytes(),
                )?;
                println!("(figures in {})", o.display());
            }
        }
        PfnCommand::TrainClassifier {
            out,
            steps,
            batch,
            max_context,
            queries,
            features,
            classes,
            width,
            depth,
            lr,
            seed,
        } => {
            use selfsup::pfn::classify::{train_classifier_pfn, ClassifierTraining};
            let mut t = ClassifierTraining {
                steps,
                batch,
                max_context,
                queries,
                lr,
                seed,
                ..Default::default()
            };
            t.prior = selfsup::pfn::prior_mlp::MlpPrior { features, classes };
            t.shape.dims = features;
            t.shape.outputs = classes;
            t.shape.classes = Some(classes);
            t.shape.width = width;
            t.shape.depth = depth;
            let model = train_classifier_pfn(&t, device, 250, |l| eprintln!("{l}"))?;
            model.save(&out)?;
            println!("wrote {}", out.display());
        }
        PfnCommand::Predict {
            model,
            train,
            test,
            out,
        } => {
            use selfsup::pfn::small_tables::read_table;
            let m = selfsup::pfn::classify::ClassifierPfn::load(&model, device)?;
            let (xt, yt) = read_table(&train)?;
            let (xq, yq) = read_table(&test)?;
            let p = m.predict_proba(&xt, &yt, &xq)?;
            let pred = p.argmax(1, false);
            let right = pred
                .eq_tensor(&yq)
                .to_kind(tch::Kind::Double)
                .mean(tch::Kind::Double);
            println!(
                "{} test rows from {} training rows: accuracy {:.2} % (against the test file's last column)",
                xq.size()[0],
                xt.size()[0],
                100.0 * right.double_value(&[])
            );
            if let Some(o) = out {
                let rows = Vec::<Vec<f32>>::try_from(&p)?;
                let classes = Vec::<i64>::try_from(&pred)?;
                let mut text = String::from("row,class");
                for c in 0..p.size()[1] {
                    text.push_str(&format!(",p{c}"));
                }
                text.push('\n');
                for (i, (r, c)) in rows.iter().zip(classes).enumerate() {
                    text.push_str(&format!("{i},{c}"));
                    for v in r {
                        text.push_str(&format!(",{v}"));
                    }
                    text.push('\n');
                }
                selfsup::run::folder::atomic_write(&o, text.as_bytes())?;
                println!("(predictions in {})", o.display());
            }
        }
        PfnCommand::SmallTables {
            model,
            tables,
            splits,
            train_fraction,
            out,
        } => {
            use selfsup::pfn::small_tables::{format_rows, small_table};
            let m = selfsup::pfn::classify::ClassifierPfn::load(&model, device)?;
            let rows = tables
                .iter()
                .map(|t| small_table(&m, t, splits, train_fraction))
                .collect::<anyhow::Result<Vec<_>>>()?;
            print!("{}", format_rows(&rows));
            if let Some(o) = out {
                selfsup::run::folder::atomic_write(
                    &o,
                    serde_json::to_string_pretty(&rows)?.as_bytes(),
                )?;
                println!("(figures in {})", o.display());
            }
        }
    }
    Ok(())
}
