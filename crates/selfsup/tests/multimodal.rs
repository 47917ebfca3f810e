//! Paired data through the whole pipeline on synthetic data: two "modalities" of three classes,
//! 4x4 images as CSV rows and a table, each of which says the class in its own way. CLIP trains
//! for a few epochs on pairs drawn by label and on pairs read from a manifest; `selfsup
//! multimodal` scores retrieval both ways beside chance and the random initialisation, and
//! probes each encoder beside the unimodal recipes it names; a finished table reads back.
use selfsup::error::BadInputPolicy;
use selfsup::recipe::Recipe;
use selfsup::run::commands::{load_run, pretrain_recipe};
use selfsup::run::RunOptions;
use selfsup::study::multimodal_table::{
    format_table, run_multimodal_table, MultimodalOptions, CLIP_ROW, RANDOM_ROW, RAW_ROW,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Class c's images: a bright row c (of 4) plus noise; its table rows: feature c high.
fn write_data(dir: &Path) {
    let mut state = 7u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 4) as f64
    };
    let mut images = String::new();
    for i in 0..60 {
        let c = i % 3;
        let px: Vec<String> = (0..16)
            .map(|p| {
                let v = if p / 4 == c { 12.0 + noise() } else { noise() };
                format!("{v}")
            })
            .collect();
        images += &format!("{},{c}\n", px.join(","));
    }
    std::fs::write(dir.join("images.csv"), images).unwrap();
    let mut table = String::from("f0,f1,f2,f3,label\n");
    for i in 0..45 {
        let c = i % 3;
        let f: Vec<String> = (0..4)
            .map(|k| {
                format!(
                    "{}",
                    if k == c {
                        3.0 + noise() / 4.0
                    } else {
                        noise() / 4.0
                    }
                )
            })
            .collect();
        table += &format!("{},{c}\n", f.join(","));
    }
    std::fs::write(dir.join("rows.csv"), &table).unwrap();
    std::fs::write(dir.join("rows_test.csv"), &table).unwrap();
}

fn image_tables(dir: &Path) -> String {
    format!(
        r#"data = {{ format = "csv_images", train = {:?}, options = {{ height = 4, width = 4, max_value = 16.0, test_fraction = 0.25 }} }}
views = {{ image = {{ size = [4, 4], crop_scale = [0.8, 1.0], hflip_p = 0.0, jitter_p = 0.0, blur_p = 0.0, mean = [0.3], std = [0.4] }} }}
encoder = {{ kind = "small_cnn", widths = [4, 8] }}"#,
        dir.join("images.csv")
    )
}

fn row_tables(dir: &Path) -> String {
    format!(
        r#"data = {{ format = "csv", train = {:?}, test = {:?}, options = {{ header = true, label = "label" }} }}
views = {{ table = {{ corruption_rate = 0.3 }} }}
encoder = {{ kind = "mlp", dims = [16, 8] }}"#,
        dir.join("rows.csv"),
        dir.join("rows_test.csv")
    )
}

const TRAIN: &str = r#"[train]
epochs = 4
batch_size = 12
optimizer = { name = "adam", lr = 3e-3 }
log_every = 1
[eval]
knn_k = 3
probe_iters = 50"#;

/// Inline tables as `[[data.modalities]]` entries: a key = value per line.
fn modality(name: &str, tables: &str) -> String {
    format!("[[data.modalities]]\nname = \"{name}\"\n{tables}\n")
}

