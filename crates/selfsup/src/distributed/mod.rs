//! Data-parallel training over c10d, libtorch's own distributed engine (`docs/distributed.md`).
//!
//! [`env`] reads where this process stands from the launcher's variables (torchrun, Slurm);
//! [`group`] joins the ranks in a Gloo process group through the C++ shim; [`Collective`] is
//! what an objective sees of the other ranks: one process ([`Alone`]) or a group, with the
//! gather and the sum that carry gradients back to the rank that owns the rows.
pub mod data_parallel;
pub mod env;
pub mod group;
pub mod sync_norm;

pub use env::WorldEnv;
pub use group::{GradRule, ProcessGroup};
pub use sync_norm::SyncScope;

use anyhow::Result;
use tch::Tensor;

/// The other ranks as an objective needs them. Every rank holds its share of the global batch
/// (rank r the r-th block of rows); an objective computes its rank's part of the global loss so
/// that the mean over ranks of the losses, and of the gradients, equals the one-process loss
/// and gradients of the whole batch.
pub trait Collective {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Every rank's rows in rank order along dim 0 (all ranks must offer the same shape); the
    /// gradient reaching the result is summed over ranks and each rank keeps its own rows'.
    fn gather(&self, x: &Tensor) -> Result<Tensor>;
    /// The sum over ranks of `x`; the gradient is summed over ranks likewise.
    fn sum(&self, x: &Tensor) -> Result<Tensor>;
}

/// One process: the whole batch is local.
pub struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn gather(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.shallow_clone())
    }
    fn sum(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.shallow_clone())
    }
}

impl Collective for ProcessGroup {
    fn rank(&self) -> usize {
        ProcessGroup::rank(self)
    }
    fn world_size(&self) -> usize {
        ProcessGroup::world_size(self)
    }
    fn gather(&self, x: &Tensor) -> Result<Tensor> {
        self.gather_with_grad(x)
    }
    fn sum(&self, x: &Tensor) -> Result<Tensor> {
        self.sum_with_grad(x)
    }
}
