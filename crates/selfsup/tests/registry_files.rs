//! The registry against the real files: every dataset imports from the offline copy in
//! `shared/data` with every size and sha256 as registered, and the shipped recipes that name a
//! dataset read it from the data root.
mod common;

use common::shared_data;
use selfsup::datasets::fetch::{fetch, FetchOptions};
use selfsup::datasets::{DataRoot, Presence, Registry};
use selfsup::error::BadInputPolicy;
use selfsup::recipe::Recipe;
use selfsup::train::graph_learner::GraphData;
use std::path::{Path, PathBuf};

fn recipe(rel: &str, root: &DataRoot, overrides: &[&str]) -> Recipe {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../recipes")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Recipe::from_toml_in(&text, rel, &overrides, root).unwrap()
}

#[test]
fn every_dataset_imports_from_the_offline_copy_and_the_recipes_read_it() {
    let Some(shared) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::new(dir.path());
    let opts = FetchOptions {
        from: Some(shared.clone()),
        ..FetchOptions::default()
    };
    for d in &Registry::builtin().datasets {
        let report = fetch(d, &root, &opts).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(report.written, d.files.len(), "{}", d.name);
        assert_eq!(report.bytes, d.size(), "{}", d.name);
        assert_eq!(d.presence(&root.dir_of(d)), Presence::Present, "{}", d.name);
    }

    // Recipes that name datasets read them from the root, with no path written in the recipe.
    let cora = recipe("graph/graphmae-cora.toml", &root, &[]);
    match selfsup::run::graph::load_data(&cora).unwrap() {
        GraphData::Nodes(g) => assert_eq!(g.num_nodes, 2708),
        _ => panic!("Cora is one graph"),
    }
    let mutag = recipe("graph/graphmae-mutag.toml", &root, &[]);
    match selfsup::run::graph::load_data(&mutag).unwrap() {
        GraphData::Graphs(g) => assert_eq!(g.graphs.len(), 188),
        _ => panic!("MUTAG is a set of graphs"),
    }
    for (rel, train, test) in [
        ("quickstart.toml", 60_000, Some(10_000)),
        ("tables/scarf-adult.toml", 32_561, Some(16_281)),
        ("timeseries/ts2vec.toml", 50, Some(150)), // GunPoint
        ("audio/byol-a.toml", 2_700, Some(300)),   // FSDD's official split
    ] {
        let r = recipe(rel, &root, &[]);
        let p = selfsup::run::pipeline::prepare_data(&r, BadInputPolicy::Fail, None, None)
            .unwrap_or_else(|e| panic!("{rel}: {e:#}"));
        assert_eq!(p.train.len(), train, "{rel}");
        assert_eq!(p.test.as_ref().map(|t| t.len()), test, "{rel}");
    }
}

