//! `selfsup launch`: starts this node's worker processes of a data-parallel run with torchrun's
//! environment contract (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
//! MASTER_PORT), each with its share of the CPU threads, and waits for them. When one fails,
//! the others are stopped and its exit status is returned; the rendezvous timeout bounds how
//! long a rank can wait for a peer that never comes.
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

pub struct LaunchArgs {
    pub nproc_per_node: usize,
    pub nnodes: usize,
    pub node_rank: usize,
    pub master_addr: String,
    pub master_port: Option<u16>,
    /// libtorch threads for the whole node (0: all cores), split over its processes.
    pub threads: usize,
    pub device: String,
    pub command: Vec<String>,
}

/// Runs the workers; returns the exit code of the first that failed, or 0.
pub fn launch(a: LaunchArgs) -> Result<i32> {
    if a.nproc_per_node == 0 || a.nnodes == 0 {
        bail!("--nproc-per-node and --nnodes must be at least 1");
    }
    if a.node_rank >= a.nnodes {
        bail!(
            "--node-rank {} does not fit --nnodes {}",
            a.node_rank,
            a.nnodes
        );
    }
    if a.command
        .iter()
        .any(|c| c == "--threads" || c.starts_with("--threads="))
    {
        bail!("give --threads before `launch` (the node's threads, split over its processes)");
    }
    let port = match a.master_port {
        Some(p) => p,
        // One node: any free port (several nodes must agree on one, so it is then required).
        None if a.nnodes == 1 => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the rendezvous")?
            .port(),
        None => bail!("--master-port is required with more than one node"),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = if a.threads == 0 { cores } else { a.threads };
    let per = (total / a.nproc_per_node).max(1);
    let world = a.nnodes * a.nproc_per_node;
    let exe = std::env::current_exe().context("locating the selfsup binary")?;
    eprintln!(
        "selfsup launch: {} processes on this node (ranks {}..{} of {world}), {per} threads each, \
         rendezvous at {}:{port}",
        a.nproc_per_node,
        a.node_rank * a.nproc_per_node,
        (a.node_rank + 1) * a.nproc_per_node - 1,
        a.master_addr
    );
    let mut children: Vec<Child> = Vec::new();
    for local in 0..a.nproc_per_node {
        let rank = a.node_rank * a.nproc_per_node + local;
        let child = Command::new(&exe)
            .args(["--threads", &per.to_string(), "--device", &a.device])
            .args(&a.command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", a.nproc_per_node.to_string())
            .env("MASTER_ADDR", &a.master_addr)
            .env("MASTER_PORT", port.to_string())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children);
                return Err(e).context(format!("starting rank {rank}"));
            }
        }
    }
    wait_all(children)
}

/// Waits for every worker; the first failure stops the rest.
fn wait_all(mut children: Vec<Child>) -> Result<i32> {
    let mut done: Vec<Option<ExitStatus>> = vec![None; children.len()];
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if done[i].is_none() {
                done[i] = c.try_wait()?;
            }
        }
        if let Some((i, s)) = done
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.filter(|s| !s.success()).map(|s| (i, s)))
        {
            eprintln!("selfsup launch: local process {i} exited with {s}; stopping the others");
            stop_all(&mut children);
            return Ok(s.code().unwrap_or(1));
        }
        if done.iter().all(Option::is_some) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
