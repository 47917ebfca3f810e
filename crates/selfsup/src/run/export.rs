//! Embeddings out of a run, in the format the file name (or `--format`) says: NPY (numpy; labels
//! in `<name>.labels.npy`), safetensors (`embeddings`, `labels`), Parquet (a row per sample: `id`,
//! `label`, `source` — the sample's file where it has one — and `embedding` as a list of floats)
//! or CSV (`id,label,source,e0,e1,…`). Parquet and CSV files are
//! written to a temporary name and renamed when complete.
use anyhow::{bail, Context, Result};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Kind, Tensor};

/// The Parquet schema of an embedding file.
const PARQUET_SCHEMA: &str = "message embeddings {
  REQUIRED INT64 id;
  OPTIONAL INT64 label;
  OPTIONAL BYTE_ARRAY source (UTF8);
  REQUIRED group embedding (LIST) {
    REPEATED group list {
      REQUIRED FLOAT element;
    }
  }
}";

/// The formats an embedding file can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFormat {
    Npy,
    Safetensors,
    Parquet,
    Csv,
}

impl EmbedFormat {
    /// The format a file name's extension says.
    pub fn from_path(path: &Path) -> Result<Self> {
        Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => Self::Npy,
            Some("safetensors") => Self::Safetensors,
            Some("parquet") => Self::Parquet,
            Some("csv") => Self::Csv,
            _ => bail!(
                "{}: use a .npy, .safetensors, .parquet or .csv file name, or say --format",
                path.display()
            ),
        })
    }
}

/// Writes embeddings in the format of the file name's extension.
pub fn write_embeddings(path: &Path, embeddings: &Tensor, labels: Option<&Tensor>) -> Result<()> {
    write_embeddings_as(path, EmbedFormat::from_path(path)?, embeddings, labels, &[])
}

