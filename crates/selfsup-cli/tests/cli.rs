//! The binary as a user meets it: exit codes and messages for bad recipes and bad data.
use std::process::Command;

fn selfsup(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_selfsup"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TABLE_RECIPE: &str = r#"
name = "t"
[data]
format = "csv"
train = "train.csv"
options = { header = true, label = "y" }
[encoder]
kind = "mlp"
dims = [8]
[method]
name = "barlow_twins"
projector = [{ dim = 8 }]
[train]
epochs = 1
batch_size = 2
optimizer = { name = "adam", lr = 1e-3 }
"#;

#[test]
fn a_ragged_csv_row_names_file_and_line_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "a,b,y\n1,2,x\n3,4,y\n5,z\n7,8,x\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("r.toml"), TABLE_RECIPE).unwrap();
    let (code, err) = selfsup(&["pretrain", "r.toml", "--quiet"], dir.path());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("train.csv:4"), "{err}");
    // Under --on-bad-input=skip the row is counted and training goes ahead.
    let (code, err) = selfsup(
        &[
            "pretrain",
            "r.toml",
            "--quiet",
            "--on-bad-input",
            "skip",
            "--run-dir",
            "run",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let manifest = std::fs::read_to_string(dir.path().join("run/manifest.json")).unwrap();
    assert!(manifest.contains("\"skipped\": 1"), "{manifest}");
}

#[test]
fn recipe_errors_exit_2_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.toml"), TABLE_RECIPE).unwrap();
    let (code, err) = selfsup(
        &["pretrain", "r.toml", "--set", "train.batch_size=1"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("batch_size = 1"), "{err}");
    let (code, err) = selfsup(
        &["pretrain", "r.toml", "--set", "train.epoch=1"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("epoch"), "{err}");
    assert!(
        !dir.path().join("runs").exists(),
        "no run folder for a refused recipe"
    );
}

#[test]
fn a_corrupt_png_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs/cat");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::write(imgs.join("broken.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let recipe = TABLE_RECIPE
        .replace(
            "format = \"csv\"\ntrain = \"train.csv\"\noptions = { header = true, label = \"y\" }",
            "format = \"image_folder\"\ntrain = \"imgs\"",
        )
        .replace(
            "kind = \"mlp\"\ndims = [8]",
            "kind = \"small_cnn\"\nwidths = [4]",
        );
    std::fs::write(dir.path().join("r.toml"), recipe).unwrap();
    let (code, err) = selfsup(&["pretrain", "r.toml", "--quiet"], dir.path());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("broken.png"), "{err}");
}

#[test]
fn log_lines_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "a,b,y\n1,2,x\n3,4,y\n5,z\n7,8,x\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("r.toml"), TABLE_RECIPE).unwrap();
    let args = [
        "pretrain",
        "r.toml",
        "--quiet",
        "--no-eval",
        "--on-bad-input",
        "skip",
    ];
    let (code, err) = selfsup(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    // The skipped row is logged at WARN level.
    assert!(err.contains("WARN skipped 1"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped logs: {err:?}"
    );
}

/// A `.npy` file (format 1.0) of `shape` with no data: little-endian `descr`, C order.
fn empty_npy(path: &std::path::Path, descr: &str, shape: &str) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn embeddings_with_no_rows_exit_3_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    empty_npy(&dir.path().join("e.npy"), "<f4", "(0, 8)");
    empty_npy(&dir.path().join("e.labels.npy"), "<i8", "(0,)");
    let (code, err) = selfsup(
        &["eval", "knn", "--train", "e.npy", "--test", "e.npy"],
        dir.path(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("e.npy") && err.contains("no embeddings"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = selfsup(
        &["--device", "gpu", "eval", "knn", "--run", "r"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--device"), "{err}");
    let (code, err) = selfsup(&["eval", "knn"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--run"), "{err}");
    let (code, err) = selfsup(&["eval", "knn", "--train", "a.npy"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--test"), "{err}");
}

#[test]
fn data_inspect_counts_samples_classes_and_skipped_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "a,b,y\n1,2,x\n3,4,y\n5,z\n7,8,x\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("r.toml"), TABLE_RECIPE).unwrap();
    let (code, err) = selfsup(&["data", "inspect", "r.toml"], dir.path());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("train.csv:4"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_selfsup"))
        .args([
            "data",
            "inspect",
            "r.toml",
            "--on-bad-input",
            "skip",
            "--out",
            "s.json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("train: 3 samples"), "{text}");
    assert!(text.contains("2 classes (smallest 1, largest 2)"), "{text}");
    assert!(text.contains("skipped 1 samples"), "{text}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["splits"][0]["samples"], 3);
    assert_eq!(s["skipped"], 1);
}
