//! Which samples of several modalities go together: a pair (or tuple) is one sample of each.
//!
//! Pairs come from a manifest (a CSV with one column per modality), or, for data paired only by
//! class as AV-MNIST pairs MNIST digits with spoken digits (MultiBench, Liang et al. 2021), by
//! label: every sample of the first modality gets a sample of the same class from each other
//! modality, drawn so that a class's samples are all used before any is used again.
use crate::error::DataError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pairing {
    /// Partners of the same class, drawn once with `seed`.
    Label {
        #[serde(default)]
        seed: u64,
    },
    /// Rows of a CSV file: a header naming the modalities, then one sample of each per row,
    /// as its 0-based index in that modality's set or as its source file (path or file name).
    Manifest {
        train: PathBuf,
        test: Option<PathBuf>,
    },
}

impl Default for Pairing {
    fn default() -> Self {
        Pairing::Label { seed: 0 }
    }
}

impl Pairing {
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Pairing::Label { .. } => Vec::new(),
            Pairing::Manifest { train, test } => {
                let mut v: Vec<&Path> = vec![train];
                v.extend(test.as_deref());
                v
            }
        }
    }
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            Pairing::Label { .. } => Vec::new(),
            Pairing::Manifest { train, test } => {
                let mut v = vec![train];
                v.extend(test.as_mut());
                v
            }
        }
    }
}

/// One modality's samples as the pairing sees them.
pub struct Members<'a> {
    pub name: &'a str,
    /// Class of each sample (`None` where it has none).
    pub labels: Vec<Option<i64>>,
    /// Source of each sample (`None` where it has none).
    pub sources: Vec<Option<String>>,
}

/// Tuples by class: one per sample of `parts[0]` (in order), with a partner of the same class
/// from every other part. `what` names the split in errors.
pub fn by_label(parts: &[Members], seed: u64, what: &str) -> Result<Vec<Vec<usize>>, String> {
    use rand::seq::SliceRandom;
    let anchors = &parts[0];
    if let Some(i) = anchors.labels.iter().position(Option::is_none) {
        return Err(format!(
            "{what}: sample {i} of {} has no class to pair by",
            anchors.name
        ));
    }
    let mut tuples: Vec<Vec<usize>> = (0..anchors.labels.len()).map(|i| vec![i]).collect();
    for (m, part) in parts.iter().enumerate().skip(1) {
        let mut pools: HashMap<i64, Vec<usize>> = HashMap::new();
        for (j, l) in part.labels.iter().enumerate() {
            if let Some(l) = l {
                pools.entry(*l).or_default().push(j);
            }
        }
        // Per class: the pool shuffled anew on every pass, handed out in turn.
        let mut next: HashMap<i64, (usize, u64, Vec<usize>)> = HashMap::new();
        for (i, t) in tuples.iter_mut().enumerate() {
            let class = anchors.labels[i].expect("checked above");
            let pool = pools.get(&class).ok_or_else(|| {
                format!(
                    "{what}: class {class} of {} has no sample in {} to pair with",
                    anchors.name, part.name
                )
            })?;
            let (at, pass, order) = next.entry(class).or_insert((pool.len(), 0, Vec::new()));
            if *at == pool.len() {
                *order = pool.clone();
                let mut rng = crate::rng::keyed(
                    seed,
                    crate::rng::Stream::Eval,
                    *pass,
                    class as u64,
                    m as u64,
                );
                order.shuffle(&mut rng);
                *pass += 1;
                *at = 0;
            }
            t.push(order[*at]);
            *at += 1;
        }
    }
    Ok(tuples)
}

