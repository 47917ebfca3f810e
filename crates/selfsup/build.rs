// Lets binaries and test executables of this crate find libtorch without LD_LIBRARY_PATH:
// an rpath to the libtorch that torch-sys linked against (LIBTORCH, see .cargo/config.toml).
// Also compiles the C++ shim against that libtorch's headers: csrc/autocast.cpp (libtorch's
// autocast switches for bfloat16), csrc/generator.cpp (the CPU generator's state) and
// csrc/distributed.cpp (c10d's store, Gloo process group and collectives),
// csrc/graph_attention.cpp (graph attention's edge passes in one CPU kernel) and
// csrc/keyed_bernoulli.cpp (dropout masks from a parallel counter-based generator).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/generator.cpp");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/graph_attention.cpp");
    println!("cargo:rerun-if-changed=csrc/keyed_bernoulli.cpp");
    println!("cargo::rustc-check-cfg=cfg(selfsup_shim)");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let include = std::path::Path::new(&dir).join("include");
        if include.join("c10/core/ScalarType.h").exists() {
            cc::Build::new()
                .cpp(true)
                .std("c++17")
                .include(&include)
                .include(include.join("torch/csrc/api/include"))
                .file("csrc/autocast.cpp")
                .file("csrc/generator.cpp")
                .file("csrc/distributed.cpp")
                .warnings(false)
                .compile("selfsup_shim");
            // ATen's parallel_for is inline OpenMP in this libtorch (AT_PARALLEL_OPENMP): the
            // kernel is compiled with -fopenmp and runs on libtorch's own OpenMP runtime (the
            // libgomp beside libtorch_cpu.so), so it shares its threads and thread count.
            cc::Build::new()
                .cpp(true)
                .std("c++17")
                .include(&include)
                .include(include.join("torch/csrc/api/include"))
                .flag("-fopenmp")
                // The kernels are the point of this library: optimised in every profile.
                .opt_level(3)
                .file("csrc/graph_attention.cpp")
                .file("csrc/keyed_bernoulli.cpp")
                .warnings(false)
                .compile("selfsup_graph_kernels");
            // Linked by its soname, libgomp.so.1; the rpath below finds libtorch's copy first.
            println!("cargo:rustc-link-lib=dylib=gomp");
            println!("cargo:rustc-cfg=selfsup_shim");
        }
        let lib = std::path::Path::new(&dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        // The libtorch actually linked, for run manifests: the wheel's version.py, or the
        // `build-version` file of a standalone libtorch.
        let root = std::path::Path::new(&dir);
        let version = std::fs::read_to_string(root.join("version.py"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("__version__ = "))
                    .map(|v| v.trim().trim_matches('\'').to_string())
            })
            .or_else(|| {
                std::fs::read_to_string(root.join("build-version"))
                    .ok()
                    .map(|v| v.trim().to_string())
            });
        if let Some(v) = version {
            println!("cargo:rustc-env=SELFSUP_LIBTORCH_VERSION={v}");
        }
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

        // A CUDA libtorch: nothing of ours calls into libtorch_cuda.so directly, so the linker's
        // --as-needed would drop it, and then libtorch never registers its CUDA backend (0 GPUs).
        if lib.join("libtorch_cuda.so").exists() {
            println!(
                "cargo:rustc-link-arg=-Wl,-L{},--no-as-needed,-ltorch_cuda,--as-needed",
                lib.display()
            );
        }
    }
}
