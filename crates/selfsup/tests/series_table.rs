//! TS2Vec through the whole pipeline and `ucr-table`'s bookkeeping: two small UCR sets, two
//! seeds; the table reads finished cells back, continues an interrupted one, and refuses cells
//! made under other settings.
use rand::{Rng, SeedableRng};
use selfsup::error::BadInputPolicy;
use selfsup::recipe::Recipe;
use selfsup::run::RunOptions;
use selfsup::study::ucr_table::{
    format_table, rows, run_ucr_table, Published, Table, UcrTableOptions,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// `name`: two classes, rising vs falling ramps (`shape = 0`) or low vs high frequency sines.
fn write_set(dir: &Path, name: &str, shape: u8) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shape as u64);
    for (split, n) in [("TRAIN", 24), ("TEST", 12)] {
        let mut s = String::new();
        for i in 0..n {
            let class = i % 2;
            let values: Vec<String> = (0..24)
                .map(|t| {
                    let t = t as f64;
                    let v = match (shape, class) {
                        (0, 0) => t / 12.0,
                        (0, _) => (23.0 - t) / 12.0,
                        (_, 0) => (t * 0.3).sin(),
                        (_, _) => (t * 1.5).sin(),
                    };
                    format!("{:.4}", v + rng.gen_range(-0.1..0.1))
                })
                .collect();
            s.push_str(&format!("{}\t{}\n", class + 1, values.join("\t")));
        }
        std::fs::write(dir.join(format!("{name}_{split}.tsv")), s).unwrap();
    }
}

fn recipe(dir: &Path, steps: u64) -> Recipe {
    let text = format!(
        r#"
name = "tiny-ts2vec"
[data]
format = "ucr"
path = {:?}
name = "RAMP"
options = {{ standardise = true }}
[encoder]
kind = "dilated_conv"
hidden = 8
out = 16
depth = 2
[method]
name = "ts2vec"
[train]
steps = {steps}
batch_size = 8
optimizer = {{ name = "adamw", lr = 1e-3, weight_decay = 0.01 }}
log_every = 1
[eval]
svm = true
nearest_raw = true
knn_k = 3
"#,
        dir
    );
    Recipe::from_toml(&text, "tiny", &[]).unwrap()
}

fn options(runs: &Path) -> UcrTableOptions {
    UcrTableOptions {
        sets: vec!["RAMP".into(), "SINE".into()],
        seeds: vec![0, 1],
        runs: runs.to_path_buf(),
        run: RunOptions {
            run_dir: None,
            resume: false,
            device: tch::Device::Cpu,
            threads: 1,
            on_bad_input: BadInputPolicy::Fail,
            evaluate: true,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
        },
        finished_only: false,
    }
}

#[test]
fn ts2vec_over_two_sets_and_two_seeds_resumes_and_guards_its_cells() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_set(&data, "RAMP", 0);
    write_set(&data, "SINE", 1);
    let runs = dir.path().join("table");
    // 7 steps over epochs of 3 batches: the last epoch stops part-way.
    let r = recipe(&data, 7);
    let mut lines = Vec::new();
    let table = run_ucr_table(&r, &options(&runs), |l| lines.push(l.to_string())).unwrap();
    assert_eq!(table.cells.len(), 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for c in &table.cells {
        assert!((0.0..=1.0).contains(&c.accuracy), "{c:?}");
        let metrics = std::fs::read_to_string(
            runs.join(&c.set)
                .join(format!("seed{}", c.seed))
                .join("metrics.jsonl"),
        )
        .unwrap();
        let last_step = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["step"].as_u64())
            .max();
        assert_eq!(last_step, Some(7), "{}: train.steps = 7", c.set);
        // The raw baselines are measured once per set, with the first seed.
        let raw = c.records.iter().filter(|r| r.features == "raw").count();
        assert_eq!(raw > 0, c.seed == 0, "{c:?}");
    }
    let published: Published = [("RAMP".to_string(), [("ts2vec".to_string(), 0.5)].into())].into();
    let sets = vec!["RAMP".to_string(), "SINE".to_string()];
    let rows = rows(&table, &sets, &published);
    assert_eq!(rows[0].per_seed.len(), 2);
    // Ramps of opposite slope: 1-NN under either distance is exact.
    assert_eq!(rows[0].raw_euclidean, Some(1.0));
    assert_eq!(rows[0].raw_dtw, Some(1.0));
    assert!(rows[0].raw_svm.is_some());
    let text = format_table(&table, &rows);
    assert!(
        text.contains("| RAMP |") && text.contains("average rank"),
        "{text}"
    );

    // Run again: every cell is read back, nothing trains.
    let mut again = Vec::new();
    let same = run_ucr_table(&r, &options(&runs), |l| again.push(l.to_string())).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        same.cells.iter().map(|c| c.accuracy).collect::<Vec<_>>(),
        table.cells.iter().map(|c| c.accuracy).collect::<Vec<_>>()
    );

    // A cell lost from the table (interrupted after training) is continued from its run folder
    // and gives the same figure.
    let state = runs.join("table.json");
    let mut saved: Table = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let lost = saved.cells.pop().unwrap();
    std::fs::write(&state, serde_json::to_string(&saved).unwrap()).unwrap();
    let mut resumed = Vec::new();
    let back = run_ucr_table(&r, &options(&runs), |l| resumed.push(l.to_string())).unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(resumed[0].contains("resumed"), "{resumed:?}");
    assert_eq!(back.cells.last().unwrap().accuracy, lost.accuracy);

    // Another set added to the data folder leaves the runs' data fingerprint (and so their
    // resumability) alone; a changed file of the set does not.
    let before = selfsup::run::pipeline::fingerprint(&r.data).unwrap();
    write_set(&data, "OTHER", 2);
    assert_eq!(
        selfsup::run::pipeline::fingerprint(&r.data).unwrap(),
        before
    );
    std::fs::write(data.join("RAMP_TEST.tsv"), "1\t0.5\t0.25\n").unwrap();
    assert_ne!(
        selfsup::run::pipeline::fingerprint(&r.data).unwrap(),
        before
    );

    // Other settings: refused, naming the cell.
    let e = run_ucr_table(&recipe(&data, 8), &options(&runs), |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}