/// Writes embeddings in `format`, whatever the file name, with each sample's source where
/// `sources` has one (Parquet and CSV; an empty slice: none known).
pub fn write_embeddings_as(
    path: &Path,
    format: EmbedFormat,
    embeddings: &Tensor,
    labels: Option<&Tensor>,
    sources: &[Option<String>],
) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match format {
        EmbedFormat::Npy => {
            embeddings
                .write_npy(path)
                .with_context(|| format!("writing {}", path.display()))?;
            if let Some(l) = labels {
                let lp = path.with_extension("labels.npy");
                l.write_npy(&lp)
                    .with_context(|| format!("writing {}", lp.display()))?;
            }
        }
        EmbedFormat::Safetensors => {
            let mut named = vec![("embeddings", embeddings.shallow_clone())];
            if let Some(l) = labels {
                named.push(("labels", l.shallow_clone()));
            }
            Tensor::write_safetensors(&named, path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        EmbedFormat::Parquet | EmbedFormat::Csv => {
            let (rows, dims, values, labels) = host_rows(embeddings, labels)?;
            let sources: Vec<Option<String>> = if sources.is_empty() {
                vec![None; rows]
            } else {
                anyhow::ensure!(
                    sources.len() == rows,
                    "{} sources for {rows} rows",
                    sources.len()
                );
                sources.to_vec()
            };
            let part = PathBuf::from(format!("{}.part", path.display()));
            let written = if format == EmbedFormat::Parquet {
                write_parquet(&part, dims, &values, &labels, &sources)
            } else {
                write_csv(&part, dims, &values, &labels, &sources)
            };
            if let Err(e) = written {
                let _ = std::fs::remove_file(&part);
                return Err(e.context(format!("writing {}", path.display())));
            }
            std::fs::rename(&part, path).with_context(|| format!("writing {}", path.display()))?;
            debug_assert_eq!(values.len(), rows * dims);
        }
    }
    Ok(())
}

/// (rows, dimensions, row-major values, labels with `None` for a negative label or none given).
fn host_rows(
    e: &Tensor,
    labels: Option<&Tensor>,
) -> Result<(usize, usize, Vec<f32>, Vec<Option<i64>>)> {
    let [rows, dims] = e.size()[..] else {
        bail!("embeddings must be a matrix, not of shape {:?}", e.size());
    };
    let values = Vec::<f32>::try_from(e.to_kind(Kind::Float).contiguous().view([-1]))?;
    let labels = match labels {
        Some(l) => Vec::<i64>::try_from(l.to_kind(Kind::Int64).contiguous())?
            .into_iter()
            .map(|y| (y >= 0).then_some(y))
            .collect(),
        None => vec![None; rows as usize],
    };
    anyhow::ensure!(
        labels.len() == rows as usize,
        "{} labels for {rows} rows",
        labels.len()
    );
    Ok((rows as usize, dims as usize, values, labels))
}

fn write_parquet(
    path: &Path,
    dims: usize,
    values: &[f32],
    labels: &[Option<i64>],
    sources: &[Option<String>],
) -> Result<()> {
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA)?);
    let file = std::fs::File::create(path)?;
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))?;
    let rows = labels.len();
    let mut group = writer.next_row_group()?;
    // id
    let mut col = group.next_column()?.context("the schema's id column")?;
    let ids: Vec<i64> = (0..rows as i64).collect();
    col.typed::<Int64Type>().write_batch(&ids, None, None)?;
    col.close()?;
    // label: definition level 1 where there is one
    let mut col = group.next_column()?.context("the schema's label column")?;
    let present: Vec<i64> = labels.iter().flatten().copied().collect();
    let def: Vec<i16> = labels.iter().map(|l| i16::from(l.is_some())).collect();
    col.typed::<Int64Type>()
        .write_batch(&present, Some(&def), None)?;
    col.close()?;
    // source: a UTF-8 string where the sample has one
    let mut col = group.next_column()?.context("the schema's source column")?;
    let present: Vec<ByteArray> = sources
        .iter()
        .flatten()
        .map(|s| ByteArray::from(s.as_str()))
        .collect();
    let def: Vec<i16> = sources.iter().map(|s| i16::from(s.is_some())).collect();
    col.typed::<ByteArrayType>()
        .write_batch(&present, Some(&def), None)?;
    col.close()?;
    // embedding.list.element: every element defined (level 1); a row starts at repetition 0
    let mut col = group
        .next_column()?
        .context("the schema's embedding column")?;
    let def = vec![1i16; values.len()];
    let rep: Vec<i16> = (0..values.len())
        .map(|i| i16::from(i % dims != 0))
        .collect();
    col.typed::<FloatType>()
        .write_batch(values, Some(&def), Some(&rep))?;
    col.close()?;
    group.close()?;
    writer.close()?;
    Ok(())
}