fn paired(dir: &Path, pairing: &str) -> Recipe {
    let text = format!(
        "name = \"tiny-clip\"\n[data]\nformat = \"paired\"\npairing = {pairing}\n{}{}[method]\nname = \"clip\"\nprojector = [{{ dim = 8, bias = false }}]\n{TRAIN}\n",
        modality("image", &image_tables(dir)),
        modality("rows", &row_tables(dir)),
    );
    Recipe::from_toml(&text, "tiny-clip", &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn options(dir: Option<&Path>) -> RunOptions {
    RunOptions {
        run_dir: dir.map(Path::to_path_buf),
        resume: false,
        device: tch::Device::Cpu,
        threads: 1,
        on_bad_input: BadInputPolicy::Fail,
        evaluate: true,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

#[test]
fn clip_trains_on_label_pairs_and_on_a_manifest_and_saves_every_encoder() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let by_label = paired(dir.path(), "{ by = \"label\", seed = 1 }");
    let run = dir.path().join("run");
    let report = pretrain_recipe(by_label, &options(Some(&run))).unwrap();
    assert!(report.summary.final_loss.is_some_and(f64::is_finite));
    let loaded = load_run(&run, &[], tch::Device::Cpu, BadInputPolicy::Fail).unwrap();
    let names: Vec<String> = loaded.model.vs.variables().into_keys().collect();
    assert!(names.iter().any(|n| n.starts_with("encoder.")));
    assert!(
        names.iter().any(|n| n.starts_with("modalities.rows.")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "method.log_scale"));
    // Every training image pair (45 of the 60 images are training images) has a row partner.
    assert_eq!(loaded.prepared.train.len(), 45);

    // A manifest pairing row i with training image i; a row outside the set is an error naming
    // the line and column.
    let manifest = dir.path().join("pairs.csv");
    let lines: Vec<String> = (0..45).map(|i| format!("{},{i}", i)).collect();
    std::fs::write(&manifest, format!("rows,image\n{}\n", lines.join("\n"))).unwrap();
    let from_file = paired(
        dir.path(),
        &format!("{{ by = \"manifest\", train = {manifest:?} }}"),
    );
    let run2 = dir.path().join("run2");
    pretrain_recipe(from_file.clone(), &options(Some(&run2))).unwrap();
    std::fs::write(&manifest, "rows,image\n0,0\n99,1\n").unwrap();
    let Err(e) = pretrain_recipe(from_file, &options(Some(&dir.path().join("run3")))) else {
        panic!("a manifest naming row 99 of 45 was accepted");
    };
    let e = format!("{e:#}");
    assert!(e.contains("pairs.csv:3:1") && e.contains("index 99"), "{e}");
}

#[test]
fn the_multimodal_table_scores_retrieval_and_probes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    // The image modality names a unimodal recipe: its counterpart row.
    let uni = dir.path().join("images-simclr.toml");
    std::fs::write(
        &uni,
        format!(
            "name = \"tiny-images-simclr\"\n{}\n[method]\nname = \"simclr\"\nprojector = [{{ dim = 8 }}]\n{TRAIN}\n",
            unimodal_body(dir.path())
        ),
    )
    .unwrap();
    let recipe_path = dir.path().join("clip.toml");
    std::fs::write(
        &recipe_path,
        format!(
            "name = \"tiny-clip\"\n[data]\nformat = \"paired\"\n[[data.modalities]]\nname = \"image\"\nrecipe = \"images-simclr.toml\"\n{}[method]\nname = \"clip\"\nprojector = [{{ dim = 8, bias = false }}]\n{TRAIN}\n",
            modality("rows", &row_tables(dir.path()))
        ),
    )
    .unwrap();
    let recipe = Recipe::load(&recipe_path, &[]).unwrap();
    let runs = dir.path().join("runs");
    let opts = MultimodalOptions {
        seeds: vec![0],
        runs: runs.clone(),
        run: options(None),
    };
    let t = run_multimodal_table(&recipe, &opts, |_| {}).unwrap();
    let rows: Vec<&str> = t.cells.iter().map(|c| c.row.as_str()).collect();
    assert_eq!(
        rows,
        [
            RAW_ROW,
            RANDOM_ROW,
            CLIP_ROW,
            "unimodal SSL: tiny-images-simclr"
        ]
    );
    // Three balanced classes: chance is 1/3 each way.
    assert_eq!(t.chance.len(), 2);
    for c in &t.chance {
        assert!((c.top1 - 1.0 / 3.0).abs() < 0.02, "{c:?}");
    }
    let clip = &t.cells[2];
    assert_eq!(clip.retrieval.len(), 2);
    assert!(clip.retrieval.iter().all(|r| (0.0..=1.0).contains(&r.top1)));
    assert_eq!(clip.probes.len(), 2);
    assert!(clip.temperature.is_some_and(|t| t > 0.0));
    // The easy synthetic classes: the trained pair retrieves well above chance.
    let best = clip.retrieval.iter().map(|r| r.top1).fold(0.0, f64::max);
    assert!(best > 0.6, "{:?}", clip.retrieval);
    let text = format_table(&t);
    assert!(
        text.contains("image → rows top-1") && text.contains("| chance |"),
        "{text}"
    );
    // Run again: every cell is read back, nothing is retrained.
    let again = run_multimodal_table(&recipe, &opts, |line| panic!("retrained: {line}")).unwrap();
    assert_eq!(again.cells, t.cells);
}

fn unimodal_body(dir: &Path) -> String {
    format!(
        "[data]\nformat = \"csv_images\"\ntrain = {:?}\noptions = {{ height = 4, width = 4, max_value = 16.0, test_fraction = 0.25 }}\n[views.image]\nsize = [4, 4]\ncrop_scale = [0.8, 1.0]\nhflip_p = 0.0\njitter_p = 0.0\nblur_p = 0.0\nmean = [0.3]\nstd = [0.4]\n[encoder]\nkind = \"small_cnn\"\nwidths = [4, 8]",
        dir.join("images.csv")
    )
}
