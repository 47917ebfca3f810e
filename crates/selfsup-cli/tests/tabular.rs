//! `selfsup tabular` end to end on a small synthetic table: T-JEPA and a SCARF-style recipe, the raw
//! MLP and the GBDT baseline, for a classification file pair and a regression file held out by
//! the command itself.
mod common;

use std::path::Path;

/// Rows `a,b,colour,y`: y (class or value) depends on a and on the colour.
fn write_table(path: &Path, n: usize, seed: u64, regression: bool) {
    let mut s = String::from("a,b,colour,y\n");
    let mut x = seed.wrapping_mul(2654435761) % 1000;
    for i in 0..n {
        x = (x * 1103515245 + 12345) % 2147483648;
        let a = (x % 1000) as f64 / 100.0 - 5.0;
        let b = ((x / 1000) % 1000) as f64 / 100.0;
        let colour = ["red", "green", "blue"][i % 3];
        let shift = [1.0, -1.0, 0.0][i % 3];
        let y = if regression {
            format!("{:.4}", 2.0 * a + shift)
        } else {
            (if a + shift > 0.0 { "yes" } else { "no" }).to_string()
        };
        s.push_str(&format!("{a:.3},{b:.3},{colour},{y}\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn recipe(name: &str, data: &str, body: &str) -> String {
    format!(
        "name = \"{name}\"\n{data}\n{body}\n[train]\nepochs = 1\nbatch_size = 32\noptimizer = {{ name = \"adam\", lr = 1e-3 }}\n"
    )
}

const TJEPA: &str = r#"
[views.table]
corruption_rate = 0.0
[encoder]
kind = "feature_transformer"
dim = 8
depth = 1
heads = 2
registers = 1
[method]
name = "tjepa"
predictor_dim = 8
predictor_depth = 1
predictor_heads = 2
context = [0.3, 0.6]
targets = 2
target = [0.25, 0.34]
"#;

const SCARF: &str = r#"
[views.table]
corruption_rate = 0.5
clean_first_view = true
[encoder]
kind = "mlp"
dims = [16]
[method]
name = "simclr"
temperature = 1.0
projector = [{ dim = 8 }]
"#;

#[test]
fn tabular_prints_every_model_for_classification_and_regression() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("train.csv"), 400, 1, false);
    write_table(&d.join("test.csv"), 200, 2, false);
    write_table(&d.join("reg.csv"), 500, 3, true);
    let cls = "[data]\nformat = \"csv\"\ntrain = \"train.csv\"\ntest = \"test.csv\"\n[data.options]\nlabel = \"y\"";
    let reg = "[data]\nformat = \"csv\"\ntrain = \"reg.csv\"\n[data.options]\nlabel = \"y\"\ntask = \"regression\"";
    for (tag, data) in [("cls", cls), ("reg", reg)] {
        std::fs::write(d.join(format!("tj-{tag}.toml")), recipe("tj", data, TJEPA)).unwrap();
        std::fs::write(d.join(format!("sc-{tag}.toml")), recipe("sc", data, SCARF)).unwrap();
        let tj = format!("tj-{tag}.toml");
        let sc = format!("sc-{tag}.toml");
        let (code, out, err) = common::selfsup(
            &[
                "tabular",
                &tj,
                &sc,
                "--seeds",
                "2",
                "--runs",
                "runs",
                "--mlp-epochs",
                "5",
                "--out",
                "t.json",
            ],
            d,
        );
        assert_eq!(code, 0, "{tag}: {err}");
        for row in [
            "tj (tjepa) + MLP",
            "sc (simclr) + MLP",
            "raw features + MLP",
            "GBDT",
        ] {
            assert!(out.contains(row), "{tag}: no row {row:?} in\n{out}");
        }
        assert!(
            out.contains(if tag == "cls" { "accuracy %" } else { "RMSE" }),
            "{out}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("t.json")).unwrap()).unwrap();
        for row in json["rows"].as_array().unwrap() {
            let v = row["per_seed"].as_array().unwrap();
            assert_eq!(v.len(), 2, "{tag}: {row}");
            assert!(v.iter().all(|x| x.as_f64().unwrap().is_finite()));
        }
        // The held-out test set of the single regression file is named in the split.
        if tag == "reg" {
            assert!(out.contains("one file of 500 rows"), "{out}");
        }
        std::fs::remove_dir_all(d.join("runs")).unwrap();
    }
}

#[test]
fn tabular_resume_reuses_saved_seeds_and_refuses_changed_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("train.csv"), 300, 1, false);
    write_table(&d.join("test.csv"), 150, 2, false);
    let cls = "[data]\nformat = \"csv\"\ntrain = \"train.csv\"\ntest = \"test.csv\"\n[data.options]\nlabel = \"y\"";
    std::fs::write(d.join("sc.toml"), recipe("sc", cls, SCARF)).unwrap();
    let run = |seeds: &str, extra: &[&str]| {
        let mut a = vec![
            "tabular",
            "sc.toml",
            "--seeds",
            seeds,
            "--runs",
            "runs",
            "--mlp-epochs",
            "3",
            "--no-gbdt",
            "--out",
            "t.json",
        ];
        a.extend_from_slice(extra);
        common::selfsup(&a, d)
    };
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("t.json")).unwrap()).unwrap()
    };
    let (code, _, err) = run("1", &[]);
    assert_eq!(code, 0, "{err}");
    let first = read();
    assert_eq!(first["seeds"], serde_json::json!([0]));

    let (code, _, err) = run("2", &["--resume"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("seed 0: taken from the saved table"), "{err}");
    assert!(
        err.contains("sc (simclr) + MLP seed 1: pretraining"),
        "{err}"
    );
    let second = read();
    assert_eq!(second["seeds"], serde_json::json!([0, 1]));
    for (row, old) in second["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(first["rows"].as_array().unwrap())
    {
        assert_eq!(row["per_seed"].as_array().unwrap().len(), 2, "{row}");
        assert_eq!(row["per_seed"][0], old["per_seed"][0], "seed 0 reused");
    }

    // Settings that change the figures: refused, and the saved table is kept as it was.
    for extra in [
        &["--resume", "--set", "method.temperature=0.5"][..],
        &["--resume", "--val-fraction", "0.3"][..],
    ] {
        let (code, _, err) = run("3", extra);
        assert_ne!(code, 0, "{extra:?}");
        assert!(err.contains("other settings"), "{extra:?}: {err}");
    }
    assert_eq!(read(), second);
}
