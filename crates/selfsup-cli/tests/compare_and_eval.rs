//! `selfsup compare` (methods × seeds beside the two controls) and `selfsup eval` on exported
//! embeddings, end to end on a tiny labelled image set.
mod common;

use std::path::Path;

fn setup(dir: &Path) {
    common::write_idx(dir, "train.idx", "train-labels.idx", 96, 6, 1);
    common::write_idx(dir, "test.idx", "test-labels.idx", 144, 6, 2);
    let simclr = "[method]\nname = \"simclr\"\nprojector = [{ dim = 8 }]";
    let byol = "[method]\nname = \"byol\"\nprojector = [{ dim = 8 }]\npredictor = [{ dim = 8 }]";
    std::fs::write(dir.join("simclr.toml"), common::idx_recipe("s", simclr)).unwrap();
    std::fs::write(dir.join("byol.toml"), common::idx_recipe("b", byol)).unwrap();
}

#[test]
fn compare_prints_every_method_and_both_controls_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (code, out, err) = common::selfsup(
        &[
            "compare",
            "simclr.toml",
            "byol.toml",
            "--seeds",
            "2",
            "--runs",
            "cmp",
            "--out",
            "cmp.json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    for row in [
        "simclr",
        "byol",
        "control: random-init encoder",
        "control: raw inputs",
    ] {
        assert!(out.contains(row), "no {row} row in\n{out}");
    }
    assert!(out.contains("budget: 1 epoch(s), batch 16"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cmp.json")).unwrap())
            .unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows[..3] {
        let scores = r["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 2, "{r}");
        for s in scores {
            for k in ["knn", "linear"] {
                let a = s[k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&a), "{k} = {a}");
            }
            let rank = s["rankme"].as_f64().unwrap();
            assert!(rank >= 1.0 && rank <= s["dim"].as_f64().unwrap() + 1e-6);
        }
    }
    // One run folder per method and seed.
    assert!(dir.path().join("cmp/s-seed1/checkpoints/latest").exists());
    assert!(dir.path().join("cmp/b-seed0/checkpoints/latest").exists());
}

#[test]
fn compare_refuses_unequal_budgets() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let longer = std::fs::read_to_string(dir.path().join("byol.toml"))
        .unwrap()
        .replace("epochs = 1", "epochs = 2");
    std::fs::write(dir.path().join("byol.toml"), longer).unwrap();
    let (code, _, err) = common::selfsup(
        &["compare", "simclr.toml", "byol.toml", "--seeds", "1"],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("budget differs"), "{err}");
    assert!(!dir.path().join("runs").exists(), "nothing ran");
}

#[test]
fn eval_runs_every_protocol_on_exported_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path();
    let (code, _, err) = common::selfsup(&["pretrain", "simclr.toml", "--quiet", "--no-eval"], d);
    assert_eq!(code, 0, "{err}");
    for (split, file) in [("train", "tr.npy"), ("test", "te.npy")] {
        let (code, _, err) = common::selfsup(
            &["embed", "--run", "runs/s", "--out", file, "--split", split],
            d,
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = common::selfsup(
        &[
            "eval", "all", "--train", "tr.npy", "--test", "te.npy", "--seeds", "2", "--out",
            "ev.json",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    for p in [
        "knn(k=",
        "knn-grid",
        "linear-probe",
        "labels=1%",
        "labels=10%",
        "labels=100%",
        "5-way 1-shot",
        "5-way 5-shot",
        "k-means(k=6",
        "ECE(15 bins)",
    ] {
        assert!(out.contains(p), "no {p} in\n{out}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ev.json")).unwrap()).unwrap();
    for r in v.as_array().unwrap() {
        let x = r["value"].as_f64().unwrap();
        assert!(x.is_finite(), "{r}");
    }
    // The run itself: the learned representation beside the raw pixels, saved in the run folder.
    let (code, out, err) = common::selfsup(&["eval", "cluster", "--run", "runs/s"], d);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("learned") && out.contains("raw"), "{out}");
    assert!(d.join("runs/s/eval-suite.json").exists());
    // Fine-tuning the run's encoder: accuracy and calibration error per seed.
    let (code, out, err) = common::selfsup(
        &[
            "eval",
            "fine-tune",
            "--run",
            "runs/s",
            "--seeds",
            "2",
            "--set",
            "eval.finetune_epochs=1",
            "--set",
            "eval.finetune_batch=16",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fine-tune(adam,lr=0.001,epochs=1,batch=16,labels=100%"),
        "{out}"
    );
    assert!(out.contains("ECE"), "{out}");
    let (code, _, err) = common::selfsup(
        &["eval", "fine-tune", "--train", "tr.npy", "--test", "te.npy"],
        d,
    );
    assert_ne!(code, 0);
    assert!(err.contains("fine-tune needs --run"), "{err}");
    // Mismatched files are refused with their names.
    std::fs::copy(d.join("te.npy"), d.join("bad.npy")).unwrap();
    let (code, _, err) = common::selfsup(
        &["eval", "knn", "--train", "tr.npy", "--test", "bad.npy"],
        d,
    );
    assert_ne!(code, 0);
    assert!(err.contains("bad.labels.npy"), "{err}");
}

/// Self-pretraining: MAE on the task's own training images, fine-tuned, beside both
/// from-scratch controls; one run folder per seed.
#[test]
fn self_pretrain_reports_the_pretrained_arm_beside_both_controls() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let vit = common::idx_recipe(
        "v",
        "[method]\nname = \"mae\"\ndecoder_dim = 8\ndecoder_depth = 1\ndecoder_heads = 2",
    )
    .replace(
        "kind = \"small_cnn\"\nwidths = [4, 8]",
        "kind = \"vit\"\npatch = 4\ndim = 8\ndepth = 1\nheads = 2",
    )
    .replace(
        "probe_iters = 50",
        "probe_iters = 50\nfinetune_epochs = 1\nfinetune_batch = 16",
    );
    std::fs::write(dir.path().join("vit.toml"), vit).unwrap();
    let (code, out, err) = common::selfsup(
        &[
            "self-pretrain",
            "vit.toml",
            "--seeds",
            "2",
            "--runs",
            "sp",
            "--out",
            "sp.json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    for row in [
        "self-pretrained (mae) + fine-tune",
        "from scratch, same fine-tune",
        "from scratch, equal epochs",
    ] {
        assert!(out.contains(row), "no {row} row in\n{out}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sp.json")).unwrap())
            .unwrap();
    let arms = v["arms"].as_array().unwrap();
    let epochs: Vec<&str> = arms.iter().map(|a| a["epochs"].as_str().unwrap()).collect();
    assert_eq!(epochs, ["1 + 1", "0 + 1", "0 + 2"]);
    for a in arms {
        let per_seed = a["per_seed"].as_array().unwrap();
        assert_eq!(per_seed.len(), 2, "{a}");
        assert!(per_seed
            .iter()
            .all(|x| (0.0..=1.0).contains(&x.as_f64().unwrap())));
    }
    assert!(dir.path().join("sp/v-seed1/checkpoints/latest").exists());
    // A second invocation into the same folder is refused instead of overwriting the runs.
    let (code, _, err) = common::selfsup(
        &["self-pretrain", "vit.toml", "--seeds", "1", "--runs", "sp"],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("exists already"), "{err}");
}

/// `bench e2e` without a reference: our side runs as a child process per seed, and its speed,
/// model-only speed, peak memory and accuracies come back from the run folder.
#[test]
fn bench_e2e_reports_our_runs() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (code, out, err) = common::selfsup(
        &[
            "--threads",
            "1",
            "bench",
            "e2e",
            "--no-reference",
            "--rounds",
            "2",
            "--e2e-recipe",
            "simclr.toml",
            "--e2e-set",
            "encoder.widths=[4,8]",
            "--e2e-max-steps",
            "2",
            "--e2e-model-steps",
            "1",
            "--e2e-runs",
            "e2e",
            "--out",
            "e2e.json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not the reference's CNN"), "{err}");
    assert!(out.contains("selfsup  mean over 2 seed(s)"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("e2e.json")).unwrap())
            .unwrap();
    let runs = v["e2e"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (seed, r) in runs.iter().enumerate() {
        assert_eq!(r["engine"], "selfsup");
        assert_eq!(r["seed"], seed as u64);
        for k in ["pairs_per_s", "model_only_pairs_per_s", "peak_rss_mib"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
        for k in ["knn_acc", "linear_acc"] {
            assert!((0.0..=1.0).contains(&r[k].as_f64().unwrap()), "{k}: {r}");
        }
    }
    assert!(v["e2e"]["ratio"].is_null(), "no reference, no ratio");
    assert!(dir.path().join("e2e/ours-seed1/manifest.json").exists());
}

#[test]
fn compare_resume_reuses_saved_seeds_continues_run_folders_and_refuses_changed_settings() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let args = |seeds: &'static str, extra: &[&'static str]| {
        let mut a = vec![
            "compare",
            "simclr.toml",
            "--seeds",
            seeds,
            "--runs",
            "cmp",
            "--out",
            "cmp.json",
        ];
        a.extend_from_slice(extra);
        a
    };
    let (code, _, err) = common::selfsup(&args("1", &[]), dir.path());
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cmp.json")).unwrap())
            .unwrap();

    // Without --resume the existing run folder is refused, and the saved table is kept.
    let (code, _, err) = common::selfsup(&args("2", &[]), dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("--resume"), "{err}");

    // An interrupted pretraining of seed 1: its run folder exists, the table does not hold it.
    let (code, _, err) = common::selfsup(
        &[
            "pretrain",
            "simclr.toml",
            "--set",
            "seed=1",
            "--set",
            "eval.raw_baseline=false",
            "--run-dir",
            "cmp/s-seed1",
            "--no-eval",
            "--quiet",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = common::selfsup(&args("2", &["--resume"]), dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("simclr seed 0: taken from the saved comparison"),
        "{err}"
    );
    assert!(
        err.contains("simclr seed 1: continuing the pretraining"),
        "{err}"
    );
    assert!(
        err.contains("controls seed 0: taken from the saved comparison"),
        "{err}"
    );
    assert!(out.contains("control: raw inputs"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cmp.json")).unwrap())
            .unwrap();
    let simclr = v["rows"][0]["scores"].as_array().unwrap();
    assert_eq!(simclr.len(), 2);
    assert_eq!(
        simclr[0], first["rows"][0]["scores"][0],
        "seed 0 reused as saved"
    );
    assert_eq!(simclr[1]["resumed"], true);
    assert_eq!(v["rows"][1]["scores"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["rows"][2]["scores"], first["rows"][2]["scores"],
        "raw row"
    );

    // A setting that changes the figures but not the budget: the saved seeds are refused.
    let (code, _, err) = common::selfsup(
        &args("2", &["--resume", "--set", "method.temperature=0.3"]),
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("other settings"), "{err}");
    // A different budget: refused before anything runs.
    let (code, _, err) = common::selfsup(
        &args("2", &["--resume", "--set", "train.batch_size=8"]),
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("another budget"), "{err}");
}

/// `--jobs 2` at two threads runs two one-thread pretrainings at once; every figure equals the
/// sequential comparison's at one thread, each seed in its row and in seed order.
#[test]
fn compare_jobs_give_the_figures_of_a_sequential_comparison() {
    let figures = |threads: &str, jobs: &str| {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_selfsup"))
            .args(["--threads", threads, "compare", "simclr.toml", "byol.toml"])
            .args([
                "--seeds", "2", "--runs", "cmp", "--out", "cmp.json", "--jobs", jobs,
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("cmp.json")).unwrap())
                .unwrap();
        let mut rows = Vec::new();
        for r in v["rows"].as_array().unwrap() {
            for s in r["scores"].as_array().unwrap() {
                rows.push(format!(
                    "{} seed {}: {} {} {} {}",
                    r["name"], s["seed"], s["knn"], s["linear"], s["rankme"], s["dim"]
                ));
            }
        }
        (rows, err)
    };
    let (sequential, _) = figures("1", "1");
    let (parallel, log) = figures("2", "2");
    assert_eq!(sequential.len(), 2 * 2 + 2 + 1, "{sequential:?}");
    assert_eq!(parallel, sequential);
    assert!(log.contains("(1 threads, cpu)"), "{log}");
}