/// Tuples from a manifest file whose header names every part (in any column order).
pub fn read_manifest(path: &Path, parts: &[Members]) -> Result<Vec<Vec<usize>>, DataError> {
    let record = |line: usize, column: usize, message: String| DataError::Record {
        path: path.into(),
        line,
        column,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(DataError::Empty {
            path: path.into(),
            message: "no header".into(),
        });
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut column_of = Vec::with_capacity(parts.len());
    for p in parts {
        let c = columns.iter().position(|c| *c == p.name).ok_or_else(|| {
            record(
                1,
                0,
                format!(
                    "the header names no column {:?} (it has {columns:?})",
                    p.name
                ),
            )
        })?;
        column_of.push(c);
    }
    // A sample named by its source: the whole path, or the file name when that is unique.
    let lookups: Vec<HashMap<&str, Option<usize>>> = parts
        .iter()
        .map(|p| {
            let mut m: HashMap<&str, Option<usize>> = HashMap::new();
            for (i, s) in p.sources.iter().enumerate() {
                let Some(s) = s.as_deref() else { continue };
                m.insert(s, Some(i));
                if let Some(name) = Path::new(s).file_name().and_then(|n| n.to_str()) {
                    // Seen twice: ambiguous, so not a key.
                    m.entry(name).and_modify(|v| *v = None).or_insert(Some(i));
                }
            }
            m
        })
        .collect();
    let mut tuples = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(record(
                i + 1,
                0,
                format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        let mut t = Vec::with_capacity(parts.len());
        for (p, (&c, part)) in column_of.iter().zip(parts).enumerate() {
            let cell = fields[c];
            let n = part.labels.len();
            let index = match cell.parse::<usize>() {
                Ok(k) if k < n => k,
                Ok(k) => {
                    return Err(record(
                        i + 1,
                        c + 1,
                        format!("{}: index {k}, but the set has {n} samples", part.name),
                    ))
                }
                Err(_) => match lookups[p].get(cell) {
                    Some(Some(k)) => *k,
                    Some(None) => {
                        return Err(record(
                            i + 1,
                            c + 1,
                            format!(
                                "{}: {cell:?} names several samples; give the path",
                                part.name
                            ),
                        ))
                    }
                    None => {
                        return Err(record(
                            i + 1,
                            c + 1,
                            format!("{}: no sample {cell:?}", part.name),
                        ))
                    }
                },
            };
            t.push(index);
        }
        tuples.push(t);
    }
    if tuples.is_empty() {
        return Err(DataError::Empty {
            path: path.into(),
            message: "no pairs".into(),
        });
    }
    Ok(tuples)
}

/// Writes tuples as a manifest (indices), the format [`read_manifest`] reads.
pub fn manifest_text(names: &[&str], tuples: &[Vec<usize>]) -> String {
    let mut s = names.join(",");
    s.push('\n');
    for t in tuples {
        let row: Vec<String> = t.iter().map(|i| i.to_string()).collect();
        s += &row.join(",");
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members<'a>(name: &'a str, labels: &[i64]) -> Members<'a> {
        Members {
            name,
            labels: labels.iter().map(|&l| Some(l)).collect(),
            sources: (0..labels.len())
                .map(|i| Some(format!("dir/{name}{i}.wav")))
                .collect(),
        }
    }

    #[test]
    fn label_pairs_match_classes_and_use_every_partner_before_repeating() {
        let audio = members("audio", &[0, 1, 0, 1, 0, 1, 0, 1]);
        let image = members("image", &[1, 0, 0, 1]);
        let t = by_label(&[audio, image], 3, "train").unwrap();
        assert_eq!(t.len(), 8);
        let image_labels = [1, 0, 0, 1];
        let audio_labels = [0, 1, 0, 1, 0, 1, 0, 1];
        for (i, p) in t.iter().enumerate() {
            assert_eq!(p[0], i);
            assert_eq!(image_labels[p[1]], audio_labels[i]);
        }
        // Class 0's anchors are 0, 2, 4, 6: the first two take images 1 and 2 in some order,
        // and so do the next two.
        let firsts: std::collections::BTreeSet<usize> = [t[0][1], t[2][1]].into();
        let seconds: std::collections::BTreeSet<usize> = [t[4][1], t[6][1]].into();
        assert_eq!(firsts, [1, 2].into());
        assert_eq!(seconds, [1, 2].into());
        let again = by_label(
            &[
                members("audio", &audio_labels),
                members("image", &image_labels),
            ],
            3,
            "train",
        );
        assert_eq!(again.unwrap(), t);
    }

    #[test]
    fn a_class_without_partners_is_named() {
        let e = by_label(
            &[members("audio", &[0, 2]), members("image", &[0, 1])],
            0,
            "test",
        )
        .unwrap_err();
        assert!(e.contains("class 2") && e.contains("image"), "{e}");
    }

    #[test]
    fn manifests_take_indices_or_sources_in_any_column_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.csv");
        std::fs::write(&p, "image,audio\n1,audio0.wav\n0,dir/audio2.wav\n").unwrap();
        let parts = [members("audio", &[0, 1, 0]), members("image", &[0, 1])];
        assert_eq!(
            read_manifest(&p, &parts).unwrap(),
            vec![vec![0, 1], vec![2, 0]]
        );
        for (text, line, column, what) in [
            ("image,audio\n5,0\n", 2, 1, "index 5"),
            ("image,audio\n0,nope.wav\n", 2, 2, "no sample"),
            ("image,audio\n0\n", 2, 0, "fields"),
            ("image,video\n0,0\n", 1, 0, "no column \"audio\""),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_manifest(&p, &parts).unwrap_err();
            match &e {
                DataError::Record {
                    line: l, column: c, ..
                } => assert_eq!((*l, *c), (line, column), "{text:?}: {e}"),
                other => panic!("{text:?}: {other}"),
            }
            assert!(e.to_string().contains(what), "{e}");
        }
        std::fs::write(&p, "image,audio\n").unwrap();
        assert!(matches!(
            read_manifest(&p, &parts),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn a_written_manifest_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.csv");
        let t = vec![vec![1, 0], vec![0, 1]];
        std::fs::write(&p, manifest_text(&["audio", "image"], &t)).unwrap();
        let parts = [members("audio", &[0, 1]), members("image", &[1, 0])];
        assert_eq!(read_manifest(&p, &parts).unwrap(), t);
    }
}
