//! Writes a synthetic labelled image folder of JPEGs for the scale measurements
//! (`docs/performance.md`, "Scale"): `DIR/class<k>/<index>.jpg`, `N` images of `SIZE`×`SIZE` RGB in
//! `CLASSES` classes (each a hue and a stripe frequency, plus per-image noise), JPEG quality 85.
//! Files already present are kept, so an interrupted run can be continued.
//!
//! `cargo run --release -p selfsup --example synth_images -- DIR N SIZE [CLASSES] [THREADS]`
use image::codecs::jpeg::JpegEncoder;
use rand::{Rng, SeedableRng};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

fn image_at(index: usize, classes: usize, size: u32) -> (usize, image::RgbImage) {
    let class = index % classes;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(index as u64);
    let hue = class as f32 / classes as f32 * std::f32::consts::TAU;
    let freq = 2.0 + class as f32;
    let phase: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        let t = (x as f32 + 0.5 * y as f32) / size as f32 * freq * std::f32::consts::TAU + phase;
        let v = 0.5 + 0.4 * t.sin();
        let noise = rng.gen_range(-0.08f32..0.08);
        let c = |shift: f32| {
            ((v * (0.6 + 0.4 * (hue + shift).cos()) + noise).clamp(0.0, 1.0) * 255.0) as u8
        };
        image::Rgb([c(0.0), c(2.1), c(4.2)])
    });
    (class, img)
}

fn write(dir: &Path, index: usize, classes: usize, size: u32) -> std::io::Result<()> {
    let class_dir = dir.join(format!("class{}", index % classes));
    let path: PathBuf = class_dir.join(format!("{index:07}.jpg"));
    if path.exists() {
        return Ok(());
    }
    let (_, img) = image_at(index, classes, size);
    let part = path.with_extension("jpg.part");
    let mut out = BufWriter::new(std::fs::File::create(&part)?);
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .map_err(std::io::Error::other)?;
    drop(out);
    std::fs::rename(part, path)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: synth_images DIR N SIZE [CLASSES=10] [THREADS=2]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("N is a count");
    let size: u32 = args[3].parse().expect("SIZE is a side in pixels");
    let classes: usize = args.get(4).map_or(10, |c| c.parse().expect("CLASSES"));
    let threads: usize = args.get(5).map_or(2, |t| t.parse().expect("THREADS"));
    for k in 0..classes {
        std::fs::create_dir_all(dir.join(format!("class{k}")))?;
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let dir = &dir;
                s.spawn(move || -> std::io::Result<()> {
                    for i in (t..n).step_by(threads) {
                        write(dir, i, classes, size)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread"))
    })?;
    eprintln!("{n} images of {size}×{size} in {}", dir.display());
    Ok(())
}
