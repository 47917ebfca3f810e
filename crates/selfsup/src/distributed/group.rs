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
    use std::ffi::c_void as C_tensor;
    extern "C" {
        pub fn selfsup_dist_last_error(buf: *mut u8, cap: i64) -> i64;
        pub fn selfsup_dist_init_gloo(
            addr: *const std::ffi::c_char,
            port: i32,
            rank: i32,
            world: i32,
            timeout_ms: i64,
            host_store: i32,
            prefix: *const std::ffi::c_char,
            out: *mut i64,
        ) -> i32;
        pub fn selfsup_dist_close(id: i64) -> i32;
        pub fn selfsup_dist_barrier(id: i64) -> i32;
        pub fn selfsup_dist_all_reduce_sum(id: i64, t: *mut C_tensor) -> i32;
        pub fn selfsup_dist_broadcast(id: i64, t: *mut C_tensor, root: i32) -> i32;
        pub fn selfsup_dist_all_gather(id: i64, x: *const C_tensor, out: *mut *mut C_tensor)
            -> i32;
        pub fn selfsup_dist_gather_with_grad(
            id: i64,
            x: *const C_tensor,
            rule: i32,
            out: *mut *mut C_tensor,
        ) -> i32;
        pub fn selfsup_dist_sum_with_grad(
            id: i64,
            x: *const C_tensor,
            rule: i32,
            out: *mut *mut C_tensor,
        ) -> i32;
    }
}

/// The shim's message for the last failure on this thread.
#[cfg(selfsup_shim)]
fn shim_error(what: &str) -> anyhow::Error {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { ffi::selfsup_dist_last_error(buf.as_mut_ptr(), buf.len() as i64) };
    let n = (n.max(0) as usize).min(buf.len() - 1);
    let msg = String::from_utf8_lossy(&buf[..n]);
    // c10d's messages carry a source location after the first line; the first line says it.
    let first = msg.lines().next().unwrap_or("").trim();
    anyhow!("{what} failed: {first}")
}

#[cfg(selfsup_shim)]
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
    grad_rule: GradRule,
}

impl ProcessGroup {
    /// Joins the group `env` describes, over Gloo (CPU tensors). Rank 0 serves the rendezvous
    /// store unless a launcher's agent does; every wait is bounded by `timeout`.
    pub fn gloo(env: &WorldEnv, timeout: Duration) -> Result<ProcessGroup> {
        #[cfg(selfsup_shim)]
        {
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
                grad_rule: GradRule::AllReduce,
            })
        }
        #[cfg(not(selfsup_shim))]
        {
            let _ = (env, timeout);
            bail!("this build has no c10d (built without libtorch's headers)")
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The same group with another backward rule for its differentiable collectives (tests use
    /// `LocalOnly` to show that the known bugs are caught).
    #[doc(hidden)]
    pub fn set_grad_rule(&mut self, rule: GradRule) {
        self.grad_rule = rule;
    }

    pub fn barrier(&self) -> Result<()> {
        #[cfg(selfsup_shim)]
        return check(unsafe { ffi::selfsup_dist_barrier(self.id) }, "barrier");
        #[cfg(not(selfsup_shim))]
        unreachable!("no group exists without the shim")
    }

    /// In place: `t` becomes the sum of every rank's `t` (contiguous, same shape everywhere).
    pub fn all_reduce_sum_(&self, t: &mut Tensor) -> Result<()> {
        if !t.is_contiguous() {
            bail!("all-reduce needs a contiguous tensor");
        }
        #[cfg(selfsup_shim)]
        return check(
            unsafe { ffi::selfsup_dist_all_reduce_sum(self.id, t.as_mut_ptr() as *mut _) },
            "all-reduce",
        );
        #[cfg(not(selfsup_shim))]
        unreachable!("no group exists without the shim")
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
        #[cfg(selfsup_shim)]
        return check(
            unsafe { ffi::selfsup_dist_broadcast(self.id, t.as_mut_ptr() as *mut _, root as i32) },
            "broadcast",
        );
        #[cfg(not(selfsup_shim))]
        unreachable!("no group exists without the shim")
    }

    /// Every rank's `x` in rank order along dim 0, without gradient.
    pub fn all_gather(&self, x: &Tensor) -> Result<Tensor> {
        self.tensor_op(x, "all-gather", |id, x, out| {
            #[cfg(selfsup_shim)]
            return unsafe { ffi::selfsup_dist_all_gather(id, x, out) };
            #[cfg(not(selfsup_shim))]
            unreachable!("no group exists without the shim {id:?} {x:?} {out:?}")
        })
    }

    /// Every rank's rows in rank order, gradients summed over ranks and returned to their owner.
    pub fn gather_with_grad(&self, x: &Tensor) -> Result<Tensor> {
        let rule = self.grad_rule.code();
        self.tensor_op(x, "all-gather", |id, x, out| {
            #[cfg(selfsup_shim)]
            return unsafe { ffi::selfsup_dist_gather_with_grad(id, x, rule, out) };
            #[cfg(not(selfsup_shim))]
            unreachable!("no group exists without the shim {id:?} {x:?} {out:?} {rule}")
        })
    }

    /// The sum over ranks, the gradient of every rank's use of it summed back to every rank.
    pub fn sum_with_grad(&self, x: &Tensor) -> Result<Tensor> {
        let rule = self.grad_rule.code();
        self.tensor_op(x, "all-reduce", |id, x, out| {
            #[cfg(selfsup_shim)]
            return unsafe { ffi::selfsup_dist_sum_with_grad(id, x, rule, out) };
            #[cfg(not(selfsup_shim))]
            unreachable!("no group exists without the shim {id:?} {x:?} {out:?} {rule}")
        })
    }

    fn tensor_op(
        &self,
        x: &Tensor,
        what: &str,
        op: impl FnOnce(i64, *const c_void, *mut *mut c_void) -> i32,
    ) -> Result<Tensor> {
        let mut out: *mut c_void = std::ptr::null_mut();
        let code = op(self.id, x.as_ptr() as *const c_void, &mut out);
        #[cfg(selfsup_shim)]
        check(code, what)?;
        #[cfg(not(selfsup_shim))]
        let _ = (code, what);
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(selfsup_shim)]
        unsafe {
            ffi::selfsup_dist_close(self.id);
        }
    }
}
