//! `selfsup neighbors` on a small image run: the nearest neighbour's label agrees with the
//! query's exactly as often as the kNN protocol with k = 1 classifies correctly, from the run
//! and from its exported embeddings alike; listed queries show ranked neighbours.
mod common;

use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn neighbours_agree_with_the_query_as_often_as_one_nearest_neighbour_classifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::tiny_simclr(d);
    let (code, _, err) = common::selfsup(&["pretrain", "s.toml", "--quiet", "--no-eval"], d);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = common::selfsup(
        &[
            "eval",
            "knn",
            "--run",
            "runs/s",
            "--set",
            "eval.knn_k=1",
            "--out",
            "knn.json",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    let knn1 = json(&d.join("knn.json"))
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["features"] == "learned" && r["protocol"].as_str().unwrap().starts_with("knn(k=1,")
        })
        .map(|r| r["value"].as_f64().unwrap())
        .expect("a learned kNN record");

    let (code, out, err) = common::selfsup(
        &[
            "neighbors",
            "--run",
            "runs/s",
            "-k",
            "1",
            "--out",
            "nb.json",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    let report = json(&d.join("nb.json"));
    assert_eq!(report["top1_agreement"].as_f64().unwrap(), knn1, "{out}");
    assert_eq!(report["labelled_queries"], 144);
    // Chance is 1/6; a representation, even a briefly trained one, does better on these blobs.
    assert!(knn1 > 1.0 / 6.0, "{knn1}");

    // The same from exported embeddings.
    for (split, file) in [("train", "tr.npy"), ("test", "te.npy")] {
        let (code, _, err) = common::selfsup(
            &["embed", "--run", "runs/s", "--out", file, "--split", split],
            d,
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = common::selfsup(
        &[
            "neighbors",
            "--memory",
            "tr.npy",
            "--queries",
            "te.npy",
            "-k",
            "1",
            "--out",
            "f.json",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&d.join("f.json"))["top1_agreement"].as_f64().unwrap(),
        knn1
    );
    // Parquet exports hold the same embeddings and labels: the same neighbours.
    for (split, file) in [("train", "tr.parquet"), ("test", "te.parquet")] {
        let (code, _, err) = common::selfsup(
            &["embed", "--run", "runs/s", "--out", file, "--split", split],
            d,
        );
        assert_eq!(code, 0, "{err}");
    }
    for (memory, queries, out) in [
        ("tr.parquet", "te.parquet", "p.json"),
        ("tr.npy", "te.npy", "n.json"),
    ] {
        let args = [
            "neighbors",
            "--memory",
            memory,
            "--queries",
            queries,
            "-k",
            "3",
            "--index",
            "5",
            "--out",
            out,
        ];
        let (code, _, err) = common::selfsup(&args, d);
        assert_eq!(code, 0, "{err}");
    }
    // --format writes a format whatever the file is called; without it the name must say.
    let (code, _, err) = common::selfsup(
        &[
            "embed", "--run", "runs/s", "--out", "te.dat", "--format", "csv",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(d.join("te.dat")).unwrap();
    assert!(csv.starts_with("id,label,source,e0,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 144);
    let (code, _, err) = common::selfsup(&["embed", "--run", "runs/s", "--out", "te.dat2"], d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--format"), "{err}");
    let (p, n) = (json(&d.join("p.json")), json(&d.join("n.json")));
    assert_eq!(p["results"], n["results"]);
    assert_eq!(p["top1_agreement"].as_f64().unwrap(), knn1);

    // Listed queries: k ranked neighbours each, most similar first.
    let (code, out, err) = common::selfsup(
        &[
            "neighbors",
            "--run",
            "runs/s",
            "--index",
            "0",
            "--index",
            "7",
            "-k",
            "3",
            "--out",
            "l.json",
            "--html",
            "l.html",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("query 0 (label") && out.contains("query 7 (label"),
        "{out}"
    );
    // The page: a row per query, its picture and its 3 neighbours' pictures, inlined.
    let page = std::fs::read_to_string(d.join("l.html")).unwrap();
    assert_eq!(page.matches("<tr>").count(), 2, "{page}");
    assert_eq!(
        page.matches("<img class=\"px\"").count(),
        2 * (1 + 3),
        "{page}"
    );
    assert_eq!(page.matches("src=\"data:image/png;base64,").count(), 8);
    assert_eq!(
        page.matches("class=\"hit\"").count() + page.matches("class=\"miss\"").count(),
        6
    );
    let listed = json(&d.join("l.json"));
    for q in listed["results"].as_array().unwrap() {
        let sims: Vec<f64> = q["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n[1].as_f64().unwrap())
            .collect();
        assert_eq!(sims.len(), 3);
        assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    }

    // An image file of one's own: a 24×24 colour picture of class 2's bright band, converted to
    // the run's 12×12 grey inputs; its nearest training images are mostly of class 2.
    let band = image::RgbImage::from_fn(24, 24, |x, _| {
        let v = if (8..12).contains(&x) { 190 } else { 70 };
        image::Rgb([v, v, v])
    });
    band.save(d.join("band.png")).unwrap();
    let (code, out, err) = common::selfsup(
        &[
            "neighbors",
            "--run",
            "runs/s",
            "--query",
            "band.png",
            "-k",
            "5",
            "--out",
            "q.json",
            "--html",
            "q.html",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queries: band.png"), "{out}");
    let found: Vec<i64> = json(&d.join("q.json"))["results"][0]["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n[2].as_i64().unwrap())
        .collect();
    assert!(found.iter().filter(|&&l| l == 2).count() >= 3, "{found:?}");
    let page = std::fs::read_to_string(d.join("q.html")).unwrap();
    assert_eq!(page.matches("<img class=\"px\"").count(), 1 + 5);
    // A file that is no image is bad input, named.
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    let (code, _, err) =
        common::selfsup(&["neighbors", "--run", "runs/s", "--query", "bad.png"], d);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bad.png"), "{err}");

    // Queries from the training split never find themselves.
    let (code, _, err) = common::selfsup(
        &[
            "neighbors",
            "--run",
            "runs/s",
            "--split",
            "train",
            "--index",
            "4",
            "-k",
            "5",
            "--out",
            "t.json",
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    let own = json(&d.join("t.json"));
    let rows: Vec<i64> = own["results"][0]["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n[0].as_i64().unwrap())
        .collect();
    assert!(!rows.contains(&4), "{rows:?}");

    // Impossible requests are usage errors.
    let (code, _, err) = common::selfsup(&["neighbors", "--run", "runs/s", "--index", "144"], d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--index 144"), "{err}");
    let (code, _, err) = common::selfsup(&["neighbors", "--run", "runs/s", "-k", "97"], d);
    assert_eq!(code, 2, "{err}");
}
