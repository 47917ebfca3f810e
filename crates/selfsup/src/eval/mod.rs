//! Evaluation protocols: each a function of embeddings + labels + split, usable without the trainer.

pub mod calibration;
pub mod clustering;
pub mod coreset;
pub mod downstream;
pub mod f1;
pub mod few_shot;
pub mod fine_tune;
pub mod gbdt;
pub mod graph;
pub mod knn;
pub mod label_fraction;
pub mod lbfgs;
pub mod linear_probe;
pub mod nearest;
pub mod neighbours;
pub mod self_training;
pub mod standardise;
pub mod suite;
pub mod supervised;
pub mod svm;
pub mod tfidf;
