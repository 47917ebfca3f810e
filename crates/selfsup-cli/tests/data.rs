//! `selfsup data fetch` / `data list` and recipes that name datasets: every shipped recipe
//! without its dataset fails with exit 3 and the command that fetches it; with the dataset
//! imported from the offline copy in `shared/data`, recipes run with no path edited.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `selfsup ARGS` in the repository with `SELFSUP_DATA=root`: (exit code, stdout, stderr).
fn selfsup(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_selfsup"))
        .args(args)
        .args(["--threads", "1"])
        .env("SELFSUP_DATA", root)
        .current_dir(repo())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `shared/data/<sub>` beside the checkout (or under `$SELFSUP_SHARED_DATA`); absent: skip with a
/// message, except under `CI=true`, where the test fails.
fn shared_data(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("SELFSUP_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    let dir = base.join(sub);
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true and the shared data set {} is absent",
        dir.display()
    );
    println!("skipping: {} is absent", dir.display());
    None
}

/// Every `.toml` under `recipes/`, relative to the repository.
fn shipped_recipes() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo().join("recipes"), &mut found);
    let mut names: Vec<String> = found
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn without_its_dataset_every_shipped_recipe_stops_with_the_fetch_command() {
    let root = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let recipes = shipped_recipes();
    assert!(recipes.len() >= 39, "{recipes:?}");
    for (i, recipe) in recipes.iter().enumerate() {
        let text = std::fs::read_to_string(repo().join(recipe)).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("dataset = \""))
            .and_then(|l| l.strip_suffix('"'));
        let run = runs.path().join(i.to_string());
        let (code, _, err) = selfsup(
            root.path(),
            &[
                "pretrain",
                recipe,
                "--quiet",
                "--no-eval",
                "--run-dir",
                run.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 3, "{recipe}: {err}");
        match name {
            Some(name) => assert!(
                err.contains(&format!("selfsup data fetch {name}")),
                "{recipe}: {err}"
            ),
            // Only the scale recipes read the user's own folder (no registry dataset): without
            // it they stop with the same status, naming the folder and the field to set.
            // A paired recipe's datasets are its modality recipes': the first missing one is named.
            None if text.contains("format = \"paired\"") => {
                assert!(err.contains("selfsup data fetch"), "{recipe}: {err}")
            }
            None => {
                assert!(
                    recipe.starts_with("recipes/scale/"),
                    "{recipe} names no dataset"
                );
                assert!(
                    err.contains("images: no such folder") && err.contains("data.train"),
                    "{recipe}: {err}"
                );
            }
        }
    }
    let (code, _, err) = selfsup(
        root.path(),
        &["data", "inspect", "recipes/graph/dgi-cora.toml"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("selfsup data fetch cora"), "{err}");
    // Nothing was put into the data root by trying.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn data_list_shows_every_dataset_and_whether_it_is_there() {
    let root = tempfile::tempdir().unwrap();
    let (code, out, err) = selfsup(root.path(), &["data", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&root.path().display().to_string()), "{out}");
    for name in ["fashion-mnist", "cora", "mutag", "adult", "ucr"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} is not listed: {out}"));
        assert!(line.contains("absent"), "{line}");
    }
    assert!(out.contains("licence:"), "{out}");
}

#[test]
fn an_unknown_dataset_is_a_usage_error_and_fetches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (code, _, err) = selfsup(root.path(), &["data", "fetch", "cora", "corra", "--quiet"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("corra") && err.contains("data list"), "{err}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn a_wrong_file_in_the_offline_copy_is_refused_and_nothing_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("cal_housing.data"), b"not the data\n").unwrap();
    let (code, _, err) = selfsup(
        root.path(),
        &[
            "data",
            "fetch",
            "california-housing",
            "--from",
            copy.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cal_housing.data") && err.contains("nothing kept"),
        "{err}"
    );
    let dir = root.path().join("california-housing");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// The walk-through, shortened to a few epochs: fetch from the offline copy into an
/// empty data root (given with --data-root), then the shipped recipes run unedited.
#[test]
fn imported_datasets_let_the_shipped_recipes_run_unedited() {
    let Some(shared) = shared_data("") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap().to_string();
    let elsewhere = tempfile::tempdir().unwrap(); // SELFSUP_DATA points elsewhere: --data-root wins
    for (name, sub) in [
        ("cora", "planetoid"),
        ("adult", "adult"),
        ("mutag", "tudataset"),
    ] {
        let from = shared.join(sub);
        let args = [
            "data",
            "fetch",
            name,
            "--quiet",
            "--from",
            from.to_str().unwrap(),
        ];
        let (code, out, err) = selfsup(
            elsewhere.path(),
            &[&["--data-root", root_arg.as_str()], &args[..]].concat(),
        );
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("imported and verified"), "{out}");
        // Again: everything is there and verified, nothing is copied.
        let (code, out, _) = selfsup(root.path(), &args);
        assert_eq!(code, 0);
        assert!(out.contains("present"), "{out}");
    }
    let (_, out, _) = selfsup(root.path(), &["data", "list"]);
    for name in ["cora", "adult", "mutag"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        assert!(line.contains("present"), "{line}");
    }
    // --all: the rest of the registry from the copy's sub-folders; the three are kept.
    let (code, out, err) = selfsup(
        root.path(),
        &[
            "data",
            "fetch",
            "--all",
            "--quiet",
            "--from",
            shared.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cora: present") && out.contains("ucr: 104 file(s) imported"),
        "{out}"
    );

    // What the recipes' data resolves to, before any training.
    let (code, out, err) = selfsup(
        root.path(),
        &["data", "inspect", "recipes/graph/graphmae-cora.toml"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dataset cora in") && out.contains("2708 nodes"),
        "{out}"
    );
    assert!(out.contains("split 140 / 500 / 1000"), "{out}");
    let (code, out, err) = selfsup(
        root.path(),
        &["data", "inspect", "recipes/tables/scarf-adult.toml"],
    );
    assert_eq!(code, 0, "{err}");
    // UCI's adult.names: 24,720 of the 32,561 training rows earn at most 50K.
    assert!(
        out.contains("train: 32561 samples") && out.contains("24720 (75.9 %)"),
        "{out}"
    );
    assert!(out.contains("test: 16281 samples"), "{out}");

    let runs = tempfile::tempdir().unwrap();
    let out_dir = |n: &str| runs.path().join(n).display().to_string();
    let (code, out, err) = selfsup(
        root.path(),
        &[
            "graph",
            "recipes/graph/graphmae-cora.toml",
            "--set",
            "seeds=[0]",
            "--set",
            "train.epochs=3",
            "--runs",
            &out_dir("graph"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("graphmae"), "{out}");
    let (code, _, err) = selfsup(
        root.path(),
        &[
            "pretrain",
            "recipes/graph/graphmae-mutag.toml",
            "--set",
            "train.epochs=1",
            "--quiet",
            "--run-dir",
            &out_dir("mutag"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = selfsup(
        root.path(),
        &[
            "pretrain",
            "recipes/tables/scarf-adult.toml",
            "--set",
            "train.epochs=1",
            "--set",
            "train.max_steps=2",
            "--no-eval",
            "--quiet",
            "--run-dir",
            &out_dir("adult"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The run folder's recipe holds the resolved paths, so the run reads the same files later.
    let written = std::fs::read_to_string(runs.path().join("adult/recipe.toml")).unwrap();
    assert!(
        written.contains(&root.path().join("adult/adult.data").display().to_string()),
        "{written}"
    );
}
