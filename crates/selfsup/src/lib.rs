//! selfsup: self-supervised representation learning on libtorch.
//!
//! The layers, each importing only those before it (`docs/architecture.md`):
//! core (`backend`, `distributed`, `error`, `fault`, `rng`, `rules`, `stats`, `torch_init`, `torch_rng`) → `data` →
//! `views` → `encoders` → `heads` → `objectives` → `methods` → `train` → `eval` → `recipe`
//! (the run's description, over every layer's configuration) → `run` (one run, any modality)
//! → `study` (tables of runs) → `bench`.

pub mod backend;
pub mod distributed;
pub mod error;
pub mod fault;
pub mod hardware;
pub mod rng;
pub mod rules;
pub mod stats;
pub mod torch_dropout;
pub mod torch_init;
pub mod torch_rng;

pub mod data;
pub mod datasets;
pub mod encoders;
pub mod eval;
pub mod heads;
pub mod methods;
pub mod objectives;
pub mod pfn;
pub mod train;
pub mod views;

pub mod recipe;

pub mod bench;
pub mod run;
pub mod study;
