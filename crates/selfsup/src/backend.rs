//! The one place that knows about libtorch set-up: devices, threads, versions.
use anyhow::{bail, Result};
use tch::Device;

/// Parses `cpu`, `cuda` or `cuda:N` and checks that the device exists.
pub fn parse_device(s: &str) -> Result<Device> {
    let d = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => bail!("--device must be cpu, cuda or cuda:N, not {s:?}"),
        },
    };
    if let Device::Cuda(i) = d {
        let n = tch::Cuda::device_count() as usize;
        if n == 0 {
            bail!(
                "--device {s}: no CUDA device is available to this build (libtorch sees 0 GPUs; \
                 a CPU-only set-up needs SELFSUP_CUDA=1 scripts/setup.sh on a GPU machine)"
            );
        }
        if i >= n {
            bail!("--device {s}: only {n} CUDA device(s) present");
        }
    }
    Ok(d)
}

/// glibc's malloc returns every block above its mmap threshold (128 KiB at first, raised
/// towards 32 MiB as such blocks are freed) to the kernel, and trims the heap's free top beyond
/// 128 KiB; the next step's tensors of the same sizes then fault in fresh zeroed pages. Training
/// allocates and frees the same tensors every step, so the process keeps them: blocks up to
/// 32 MiB (glibc's largest threshold) come from the heap, and up to 256 MiB of free heap is kept.
/// Measured on GraphMAE's Cora epoch (bf16, 2 threads, AMX Xeon): system time 2.7 s → 0.26 s
/// over 44 epochs, and 0.164–0.189 → 0.122–0.145 s per epoch. The same settings are
/// `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456` in the environment, which
/// the benchmark passes to its PyTorch reference so that both run under one allocator policy.
pub const MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "268435456"),
];

/// Applies [`MALLOC_ENV`]'s policy to this process (glibc only; elsewhere nothing).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
        unsafe {
            mallopt(-3, 32 << 20);
            mallopt(-1, 256 << 20);
        }
    }
}

/// Sets libtorch's intra-op threads (0 = all cores). Inter-op parallelism is not used by our
/// models, so one inter-op thread avoids oversubscribing small machines.
pub fn set_threads(threads: usize) -> usize {
    let n = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    tch::set_num_threads(n as i32);
    n
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// libtorch version this binary was built against, as the linked libtorch names itself (e.g.
/// `2.13.0+cu130`); torch-sys pins the release.
pub const LIBTORCH_VERSION: &str = match option_env!("SELFSUP_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "2.13.0",
};

/// Peak resident set size of this process so far (`VmHWM` of `/proc/self/status`), MiB; 0 where
/// the kernel does not report it.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_refuses_nonsense() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        if tch::Cuda::device_count() == 0 {
            let e = parse_device("cuda").unwrap_err().to_string();
            assert!(e.contains("no CUDA device"), "{e}");
        }
    }
}
