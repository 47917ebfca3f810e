//! Synchronised batch norm (PyTorch's `SyncBatchNorm`): in training mode, batch norm inside a
//! [`SyncScope`] normalises with the mean and variance over the rows of every rank, not of this
//! rank's share, so a step in W processes sees the batch statistics of one process holding the
//! whole batch. The statistics are sums taken with [`Collective::sum`], whose backward sums the
//! gradients over the ranks, so the gradient through them is the one-process gradient too.
//!
//! The scope is per thread and per forward pass (the learner opens it around the method's
//! loss): every batch-norm layer in training mode inside it joins the collectives, and every
//! rank runs the same layers in the same order. A failed collective cannot be returned from a
//! module's forward pass; it is kept, the layer falls back to its local statistics, and the
//! scope's [`SyncScope::finish`] returns the error.
use super::Collective;
use anyhow::Result;
use std::cell::RefCell;
use std::marker::PhantomData;
use tch::Tensor;

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

struct Active {
    /// Valid while the scope that set it lives (its lifetime parameter borrows the collective).
    comm: *const (dyn Collective + 'static),
    error: Option<anyhow::Error>,
}

/// While alive, batch norm in training mode on this thread synchronises over `comm`'s ranks.
pub struct SyncScope<'a> {
    _comm: PhantomData<&'a dyn Collective>,
    /// Not Send: the scope belongs to the thread that opened it.
    _thread: PhantomData<*const ()>,
}

