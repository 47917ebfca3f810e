//! Sources: read a format from disk into typed, in-memory samples.
//!
//! Readers never panic on user data: they return a [`DataError`](crate::error::DataError) naming the
//! file and position, or skip and count bad samples under [`BadInputPolicy::Skip`](crate::error::BadInputPolicy).

pub mod archive;
pub mod audio;
pub mod csv_images;
pub mod csv_table;
pub mod decode_errors;
pub mod graph;
pub mod idx;
pub mod image_folder;
pub mod image_shards;
pub mod image_stream;
pub mod pairs;
pub mod pickle;
pub mod planetoid;
pub mod text;
pub mod tu;
pub mod ucr;

#[cfg(test)]
mod fuzz_tests;

/// `$SELFSUP_SHARED_DATA`, else `shared/data` beside the checkout, joined with `sub`: the real
/// data sets the tests read. When it is absent a test skips with a message — except under
/// `CI=true`, where a missing data set fails the test instead of letting it pass unchecked.
#[cfg(test)]
pub(crate) fn shared_data(sub: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("SELFSUP_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        });
    let dir = base.join(sub);
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true and the shared data set {} is absent",
        dir.display()
    );
    println!("skipping: {} is absent", dir.display());
    None
}

use crate::error::DataError;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Opens `path` for reading, transparently decompressing gzip (multi-member included).
///
/// Gzip is recognised by its magic bytes (0x1f 0x8b), not by the file name: datasets are often
/// renamed, and a `.gz` suffix on an uncompressed file (or the reverse) should still just work.
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    // A single `read` may legally return fewer bytes than asked for, so loop until EOF.
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DataError::io(path, e))?;
    let buffered = std::io::BufReader::new(file);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Images of one size, stored as u8 in `[N, C, H, W]` order (channels planar), with optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub len: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Class index per image, when the source has labels.
    pub labels: Option<Vec<i64>>,
    /// Class names in index order (folder names, or "0".."9" for IDX).
    pub class_names: Vec<String>,
    /// Where each image came from (its file), when it came from a file of its own.
    pub sources: Option<Vec<String>>,
}

impl ImageSet {
    /// Values per image (C·H·W).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// The pixels of image `i`, `[C, H, W]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Images that views are drawn from: all in memory ([`ImageSet`]), or decoded from disk when a
/// loader thread asks for one ([`image_stream::ImageStream`]). All images share one shape.
pub trait ImageSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(channels, height, width)` of every image.
    fn shape(&self) -> (usize, usize, usize);
    /// The pixels of image `i`, planar `[C, H, W]`. A source that decodes on demand and fails
    /// returns a blank image and keeps the error for [`ImageSource::take_errors`].
    fn image(&self, i: usize) -> std::borrow::Cow<'_, [u8]>;
    fn label(&self, i: usize) -> Option<i64>;
    /// Number of classes (0 when unlabelled).
    fn n_classes(&self) -> usize;
    /// Errors met since the last call, for the caller to stop on; none for in-memory sets.
    fn take_errors(&self) -> Vec<DataError> {
        Vec::new()
    }
    /// Where image `i` came from (its file, or shard and member), if known.
    fn source(&self, _i: usize) -> Option<String> {
        None
    }
}

impl ImageSource for ImageSet {
    fn len(&self) -> usize {
        self.len
    }
    fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
    fn image(&self, i: usize) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(ImageSet::image(self, i))
    }
    fn source(&self, i: usize) -> Option<String> {
        self.sources.as_ref().and_then(|s| s.get(i).cloned())
    }
    fn label(&self, i: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[i])
    }
    fn n_classes(&self) -> usize {
        match &self.labels {
            Some(l) => self
                .class_names
                .len()
                .max(l.iter().copied().max().map_or(0, |m| m as usize + 1)),
            None => 0,
        }
    }
}

/// How one table feature is represented after fitting on the training file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FeatureKind {
    /// Stored standardised with the training mean and std; a missing value is stored as 0 (the mean).
    Numeric { mean: f64, std: f64 },
    /// Stored as the level's code (0..levels.len()) as f32; a missing value has its own level "?"
    /// (present in `levels` when the training file had missing values); a level unseen in training
    /// maps to the missing level if there is one, otherwise to code 0 (counted by the reader).
    Categorical { levels: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: FeatureKind,
}

/// A table of rows × features, fitted on a training file (test files are encoded with the training fit).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSet {
    pub features: Vec<Feature>,
    /// Row-major `n_rows × features.len()`: standardised numeric values or category codes.
    pub values: Vec<f32>,
    pub n_rows: usize,
    pub labels: Option<Vec<i64>>,
    /// Label names in index order (classification), empty for an unlabeled table.
    pub label_names: Vec<String>,
    /// Regression targets, one per row (`None` for classification and unlabeled tables).
    pub targets: Option<Vec<f32>>,
}

/// Where one table feature sits in an encoded row: a numeric feature is one column, a
/// categorical one a one-hot block of `len` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpan {
    pub start: usize,
    pub len: usize,
    pub categorical: bool,
}

impl TableSet {
    pub fn n_features(&self) -> usize {
        self.features.len()
    }
    /// The encoded row's layout, feature by feature (see [`TableSet::encode_row`]).
    pub fn feature_spans(&self) -> Vec<FeatureSpan> {
        let mut start = 0;
        self.features
            .iter()
            .map(|f| {
                let (len, categorical) = match &f.kind {
                    FeatureKind::Numeric { .. } => (1, false),
                    FeatureKind::Categorical { levels } => (levels.len(), true),
                };
                let s = FeatureSpan {
                    start,
                    len,
                    categorical,
                };
                start += len;
                s
            })
            .collect()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        let f = self.features.len();
        &self.values[i * f..(i + 1) * f]
    }
    /// Width of the model input: one value per numeric feature, one-hot block per categorical one.
    pub fn encoded_dim(&self) -> usize {
        self.features
            .iter()
            .map(|f| match &f.kind {
                FeatureKind::Numeric { .. } => 1,
                FeatureKind::Categorical { levels } => levels.len(),
            })
            .sum()
    }
    /// Encodes one row (as stored in `values`, possibly corrupted by a view) into `out`
    /// (`encoded_dim()` long): numeric values as they are, categorical ones one-hot.
    pub fn encode_row(&self, row: &[f32], out: &mut [f32]) {
        let mut o = 0;
        for (f, &v) in self.features.iter().zip(row) {
            match &f.kind {
                FeatureKind::Numeric { .. } => {
                    out[o] = v;
                    o += 1;
                }
                FeatureKind::Categorical { levels } => {
                    let n = levels.len();
                    out[o..o + n].fill(0.0);
                    let code = (v as usize).min(n.saturating_sub(1));
                    if n > 0 {
                        out[o + code] = 1.0;
                    }
                    o += n;
                }
            }
        }
    }
}
