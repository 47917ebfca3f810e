//! Where this process stands in a distributed run, read from the environment that launchers set.
//!
//! torchrun's contract comes first (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`; under torchrun's agent the store is already served by the agent,
//! `TORCHELASTIC_USE_AGENT_STORE=True`, and each restart uses its own key prefix,
//! `TORCHELASTIC_RESTART_COUNT`); `selfsup launch` sets the same variables. Slurm's `srun` sets
//! `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID` and `SLURM_NTASKS_PER_NODE` instead, read when
//! the torchrun ones are absent; `MASTER_ADDR` then falls back to `SLURM_LAUNCH_NODE_IPADDR`.
use anyhow::{bail, Context, Result};

/// torchrun's default store port.
pub const DEFAULT_PORT: u16 = 29500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// The store is served by a launcher's agent: every rank connects as a client.
    pub agent_store: bool,
    /// Key prefix of this attempt's group (torchrun's `/worker/attempt_N`), empty if none.
    pub store_prefix: String,
}

impl WorldEnv {
    /// From the process environment; `None` when no launcher's variables are set (one process).
    pub fn from_process() -> Result<Option<WorldEnv>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From any variable source (tests pass a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<WorldEnv>> {
        let num = |k: &str| -> Result<Option<usize>> {
            match get(k) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .with_context(|| format!("environment variable {k}={v:?} is not a count")),
            }
        };
        let (rank, world, local, local_world, scheme) = if let Some(rank) = num("RANK")? {
            let Some(world) = num("WORLD_SIZE")? else {
                bail!("RANK is set but WORLD_SIZE is not (set both, as torchrun does)");
            };
            let local = num("LOCAL_RANK")?.unwrap_or(rank);
            let local_world = num("LOCAL_WORLD_SIZE")?.unwrap_or(world);
            (rank, world, local, local_world, "torchrun")
        } else if let Some(rank) = num("SLURM_PROCID")? {
            let world = num("SLURM_NTASKS")?.unwrap_or(1);
            let local = num("SLURM_LOCALID")?.unwrap_or(0);
            // SLURM_NTASKS_PER_NODE may read "4" or "4(x2)": the leading count is this node's.
            let local_world = get("SLURM_NTASKS_PER_NODE")
                .and_then(|v| v.split(['(', ',']).next().and_then(|s| s.parse().ok()))
                .unwrap_or(world);
            (rank, world, local, local_world, "Slurm")
        } else {
            return Ok(None);
        };
        if world == 0 || rank >= world {
            bail!("{scheme}: rank {rank} does not fit world size {world}");
        }
        if local >= local_world {
            bail!("{scheme}: local rank {local} does not fit {local_world} processes on this node");
        }
        let master_addr = get("MASTER_ADDR")
            .or_else(|| get("SLURM_LAUNCH_NODE_IPADDR"))
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let master_port = match get("MASTER_PORT") {
            None => DEFAULT_PORT,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .with_context(|| format!("MASTER_PORT={p:?} is not a port number"))?,
        };
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        let store_prefix = if agent_store {
            format!(
                "/worker/attempt_{}",
                get("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into())
            )
        } else {
            String::new()
        };
        Ok(Some(WorldEnv {
            rank,
            world_size: world,
            local_rank: local,
            local_world_size: local_world,
            master_addr,
            master_port,
            agent_store,
            store_prefix,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<WorldEnv>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorldEnv::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn no_launcher_means_one_process() {
        assert_eq!(read(&[]).unwrap(), None);
    }

    #[test]
    fn torchrun_variables_are_read() {
        let e = read(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.0.0.7"),
            ("MASTER_PORT", "29511"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.local_world_size),
            (3, 4, 1, 2)
        );
        assert_eq!((e.master_addr.as_str(), e.master_port), ("10.0.0.7", 29511));
        assert!(e.agent_store);
        assert_eq!(e.store_prefix, "/worker/attempt_2");
    }

    #[test]
    fn slurm_is_the_fallback() {
        let e = read(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
            ("SLURM_LAUNCH_NODE_IPADDR", "10.1.2.3"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.local_world_size),
            (5, 8, 1, 4)
        );
        assert_eq!(
            (e.master_addr.as_str(), e.master_port),
            ("10.1.2.3", DEFAULT_PORT)
        );
        assert!(!e.agent_store);
    }

    #[test]
    fn inconsistent_variables_are_refused_by_name() {
        let msg = |p: &[(&str, &str)]| format!("{:#}", read(p).unwrap_err());
        assert!(msg(&[("RANK", "0")]).contains("WORLD_SIZE"));
        assert!(msg(&[("RANK", "2"), ("WORLD_SIZE", "2")]).contains("rank 2"));
        assert!(msg(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK=\"x\""));
        let port = &[("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_PORT", "70000")];
        assert!(msg(port).contains("MASTER_PORT"));
    }
}
