//! Shared fixtures for the integration tests: small synthetic data sets written in real formats.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes an IDX image file and a label file of `n` `side`×`side` images in 4 classes: each class is a
/// bright square in its own quadrant over noise, so that a small model can learn it.
pub fn write_idx(dir: &Path, stem: &str, n: usize, side: usize, seed: u64) -> (PathBuf, PathBuf) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut img = Vec::new();
    img.extend(0x0000_0803u32.to_be_bytes());
    img.extend((n as u32).to_be_bytes());
    img.extend((side as u32).to_be_bytes());
    img.extend((side as u32).to_be_bytes());
    let mut lab = Vec::new();
    lab.extend(0x0000_0801u32.to_be_bytes());
    lab.extend((n as u32).to_be_bytes());
    let half = side / 2;
    for i in 0..n {
        let c = i % 4;
        let (r0, c0) = ((c / 2) * half, (c % 2) * half);
        for r in 0..side {
            for col in 0..side {
                let inside = r >= r0 && r < r0 + half && col >= c0 && col < c0 + half;
                let v = if inside {
                    180 + next() % 70
                } else {
                    next() % 60
                };
                img.push(v as u8);
            }
        }
        lab.push(c as u8);
    }
    let ip = dir.join(format!("{stem}-images-idx3-ubyte"));
    let lp = dir.join(format!("{stem}-labels-idx1-ubyte"));
    std::fs::File::create(&ip).unwrap().write_all(&img).unwrap();
    std::fs::File::create(&lp).unwrap().write_all(&lab).unwrap();
    (ip, lp)
}

/// A tiny image recipe over IDX files in `dir` (train and test written by [`write_idx`]).
pub fn tiny_image_recipe(dir: &Path, method: &str, extra: &str) -> PathBuf {
    let (tri, trl) = write_idx(dir, "train", 96, 12, 1);
    let (tei, tel) = write_idx(dir, "t10k", 40, 12, 2);
    let method_table = match method {
        "simclr" => "name = \"simclr\"\ntemperature = 0.5\nprojector = [{ dim = 16, batch_norm = true, relu = true }, { dim = 8 }]",
        _ => "name = \"barlow_twins\"\nprojector = [{ dim = 16, batch_norm = true, relu = true }, { dim = 16 }]",
    };
    let text = format!(
        r#"name = "tiny"
seed = 7
[data]
format = "idx"
train_images = "{}"
train_labels = "{}"
test_images = "{}"
test_labels = "{}"
[views.image]
crop_scale = [0.5, 1.0]
blur_kernel = 3
mean = [0.3]
std = [0.3]
[encoder]
kind = "small_cnn"
widths = [4, 8]
[method]
{method_table}
[train]
epochs = 3
batch_size = 16
optimizer = {{ name = "adamw", lr = 3e-3, weight_decay = 1e-4 }}
warmup_epochs = 1.0
decay = "cosine"
log_every = 2
workers = 2
[eval]
knn_k = 10
probe_iters = 50
{extra}
"#,
        tri.display(),
        trl.display(),
        tei.display(),
        tel.display()
    );
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A TCP port free on loopback now (for a rendezvous).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `shared/data` beside the checkout (or `$SELFSUP_SHARED_DATA`); absent: `None` with a
/// message, except under `CI=true`, where the test fails.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("SELFSUP_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true and the shared data {} is absent",
        dir.display()
    );
    println!("skipping: {} is absent", dir.display());
    None
}
