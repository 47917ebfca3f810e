//! `report.html`: written at the end of `selfsup pretrain` and by `selfsup report`, one
//! self-contained page with the training curves, the evaluation table and the embedding map.
mod common;

#[test]
fn a_run_folder_gets_a_self_contained_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::tiny_simclr(d);
    let (code, out, err) = common::selfsup(
        &[
            "pretrain",
            "s.toml",
            "--quiet",
            "--set",
            "train.log_every=1",
            "--set",
            "train.epochs=2",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("report.html"), "{out}");
    let page = std::fs::read_to_string(d.join("runs/s/report.html")).unwrap();
    // Self-contained: no script, nothing loaded from elsewhere; pictures are inlined.
    for outside in ["<script", "src=\"http", "href=\"http", "<link"] {
        assert!(!page.contains(outside), "{outside}");
    }
    assert_eq!(
        page.matches("<img").count(),
        page.matches("<img class=\"px\" alt=").count()
    );
    assert_eq!(
        page.matches("<img").count(),
        page.matches("src=\"data:image/png;base64,").count()
    );
    // The gallery: the first 8 test images, each with its 6 nearest training images.
    assert_eq!(page.matches("<img").count(), 8 * 7, "{page}");
    // 144 labelled points: enough for t-SNE.
    assert!(page.contains("t-SNE (perplexity 30"), "{page}");
    // Loss, learning rate, throughput and RankMe over 12 steps, and the map: five drawings.
    assert_eq!(page.matches("<svg").count(), 5, "{page}");
    assert!(page.contains("samples per second") && page.contains("RankMe"));
    // The evaluation table, learned beside raw.
    assert!(page.contains("<td>learned</td><td>knn(k=5") && page.contains("<td>raw</td>"));
    // Every one of the 144 labelled test embeddings is a point (the legend adds one per class).
    assert_eq!(page.matches("<circle").count(), 144 + 6, "{page}");
    assert!(!page.contains("NaN"));

    // `selfsup report` draws it again, from the run folder alone.
    std::fs::remove_file(d.join("runs/s/report.html")).unwrap();
    let (code, out, err) = common::selfsup(&["report", "runs/s"], d);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs/s/report.html"), "{out}");
    let again = std::fs::read_to_string(d.join("runs/s/report.html")).unwrap();
    assert_eq!(again.matches("<svg").count(), 5);
}

#[test]
fn a_table_results_file_gets_a_report_with_its_bars() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The shape `selfsup compare --out` writes: two methods over 2 seeds, the raw control once.
    let score = |seed: u64, knn: f64, linear: f64| {
        serde_json::json!({"seed": seed, "knn": knn, "linear": linear, "rankme": 10.0, "dim": 8,
            "train_seconds": 1.0, "run_dir": "runs/x", "recipe_fingerprint": "f", "resumed": false})
    };
    let table = serde_json::json!({
        "budget": "2 epoch(s)",
        "protocols": ["knn(k=5)", "linear-probe"],
        "rows": [
            {"name": "simclr", "recipe": "a.toml", "scores": [score(0, 0.80, 0.85), score(1, 0.82, 0.86)]},
            {"name": "byol", "recipe": "b.toml", "scores": [score(0, 0.70, 0.75), score(1, 0.72, 0.77)]},
            {"name": "control: raw inputs", "recipe": null, "scores": [score(0, 0.60, 0.65)]}
        ]
    });
    std::fs::write(d.join("cmp.json"), table.to_string()).unwrap();
    let (code, out, err) = common::selfsup(&["report", "cmp.json"], d);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cmp.html"), "{out}");
    let page = std::fs::read_to_string(d.join("cmp.html")).unwrap();
    // Two charts (linear probe, kNN); each bar is a rectangle in its colour: 2 pretrained
    // rows and 1 control per chart; whiskers only where there are two seeds (3 lines each).
    assert_eq!(page.matches("<svg").count(), 2, "{page}");
    assert_eq!(page.matches("#4272C4").count(), 4, "{page}");
    assert_eq!(page.matches("#A0A0A0").count(), 2, "{page}");
    assert_eq!(
        page.matches("stroke=\"#222222\"").count(),
        2 * 2 * 3,
        "{page}"
    );
    assert!(page.contains("control: raw inputs") && page.contains("<pre>"));
    // Anything else is refused with its name.
    std::fs::write(d.join("other.json"), "{\"a\": 1}").unwrap();
    let (code, _, err) = common::selfsup(&["report", "other.json"], d);
    assert_ne!(code, 0);
    assert!(err.contains("other.json"), "{err}");
}

/// A headless Chromium (or Chrome) on the PATH, or `$SELFSUP_BROWSER`.
fn browser() -> Option<String> {
    if let Ok(b) = std::env::var("SELFSUP_BROWSER") {
        return Some(b);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(String::from)
}

#[test]
fn the_report_renders_in_headless_chromium_without_console_messages() {
    let Some(browser) = browser() else {
        // scripts/test.sh installs Chromium where it can and says so where it cannot.
        println!("skipping: no headless Chromium to render report.html");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::tiny_simclr(d);
    let (code, _, err) = common::selfsup(
        &[
            "pretrain",
            "s.toml",
            "--quiet",
            "--set",
            "train.log_every=1",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    let page = d.join("runs/s/report.html");
    let url = format!("file://{}", page.display());
    let headless = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let out = std::process::Command::new(&browser)
        .args(headless)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    // Chromium logs every console message (errors included) as ":CONSOLE".
    assert!(!log.contains(":CONSOLE"), "{log}");
    // The rendered document holds the charts and the map with its 144 points.
    assert_eq!(dom.matches("<svg").count(), 5, "{dom}");
    assert!(dom.matches("<circle").count() >= 144);
    let shot = d.join("report.png");
    let out = std::process::Command::new(&browser)
        .args(headless)
        .args([
            "--window-size=1000,2400",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
