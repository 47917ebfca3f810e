//! The training loop and everything it owns: optimisers, schedules, checkpoints, metrics.
//! It knows nothing about any particular method.
pub mod checkpoint;
pub mod config;
pub mod graph_learner;
pub mod learner;
pub mod memory_format;
pub mod metrics;
pub mod optim;
pub mod precision;
pub mod sam;
pub mod schedule;
pub mod trainer;
