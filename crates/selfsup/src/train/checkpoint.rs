//! Checkpoints: one directory per checkpoint, committed by a single rename, with a manifest that
//! holds the blake3 hash of every file; `latest` is updated last.
//!
//! ```text
//! checkpoints/step-00000468/{model.safetensors, optimizer.safetensors, state.json, manifest.json}
//! checkpoints/latest        "step-00000468"
//! ```
//! A reader verifies every checksum before trusting a byte, so a truncated or bit-flipped
//! checkpoint is refused with a typed error instead of loading garbage.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

pub const FORMAT_VERSION: u32 = 1;
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no manifest.json (an incomplete checkpoint)")]
    NoManifest { path: PathBuf },
    #[error("{path}: unreadable manifest: {message}")]
    BadManifest { path: PathBuf, message: String },
    #[error("{path}: format version {found}, this build reads {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: {file} has {found} bytes, the manifest says {expected} (truncated?)")]
    Size {
        path: PathBuf,
        file: String,
        found: u64,
        expected: u64,
    },
    #[error("{path}: {file} fails its blake3 checksum (corrupted)")]
    Checksum { path: PathBuf, file: String },
    #[error("{path}: {message}")]
    Content { path: PathBuf, message: String },
    #[error("{dir}: no valid checkpoint")]
    NoneValid { dir: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where training stands; everything besides tensors that shapes the rest of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps taken (= batches consumed, skipped non-finite ones included).
    pub step: u64,
    /// Epoch of the next batch, and its position inside that epoch.
    pub epoch: u64,
    pub step_in_epoch: u64,
    /// Updates actually applied (Adam's bias correction).
    pub optimizer_steps: u64,
    pub nan_skips: u64,
    pub recipe_hash: String,
    pub data_fingerprint: String,
    /// Best online-monitor accuracy so far, with its epoch.
    pub best_monitor: Option<(f64, u64)>,
    /// The latest online-monitor accuracy, with its epoch (the final-epoch figure at the end).
    #[serde(default)]
    pub last_monitor: Option<(f64, u64)>,
    /// Early stopping's bookkeeping, when the recipe asks for it (the best parameters are kept
    /// beside the optimiser's buffers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStopState>,
}

impl TrainState {
    /// Records the online monitor's accuracy at the current epoch (latest and best).
    pub fn record_monitor(&mut self, acc: f64) {
        self.last_monitor = Some((acc, self.epoch));
        if self.best_monitor.is_none_or(|(b, _)| acc > b) {
            self.best_monitor = Some((acc, self.epoch));
        }
    }
}

/// Where early stopping stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopState {
    /// Lowest training loss so far (none before the first epoch), and the epoch whose
    /// parameters gave it.
    pub best_loss: Option<f64>,
    pub best_epoch: u64,
    /// Epochs since the loss last improved.
    pub wait: u64,
    /// Training has stopped; the kept parameters are the best epoch's.
    pub stopped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    blake3: String,
    bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    step: u64,
    files: BTreeMap<String, FileEntry>,
}

/// A verified checkpoint in memory.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub model: Vec<(String, Tensor)>,
    pub optimizer: Vec<(String, Tensor)>,
    pub state: TrainState,
}

pub fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every filesystem supports it, and a failure only weakens
    // durability, never correctness, so it is not an error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn hash_file(path: &Path) -> Result<FileEntry, CheckpointError> {
    let bytes = fs::read(path).map_err(io(path))?;
    Ok(FileEntry {
        blake3: blake3::hash(&bytes).to_hex().to_string(),
        bytes: bytes.len() as u64,
    })
}

