//! An image folder with a few corrupt files among thousands of good ones: `fail` names the first
//! bad file in the loader's order; `skip` trains on the rest and reports exactly the bad files, each
//! with its reason. A header declaring a huge image is refused by `max_pixels` before any pixel
//! buffer is allocated (checked with a counting allocator), and a folder with nothing usable is an
//! error under `skip`, not an empty epoch.
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use selfsup::data::image_folder::{load_image_folder, ImageFolderOptions};
use selfsup::error::{BadInputPolicy, DataError, SkipReport};
use selfsup::run::commands::{self, PretrainArgs};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Records the largest single allocation the process has made, so a test can show that a lying
/// header did not make the decoder reserve its declared size.
struct PeakAlloc;

static LARGEST_ALLOC: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

const PER_CLASS: usize = 1000;

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// A small deterministic generator, so the corrupt bytes are the same on every run.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

/// CRC-32 (IEEE), as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG whose IHDR declares `width`×`height` (with a correct CRC, so the decoder trusts
/// the header) over the data of a 2×2 image.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(2, 2)),
        ImageFormat::Png,
    );
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// The five corrupt files: (path relative to the root, bytes, a word its reason must contain).
/// Named to sort among the valid `img_NNNN.png` files, in this order.
fn corrupt_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // A noisy image, so the compressed stream is long enough to be cut in the middle of IDAT.
    let noisy = DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
        Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8])
    }));
    let png = encode(&noisy, ImageFormat::Png);
    let jpeg = encode(&noisy, ImageFormat::Jpeg);
    // JPEG start-of-image and JFIF header, then garbage where the tables and scan should be.
    let mut bad_jpeg = jpeg[..20].to_vec();
    bad_jpeg.extend(noise(3, 400).iter().map(|b| b & 0x7f));
    let mut random = noise(5, 256);
    random[0] = b'R'; // not a PNG or JPEG signature
    vec![
        ("cat/img_0137_zero.png", Vec::new(), "empty file"),
        (
            "cat/img_0702_truncated.png",
            png[..png.len() / 2].to_vec(),
            "cannot decode",
        ),
        ("dog/img_0005_random.png", random, "not a PNG or JPEG"),
        ("dog/img_0400_garbage.jpg", bad_jpeg, "image"),
        (
            "dog/img_0999_huge.png",
            png_declaring(100_000, 100_000),
            "max_pixels",
        ),
    ]
}

/// Writes `PER_CLASS` valid 8×8 grey PNGs into each of `cat/` and `dog/`, plus the corrupt files.
fn write_folder(root: &Path) -> Vec<(PathBuf, &'static str)> {
    for (c, class) in ["cat", "dog"].iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..PER_CLASS {
            let img = GrayImage::from_fn(8, 8, |x, y| {
                Luma([((x + y) as usize * 13 + i + c * 100) as u8])
            });
            let bytes = encode(&DynamicImage::ImageLuma8(img), ImageFormat::Png);
            std::fs::write(dir.join(format!("img_{i:04}.png")), bytes).unwrap();
        }
    }
    corrupt_files()
        .into_iter()
        .map(|(name, bytes, reason)| {
            let p = root.join(name);
            std::fs::write(&p, bytes).unwrap();
            (p, reason)
        })
        .collect()
}

#[test]
fn thousands_of_images_with_five_corrupt_fail_and_skip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let bad = write_folder(&root);
    let opts = ImageFolderOptions::default();

    // Fail: the first bad file in the loader's order (class folders, then file names, sorted).
    let err = load_image_folder(&root, &opts, BadInputPolicy::Fail).unwrap_err();
    assert_eq!(err.path(), bad[0].0, "{err}");
    assert!(err.to_string().contains("img_0137_zero.png"), "{err}");

    // Skip: every good image, and exactly the five bad files, in order, each with its reason.
    let (set, report) = load_image_folder(&root, &opts, BadInputPolicy::Skip).unwrap();
    assert_eq!(set.len, 2 * PER_CLASS);
    assert_eq!(
        (set.channels, set.height, set.width),
        (1, 8, 8),
        "shape of the good images"
    );
    let labels = set.labels.as_ref().unwrap();
    assert_eq!(labels.iter().filter(|&&l| l == 0).count(), PER_CLASS);
    assert_eq!(set.class_names, ["cat", "dog"]);
    assert_eq!(report.skipped, 5);
    let want: Vec<PathBuf> = bad.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(report.paths, want);
    assert_eq!(report.examples.len(), 5);
    for ((path, reason), example) in bad.iter().zip(&report.examples) {
        assert!(
            example.starts_with(&path.display().to_string()) && example.contains(reason),
            "{example} (wanted {} and {reason:?})",
            path.display()
        );
    }
}

