//! The library's shape, as `docs/architecture.md` draws it: every module uses only modules of
//! its own layer or of layers before it (so there is no cycle between layers), and no file of
//! library code grows past what one can hold in one's head.
use std::path::{Path, PathBuf};

/// The layers in order; a module of layer i may use those of layers ≤ i.
const LAYERS: &[&[&str]] = &[
    &[
        "backend",
        "distributed",
        "error",
        "fault",
        "hardware",
        "rng",
        "rules",
        "stats",
        "torch_dropout",
        "torch_init",
        "torch_rng",
    ],
    &["data", "datasets"],
    &["views"],
    &["encoders"],
    &["heads"],
    &["objectives"],
    &["methods"],
    &["train"],
    &["eval"],
    &["recipe"],
    &["run"],
    &["study", "pfn"],
    &["bench"],
];

/// Longest library file (test code excluded) in lines.
const MAX_LINES: usize = 800;

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of library code: up to the first `#[cfg(test)]`, none of a test-only file.
fn library_lines(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy();
    if name.ends_with("tests.rs") || name.ends_with("_test.rs") {
        return Vec::new();
    }
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .map(str::to_string)
        .collect()
}

fn sources() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    (src, files)
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let (src, files) = sources();
    let mut upward = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(own) = layer(top) else {
            assert_eq!(top, "lib", "{}: a module of no layer", rel.display());
            continue;
        };
        for (n, line) in library_lines(f).iter().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for part in line.split("crate::").skip(1) {
                let used: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if let Some(l) = layer(&used) {
                    if l > own {
                        upward.push(format!("{}:{}: {top} uses {used}", rel.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "uses of a later layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_library_file_is_longer_than_the_limit() {
    let (src, files) = sources();
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, library_lines(f).len()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{}: {n} lines", f.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}
