//! A c10d process group (Gloo over TCP) and its collectives on tch tensors, through the C++ shim
//! `csrc/distributed.cpp`. Every failure of the engine (a rendezvous that times out, a peer that
//! went away, mismatched shapes) comes back as an error naming the operation, never a hang past
//! the group's timeout.
use super::env::WorldEnv;
use anyhow::{anyhow, bail, Result};
use std::ffi::c_void;
use std::time::Duration;
use tch::Tensor;

/// How a differentiable collective sends gradients back. `AllReduce` is the correct rule;
/// `LocalOnly` is the bug the popular Python tools shipped (lightly #1528 for the gather's
/// backward, #1977 for an all-reduce without backward), kept so that tests show it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradRule {
    AllReduce,
    LocalOnly,
}

impl GradRule {
    fn code(self) -> i32 {
        match self {
            GradRule::AllReduce => 0,
            GradRule::LocalOnly => 1,
        }
    }
}

#[cfg(selfsup_shim)]
mod ffi {
    use std::ffi::{c_char, c_void};
    extern "C" {
        pub fn selfsup_dist_last_error(buf: *mut u8, cap: i64) -> i64;
        pub fn selfsup_dist_init_gloo(
            addr: *const c_char,
            port: i32,
            rank: i32,
            world: i32,
            timeout_ms: i64,
            host_store: i32,
            prefix: *const c_char,
            out: *mut i64,
        ) -> i32;
        pub fn selfsup_dist_close(id: i64) -> i32;
        pub fn selfsup_dist_barrier(id: i64) -> i32;
        pub fn selfsup_dist_all_reduce_sum(id: i64, t: *mut c_void) -> i32;
        pub fn selfsup_dist_broadcast(id: i64, t: *mut c_void, root: i32) -> i32;
        pub fn selfsup_dist_gather_with_grad(
            id: i64,
            x: *const c_void,
            rule: i32,
            out: *mut *mut c_void,
        ) -> i32;
        pub fn selfsup_dist_sum_with_grad(
            id: i64,
            x: *const c_void,
            rule: i32,
            out: *mut *mut c_void,
        ) -> i32;
    }
}

/// A build without libtorch's headers has no shim: joining a group fails with this message, so
/// no group (and no other call) ever exists.
#[cfg(not(selfsup_shim))]
#[allow(clippy::missing_safety_doc)]
mod ffi {
    use std::ffi::{c_char, c_void};
    const NO_SHIM: &[u8] = b"this build has no c10d (built without libtorch's headers)";
    pub unsafe fn selfsup_dist_last_error(buf: *mut u8, cap: i64) -> i64 {
        let n = NO_SHIM.len().min(cap.max(1) as usize - 1);
        std::ptr::copy_nonoverlapping(NO_SHIM.as_ptr(), buf, n);
        n as i64
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn selfsup_dist_init_gloo(
        _: *const c_char,
        _: i32,
        _: i32,
        _: i32,
        _: i64,
        _: i32,
        _: *const c_char,
        _: *mut i64,
    ) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_close(_: i64) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_barrier(_: i64) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_all_reduce_sum(_: i64, _: *mut c_void) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_broadcast(_: i64, _: *mut c_void, _: i32) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_gather_with_grad(
        _: i64,
        _: *const c_void,
        _: i32,
        _: *mut *mut c_void,
    ) -> i32 {
        -1
    }
    pub unsafe fn selfsup_dist_sum_with_grad(
        _: i64,
        _: *const c_void,
        _: i32,
        _: *mut *mut c_void,
    ) -> i32 {
        -1
    }
}

/// The shim's message for the last failure on this thread.
fn shim_error(what: &str) -> anyhow::Error {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { ffi::selfsup_dist_last_error(buf.as_mut_ptr(), buf.len() as i64) };
    let n = (n.max(0) as usize).min(buf.len() - 1);
    let msg = String::from_utf8_lossy(&buf[..n]);
    // c10d's messages carry a source location after the first line; the first line says it.
    let first = msg.lines().next().unwrap_or("").trim();
    anyhow!("{what} failed: {first}")
}

fn check(code: i32, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(shim_error(what))
    }
}

