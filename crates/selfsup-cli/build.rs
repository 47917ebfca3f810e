// Lets binaries and test executables of this crate find libtorch without LD_LIBRARY_PATH:
// an rpath to the libtorch that torch-sys linked against (LIBTORCH, see .cargo/config.toml).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
