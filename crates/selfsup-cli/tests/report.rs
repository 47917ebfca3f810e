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
