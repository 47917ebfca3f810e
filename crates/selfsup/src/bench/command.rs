//! `selfsup bench` as one library call: the chosen step workloads and whole end-to-end runs, each
//! beside the PyTorch reference when a Python that imports torch (and torchvision, for the
//! end-to-end pipeline) is found, interleaved in the same process tree and thread count.
use super::e2e;
use super::{bench, format_results, BenchArgs, Workload};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Device;

/// What `selfsup bench` was asked for.
pub struct BenchCommand {
    /// Step and pipeline workloads (the model steps W1–W4, view pipeline, graph epoch, …).
    pub workloads: Vec<Workload>,
    /// Also whole pretraining runs against the PyTorch + torchvision pipeline.
    pub e2e: bool,
    pub steps: usize,
    pub rounds: usize,
    /// Python for the reference (default `python3`); `no_reference` runs ours only.
    pub python: Option<PathBuf>,
    pub no_reference: bool,
    pub script: PathBuf,
    pub pipeline_recipes: Vec<PathBuf>,
    pub graph_recipe: PathBuf,
    pub e2e_recipe: PathBuf,
    pub e2e_overrides: Vec<String>,
    pub e2e_script: PathBuf,
    pub e2e_workers: usize,
    pub e2e_max_steps: Option<u64>,
    pub e2e_model_steps: usize,
    pub e2e_runs: PathBuf,
    pub device: Device,
    pub threads: usize,
    /// Model steps and graph epochs in each of these precisions, interleaved.
    pub precisions: Vec<crate::train::precision::Precision>,
    /// W1 in channels-last memory format on both sides.
    pub channels_last: bool,
    /// Graph epochs also with graph attention op by op.
    pub gat_ops: bool,
    /// Overrides of the pipeline and graph recipes.
    pub recipe_overrides: Vec<String>,
}

/// Whether `python` runs `-c code` successfully.
fn imports(python: &Path, code: &str) -> bool {
    std::process::Command::new(python)
        .args(["-c", code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the benchmark, prints its tables, and returns every figure as JSON
/// (`{"steps": [...], "e2e": {...}}`).
pub fn run(cmd: BenchCommand) -> Result<serde_json::Value> {
    let python = if cmd.no_reference {
        None
    } else {
        let py = cmd.python.unwrap_or_else(|| PathBuf::from("python3"));
        if imports(&py, "import torch") && cmd.script.exists() {
            Some(py)
        } else {
            eprintln!(
                "bench: no PyTorch reference ({} cannot import torch, or {} is missing); selfsup only",
                py.display(),
                cmd.script.display()
            );
            None
        }
    };
    let hardware = crate::hardware::describe(cmd.device);
    eprintln!(
        "bench: {hardware}, libtorch {}",
        crate::backend::LIBTORCH_VERSION
    );
    let threads = crate::backend::set_threads(cmd.threads);
    eprintln!(
        "bench: {threads} libtorch threads; the reference is pinned with REF_THREADS={threads}"
    );
    std::env::set_var("REF_THREADS", threads.to_string());
    // The reference runs under the allocator policy this process has set for itself.
    for (k, v) in crate::backend::MALLOC_ENV {
        std::env::set_var(k, v);
    }
    let results = if cmd.workloads.is_empty() {
        Vec::new()
    } else {
        bench(
            &BenchArgs {
                workloads: cmd.workloads,
                steps: cmd.steps,
                rounds: cmd.rounds,
                python: python.clone(),
                script: cmd.script,
                pipeline_recipes: cmd.pipeline_recipes,
                graph_recipe: cmd.graph_recipe,
                device: cmd.device,
                precisions: cmd.precisions,
                channels_last: cmd.channels_last,
                gat_ops: cmd.gat_ops,
                recipe_overrides: cmd.recipe_overrides,
            },
            |line| eprintln!("{line}"),
        )?
    };
    if !results.is_empty() {
        println!(
            "machine: {hardware}; {threads} threads\n{}",
            format_results(&results)
        );
    }
    let e2e = if cmd.e2e {
        let e2e_python = python.filter(|py| {
            let ok = cmd.e2e_script.exists() && imports(py, "import torch, torchvision");
            if !ok {
                eprintln!(
                    "bench e2e: no reference ({} cannot import torchvision, or {} is missing); selfsup only",
                    py.display(),
                    cmd.e2e_script.display()
                );
            }
            ok
        });
        let report = e2e::bench_e2e(
            &e2e::E2eArgs {
                exe: std::env::current_exe()?,
                recipe: cmd.e2e_recipe,
                overrides: cmd.e2e_overrides,
                seeds: cmd.rounds as u64,
                python: e2e_python,
                script: cmd.e2e_script,
                threads,
                reference_workers: cmd.e2e_workers,
                max_steps: cmd.e2e_max_steps,
                model_steps: cmd.e2e_model_steps,
                work_dir: cmd.e2e_runs,
            },
            |line| eprintln!("{line}"),
        )?;
        println!("{}", e2e::format_report(&report));
        Some(report)
    } else {
        None
    };
    Ok(serde_json::json!({
        "hardware": hardware,
        "threads": threads,
        "libtorch": crate::backend::LIBTORCH_VERSION,
        "steps": results,
        "e2e": e2e,
    }))
}
