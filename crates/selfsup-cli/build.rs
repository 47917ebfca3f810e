// Lets binaries and test executables of this crate find libtorch without LD_LIBRARY_PATH:
// an rpath to the libtorch that torch-sys linked against (LIBTORCH, see .cargo/config.toml).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
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