#[test]
fn skip_trains_on_the_good_images_and_records_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let bad = write_folder(&root);
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"name = "hostile"
seed = 1
[data]
format = "image_folder"
train = "{}"
[views.image]
crop_scale = [0.5, 1.0]
blur_kernel = 3
mean = [0.5]
std = [0.25]
[encoder]
kind = "small_cnn"
widths = [4, 8]
[method]
name = "simclr"
projector = [{{ dim = 8 }}]
[train]
epochs = 1
batch_size = 16
max_steps = 2
optimizer = {{ name = "adam", lr = 1e-3 }}
"#,
            root.display()
        ),
    )
    .unwrap();
    let args = |policy, run: &str| PretrainArgs {
        recipe: recipe.clone(),
        overrides: vec![],
        run_dir: Some(dir.path().join(run)),
        resume: false,
        device: tch::Device::Cpu,
        threads: 1,
        on_bad_input: policy,
        evaluate: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let err = commands::pretrain(args(BadInputPolicy::Fail, "run-fail"))
        .err()
        .expect("fail policy must refuse the folder");
    assert!(format!("{err:#}").contains("img_0137_zero.png"), "{err:#}");

    let report = commands::pretrain(args(BadInputPolicy::Skip, "run-skip")).unwrap();
    assert_eq!(report.summary.steps, 2);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["train_samples"], 2 * PER_CLASS);
    let skipped = &manifest["skipped_inputs"];
    assert_eq!(skipped["skipped"], 5, "{skipped}");
    // The run folder's recipe has absolute paths; compare canonical forms.
    let listed: Vec<PathBuf> = skipped["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::fs::canonicalize(p.as_str().unwrap()).unwrap())
        .collect();
    let want: Vec<PathBuf> = bad
        .iter()
        .map(|(p, _)| std::fs::canonicalize(p).unwrap())
        .collect();
    assert_eq!(listed, want);
}

#[test]
fn huge_declared_png_is_refused_without_allocating_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("huge.png"), png_declaring(100_000, 100_000)).unwrap();
    let opts = ImageFolderOptions::default();
    let e = load_image_folder(root, &opts, BadInputPolicy::Fail).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("huge.png")
            && text.contains("100000×100000 = 10000000000 pixels")
            && text.contains("max_pixels = 40000000"),
        "{text}"
    );
    let r = load_image_folder(root, &opts, BadInputPolicy::Skip);
    assert!(matches!(r, Err(DataError::Empty { .. })), "{r:?}");
    // 10^10 grey pixels would be 10 GB; the header was refused before any buffer was reserved
    // (the other tests in this binary allocate well under 16 MB at once).
    let largest = LARGEST_ALLOC.load(Ordering::Relaxed);
    assert!(largest < 16 << 20, "largest allocation {largest} bytes");

    // 6000×6000 is within the default limit (and then simply undecodable: its data is 2×2's),
    // but a tighter configured limit refuses it by its header alone.
    std::fs::remove_file(root.join("huge.png")).unwrap();
    std::fs::write(root.join("large.png"), png_declaring(6_000, 6_000)).unwrap();
    let e = load_image_folder(root, &opts, BadInputPolicy::Fail).unwrap_err();
    assert!(!e.to_string().contains("max_pixels"), "{e}");
    let tight = ImageFolderOptions {
        max_pixels: 1_000_000,
        ..Default::default()
    };
    let e = load_image_folder(root, &tight, BadInputPolicy::Fail).unwrap_err();
    assert!(
        e.to_string()
            .contains("6000×6000 = 36000000 pixels, more than max_pixels = 1000000"),
        "{e}"
    );
}

#[test]
fn a_folder_of_only_bad_files_is_an_error_under_skip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::create_dir_all(root.join("dog")).unwrap();
    for (name, bytes, _) in corrupt_files() {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let opts = ImageFolderOptions::default();
    let e = load_image_folder(&root, &opts, BadInputPolicy::Fail).unwrap_err();
    assert!(e.to_string().contains("img_0137_zero.png"), "{e}");
    match load_image_folder(&root, &opts, BadInputPolicy::Skip) {
        Err(DataError::Empty { path, message }) => {
            assert_eq!(path, root);
            assert!(
                message.contains("all 5 image files were skipped"),
                "{message}"
            );
        }
        other => panic!("expected Empty, got {other:?}"),
    }
}

#[test]
fn more_bad_files_than_examples_are_all_counted_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(4, 4)),
        ImageFormat::Png,
    );
    std::fs::write(root.join("a_good.png"), &good).unwrap();
    let mut want = Vec::new();
    for i in 0..8 {
        let p = root.join(format!("b_bad_{i}.png"));
        std::fs::write(&p, noise(i, 40)).unwrap();
        want.push(p);
    }
    let (set, report) =
        load_image_folder(root, &ImageFolderOptions::default(), BadInputPolicy::Skip).unwrap();
    assert_eq!(set.len, 1);
    assert_eq!(report.skipped, 8);
    assert_eq!(report.examples.len(), SkipReport::MAX_EXAMPLES);
    assert_eq!(report.paths, want);
}
