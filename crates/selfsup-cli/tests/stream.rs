//! A streamed image folder (`options.stream = true`) with channels-last kernels, and the same
//! folder packed into tar shards (`selfsup data pack`, `format = "image_shards"`): the run trains
//! from files decoded on demand, SIGKILL at random steps followed by `--resume` ends bit-identical
//! to an uninterrupted run, and the same run without streaming gives the same weights (the same
//! pixels reach the same views). An image corrupted after the run started stops training with an
//! error naming the file.
mod common;

use common::{latest_step, wait_for_step, weights_hash};
use rand::{Rng, SeedableRng};
use std::path::Path;

const RECIPE: &str = r#"
name = "stream"
seed = 5
[data]
format = "image_folder"
train = "images"
options = { size = [12, 12], stream = true }
[views.image]
crop_scale = [0.5, 1.0]
hflip_p = 0.5
jitter_p = 0.0
blur_p = 0.0
[encoder]
kind = "small_cnn"
widths = [4, 8]
[method]
name = "simclr"
temperature = 0.5
projector = [{ dim = 16, batch_norm = true, relu = true }, { dim = 8 }]
[train]
epochs = 6
batch_size = 8
optimizer = { name = "adam", lr = 1e-3 }
checkpoint_every = 1
keep_checkpoints = 3
channels_last = true
"#;

const TOTAL_STEPS: u64 = 6 * 6;

/// 48 colour PNGs of 14×14 in 3 class folders (resized to 12×12 by the recipe).
fn write_images(dir: &Path) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for class in 0..3u8 {
        let d = dir.join("images").join(format!("class{class}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..16 {
            let img = image::RgbImage::from_fn(14, 14, |x, _| {
                let band = (x as u8 / 5 == class) as u8 * 150;
                image::Rgb([band + rng.gen_range(0..60), rng.gen_range(0..60), band])
            });
            img.save(d.join(format!("{i:02}.png"))).unwrap();
        }
    }
    std::fs::write(dir.join("r.toml"), RECIPE).unwrap();
    std::fs::write(
        dir.join("mem.toml"),
        RECIPE.replace("stream = true", "stream = false"),
    )
    .unwrap();
}

#[test]
fn a_streamed_run_killed_at_random_steps_resumes_bit_identical_and_equals_the_in_memory_run() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    common::run_to_end(dir.path(), "r.toml", "full", false);
    let expect = weights_hash(&dir.path().join("full"));
    common::run_to_end(dir.path(), "mem.toml", "mem", false);
    assert_eq!(
        weights_hash(&dir.path().join("mem")),
        expect,
        "streaming changed what the model saw"
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut targets: Vec<u64> = (0..3).map(|_| rng.gen_range(1..TOTAL_STEPS - 2)).collect();
    targets.sort_unstable();
    let run = dir.path().join("killed");
    let mut kills = 0;
    for (i, &t) in targets.iter().enumerate() {
        let mut child = common::pretrain_command(dir.path(), "r.toml", "killed", i > 0)
            .spawn()
            .unwrap();
        if wait_for_step(&mut child, &run, t) {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 2,
        "only {kills} kills landed while the run was alive"
    );
    common::run_to_end(dir.path(), "r.toml", "killed", true);
    assert_eq!(latest_step(&run), Some(TOTAL_STEPS));
    assert_eq!(weights_hash(&run), expect, "resumed weights differ");
}

#[test]
fn an_image_corrupted_during_training_stops_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    // The header is intact (the open check passes), the pixel data is cut.
    let victim = dir.path().join("images/class1/03.png");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = common::pretrain_command(dir.path(), "r.toml", "bad", false)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("03.png"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_folder_packed_into_shards_trains_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    let (code, out, err) = common::selfsup(
        &["data", "pack", "images", "shards", "--per-shard", "10"],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("48 images") && out.contains("5 shard(s)"),
        "{out}"
    );
    std::fs::write(
        dir.path().join("shards.toml"),
        RECIPE
            .replace("format = \"image_folder\"", "format = \"image_shards\"")
            .replace("train = \"images\"", "train = \"shards\"")
            .replace(", stream = true", ""),
    )
    .unwrap();
    common::run_to_end(dir.path(), "mem.toml", "mem", false);
    common::run_to_end(dir.path(), "shards.toml", "shards", false);
    assert_eq!(
        weights_hash(&dir.path().join("shards")),
        weights_hash(&dir.path().join("mem")),
        "the shards gave the model other pixels or another order"
    );
}

#[test]
fn exports_name_each_image_file_in_memory_and_streamed_alike() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_images(d);
    for (recipe, run) in [("mem.toml", "mem"), ("r.toml", "full")] {
        common::run_to_end(d, recipe, run, false);
        let out = format!("{run}.csv");
        let (code, _, err) = common::selfsup(
            &["embed", "--run", run, "--out", &out, "--split", "train"],
            d,
        );
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(d.join(&out)).unwrap();
        let sources: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect();
        assert_eq!(sources.len(), 48);
        // Class folders in order, files by name: row 17 is class1/01.png.
        assert!(sources[17].ends_with("class1/01.png"), "{}", sources[17]);
        assert!(sources.iter().all(|s| d.join(s).exists()), "{sources:?}");
    }
}
