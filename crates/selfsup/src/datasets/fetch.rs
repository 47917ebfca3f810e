//! Getting a dataset's files into the data root: downloaded over HTTPS (rustls) or imported from
//! an offline copy (`--from DIR`), each written to `<file>.part`, checked against its registered
//! size and sha256, and only then renamed to its final name. A failed, truncated or wrong file
//! leaves nothing behind under its final name; running the fetch again starts that file afresh
//! and keeps the files already verified.
use super::{DataRoot, Dataset, FileSpec};
use crate::data::archive::read_members_by_path;
use crate::error::DataError;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown dataset {name:?}; `selfsup data list` shows the known ones ({known})")]
    Unknown { name: String, known: String },
    #[error("{url}: {message} (nothing kept; run the fetch again to retry)")]
    Download { url: String, message: String },
    #[error("{what}: {got} bytes where {expected} were expected (nothing kept)")]
    Size {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error("{what}: sha256 {got} where {expected} was expected (nothing kept)")]
    Checksum {
        what: String,
        got: String,
        expected: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not in the offline copy {dir} (looked for {looked})")]
    NotInMirror {
        file: String,
        dir: PathBuf,
        looked: String,
    },
    #[error(transparent)]
    Archive(#[from] DataError),
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Import from this offline copy instead of downloading.
    pub from: Option<PathBuf>,
    /// Draw a progress bar for downloads.
    pub progress: bool,
    /// Tries per downloaded file (a transport error or a short body is retried; an HTTP error
    /// status is not).
    pub attempts: usize,
    /// Connection and read timeout.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            from: None,
            progress: false,
            attempts: 3,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Files written (downloaded or imported) and verified.
    pub written: usize,
    /// Files that were already there, verified.
    pub kept: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Fetches every file of `dataset` that `root` does not hold verified.
pub fn fetch(
    dataset: &Dataset,
    root: &DataRoot,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let dir = root.dir_of(dataset);
    let mut report = FetchReport::default();
    let mut missing = Vec::new();
    for f in &dataset.files {
        if verified(&dir.join(&f.path), f)? {
            report.kept += 1;
        } else {
            missing.push(f);
        }
    }
    match &opts.from {
        Some(from) => import(dataset, &dir, from, &missing)?,
        None => {
            for f in &missing {
                download(&dir, f, opts)?;
            }
        }
    }
    report.written = missing.len();
    report.bytes = missing.iter().map(|f| f.size).sum();
    Ok(report)
}

/// Whether `path` holds the file's registered bytes (size first, then sha256).
pub fn verified(path: &Path, f: &FileSpec) -> Result<bool, FetchError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == f.size => {}
        _ => return Ok(false),
    }
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut sink = Verifier::new(std::io::sink());
    std::io::copy(&mut std::io::BufReader::new(file), &mut sink).map_err(|e| io(path, e))?;
    Ok(sink.hex() == f.sha256.to_lowercase())
}

fn download(dir: &Path, f: &FileSpec, opts: &FetchOptions) -> Result<(), FetchError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(opts.timeout)
        .timeout_read(opts.timeout)
        .build();
    let failed = |message: String| FetchError::Download {
        url: f.url.clone(),
        message,
    };
    let mut last = None;
    for attempt in 1..=opts.attempts.max(1) {
        let response = match agent.get(&f.url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(failed(format!(
                    "the server answered {code} {}",
                    r.status_text()
                )))
            }
            Err(e) => {
                last = Some(failed(e.to_string()));
                continue;
            }
        };
        let length = response
            .header("Content-Length")
            .and_then(|v| v.parse::<u64>().ok());
        let bar = progress_bar(opts.progress, length, &f.path);
        let body = bar.wrap_read(response.into_reader());
        let body: Box<dyn Read> = if f.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(body))
        } else {
            Box::new(body)
        };
        let result = write_verified(&dir.join(&f.path), f, &f.url, body);
        bar.finish_and_clear();
        match result {
            Ok(()) => return Ok(()),
            // A short or broken body is worth another try; a complete body with the wrong
            // bytes is not.
            Err(FetchError::Io { source, .. }) => {
                last = Some(failed(format!("the download broke off ({source})")));
            }
            Err(FetchError::Size { got, expected, .. }) if got < expected => {
                last = Some(failed(format!(
                    "the download ended after {got} of {expected} bytes"
                )));
            }
            Err(e) => return Err(e),
        }
        if attempt < opts.attempts {
            tracing::warn!("{}: try {attempt} failed, trying again", f.url);
        }
    }
    Err(last.unwrap_or_else(|| failed("no attempt was made".into())))
}

