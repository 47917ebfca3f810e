//! `metrics.jsonl`: one JSON object per line, appended as training goes.
use anyhow::{Context, Result};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    /// None: a silent log (the ranks other than 0 of a data-parallel run write nothing).
    file: Option<File>,
}

impl MetricsLog {
    /// Opens the log for appending. When resuming from `resume_step`, lines written after that step
    /// by the interrupted run are dropped first, so the history reads as one uninterrupted run.
    pub fn open(path: &Path, resume_step: Option<u64>) -> Result<Self> {
        if let (Some(step), true) = (resume_step, path.exists()) {
            let kept: Vec<String> =
                BufReader::new(File::open(path).with_context(|| format!("{}", path.display()))?)
                    .lines()
                    .map_while(|l| l.ok())
                    .filter(|l| {
                        serde_json::from_str::<Value>(l)
                            .ok()
                            .and_then(|v| v.get("step").and_then(Value::as_u64))
                            .is_some_and(|s| s <= step)
                    })
                    .collect();
            let tmp = path.with_extension("jsonl.tmp");
            let mut f = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
            for l in kept {
                writeln!(f, "{l}")?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}", path.display()))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// A log that writes nothing.
    pub fn silent() -> Self {
        MetricsLog {
            path: PathBuf::new(),
            file: None,
        }
    }

    pub fn write(&mut self, record: &Value) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        writeln!(file, "{record}").with_context(|| format!("writing {}", self.path.display()))?;
        file.flush()?;
        Ok(())
    }
}

/// Reads every record of a metrics file.
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let f = File::open(path).with_context(|| format!("{}", path.display()))?;
    BufReader::new(f)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = l?;
            serde_json::from_str(&l)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_drops_lines_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        let mut m = MetricsLog::open(&p, None).unwrap();
        for s in [10, 20, 30] {
            m.write(&json!({"step": s, "loss": 1.0})).unwrap();
        }
        drop(m);
        let mut m = MetricsLog::open(&p, Some(20)).unwrap();
        m.write(&json!({"step": 30, "loss": 0.5})).unwrap();
        let steps: Vec<u64> = read(&p)
            .unwrap()
            .iter()
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![10, 20, 30]);
        assert_eq!(read(&p).unwrap()[2]["loss"], 0.5);
    }
}
