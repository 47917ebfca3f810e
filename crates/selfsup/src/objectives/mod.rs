//! Losses as pure functions of tensors, one file each.
pub mod barlow_twins;
pub mod nt_xent;

pub use barlow_twins::barlow_twins;
pub use nt_xent::nt_xent;