impl<'a> SyncScope<'a> {
    pub fn enter(comm: &'a dyn Collective) -> SyncScope<'a> {
        let ptr: *const (dyn Collective + 'a) = comm;
        // SAFETY: the pointer is cleared when the scope (which borrows `comm` for 'a) drops.
        let ptr: *const (dyn Collective + 'static) = unsafe { std::mem::transmute(ptr) };
        ACTIVE.with(|a| {
            *a.borrow_mut() = Some(Active {
                comm: ptr,
                error: None,
            })
        });
        SyncScope {
            _comm: PhantomData,
            _thread: PhantomData,
        }
    }

    /// Closes the scope; the first collective failure inside it, if any.
    pub fn finish(self) -> Result<()> {
        let error = ACTIVE.with(|a| a.borrow_mut().as_mut().and_then(|s| s.error.take()));
        drop(self);
        error.map_or(Ok(()), Err)
    }
}

impl Drop for SyncScope<'_> {
    fn drop(&mut self) {
        ACTIVE.with(|a| *a.borrow_mut() = None);
    }
}

/// A batch-norm layer's parameters and running statistics, as `normalise` needs them.
pub struct NormState<'t> {
    pub weight: Option<&'t Tensor>,
    pub bias: Option<&'t Tensor>,
    pub running_mean: &'t Tensor,
    pub running_var: &'t Tensor,
    pub momentum: f64,
    pub eps: f64,
}

/// Batch norm of `x` [N, C, …] in training mode with statistics over every rank, when a scope
/// is open on this thread (`None` otherwise, or after a failed collective: the caller then
/// normalises locally). Updates the running statistics as PyTorch does (unbiased variance).
pub fn normalise(x: &Tensor, s: &NormState) -> Option<Tensor> {
    let comm = ACTIVE.with(|a| match &*a.borrow() {
        Some(active) if active.error.is_none() => Some(active.comm),
        _ => None,
    })?;
    // SAFETY: set by a live SyncScope on this thread (cleared when it drops).
    let comm = unsafe { &*comm };
    match statistics_and_output(x, s, comm) {
        Ok(y) => Some(y),
        Err(e) => {
            ACTIVE.with(|a| {
                if let Some(active) = a.borrow_mut().as_mut() {
                    active.error.get_or_insert(e);
                }
            });
            None
        }
    }
}

fn statistics_and_output(x: &Tensor, s: &NormState, comm: &dyn Collective) -> Result<Tensor> {
    let c = x.size()[1];
    let kind = x.kind();
    let dims: Vec<i64> = (0..x.dim() as i64).filter(|&d| d != 1).collect();
    let mut shape = vec![1i64; x.dim()];
    shape[1] = c;
    // One all-reduce of [Σ(x − K), Σ(x − K)², count] per channel: the mean and variance of
    // x − K are those of x shifted, for any K; K = the running mean (the same on every rank,
    // close to the batch mean) keeps the one-pass variance free of cancellation.
    let shift = s.running_mean.detach().to_kind(kind).view(shape.as_slice());
    let d = x - shift;
    let local_count = (x.numel() as i64 / c) as f64;
    let count = Tensor::from_slice(&[local_count])
        .to_kind(kind)
        .to_device(x.device());
    let sums = comm.sum(&Tensor::cat(
        &[
            d.sum_dim_intlist(dims.as_slice(), false, kind),
            d.square().sum_dim_intlist(dims.as_slice(), false, kind),
            count,
        ],
        0,
    ))?;
    let n = sums.double_value(&[2 * c]);
    let shifted_mean = sums.narrow(0, 0, c) / n;
    let var = sums.narrow(0, c, c) / n - shifted_mean.square();
    let mean = &shifted_mean + s.running_mean.detach().to_kind(kind);
    let mut y =
        (d - shifted_mean.view(shape.as_slice())) / (var.view(shape.as_slice()) + s.eps).sqrt();
    if let Some(w) = s.weight {
        y = y * w.view(shape.as_slice());
    }
    if let Some(b) = s.bias {
        y = y + b.view(shape.as_slice());
    }
    tch::no_grad(|| {
        let m = s.momentum;
        let unbiased = n / (n - 1.0).max(1.0);
        let rm = s.running_mean.shallow_clone();
        let rv = s.running_var.shallow_clone();
        let new_mean = &rm * (1.0 - m) + mean.detach().to_kind(rm.kind()) * m;
        let new_var = &rv * (1.0 - m) + (var.detach() * unbiased).to_kind(rv.kind()) * m;
        rm.shallow_clone().copy_(&new_mean);
        rv.shallow_clone().copy_(&new_var);
    });
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::Alone;
    use tch::nn::ModuleT;
    use tch::{nn::VarStore, Device, Kind};

    /// In one process the synchronised statistics are the batch's: output and running
    /// statistics equal tch's batch norm in training mode, for [N, C] and [N, C, H, W].
    #[test]
    fn with_one_rank_it_is_plain_batch_norm() {
        for shape in [vec![7i64, 3], vec![4, 3, 5, 2]] {
            let make = || {
                let mut vs = VarStore::new(Device::Cpu);
                let bn = if shape.len() == 2 {
                    crate::torch_init::batch_norm1d(vs.root() / "bn", 3)
                } else {
                    crate::torch_init::batch_norm2d(vs.root() / "bn", 3)
                };
                vs.double();
                tch::no_grad(|| {
                    let _ = bn.inner.ws.as_ref().unwrap().shallow_clone().fill_(1.5);
                    let _ = bn.inner.bs.as_ref().unwrap().shallow_clone().fill_(-0.25);
                });
                (vs, bn)
            };
            let x = Tensor::randn(shape.as_slice(), (Kind::Double, Device::Cpu)) * 2.0 + 0.7;
            let (_va, plain) = make();
            let (_vb, synced) = make();
            let want = plain.forward_t(&x, true);
            let scope = SyncScope::enter(&Alone);
            let got = synced.forward_t(&x, true);
            scope.finish().unwrap();
            let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) < 1e-12;
            assert!(close(&got, &want), "{shape:?}: output");
            assert!(close(&synced.inner.running_mean, &plain.inner.running_mean));
            assert!(close(&synced.inner.running_var, &plain.inner.running_var));
        }
    }

    #[test]
    fn outside_a_scope_nothing_is_synchronised() {
        let x = Tensor::randn([5, 2], (Kind::Double, Device::Cpu));
        let state = NormState {
            weight: None,
            bias: None,
            running_mean: &Tensor::zeros([2], (Kind::Double, Device::Cpu)),
            running_var: &Tensor::ones([2], (Kind::Double, Device::Cpu)),
            momentum: 0.1,
            eps: 1e-5,
        };
        assert!(normalise(&x, &state).is_none());
        let scope = SyncScope::enter(&Alone);
        assert!(normalise(&x, &state).is_some());
        drop(scope);
        assert!(normalise(&x, &state).is_none());
    }
}
