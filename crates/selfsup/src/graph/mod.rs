//! Graphs: node- and graph-level self-supervised learning.
//!
//! The same stages as the rest of the crate, for data that is one large graph (Planetoid citation
//! networks, node-level tasks) or many small ones (TU sets, graph-level tasks):
//! sources (`crate::data::planetoid`, `crate::data::tu`) → [`Graph`](crate::data::graph::Graph) → masks/corruptions →
//! message-passing encoders → methods → node/graph protocols.

pub mod batch;
pub mod encoders;
pub mod eval;
pub mod learner;
pub mod masking;
pub mod message;
pub mod objectives;
pub mod protocol;
pub mod run;
pub mod sparse;
pub mod table;
