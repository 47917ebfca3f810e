//! Text through the whole pipeline and `text-table`'s bookkeeping on synthetic data: "reviews"
//! whose label is carried by one of two word groups, "messages" whose spam carries its own words.
//! MLM and SimCSE calibrate and pretrain for a second of wall-clock budget each; the table holds
//! the methods, the shared random-init row and both TF-IDF rows, the runs save their tokenizer,
//! a second invocation reads every cell back, and a changed recipe is refused.
use selfsup::error::BadInputPolicy;
use selfsup::eval::fine_tune::FineTuneConfig;
use selfsup::recipe::Recipe;
use selfsup::run::RunOptions;
use selfsup::study::text_table::{format_table, run_text_table, TextTableOptions};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const GOOD: [&str; 5] = ["great", "lovely", "superb", "fine", "charming"];
const BAD: [&str; 5] = ["awful", "dull", "boring", "poor", "clumsy"];
const FILL: [&str; 8] = ["the", "film", "plot", "was", "and", "its", "cast", "story"];

fn sentence(i: usize, positive: bool) -> String {
    let mood = if positive { GOOD } else { BAD };
    let mut s = String::new();
    for j in 0..(4 + i % 5) {
        let w = if j == i % 3 {
            mood[(i + j) % 5]
        } else {
            FILL[(i * 3 + j) % 8]
        };
        let _ = write!(s, "{w} ");
    }
    s
}

fn write_data(dir: &Path) {
    let mut train = String::from("sentence\tlabel\n");
    for i in 0..96 {
        train += &format!("{}\t{}\n", sentence(i, i % 2 == 0), i % 2);
    }
    let mut dev = String::from("sentence\tlabel\n");
    for i in 0..24 {
        dev += &format!("{}\t{}\n", sentence(i + 500, i % 2 == 1), (i + 1) % 2);
    }
    std::fs::write(dir.join("train.tsv"), train).unwrap();
    std::fs::write(dir.join("dev.tsv"), dev).unwrap();
    let mut sms = String::new();
    for i in 0..60 {
        if i % 4 == 0 {
            sms += &format!("spam\tWIN a free prize now call {i}\n");
        } else {
            sms += &format!("ham\tsee you at the {} later\n", FILL[i % 8]);
        }
    }
    std::fs::write(dir.join("sms.txt"), sms).unwrap();
    std::fs::write(
        dir.join("book.txt"),
        "Some unlabelled lines\nof a book.\n\nAnd more.\n",
    )
    .unwrap();
}

fn recipe(dir: &Path, name: &str, method: &str, dim: i64) -> Recipe {
    let text = format!(
        r#"
name = "{name}"
[data]
format = "text"
train = {{ path = {train:?}, header = true, text = "sentence", label = "label" }}
test = {{ path = {dev:?}, header = true, text = "sentence", label = "label" }}
corpora = [{{ path = {book:?}, format = "windows", window = 20 }}]
tokenizer = {{ vocab_size = 120, max_len = 12, min_frequency = 1 }}
[encoder]
kind = "text_transformer"
dim = {dim}
depth = 1
heads = 2
[method]
{method}
[train]
epochs = 1
batch_size = 16
optimizer = {{ name = "adamw", lr = 1e-3, weight_decay = 0.0 }}
log_every = 1
[eval]
probe_iters = 100
"#,
        train = dir.join("train.tsv"),
        dev = dir.join("dev.tsv"),
        book = dir.join("book.txt"),
    );
    Recipe::from_toml(&text, name, &[]).unwrap()
}

fn options(dir: &Path, runs: &Path) -> TextTableOptions {
    TextTableOptions {
        seeds: vec![0],
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
        budget_minutes: Some(0.02),
        fine_tune: FineTuneConfig {
            epochs: 2,
            batch: 8,
            lr: 1e-3,
            label_fraction: 0.5,
            ..Default::default()
        },
        sms: dir.join("sms.txt"),
    }
}

#[test]
fn text_table_scores_every_protocol_and_continues() {
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let runs = tempfile::tempdir().unwrap();
    let recipes = vec![
        recipe(data.path(), "tiny-mlm", "name = \"mlm\"", 16),
        recipe(data.path(), "tiny-simcse", "name = \"simcse\"", 16),
    ];
    let opts = options(data.path(), runs.path());
    let mut lines = Vec::new();
    let table = run_text_table(&recipes, &opts, |l| lines.push(l.to_string())).unwrap();
    assert_eq!(
        table.rows,
        vec![
            "tiny-mlm".to_string(),
            "tiny-simcse".into(),
            "random init: text_transformer (as in tiny-mlm)".into(),
            "TF-IDF (word 1-2-grams)".into(),
            "TF-IDF (word 1-2-grams + char 2-5-grams)".into(),
        ]
    );
    assert_eq!((table.sst2_train, table.sst2_dev), (96, 24));
    assert_eq!((table.sms_train, table.sms_test), (48, 12));
    // The 96 sentences, then the book's pieces of at most 20 characters.
    assert!(table.pretraining_texts > 96, "{}", table.pretraining_texts);
    assert_eq!(table.cells.len(), 5);
    for c in &table.cells {
        let s = &c.scores;
        assert_eq!(s.sms_f1.len(), 3, "{}", c.row);
        for v in [s.sst2_probe, s.sst2_fine_tuned].iter().chain(&s.sms_f1) {
            assert!((0.0..=1.0).contains(v), "{}: {v}", c.row);
        }
    }
    // The label words separate the classes: TF-IDF finds them.
    let tfidf = table
        .cells
        .iter()
        .find(|c| c.row.starts_with("TF-IDF (word 1-2"))
        .unwrap();
    assert!(tfidf.scores.sst2_probe > 0.9, "{:?}", tfidf.scores);
    assert!(tfidf.scores.sms_f1[2] > 0.9, "{:?}", tfidf.scores);
    // Each method got steps by its own measured pace, and its run saved its tokenizer, the
    // table's one.
    assert_eq!(table.step_seconds.len(), 2);
    let shared = std::fs::read(runs.path().join("tokenizer.json")).unwrap();
    for name in ["tiny-mlm", "tiny-simcse"] {
        let c = table.cells.iter().find(|c| c.row == name).unwrap();
        assert!(c.pretrain_steps >= 1 && c.pretrain_seconds > 0.0, "{name}");
        let saved = std::fs::read(c.run_dir.as_ref().unwrap().join("tokenizer.json")).unwrap();
        assert_eq!(saved, shared, "{name}");
    }
    let text = format_table(&table);
    assert!(text.contains("| tiny-mlm | 1 |"), "{text}");
    assert!(text.contains("0.02 min of pretraining per run"), "{text}");

    // Again: every cell is read back, nothing runs.
    let mut again = Vec::new();
    let same = run_text_table(&recipes, &opts, |l| again.push(l.to_string())).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(same.cells.len(), 5);

    // Another encoder under the same name: refused, the table untouched.
    let changed = vec![recipe(data.path(), "tiny-mlm", "name = \"mlm\"", 32)];
    let e = run_text_table(&changed, &opts, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}