/// A group of processes joined by a rendezvous; closed when dropped.
pub struct ProcessGroup {
    id: i64,
    rank: usize,
    world_size: usize,
    /// Processes on this node (the launcher's `LOCAL_WORLD_SIZE`).
    local_world_size: usize,
    grad_rule: GradRule,
}

impl ProcessGroup {
    /// Joins the group `env` describes, over Gloo (CPU tensors). Rank 0 serves the rendezvous
    /// store unless a launcher's agent does; every wait is bounded by `timeout`.
    pub fn gloo(env: &WorldEnv, timeout: Duration) -> Result<ProcessGroup> {
        let addr = std::ffi::CString::new(env.master_addr.clone())?;
        let prefix = std::ffi::CString::new(env.store_prefix.clone())?;
        let host = !env.agent_store && env.rank == 0;
        let mut id = -1i64;
        let code = unsafe {
            ffi::selfsup_dist_init_gloo(
                addr.as_ptr(),
                env.master_port as i32,
                env.rank as i32,
                env.world_size as i32,
                timeout.as_millis() as i64,
                host as i32,
                prefix.as_ptr(),
                &mut id,
            )
        };
        if code != 0 {
            let e = shim_error("rendezvous");
            bail!(
                "rank {} of {} could not join the group at {}:{} within {:?}: {e:#}",
                env.rank,
                env.world_size,
                env.master_addr,
                env.master_port,
                timeout
            );
        }
        Ok(ProcessGroup {
            id,
            rank: env.rank,
            world_size: env.world_size,
            local_world_size: env.local_world_size,
            grad_rule: GradRule::AllReduce,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn local_world_size(&self) -> usize {
        self.local_world_size
    }

    /// The same group with another backward rule for its differentiable collectives (tests use
    /// `LocalOnly` to show that the known bugs are caught).
    #[doc(hidden)]
    pub fn set_grad_rule(&mut self, rule: GradRule) {
        self.grad_rule = rule;
    }

    pub fn barrier(&self) -> Result<()> {
        check(unsafe { ffi::selfsup_dist_barrier(self.id) }, "barrier")
    }

    /// In place: `t` becomes the sum of every rank's `t` (contiguous, same shape everywhere).
    pub fn all_reduce_sum_(&self, t: &mut Tensor) -> Result<()> {
        if !t.is_contiguous() {
            bail!("all-reduce needs a contiguous tensor");
        }
        check(
            unsafe { ffi::selfsup_dist_all_reduce_sum(self.id, t.as_mut_ptr() as *mut _) },
            "all-reduce",
        )
    }

    /// In place: `t` becomes rank `root`'s `t`.
    pub fn broadcast_(&self, t: &mut Tensor, root: usize) -> Result<()> {
        if !t.is_contiguous() {
            bail!("broadcast needs a contiguous tensor");
        }
        if root >= self.world_size {
            bail!(
                "broadcast from rank {root} in a group of {}",
                self.world_size
            );
        }
        check(
            unsafe { ffi::selfsup_dist_broadcast(self.id, t.as_mut_ptr() as *mut _, root as i32) },
            "broadcast",
        )
    }

    /// Every rank's rows in rank order, gradients summed over ranks and returned to their owner.
    pub fn gather_with_grad(&self, x: &Tensor) -> Result<Tensor> {
        let rule = self.grad_rule.code();
        self.tensor_op(x, "all-gather", |id, x, out| unsafe {
            ffi::selfsup_dist_gather_with_grad(id, x, rule, out)
        })
    }

    /// The sum over ranks, the gradient of every rank's use of it summed back to every rank.
    pub fn sum_with_grad(&self, x: &Tensor) -> Result<Tensor> {
        let rule = self.grad_rule.code();
        self.tensor_op(x, "all-reduce", |id, x, out| unsafe {
            ffi::selfsup_dist_sum_with_grad(id, x, rule, out)
        })
    }

    fn tensor_op(
        &self,
        x: &Tensor,
        what: &str,
        op: impl FnOnce(i64, *const c_void, *mut *mut c_void) -> i32,
    ) -> Result<Tensor> {
        let mut out: *mut c_void = std::ptr::null_mut();
        check(op(self.id, x.as_ptr() as *const c_void, &mut out), what)?;
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe {
            ffi::selfsup_dist_close(self.id);
        }
    }
}
