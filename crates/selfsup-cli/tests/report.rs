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
    // Self-contained: no script, nothing loaded from elsewhere.
    for outside in ["<script", "src=\"http", "href=\"http", "<link", "<img"] {
        assert!(!page.contains(outside), "{outside}");
    }
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
