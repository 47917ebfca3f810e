//! Evaluation protocols: each a function of embeddings + labels + split, usable without the trainer.

pub mod knn;
pub mod lbfgs;
pub mod linear_probe;
pub mod standardise;
