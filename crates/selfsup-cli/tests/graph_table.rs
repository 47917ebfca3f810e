//! `selfsup graph --out … --resume`: the results file is rewritten after every seed, and a
//! resumed table takes the seeds it holds instead of running them again — only for the same
//! recipe settings.
mod common;

use std::path::Path;

const RECIPE: &str = r#"
name = "toy-graphmae"
seeds = [0, 1]

[data]
format = "tu"
path = "."
name = "TOY"

[encoder]
kind = "gin"
layers = 2
hidden = 8

[method]
name = "graphmae"
mask_rate = 0.5
alpha = 2.0

[train]
epochs = 2
batch_size = 8
optimizer = { name = "adam", lr = 0.001 }

[eval.graph]
protocol = "graph_cv"
folds = 3
"#;

fn seeds_of(path: &Path) -> Vec<(u64, f64)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v[0]["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["seed"].as_u64().unwrap(), s["accuracy"].as_f64().unwrap()))
        .collect()
}

#[test]
fn an_interrupted_table_resumes_from_its_saved_seeds() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tu(dir.path());
    std::fs::write(dir.path().join("toy.toml"), RECIPE).unwrap();
    let out = dir.path().join("res.json");
    let (code, _, err) = common::selfsup(&["graph", "toy.toml", "--out", "res.json"], dir.path());
    assert_eq!(code, 0, "{err}");
    let full = seeds_of(&out);
    assert_eq!(full.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    assert!(!dir.path().join("res.tmp").exists());

    // As if the run had stopped after seed 0, whose figure is marked to show it is reused.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let seeds = v[0]["seeds"].as_array_mut().unwrap();
    seeds.truncate(1);
    seeds[0]["accuracy"] = serde_json::json!(12.5);
    std::fs::write(&out, serde_json::to_string(&v).unwrap()).unwrap();

    let args = ["graph", "toy.toml", "--out", "res.json", "--resume"];
    let (code, _, err) = common::selfsup(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("saved by an earlier run"), "{err}");
    let resumed = seeds_of(&out);
    assert_eq!(resumed[0], (0, 12.5), "seed 0 taken from the file");
    // Seed 1 run again gives the figure of the uninterrupted run (same seed, one thread).
    assert_eq!(resumed[1], full[1]);

    // Other settings: the saved seeds are not mixed in.
    let mut changed = args.to_vec();
    changed.extend(["--set", "train.epochs=3"]);
    let (code, _, err) = common::selfsup(&changed, dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("other settings"), "{err}");
    assert_eq!(seeds_of(&out), resumed, "the file is left as it was");

    // --resume needs the file it continues.
    let (code, _, _) = common::selfsup(&["graph", "toy.toml", "--resume"], dir.path());
    assert_eq!(code, 2);
}
