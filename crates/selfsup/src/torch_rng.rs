//! libtorch's global CPU generator: the one lock every user of it takes, and its state for
//! checkpoints.
//!
//! selfsup's own draws are keyed ([`crate::rng`]); libtorch's generator is used for weight
//! initialisation and, in methods with dropout (the graph encoders), during training. It is
//! process-global, so two runs on different threads would interleave their draws: a run seeds
//! and initialises under [`lock`], and a run whose training draws from it holds the lock for
//! the whole training. Its state goes into checkpoints, so a resumed run draws the dropout masks
//! of an uninterrupted one.
use anyhow::{bail, Result};
use std::sync::{Mutex, MutexGuard};

static GENERATOR: Mutex<()> = Mutex::new(());

/// Takes the generator lock (a panic elsewhere while holding it leaves nothing half-done that
/// matters here, so a poisoned lock is taken over).
pub fn lock() -> MutexGuard<'static, ()> {
    GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(selfsup_shim)]
mod ffi {
    extern "C" {
        pub fn selfsup_cpu_generator_state(out: *mut u8, cap: i64) -> i64;
        pub fn selfsup_set_cpu_generator_state(data: *const u8, n: i64) -> i32;
    }
}

/// The generator's state as bytes (libtorch's own serialisation, `torch.get_rng_state()`).
pub fn cpu_state() -> Result<Vec<u8>> {
    #[cfg(selfsup_shim)]
    {
        let n = unsafe { ffi::selfsup_cpu_generator_state(std::ptr::null_mut(), 0) };
        if n < 0 {
            bail!("libtorch refused to report its CPU generator's state");
        }
        let mut buf = vec![0u8; n as usize];
        let m = unsafe { ffi::selfsup_cpu_generator_state(buf.as_mut_ptr(), n) };
        if m != n {
            bail!("libtorch's CPU generator state changed size while being read");
        }
        Ok(buf)
    }
    #[cfg(not(selfsup_shim))]
    {
        bail!("this build has no access to libtorch's generator state (built without its headers)")
    }
}

/// Restores a state returned by [`cpu_state`].
pub fn set_cpu_state(state: &[u8]) -> Result<()> {
    #[cfg(selfsup_shim)]
    {
        match unsafe { ffi::selfsup_set_cpu_generator_state(state.as_ptr(), state.len() as i64) } {
            0 => Ok(()),
            -2 => bail!(
                "a CPU generator state of {} bytes does not fit this libtorch's generator",
                state.len()
            ),
            _ => bail!("libtorch refused the saved CPU generator state"),
        }
    }
    #[cfg(not(selfsup_shim))]
    {
        let _ = state;
        bail!("this build has no access to libtorch's generator state (built without its headers)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn a_restored_state_replays_the_same_draws() {
        let _g = lock();
        // Other tests may draw from the generator without the lock between two of these
        // lines; one clean attempt in a few is proof enough (a wrong restore never passes).
        let replays = (0..5).any(|attempt| {
            tch::manual_seed(11 + attempt);
            let state = cpu_state().unwrap();
            let a = Tensor::rand([64], (tch::Kind::Float, tch::Device::Cpu));
            let b = Tensor::rand([64], (tch::Kind::Float, tch::Device::Cpu));
            set_cpu_state(&state).unwrap();
            let again = Tensor::rand([64], (tch::Kind::Float, tch::Device::Cpu));
            !a.equal(&b) && a.equal(&again)
        });
        assert!(replays, "the restored state gives the first draw again");
        let state = cpu_state().unwrap();
        assert!(set_cpu_state(&state[..state.len() - 1]).is_err());
    }
}
