//! Prior-data fitted networks ("Transformers Can Do Bayesian Inference", Müller et al., ICLR
//! 2022): a transformer trained only on data sets drawn from a prior learns to give the
//! posterior predictive distribution of held-out points from a context of observed ones, in
//! one forward pass and without a gradient step at prediction time.
//!
//! - `gp.rs`: the Gaussian-process prior and its exact posterior (the reference);
//! - `riemann.rs`: the bucketed output density for regression;
//! - `model.rs`: the network (context tokens attend to each other, queries to the context);
//! - `train_gp.rs`: training from the GP prior, saving, and the comparison with the exact GP;
//! - `prior_mlp.rs`: a prior over small classification tables (labels of random MLPs);
//! - `classify.rs`: the PFN classifier trained from it, and prediction on a real table;
//! - `small_tables.rs`: real tables beside logistic regression and GBDT on the same splits.
pub mod classify;
pub mod gp;
pub mod model;
pub mod prior_mlp;
pub mod riemann;
pub mod small_tables;
pub mod train_gp;
