//! What machine a figure was measured on: the CPU's model name and the vector/matrix extensions
//! that decide libtorch's kernels (AVX2, AVX-512, AVX512-BF16, AMX), the core count, and the GPU
//! when one is used. Every benchmark table names it, so figures from different machines are not
//! compared by accident.
use serde::Serialize;
use tch::Device;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hardware {
    /// `model name` of /proc/cpuinfo ("unknown" elsewhere).
    pub cpu: String,
    /// The extensions present, from weakest to strongest: AVX2, AVX-512, AVX512-BF16, AMX-BF16.
    pub isa: Vec<String>,
    /// Whether bf16 products run natively (AVX512-BF16 or AMX) rather than emulated in fp32.
    pub native_bf16: bool,
    /// Logical CPUs visible to this process.
    pub cores: usize,
    /// The CUDA device's index when the run uses one.
    pub gpu: Option<String>,
}

/// The extensions named in a /proc/cpuinfo `flags` line.
pub fn isa_from_flags(flags: &str) -> Vec<String> {
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    [
        ("avx2", "AVX2"),
        ("avx512f", "AVX-512"),
        ("avx512_bf16", "AVX512-BF16"),
        ("amx_bf16", "AMX-BF16"),
    ]
    .iter()
    .filter(|(flag, _)| has(flag))
    .map(|(_, name)| name.to_string())
    .collect()
}

/// Reads `cpuinfo`-formatted text: (model name, extensions).
pub fn parse_cpuinfo(text: &str) -> (String, Vec<String>) {
    let field = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown".into());
    let isa = field("flags")
        .map(|f| isa_from_flags(&f))
        .unwrap_or_default();
    (model, isa)
}

/// The machine this process runs on, with `device` deciding whether a GPU is named.
pub fn describe(device: Device) -> Hardware {
    let (cpu, isa) = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_else(|_| ("unknown".into(), Vec::new()));
    let native_bf16 = isa.iter().any(|x| x == "AVX512-BF16" || x == "AMX-BF16");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let gpu = matches!(device, Device::Cuda(_)).then(|| crate::backend::device_name(device));
    Hardware {
        cpu,
        isa,
        native_bf16,
        cores,
        gpu,
    }
}

impl std::fmt::Display for Hardware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let isa = if self.isa.is_empty() {
            "no AVX2".to_string()
        } else {
            self.isa.join(" ")
        };
        write!(f, "{} ({isa}), {} cores", self.cpu, self.cores)?;
        if !self.native_bf16 {
            write!(f, ", bf16 emulated")?;
        }
        if let Some(g) = &self.gpu {
            write!(f, ", GPU {g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAPPHIRE: &str =
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\
        flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8\n\n\
        processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f\n";
    const EPYC: &str =
        "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni\n";

    #[test]
    fn reads_model_and_extensions_of_the_first_processor() {
        let (model, isa) = parse_cpuinfo(SAPPHIRE);
        assert_eq!(model, "Intel(R) Xeon(R) Processor");
        assert_eq!(isa, ["AVX2", "AVX-512", "AVX512-BF16", "AMX-BF16"]);
        let (model, isa) = parse_cpuinfo(EPYC);
        assert_eq!(model, "AMD EPYC 7B13");
        assert_eq!(isa, ["AVX2"]);
    }

    #[test]
    fn flags_are_whole_words() {
        // "avx512f" must not be read out of "avx512fp16" alone, nor "amx_bf16" out of "amx_bf16x".
        assert_eq!(isa_from_flags("avx512fp16 amx_bf16x"), Vec::<String>::new());
    }

    #[test]
    fn display_says_when_bf16_is_emulated() {
        let h = Hardware {
            cpu: "AMD EPYC 7B13".into(),
            isa: vec!["AVX2".into()],
            native_bf16: false,
            cores: 2,
            gpu: None,
        };
        assert_eq!(
            h.to_string(),
            "AMD EPYC 7B13 (AVX2), 2 cores, bf16 emulated"
        );
        let d = describe(Device::Cpu);
        assert!(d.cores >= 1 && !d.cpu.is_empty());
    }
}
