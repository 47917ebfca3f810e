//! selfsup: self-supervised representation learning on libtorch.
//!
//! The pipeline, one module per stage (see DESIGN.md):
//! `data` → `views` → `encoders` → `heads` → `objectives` → `methods` → `train` → `eval` → `export`.

pub mod error;
pub mod data;
pub mod views;
pub mod eval;
