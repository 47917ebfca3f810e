//! selfsup: self-supervised representation learning on libtorch.
//!
//! The pipeline, one module per stage (see DESIGN.md):
//! `data` → `views` → `encoders` → `heads` → `objectives` → `methods` → `train` → `eval` → `export`.
//! [`recipe`] describes a run, [`pipeline`] puts the stages together, [`commands`] are the CLI's
//! subcommands as functions.

pub mod backend;
pub mod bench;
pub mod bench_e2e;
pub mod commands;
pub mod compare;
pub mod data;
pub mod encoders;
pub mod error;
pub mod eval;
pub mod export;
pub mod fault;
pub mod graph;
pub mod heads;
pub mod methods;
pub mod objectives;
pub mod pipeline;
pub mod recipe;
pub mod rng;
pub mod run_folder;
pub mod self_pretrain;
pub mod stats;
pub mod tabular;
pub mod torch_init;
pub mod torch_rng;
pub mod train;
pub mod views;
