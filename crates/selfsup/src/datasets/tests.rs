//! The registry, fetching (against an HTTP server on the loopback interface and from offline
//! copies) and what `dataset = "NAME"` in a recipe resolves to.
use super::fetch::{fetch, verified, FetchError, FetchOptions};
use super::resolve::resolve;
use super::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fixture every download test serves: 10,000 bytes that are not a repeated pattern.
fn fixture() -> Vec<u8> {
    (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// How the test server answers one path.
#[derive(Clone)]
enum Answer {
    /// 200 with the whole body.
    Body(Vec<u8>),
    /// 200 announcing the whole body's length, then only the first `cut` bytes and a closed
    /// connection.
    Truncated(Vec<u8>, usize),
    /// This status with a short text body.
    Status(u16),
    /// The first request is truncated at half, later ones get the whole body.
    FailsOnce(Vec<u8>),
}

/// An HTTP/1.1 server on 127.0.0.1 (one thread, one request per connection) that counts the
/// requests for each path.
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start(answers: Vec<(&str, Answer)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers: HashMap<String, Answer> = answers
            .into_iter()
            .map(|(p, a)| (p.to_string(), a))
            .collect();
        let hits = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let n = {
                    let mut h = counted.lock().unwrap();
                    let n = h.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let ok = |len: usize| {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                };
                let _ = match answers.get(&path) {
                    Some(Answer::Body(b)) => stream
                        .write_all(ok(b.len()).as_bytes())
                        .and_then(|_| stream.write_all(b)),
                    Some(Answer::Truncated(b, cut)) => stream
                        .write_all(ok(b.len()).as_bytes())
                        .and_then(|_| stream.write_all(&b[..*cut])),
                    Some(Answer::FailsOnce(b)) => {
                        let upto = if n == 1 { b.len() / 2 } else { b.len() };
                        stream
                            .write_all(ok(b.len()).as_bytes())
                            .and_then(|_| stream.write_all(&b[..upto]))
                    }
                    Some(Answer::Status(code)) => stream.write_all(
                        format!(
                            "HTTP/1.1 {code} Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops"
                        )
                        .as_bytes(),
                    ),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        Server { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A one-file dataset `name` whose file `data.bin` is `expected` and is downloaded from `url`.
fn one_file(name: &str, expected: &[u8], url: &str, gzip: bool) -> Dataset {
    let text = format!(
        r#"[[dataset]]
name = "{name}"
title = "t"
source = "s"
licence = "l"
mirror = "m"
files = [{{ path = "sub/data.bin", size = {}, sha256 = "{}", url = "{url}", gzip = {gzip} }}]
"#,
        expected.len(),
        sha256_hex(expected)
    );
    Registry::parse(&text).unwrap().datasets.remove(0)
}

fn quick(attempts: usize) -> FetchOptions {
    FetchOptions {
        attempts,
        timeout: Duration::from_secs(10),
        ..FetchOptions::default()
    }
}

/// Every file name under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_verifier_hashes_as_sha256_does() {
    // FIPS 180-2, appendix B.1: sha256("abc").
    let d = one_file("abc", b"abc", "http://127.0.0.1:1/", false);
    assert_eq!(
        d.files[0].sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"abc").unwrap();
    assert!(verified(&path, &d.files[0]).unwrap());
    std::fs::write(&path, b"abd").unwrap();
    assert!(!verified(&path, &d.files[0]).unwrap());
}

#[test]
fn the_shipped_registry_is_valid_and_downloads_over_https() {
    let r = Registry::builtin();
    for name in [
        "fashion-mnist",
        "cora",
        "citeseer",
        "mutag",
        "proteins",
        "adult",
        "ucr",
    ] {
        let d = r
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not registered"));
        assert!(d.data.is_some(), "{name}: recipes cannot name it");
    }
    assert_eq!(r.get("CORA").map(|d| d.name.as_str()), Some("cora"));
    for d in &r.datasets {
        assert!(!d.licence.is_empty() && !d.source.is_empty(), "{}", d.name);
        for f in &d.files {
            assert!(f.url.starts_with("https://"), "{}: {}", d.name, f.url);
        }
    }
    // 52 UCR sets, a training and a test split each.
    assert_eq!(r.get("ucr").unwrap().files.len(), 104);
}

#[test]
fn a_registry_with_unsafe_or_malformed_entries_is_refused() {
    let entry = |name: &str, path: &str, sha: &str, extra: &str| {
        format!(
            "[[dataset]]\nname = \"{name}\"\ntitle = \"t\"\nsource = \"s\"\nlicence = \"l\"\nmirror = \"m\"\n\
             files = [{{ path = \"{path}\", size = 1, sha256 = \"{sha}\", url = \"u\"{extra} }}]\n"
        )
    };
    let sha = "0".repeat(64);
    let good = entry("a", "x/y", &sha, "");
    assert!(Registry::parse(&good).is_ok());
    let twice = format!("{good}{}", entry("A", "z", &sha, ""));
    assert!(Registry::parse(&twice).unwrap_err().contains("twice"));
    for path in ["../x", "/etc/passwd", "x/../../y"] {
        let e = Registry::parse(&entry("a", path, &sha, "")).unwrap_err();
        assert!(e.contains("inside"), "{path}: {e}");
    }
    let e = Registry::parse(&entry("a", "x", "abc", "")).unwrap_err();
    assert!(e.contains("64 hexadecimal"), "{e}");
    let e = Registry::parse(&entry("a", "x", &sha, ", archive = \"t.tar\"")).unwrap_err();
    assert!(e.contains("go together"), "{e}");
}

#[test]
fn a_good_download_is_verified_and_not_fetched_again() {
    let body = fixture();
    let server = Server::start(vec![("/good", Answer::Body(body.clone()))]);
    let d = one_file("good", &body, &server.url("/good"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    assert_eq!(d.presence(&root.dir_of(&d)), Presence::Absent);
    let report = fetch(&d, &root, &quick(3)).unwrap();
    assert_eq!((report.written, report.kept, report.bytes), (1, 0, 10_000));
    assert_eq!(
        std::fs::read(root.dir_of(&d).join("sub/data.bin")).unwrap(),
        body
    );
    assert_eq!(d.presence(&root.dir_of(&d)), Presence::Present);
    let again = fetch(&d, &root, &quick(3)).unwrap();
    assert_eq!((again.written, again.kept), (0, 1));
    assert_eq!(server.hits("/good"), 1);
}

#[test]
fn a_gzipped_download_is_stored_decompressed() {
    let body = fixture();
    let server = Server::start(vec![("/f.gz", Answer::Body(gzipped(&body)))]);
    let d = one_file("gz", &body, &server.url("/f.gz"), true);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    fetch(&d, &root, &quick(1)).unwrap();
    assert_eq!(
        std::fs::read(root.dir_of(&d).join("sub/data.bin")).unwrap(),
        body
    );
}

#[test]
fn a_wrong_checksum_leaves_nothing_and_is_not_retried() {
    let body = fixture();
    let mut other = body.clone();
    other[5_000] ^= 1;
    let server = Server::start(vec![("/wrong", Answer::Body(other))]);
    let d = one_file("wrong", &body, &server.url("/wrong"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let e = fetch(&d, &root, &quick(3)).unwrap_err();
    assert!(matches!(e, FetchError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("nothing kept"), "{e}");
    assert_eq!(listing(root.path()), Vec::<String>::new());
    assert_eq!(server.hits("/wrong"), 1);
}

#[test]
fn a_truncated_body_is_retried_then_reported_and_leaves_nothing() {
    let body = fixture();
    let server = Server::start(vec![("/short", Answer::Truncated(body.clone(), 6_000))]);
    let d = one_file("short", &body, &server.url("/short"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let e = fetch(&d, &root, &quick(2)).unwrap_err();
    assert!(matches!(e, FetchError::Download { .. }), "{e}");
    assert!(e.to_string().contains("/short"), "{e}");
    assert_eq!(listing(root.path()), Vec::<String>::new());
    assert_eq!(server.hits("/short"), 2);
}

#[test]
fn a_server_error_is_reported_once_and_leaves_nothing() {
    let body = fixture();
    let server = Server::start(vec![("/error", Answer::Status(500))]);
    let d = one_file("error", &body, &server.url("/error"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let e = fetch(&d, &root, &quick(3)).unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    assert_eq!(listing(root.path()), Vec::<String>::new());
    assert_eq!(server.hits("/error"), 1);
}

#[test]
fn an_interrupted_download_succeeds_on_the_retry() {
    let body = fixture();
    let server = Server::start(vec![("/flaky", Answer::FailsOnce(body.clone()))]);
    let d = one_file("flaky", &body, &server.url("/flaky"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    // With one try the interruption is the end: nothing is kept …
    let e = fetch(&d, &root, &quick(1)).unwrap_err();
    assert!(matches!(e, FetchError::Download { .. }), "{e}");
    assert_eq!(listing(root.path()), Vec::<String>::new());
    // … and fetching again (the server now answers in full) gets the verified file.
    fetch(&d, &root, &quick(1)).unwrap();
    assert_eq!(listing(root.path()), vec!["flaky/sub/data.bin".to_string()]);
    assert_eq!(server.hits("/flaky"), 2);

    // Within one fetch, the second try recovers by itself.
    let server = Server::start(vec![("/flaky", Answer::FailsOnce(body.clone()))]);
    let d = one_file("flaky", &body, &server.url("/flaky"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    fetch(&d, &root, &quick(2)).unwrap();
    assert_eq!(
        std::fs::read(root.dir_of(&d).join("sub/data.bin")).unwrap(),
        body
    );
    assert_eq!(server.hits("/flaky"), 2);
}

#[test]
fn a_damaged_file_in_the_root_is_fetched_again() {
    let body = fixture();
    let server = Server::start(vec![("/good", Answer::Body(body.clone()))]);
    let d = one_file("damaged", &body, &server.url("/good"), false);
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let path = root.dir_of(&d).join("sub/data.bin");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bad = body.clone();
    bad[0] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    // Same size, so `presence` (a cheap check) counts it; `fetch` checks the hash.
    assert_eq!(d.presence(&root.dir_of(&d)), Presence::Present);
    let report = fetch(&d, &root, &quick(1)).unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(std::fs::read(&path).unwrap(), body);
}

/// A two-file dataset read from an offline copy: `a.txt` and `b.txt`, in archive `pack.tar` as
/// `top/a.txt` and `top/b.txt`.
fn two_files(a: &[u8], b: &[u8]) -> Dataset {
    let text = format!(
        r#"[[dataset]]
name = "pair"
title = "t"
source = "s"
licence = "l"
mirror = "pair_mirror"
files = [
  {{ path = "a.txt", size = {}, sha256 = "{}", url = "https://x/a", archive = "pack.tar", member = "top/a.txt" }},
  {{ path = "d/b.txt", size = {}, sha256 = "{}", url = "https://x/b", archive = "pack.tar", member = "top/b.txt" }},
]
"#,
        a.len(),
        sha256_hex(a),
        b.len(),
        sha256_hex(b)
    );
    Registry::parse(&text).unwrap().datasets.remove(0)
}

fn write_tar(path: &Path, members: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn an_offline_copy_is_imported_from_plain_gzipped_mirrored_or_archived_files() {
    let (a, b) = (b"first file\n".to_vec(), fixture());
    let d = two_files(&a, &b);

    // Plain and gzipped files in the folder itself.
    let from = tempfile::tempdir().unwrap();
    std::fs::write(from.path().join("a.txt"), &a).unwrap();
    std::fs::create_dir(from.path().join("d")).unwrap();
    std::fs::write(from.path().join("d/b.txt.gz"), gzipped(&b)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let opts = FetchOptions {
        from: Some(from.path().to_path_buf()),
        ..FetchOptions::default()
    };
    let report = fetch(&d, &root, &opts).unwrap();
    assert_eq!(report.written, 2);
    assert_eq!(std::fs::read(root.dir_of(&d).join("d/b.txt")).unwrap(), b);

    // Archive members, in the mirror's sub-folder of the copy.
    let from = tempfile::tempdir().unwrap();
    std::fs::create_dir(from.path().join("pair_mirror")).unwrap();
    write_tar(
        &from.path().join("pair_mirror/pack.tar"),
        &[("top/b.txt", &b), ("top/other", b"x"), ("top/a.txt", &a)],
    );
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let opts = FetchOptions {
        from: Some(from.path().to_path_buf()),
        ..FetchOptions::default()
    };
    fetch(&d, &root, &opts).unwrap();
    assert_eq!(
        listing(root.path()),
        vec!["pair/a.txt".to_string(), "pair/d/b.txt".to_string()]
    );
    assert_eq!(std::fs::read(root.dir_of(&d).join("a.txt")).unwrap(), a);
}

#[test]
fn an_offline_copy_with_wrong_or_missing_files_is_refused() {
    let (a, b) = (b"first file\n".to_vec(), fixture());
    let d = two_files(&a, &b);
    let from = tempfile::tempdir().unwrap();
    std::fs::write(from.path().join("a.txt"), b"first filE\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let opts = FetchOptions {
        from: Some(from.path().to_path_buf()),
        ..FetchOptions::default()
    };
    let e = fetch(&d, &root, &opts).unwrap_err();
    assert!(matches!(e, FetchError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("a.txt"), "{e}");
    assert_eq!(listing(root.path()), Vec::<String>::new());

    std::fs::write(from.path().join("a.txt"), &a).unwrap();
    let e = fetch(&d, &root, &opts).unwrap_err();
    assert!(matches!(e, FetchError::NotInMirror { .. }), "{e}");
    assert!(e.to_string().contains("pack.tar"), "{e}");
    // The file that was good is kept; the missing one is simply absent.
    assert_eq!(listing(root.path()), vec!["pair/a.txt".to_string()]);
}

fn registry_with_template() -> Registry {
    Registry::parse(
        r#"[[dataset]]
name = "graph"
title = "t"
source = "s"
licence = "l"
mirror = "m"
data = { format = "planetoid", path = ".", name = "cora" }
files = [{ path = "ind.cora.x", size = 3, sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", url = "https://x" }]

[[dataset]]
name = "tables"
title = "t"
source = "s"
licence = "l"
mirror = "m"
data = { format = "csv", train = "./train.csv", test = "./test.csv" }
files = [{ path = "train.csv", size = 3, sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", url = "https://x" }]

[[dataset]]
name = "words"
title = "t"
source = "s"
licence = "l"
mirror = "m"
files = [{ path = "w.txt", size = 3, sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", url = "https://x" }]
"#,
    )
    .unwrap()
}

fn recipe_value(data: &str) -> toml::Value {
    toml::from_str(&format!("name = \"r\"\n[data]\n{data}\n")).unwrap()
}

#[test]
fn a_named_dataset_fills_the_data_table_and_explicit_keys_win() {
    let registry = registry_with_template();
    let root = DataRoot::new("/data/root");
    let mut v = recipe_value("dataset = \"tables\"\nlabel = \"y\"");
    let used = resolve(&mut v, &registry, &root).unwrap().unwrap();
    assert_eq!(used.dataset.name, "tables");
    assert_eq!(used.dir, PathBuf::from("/data/root/tables"));
    let data = v["data"].as_table().unwrap();
    assert_eq!(data.get("dataset"), None);
    assert_eq!(data["format"].as_str(), Some("csv"));
    assert_eq!(data["train"].as_str(), Some("/data/root/tables/train.csv"));
    assert_eq!(data["test"].as_str(), Some("/data/root/tables/test.csv"));
    assert_eq!(data["label"].as_str(), Some("y"));

    let mut v = recipe_value("dataset = \"Graph\"\ntest = \"mine.csv\"\nname = \"citeseer\"");
    resolve(&mut v, &registry, &root).unwrap();
    let data = v["data"].as_table().unwrap();
    assert_eq!(data["path"].as_str(), Some("/data/root/graph"));
    assert_eq!(data["name"].as_str(), Some("citeseer"));
    assert_eq!(data["test"].as_str(), Some("mine.csv"));

    // Every path given: the data root is not read, so nothing needs to be there.
    let mut v = recipe_value("dataset = \"graph\"\npath = \"/mine\"");
    assert_eq!(resolve(&mut v, &registry, &root).unwrap(), None);
    assert_eq!(v["data"]["path"].as_str(), Some("/mine"));
    assert_eq!(v["data"]["format"].as_str(), Some("planetoid"));

    let mut v = recipe_value("format = \"idx\"\ntrain_images = \"x\"");
    let before = v.clone();
    assert_eq!(resolve(&mut v, &registry, &root).unwrap(), None);
    assert_eq!(v, before);
}

#[test]
fn a_bad_dataset_name_or_format_is_refused_with_what_is_known() {
    let registry = registry_with_template();
    let root = DataRoot::new("/r");
    let e = resolve(&mut recipe_value("dataset = \"corra\""), &registry, &root).unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("corra") && e.contains("graph, tables, words"),
        "{e}"
    );
    let e = resolve(&mut recipe_value("dataset = 3"), &registry, &root).unwrap_err();
    assert!(e.to_string().contains("string"), "{e}");
    let e = resolve(&mut recipe_value("dataset = \"words\""), &registry, &root).unwrap_err();
    assert!(e.to_string().contains("no reader"), "{e}");
    let mut v = recipe_value("dataset = \"tables\"\nformat = \"idx\"");
    let e = resolve(&mut v, &registry, &root).unwrap_err().to_string();
    assert!(e.contains("idx") && e.contains("csv"), "{e}");
}

#[test]
fn a_missing_dataset_names_the_command_that_fetches_it() {
    let root = tempfile::tempdir().unwrap();
    let root = DataRoot::new(root.path());
    let mut v = recipe_value("dataset = \"cora\"");
    let used = resolve(&mut v, Registry::builtin(), &root)
        .unwrap()
        .unwrap();
    let e = used.require().unwrap_err();
    let text = e.to_string();
    assert!(text.contains("selfsup data fetch cora"), "{text}");
    assert!(
        text.contains(&root.path().join("cora").display().to_string()),
        "{text}"
    );

    // One file of eight: reported as incomplete, still with the command.
    let cora = Registry::builtin().get("cora").unwrap();
    std::fs::create_dir_all(root.dir_of(cora)).unwrap();
    let f = &cora.files[0];
    std::fs::write(root.dir_of(cora).join(&f.path), vec![0u8; f.size as usize]).unwrap();
    assert_eq!(cora.presence(&root.dir_of(cora)), Presence::Partial(1));
    let text = used.require().unwrap_err().to_string();
    assert!(text.contains("selfsup data fetch cora"), "{text}");

    // Complete: no error.
    for f in &cora.files {
        std::fs::write(root.dir_of(cora).join(&f.path), vec![0u8; f.size as usize]).unwrap();
    }
    assert!(used.require().is_ok());
}

#[test]
fn the_data_root_comes_from_the_environment_or_the_cache_folder() {
    // Read-only use of the variable: the test runner may run tests in parallel.
    let root = DataRoot::from_env();
    match std::env::var_os(DATA_ROOT_ENV) {
        Some(d) if !d.is_empty() => assert_eq!(root, DataRoot::new(d)),
        _ => assert!(
            root.path().ends_with("selfsup/data"),
            "{}",
            root.path().display()
        ),
    }
    assert!(DataRoot::new("rel").path().is_absolute());
}

/// Text datasets: a file's table has its `path` placed in the dataset's folder, a table the
/// recipe writes in part keeps its own keys, and `corpora = [{ dataset = NAME }]` entries become
/// that dataset's training file (with the entry's own keys winning).
#[test]
fn text_file_tables_and_corpora_are_placed_in_the_data_root() {
    let registry = Registry::parse(
        r#"[[dataset]]
name = "sents"
title = "t"
source = "s"
licence = "l"
mirror = "m"
data = { format = "text", train = { path = "./train.tsv", header = true, text = "sentence" }, test = { path = "./dev.tsv" } }
files = [{ path = "train.tsv", size = 3, sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", url = "https://x" }]

[[dataset]]
name = "book"
title = "t"
source = "s"
licence = "l"
mirror = "m"
data = { format = "text", train = { path = "./book.txt", format = "windows", window = 100 } }
files = [{ path = "book.txt", size = 3, sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", url = "https://x" }]
"#,
    )
    .unwrap();
    let root = DataRoot::new("/root");
    let mut v = recipe_value(
        "dataset = \"sents\"\ntrain = { label = \"y\" }\ncorpora = [{ dataset = \"book\", window = 50 }, { path = \"/mine.txt\" }]",
    );
    let used = resolve(&mut v, &registry, &root).unwrap().unwrap();
    assert_eq!(used.dataset.name, "sents");
    let data = v["data"].as_table().unwrap();
    assert_eq!(
        data["train"]["path"].as_str(),
        Some("/root/sents/train.tsv")
    );
    assert_eq!(data["train"]["label"].as_str(), Some("y"));
    assert_eq!(data["train"]["header"].as_bool(), Some(true));
    assert_eq!(data["test"]["path"].as_str(), Some("/root/sents/dev.tsv"));
    let corpora = data["corpora"].as_array().unwrap();
    assert_eq!(corpora[0]["path"].as_str(), Some("/root/book/book.txt"));
    assert_eq!(corpora[0]["format"].as_str(), Some("windows"));
    assert_eq!(corpora[0]["window"].as_integer(), Some(50));
    assert!(corpora[0].get("dataset").is_none());
    assert_eq!(corpora[1]["path"].as_str(), Some("/mine.txt"));
    let mut v = recipe_value("format = \"text\"\ncorpora = [{ dataset = \"nope\" }]");
    let e = resolve(&mut v, &registry, &root).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}
