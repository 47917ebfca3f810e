//! What a graph method sees in one step: the graph on the device (node features dense or
//! sparse, edge index with self-loops, graph ids of a mini-batch) and the random views drawn from
//! it (node masks, dropped edges and feature columns, row permutations).
pub mod batch;
pub mod cluster_distance;
pub mod fused_attention;
pub mod masking;
pub mod message;
pub mod perturb;
pub mod pretext;
pub mod sparse;