/// Fault injection for the crash-consistency tests (`SELFSUP_FAULT=abort-in-checkpoint:N`): abort
/// (as abruptly as a power cut or SIGKILL) in the middle of writing the checkpoint of step N —
/// after the model file, before the manifest and the rename.
fn crash_here_if_asked(step: u64) {
    if crate::fault::step_of("abort-in-checkpoint") == Some(step) {
        eprintln!("SELFSUP_FAULT: aborting while writing the checkpoint of step {step}");
        std::process::abort();
    }
    if let Some(ms) = crate::fault::step_of("slow-checkpoint") {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Writes a checkpoint of `vs`, the optimiser buffers and `state` under `root`, then points
/// `latest` at it and prunes old ones (keeping the newest `keep`, and never `protect`).
pub fn save(
    root: &Path,
    vs: &VarStore,
    optimizer: &[(String, Tensor)],
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    fs::create_dir_all(root).map_err(io(root))?;
    let name = dir_name(state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;

    // Contiguous in the default format: channels-last kernels (train/memory_format.rs) and their
    // optimiser buffers are written as plain NCHW, so either format resumes from the file.
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.contiguous()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let optimizer: Vec<(&String, Tensor)> =
        optimizer.iter().map(|(k, v)| (k, v.contiguous())).collect();
    let content = |e: tch::TchError| CheckpointError::Content {
        path: tmp.clone(),
        message: e.to_string(),
    };
    let model_path = tmp.join(MODEL);
    Tensor::write_safetensors(&vars, &model_path).map_err(content)?;
    crash_here_if_asked(state.step);
    let opt_path = tmp.join(OPTIMIZER);
    Tensor::write_safetensors(&optimizer, &opt_path).map_err(content)?;
    let state_json = serde_json::to_vec_pretty(state).map_err(|e| CheckpointError::Content {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    write_synced(&tmp.join(STATE), &state_json)?;

    let mut files = BTreeMap::new();
    for f in [MODEL, OPTIMIZER, STATE] {
        let p = tmp.join(f);
        if f != STATE {
            fs::File::open(&p)
                .and_then(|h| h.sync_all())
                .map_err(io(&p))?;
        }
        files.insert(f.to_string(), hash_file(&p)?);
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        step: state.step,
        files,
    };
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CheckpointError::Content {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
    write_synced(&tmp.join(MANIFEST), &manifest_json)?;
    sync_dir(&tmp);

    let dest = root.join(&name);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    sync_dir(root);

    let latest_tmp = root.join(".latest.tmp");
    write_synced(&latest_tmp, name.as_bytes())?;
    fs::rename(&latest_tmp, root.join("latest")).map_err(io(root))?;
    sync_dir(root);

    prune(root, keep, &name)?;
    Ok(dest)
}

/// Names of complete-looking checkpoint directories, oldest first.
pub fn list(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    names
}

/// Deletes old checkpoints. Each is first renamed out of the `step-*` namespace (one atomic
/// rename) and only then removed file by file, so a crash in the middle of a deletion leaves a
/// `.trash-*` directory, never a half-deleted directory under a checkpoint's name.
fn prune(root: &Path, keep: usize, protect: &str) -> Result<(), CheckpointError> {
    let names = list(root);
    let excess = names.len().saturating_sub(keep.max(1));
    for n in names.iter().take(excess).filter(|n| n.as_str() != protect) {
        let p = root.join(n);
        let trash = root.join(format!(".trash-{n}"));
        fs::rename(&p, &trash).map_err(io(&p))?;
        sync_dir(root);
        fs::remove_dir_all(&trash).map_err(io(&trash))?;
    }
    remove_leftovers(root, protect);
    Ok(())
}

/// Removes what interrupted saves and deletions left behind (`.tmp-*`, `.trash-*`). Best effort:
/// these names are never read as checkpoints, so a failure here loses nothing.
fn remove_leftovers(root: &Path, current: &str) {
    let current_tmp = format!(".tmp-{current}");
    for e in fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.starts_with(".tmp-step-") || name.starts_with(".trash-")) && name != current_tmp {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Loads and verifies one checkpoint directory.
pub fn load(path: &Path) -> Result<Loaded, CheckpointError> {
    let mpath = path.join(MANIFEST);
    if !mpath.exists() {
        return Err(CheckpointError::NoManifest {
            path: path.to_path_buf(),
        });
    }
    let bytes = fs::read(&mpath).map_err(io(&mpath))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::BadManifest {
            path: mpath.clone(),
            message: e.to_string(),
        })?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            path: path.to_path_buf(),
            found: manifest.format_version,
        });
    }
    for f in [MODEL, OPTIMIZER, STATE] {
        let Some(entry) = manifest.files.get(f) else {
            return Err(CheckpointError::BadManifest {
                path: mpath.clone(),
                message: format!("{f} not listed"),
            });
        };
        let actual = hash_file(&path.join(f))?;
        if actual.bytes != entry.bytes {
            return Err(CheckpointError::Size {
                path: path.to_path_buf(),
                file: f.into(),
                found: actual.bytes,
                expected: entry.bytes,
            });
        }
        if actual.blake3 != entry.blake3 {
            return Err(CheckpointError::Checksum {
                path: path.to_path_buf(),
                file: f.into(),
            });
        }
    }
    let content = |e: tch::TchError| CheckpointError::Content {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let model = Tensor::read_safetensors(path.join(MODEL)).map_err(content)?;
    let optimizer = Tensor::read_safetensors(path.join(OPTIMIZER)).map_err(content)?;
    let sbytes = fs::read(path.join(STATE)).map_err(io(path))?;
    let state: TrainState =
        serde_json::from_slice(&sbytes).map_err(|e| CheckpointError::Content {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Loaded {
        path: path.to_path_buf(),
        model,
        optimizer,
        state,
    })
}

/// The checkpoint `latest` points to if it verifies; otherwise the newest one that does, with a
/// warning for each one skipped. `Ok(None)` when there is no checkpoint at all.
pub fn load_latest(root: &Path) -> Result<Option<Loaded>, CheckpointError> {
    let mut candidates = list(root);
    if candidates.is_empty() {
        return Ok(None);
    }
    if let Ok(l) = fs::read_to_string(root.join("latest")) {
        let l = l.trim().to_string();
        candidates.retain(|c| *c != l);
        candidates.push(l);
    }
    for name in candidates.iter().rev() {
        match load(&root.join(name)) {
            Ok(c) => return Ok(Some(c)),
            Err(e) => tracing::warn!("skipping invalid checkpoint: {e}"),
        }
    }
    Err(CheckpointError::NoneValid {
        dir: root.to_path_buf(),
    })
}

/// Copies checkpointed values into the variables of `vs` (names and shapes must match exactly).
pub fn restore_model(
    vs: &VarStore,
    model: &[(String, Tensor)],
    origin: &Path,
) -> Result<(), CheckpointError> {
    let err = |message: String| CheckpointError::Content {
        path: origin.to_path_buf(),
        message,
    };
    let mut vars = vs.variables();
    let _guard = tch::no_grad_guard();
    for (name, t) in model {
        let Some(v) = vars.get_mut(name) else {
            return Err(err(format!(
                "the checkpoint has {name}, the model does not (different architecture?)"
            )));
        };
        if v.size() != t.size() {
            return Err(err(format!(
                "{name}: shape {:?} in the checkpoint, {:?} in the model",
                t.size(),
                v.size()
            )));
        }
        let _ = v.copy_(t);
    }
    if vars.len() != model.len() {
        let have: std::collections::HashSet<&String> = model.iter().map(|(n, _)| n).collect();
        let missing: Vec<&String> = vars.keys().filter(|k| !have.contains(k)).collect();
        return Err(err(format!(
            "the checkpoint lacks {missing:?} (different architecture?)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn state(step: u64) -> TrainState {
        TrainState {
            step,
            epoch: 0,
            step_in_epoch: step,
            optimizer_steps: step,
            nan_skips: 0,
            recipe_hash: "r".into(),
            data_fingerprint: "d".into(),
            best_monitor: None,
            last_monitor: None,
            early_stop: None,
        }
    }

    fn store() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let _ = vs
            .root()
            .var_copy("a", &Tensor::from_slice(&[1.0f32, 2.0, 3.0]));
        let _ = vs.root().zeros_no_train("running", &[2]);
        vs
    }

    #[test]
    fn round_trip_latest_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let vs = store();
        let opt = vec![(
            "a/exp_avg".to_string(),
            Tensor::from_slice(&[0.5f32, 0.5, 0.5]),
        )];
        for s in [1, 2, 3, 4] {
            save(dir.path(), &vs, &opt, &state(s), 2).unwrap();
        }
        assert_eq!(list(dir.path()), vec![dir_name(3), dir_name(4)]);
        let c = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(c.state.step, 4);
        assert_eq!(c.model.len(), 2);
        let vs2 = VarStore::new(Device::Cpu);
        let a = vs2.root().zeros("a", &[3]);
        let _ = vs2.root().zeros_no_train("running", &[2]);
        restore_model(&vs2, &c.model, &c.path).unwrap();
        assert!(a.equal(&Tensor::from_slice(&[1.0f32, 2.0, 3.0])));
        assert_eq!(c.optimizer[0].0, "a/exp_avg");
    }

    #[test]
    fn truncated_and_bitflipped_files_are_refused_and_latest_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let vs = store();
        save(dir.path(), &vs, &[], &state(1), 5).unwrap();
        let p2 = save(dir.path(), &vs, &[], &state(2), 5).unwrap();
        // Bit flip inside the model file.
        let mp = p2.join(MODEL);
        let mut bytes = fs::read(&mp).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&mp, &bytes).unwrap();
        assert!(matches!(load(&p2), Err(CheckpointError::Checksum { .. })));
        // Truncation.
        fs::write(&mp, &bytes[..bytes.len() / 2]).unwrap();
        let e = load(&p2).unwrap_err();
        assert!(matches!(e, CheckpointError::Size { .. }), "{e}");
        assert!(e.to_string().contains("model.safetensors"));
        // `latest` points at the bad one; loading falls back to step 1.
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().state.step, 1);
        // A directory without a manifest (a write cut short) is not a checkpoint.
        fs::remove_file(p2.join(MANIFEST)).unwrap();
        assert!(matches!(load(&p2), Err(CheckpointError::NoManifest { .. })));
    }

    /// Every file of a checkpoint, truncated at many offsets and with single bits flipped at many
    /// positions: every damaged copy is refused with an error, none loads, nothing panics.
    #[test]
    fn every_truncation_and_bit_flip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vs = store();
        let opt = vec![(
            "a/exp_avg".to_string(),
            Tensor::from_slice(&[0.5f32, 0.25, 0.125]),
        )];
        let good = save(dir.path(), &vs, &opt, &state(3), 5).unwrap();
        let (mut cases, mut refused) = (0, 0);
        for f in [MODEL, OPTIMIZER, STATE, MANIFEST] {
            let original = fs::read(good.join(f)).unwrap();
            let len = original.len();
            let mut damaged: Vec<Vec<u8>> = Vec::new();
            for cut in [0, 1, len / 4, len / 2, len - 1] {
                damaged.push(original[..cut].to_vec());
            }
            // Flip one bit in each of 24 positions spread over the file (all bytes of small files).
            let step = (len / 24).max(1);
            for pos in (0..len).step_by(step) {
                let mut b = original.clone();
                b[pos] ^= 1 << (pos % 8);
                damaged.push(b);
            }
            for bytes in damaged {
                let copy = dir.path().join("copy");
                let _ = fs::remove_dir_all(&copy);
                fs::create_dir_all(&copy).unwrap();
                for g in [MODEL, OPTIMIZER, STATE, MANIFEST] {
                    fs::copy(good.join(g), copy.join(g)).unwrap();
                }
                fs::write(copy.join(f), &bytes).unwrap();
                cases += 1;
                // A flip inside the manifest's JSON whitespace or key order could leave it
                // meaning the same thing; anything else must be refused.
                match load(&copy) {
                    Err(_) => refused += 1,
                    Ok(c) => {
                        assert_eq!(f, MANIFEST, "damaged {f} loaded");
                        assert_eq!(c.state.step, 3);
                    }
                }
            }
        }
        assert!(cases > 100, "{cases}");
        // Damage to model, optimiser and state is always refused; the manifest's own bytes are
        // checked by parsing, so almost every flip there is refused too.
        assert!(
            refused as f64 >= 0.95 * cases as f64,
            "{refused} of {cases} refused"
        );
    }

    #[test]
    fn architecture_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vs = store();
        let p = save(dir.path(), &vs, &[], &state(1), 1).unwrap();
        let c = load(&p).unwrap();
        let other = VarStore::new(Device::Cpu);
        let _ = other.root().zeros("a", &[4]);
        let _ = other.root().zeros_no_train("running", &[2]);
        let e = restore_model(&other, &c.model, &p).unwrap_err().to_string();
        assert!(e.contains("shape"), "{e}");
        let _ = Kind::Float;
    }
}