/// FSDD as the audio recipes read it: 3,000 clips of 10 digits by 6 speakers, takes 0-4 of each
/// speaker and digit in the test split, every clip at least 15 frames of 10 ms.
#[test]
fn fsdd_reads_as_published() {
    let Some(shared) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::new(dir.path());
    let fsdd = Registry::builtin().get("fsdd").unwrap().clone();
    fetch(
        &fsdd,
        &root,
        &FetchOptions {
            from: Some(shared),
            ..FetchOptions::default()
        },
    )
    .unwrap();
    let r = recipe("audio/tera.toml", &root, &[]);
    let (train, test, skipped) =
        selfsup::run::pipeline::audio_sets(&r.data, BadInputPolicy::Fail).unwrap();
    let test = test.unwrap();
    assert_eq!(skipped.skipped, 0);
    assert_eq!((train.len(), test.len()), (2700, 300));
    assert_eq!(
        train.classes,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        train.speakers,
        vec!["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    );
    assert!(test.takes.iter().all(|&t| t < 5));
    assert!(train.takes.iter().all(|&t| (5..50).contains(&t)));
    for s in 0..6 {
        assert_eq!(test.speaker.iter().filter(|&&k| k == s).count(), 50);
    }
    let shortest = (0..train.len()).map(|i| train.frames(i)).min().unwrap();
    assert!(shortest >= 15, "{shortest} frames");
    // 3,000 clips of 0.14 to 2.3 s, about 0.44 s on average.
    let seconds = train.seconds + test.seconds;
    assert!((1200.0..1400.0).contains(&seconds), "{seconds} s");
}

/// The text recipes' data as published: SST-2's GLUE train and dev sizes and class balance,
/// the SMS collection's 5,574 messages (747 spam) as a corpus, Tiny Shakespeare cut into
/// windows, nothing skipped.
#[test]
fn sst2_and_the_text_corpora_read_as_published() {
    let Some(shared) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::new(dir.path());
    let opts = FetchOptions {
        from: Some(shared),
        ..FetchOptions::default()
    };
    for name in ["sst2", "sms-spam", "tiny-shakespeare"] {
        fetch(Registry::builtin().get(name).unwrap(), &root, &opts).unwrap();
    }
    let r = recipe("text/mlm.toml", &root, &[]);
    let selfsup::recipe::DataConfig::Text {
        train,
        test,
        corpora,
        ..
    } = &r.data
    else {
        panic!("a text recipe");
    };
    let d = selfsup::data::text::load_text(train, test.as_ref(), corpora, BadInputPolicy::Fail)
        .unwrap();
    assert_eq!(d.skipped.skipped, 0);
    assert_eq!(d.train.class_names, vec!["0", "1"]);
    let count = |l: &[i64], c: i64| l.iter().filter(|&&x| x == c).count();
    let tl = d.train.labels.as_ref().unwrap();
    assert_eq!(
        (tl.len(), count(tl, 0), count(tl, 1)),
        (67_349, 29_780, 37_569)
    );
    let dl = d.test.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!((dl.len(), count(dl, 0), count(dl, 1)), (872, 428, 444));
    // SMS messages first, then the Shakespeare windows of at most 160 characters.
    let sms = selfsup::data::text::TextFile {
        text: selfsup::data::text::Column::Index(1),
        label: Some(selfsup::data::text::Column::Index(0)),
        ..selfsup::data::text::TextFile::new(&corpora[0].path, selfsup::data::text::TextFormat::Tsv)
    };
    let s = selfsup::data::text::load_text(&sms, None, &[], BadInputPolicy::Fail).unwrap();
    assert_eq!(s.train.class_names, vec!["ham", "spam"]);
    let sl = s.train.labels.as_ref().unwrap();
    assert_eq!((sl.len(), count(sl, 1)), (5_574, 747));
    let windows = &d.corpora[5_574..];
    assert!(windows.len() > 6_000, "{}", windows.len());
    assert!(windows.iter().all(|w| w.chars().count() <= 160));
    assert!(windows[0].starts_with("First Citizen:"), "{}", windows[0]);
}

/// scikit-learn's digits as the multimodal recipes read them: 1,797 images of 8x8, 80 % of each
/// class for training (split_seed 0), values 0..16 scaled to bytes.
#[test]
fn sklearn_digits_read_as_published() {
    let Some(shared) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::new(dir.path());
    for name in ["sklearn-digits", "fsdd"] {
        let d = Registry::builtin().get(name).unwrap().clone();
        let opts = FetchOptions {
            from: Some(shared.clone()),
            ..FetchOptions::default()
        };
        fetch(&d, &root, &opts).unwrap();
    }
    let r = recipe("multimodal/digits-simclr.toml", &root, &[]);
    let p = selfsup::run::pipeline::prepare_data(&r, BadInputPolicy::Fail, None, None).unwrap();
    let test = p.test.unwrap();
    assert_eq!((p.train.len(), test.len()), (1438, 359));
    assert_eq!(p.skipped.skipped, 0);
    assert_eq!(p.train.sample_shape(), vec![1, 8, 8]);
    let count = |s: &dyn selfsup::views::ViewSource, c: i64| {
        (0..s.len()).filter(|&i| s.label(i) == Some(c)).count()
    };
    // The file's class sizes (178, 182, 177, 183, 181, 182, 181, 179, 174, 180), 20 % of each held out.
    for (c, n) in [178usize, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        .into_iter()
        .enumerate()
    {
        let t = count(test.as_ref(), c as i64);
        assert_eq!(t + count(p.train.as_ref(), c as i64), n, "class {c}");
        assert_eq!(t, (n as f64 * 0.2).round() as usize, "class {c}");
    }

    // AV-digits pairs every FSDD clip with an image of its digit, in both splits.
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/multimodal");
    let text = std::fs::read_to_string(recipes.join("av-digits-clip.toml")).unwrap();
    let clip = Recipe::from_toml_at(&text, "av-digits", &[], &root, Some(&recipes)).unwrap();
    let p = selfsup::run::pipeline::prepare_data(&clip, BadInputPolicy::Fail, None, None).unwrap();
    let test = p.test.unwrap();
    assert_eq!((p.train.len(), test.len()), (2700, 300));
    let parts = selfsup::run::paired_data::modality_data(&clip, BadInputPolicy::Fail).unwrap();
    assert_eq!(parts[1].train.len(), 1438);
    assert_eq!(
        p.train.modality_shapes(),
        vec![vec![1, 64, 64], vec![1, 8, 8]]
    );
}