fn progress_bar(show: bool, length: Option<u64>, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match length {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:30!} {bytes:>10}/{total_bytes:<10} {bar:30} {bytes_per_sec}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(name.to_string());
    bar
}

/// Copies the files from an offline copy `from`: `from/PATH`, `from/PATH.gz`, the same under
/// `from/<mirror>`, or the file's archive member there.
fn import(
    dataset: &Dataset,
    dir: &Path,
    from: &Path,
    files: &[&FileSpec],
) -> Result<(), FetchError> {
    let bases = [from.to_path_buf(), from.join(&dataset.mirror)];
    let mut from_archives: BTreeMap<PathBuf, Vec<&FileSpec>> = BTreeMap::new();
    for f in files {
        let plain = bases.iter().flat_map(|b| {
            [
                (b.join(&f.path), false),
                (
                    PathBuf::from(format!("{}.gz", b.join(&f.path).display())),
                    true,
                ),
            ]
        });
        if let Some((path, gz)) = plain.clone().find(|(p, _)| p.is_file()) {
            let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            let body: Box<dyn Read> = if gz {
                Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                    file,
                )))
            } else {
                Box::new(file)
            };
            write_verified(&dir.join(&f.path), f, &path.display().to_string(), body)?;
            continue;
        }
        let archive = f
            .archive
            .as_ref()
            .and_then(|a| bases.iter().map(|b| b.join(a)).find(|p| p.is_file()));
        match archive {
            Some(a) => from_archives.entry(a).or_default().push(f),
            None => {
                let mut looked: Vec<String> = plain.map(|(p, _)| p.display().to_string()).collect();
                if let Some(a) = &f.archive {
                    looked.extend(bases.iter().map(|b| b.join(a).display().to_string()));
                }
                return Err(FetchError::NotInMirror {
                    file: f.path.clone(),
                    dir: from.to_path_buf(),
                    looked: looked.join(", "),
                });
            }
        }
    }
    for (archive, wanted) in from_archives {
        let by_member: HashMap<&str, &FileSpec> = wanted
            .iter()
            .filter_map(|f| f.member.as_deref().map(|m| (m, *f)))
            .collect();
        let mut members = read_members_by_path(&archive, |m| {
            let m = m.to_str()?;
            by_member.contains_key(m).then(|| m.to_string())
        })?;
        for (member, f) in &by_member {
            let what = format!("{}/{member}", archive.display());
            let Some(m) = members.remove(*member) else {
                return Err(FetchError::NotInMirror {
                    file: f.path.clone(),
                    dir: from.to_path_buf(),
                    looked: what,
                });
            };
            write_verified(&dir.join(&f.path), f, &what, &m.bytes[..])?;
        }
    }
    Ok(())
}

/// Writes `body` to `dest.part`, checks its size and sha256 against `f`, and renames it to
/// `dest`; on any failure the partial file is removed. `what` names the origin in errors.
fn write_verified(
    dest: &Path,
    f: &FileSpec,
    what: &str,
    mut body: impl Read,
) -> Result<(), FetchError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let result = (|| {
        let file = std::fs::File::create(&part).map_err(|e| io(&part, e))?;
        let mut sink = Verifier::new(std::io::BufWriter::new(file));
        // Stop reading one byte past the registered size: a wrong file cannot fill the disk.
        let got = std::io::copy(&mut (&mut body).take(f.size + 1), &mut sink)
            .map_err(|e| io(Path::new(what), e))?;
        if got != f.size {
            return Err(FetchError::Size {
                what: what.to_string(),
                got,
                expected: f.size,
            });
        }
        let hex = sink.hex();
        if hex != f.sha256.to_lowercase() {
            return Err(FetchError::Checksum {
                what: what.to_string(),
                got: hex,
                expected: f.sha256.clone(),
            });
        }
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| io(&part, e.into_error()))?;
        file.sync_all().map_err(|e| io(&part, e))?;
        std::fs::rename(&part, dest).map_err(|e| io(dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// A writer that hashes and counts what passes through.
struct Verifier<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Verifier<W> {
    fn new(inner: W) -> Self {
        Verifier {
            inner,
            hash: Sha256::new(),
        }
    }
    fn hex(&self) -> String {
        self.hash
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl<W: Write> Write for Verifier<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(path: &Path, source: std::io::Error) -> FetchError {
    FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}