fn write_csv(
    path: &Path,
    dims: usize,
    values: &[f32],
    labels: &[Option<i64>],
    sources: &[Option<String>],
) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    let mut header = vec!["id".to_string(), "label".to_string(), "source".to_string()];
    header.extend((0..dims).map(|j| format!("e{j}")));
    w.write_record(&header)?;
    for (i, ((row, label), source)) in values.chunks(dims).zip(labels).zip(sources).enumerate() {
        let mut record = vec![
            i.to_string(),
            label.map_or(String::new(), |l| l.to_string()),
            source.clone().unwrap_or_default(),
        ];
        // `{}` of an f32 prints the shortest text that reads back as the same float.
        record.extend(row.iter().map(|x| x.to_string()));
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads an embedding file written by [`write_embeddings`] as Parquet: `[N, D]` embeddings and the
/// labels (`-1` where a row has none). Rows are returned in `id` order.
pub fn read_parquet(path: &Path) -> Result<(Tensor, Tensor)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path)?)?;
    let mut rows: Vec<(i64, i64, Vec<f32>)> = Vec::new();
    for row in reader.get_row_iter(None)? {
        let row = row?;
        let (mut id, mut label, mut e) = (None, -1, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("id", Field::Long(v)) => id = Some(*v),
                ("label", Field::Long(v)) => label = *v,
                ("label", Field::Null) => {}
                ("embedding", Field::ListInternal(list)) => {
                    let v: Option<Vec<f32>> = list
                        .elements()
                        .iter()
                        .map(|f| match f {
                            Field::Float(x) => Some(*x),
                            _ => None,
                        })
                        .collect();
                    e = v;
                }
                _ => {}
            }
        }
        match (id, e) {
            (Some(id), Some(e)) => rows.push((id, label, e)),
            _ => bail!(
                "{}: a row without an id or a list of floats `embedding`",
                path.display()
            ),
        }
    }
    rows.sort_by_key(|r| r.0);
    let dims = rows.first().map_or(0, |r| r.2.len());
    anyhow::ensure!(
        rows.iter().all(|r| r.2.len() == dims),
        "{}: embeddings of different lengths",
        path.display()
    );
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.2.iter().copied()).collect();
    let labels: Vec<i64> = rows.iter().map(|r| r.1).collect();
    Ok((
        Tensor::from_slice(&flat).view([rows.len() as i64, dims as i64]),
        Tensor::from_slice(&labels),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let e = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([3, 2]);
        let l = Tensor::from_slice(&[0i64, 1, 1]);
        let p = dir.path().join("e.npy");
        write_embeddings(&p, &e, Some(&l)).unwrap();
        assert!(Tensor::read_npy(&p).unwrap().equal(&e));
        assert!(Tensor::read_npy(dir.path().join("e.labels.npy"))
            .unwrap()
            .equal(&l));
        let p = dir.path().join("e.safetensors");
        write_embeddings(&p, &e, Some(&l)).unwrap();
        let back = Tensor::read_safetensors(&p).unwrap();
        assert!(back.iter().any(|(n, t)| n == "embeddings" && t.equal(&e)));
        assert!(write_embeddings(&dir.path().join("e.txt"), &e, None).is_err());
    }

    #[test]
    fn parquet_and_csv_hold_the_npy_values_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        // Values that do not print short: the CSV must still read back exactly.
        let e = Tensor::from_slice(&[0.1f32, -2.5e-8, 3.0, f32::MAX, 1.0 / 3.0, -0.0]).view([3, 2]);
        let l = Tensor::from_slice(&[2i64, -1, 0]);
        write_embeddings(&dir.path().join("e.npy"), &e, Some(&l)).unwrap();
        let npy = Tensor::read_npy(dir.path().join("e.npy")).unwrap();

        // Sources where the samples have them (the second has none); a name not ending in
        // .parquet, as --format allows.
        let sources = [
            Some("a/x.png".to_string()),
            None,
            Some("b/ü.jpg".to_string()),
        ];
        let p = dir.path().join("e.data");
        write_embeddings_as(&p, EmbedFormat::Parquet, &e, Some(&l), &sources).unwrap();
        assert!(!dir.path().join("e.data.part").exists());
        let (back, labels) = read_parquet(&p).unwrap();
        assert!(back.equal(&npy), "{back:?}");
        assert!(labels.equal(&l));
        // The schema as written: id, label and source (nullable), embedding (a list of floats).
        let reader = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr();
        let columns: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        assert_eq!(columns, ["id", "label", "source", "embedding.list.element"]);
        let read: Vec<Option<String>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                let row = row.unwrap();
                let (_, f) = row.get_column_iter().find(|(n, _)| *n == "source").unwrap();
                match f {
                    Field::Str(s) => Some(s.clone()),
                    Field::Null => None,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(read, sources);

        let p = dir.path().join("e.csv");
        write_embeddings_as(&p, EmbedFormat::Csv, &e, Some(&l), &sources).unwrap();
        let mut r = csv::Reader::from_path(&p).unwrap();
        assert_eq!(
            r.headers().unwrap(),
            vec!["id", "label", "source", "e0", "e1"]
        );
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(&rows[1][1], "", "a negative label is written as empty");
        assert_eq!(
            (&rows[0][2], &rows[1][2], &rows[2][2]),
            ("a/x.png", "", "b/ü.jpg")
        );
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|row| {
                (3..5)
                    .map(|j| row[j].parse::<f32>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(Tensor::from_slice(&values).view([3, 2]).equal(&npy));
    }
}
