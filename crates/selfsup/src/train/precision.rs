//! Mixed precision: the forward pass under libtorch's autocast with bfloat16 — the same policy as
//! `torch.autocast(device, dtype=torch.bfloat16)`: matrix products and convolutions in bf16, the
//! ops on autocast's fp32 list of that device in fp32 (on CUDA that list includes softmax,
//! log-softmax, norms and losses; the CPU's list is shorter, so there e.g. log-softmax runs in
//! bf16) — while weights, gradients and optimiser state stay fp32. bf16 has fp32's exponent range, so no loss
//! scaling is needed. The backward pass runs outside the region, as PyTorch recommends; it
//! follows the casts recorded in the forward pass.
//!
//! Worth it on GPUs with bf16 tensor cores and on CPUs with native bf16 (AVX-512 BF16, AMX); on
//! CPUs without them libtorch emulates bf16 and it is slower than fp32.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

#[cfg(selfsup_shim)]
mod ffi {
    use std::os::raw::c_int;
    extern "C" {
        pub fn selfsup_autocast_enter_bf16(cuda: c_int) -> c_int;
        pub fn selfsup_autocast_exit(cuda: c_int, was_enabled: c_int) -> c_int;
        pub fn selfsup_autocast_is_enabled(cuda: c_int) -> c_int;
    }
}

fn cuda_flag(device: Device) -> Result<i32> {
    Ok(match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        d => bail!("bf16 autocast is available on the CPU and CUDA, not on {d:?}"),
    })
}

/// Whether autocast is on for `device`'s type on this thread.
pub fn autocast_enabled(device: Device) -> Result<bool> {
    #[cfg(selfsup_shim)]
    {
        let r = unsafe { ffi::selfsup_autocast_is_enabled(cuda_flag(device)?) };
        if r < 0 {
            bail!("libtorch refused to report its autocast state");
        }
        Ok(r == 1)
    }
    #[cfg(not(selfsup_shim))]
    {
        let _ = cuda_flag(device)?;
        Ok(false)
    }
}

/// Runs `f` in `precision` on `device`: as is for fp32, under bf16 autocast (restored afterwards,
/// also when `f` panics) for bf16.
pub fn with_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> Result<T> {
    if precision == Precision::Fp32 {
        return Ok(f());
    }
    let cuda = cuda_flag(device)?;
    #[cfg(selfsup_shim)]
    {
        struct Region {
            cuda: i32,
            was: i32,
        }
        impl Drop for Region {
            fn drop(&mut self) {
                unsafe { ffi::selfsup_autocast_exit(self.cuda, self.was) };
            }
        }
        let was = unsafe { ffi::selfsup_autocast_enter_bf16(cuda) };
        if was < 0 {
            bail!("libtorch refused to enter a bf16 autocast region");
        }
        let _region = Region { cuda, was };
        Ok(f())
    }
    #[cfg(not(selfsup_shim))]
    {
        let _ = (cuda, f);
        bail!(
            "this build has no autocast support (libtorch's headers were not found at build time)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, nn::Module, Kind, Tensor};

    /// Inside the region a linear layer computes in bf16; outside, everything is fp32 again, and
    /// the fp32 weights receive fp32 gradients.
    #[test]
    fn bf16_autocast_casts_products_and_is_restored() {
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "l", 8, 4, Default::default());
        let x = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
        let (y, loss) = with_precision(Precision::Bf16, Device::Cpu, || {
            assert!(autocast_enabled(Device::Cpu).unwrap());
            let y = lin.forward(&x);
            let loss = y.log_softmax(-1, None).mean(None);
            (y, loss)
        })
        .unwrap();
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(loss.double_value(&[]).is_finite());
        assert!(!autocast_enabled(Device::Cpu).unwrap());
        assert_eq!(lin.forward(&x).kind(), Kind::Float);
        loss.backward();
        assert_eq!(lin.ws.grad().kind(), Kind::Float);
        let g = lin.ws.grad().abs().sum(Kind::Float).double_value(&[]);
        assert!(g.is_finite() && g > 0.0);
    }

    #[test]
    fn fp32_runs_as_is() {
        let x = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        let y = with_precision(Precision::Fp32, Device::Cpu, || x.matmul(&x)).unwrap();
        assert_eq!(y.kind(), Kind::Float);
    }
}
