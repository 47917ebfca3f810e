//! Text: files of sentences or corpora ([`reader`]), subword tokenizers trained on them
//! ([`tokenizer`]), and the labelled sets a recipe reads.
pub mod reader;
pub mod tokenizer;

pub use reader::{Column, TextFile, TextFormat};
pub use tokenizer::{Encoded, TextTokenizer, TokenizerOptions};

use crate::error::{BadInputPolicy, DataError, SkipReport};

/// Texts with class indices (when labelled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextSet {
    pub texts: Vec<String>,
    pub labels: Option<Vec<i64>>,
    /// Class names in index order (empty when unlabelled).
    pub class_names: Vec<String>,
}

impl TextSet {
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> TextSet {
        TextSet {
            texts: idx.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
        }
    }
}

/// A text recipe's data, read: the labelled training file, the test file with the training
/// file's classes, and the extra unlabelled corpora that pretraining reads beside the training
/// texts.
#[derive(Debug, Clone, Default)]
pub struct TextData {
    pub train: TextSet,
    pub test: Option<TextSet>,
    pub corpora: Vec<String>,
    pub skipped: SkipReport,
    /// Lines repaired by a file's policy (U+FFFD substitutions, cut lines).
    pub repaired: usize,
}

impl TextData {
    /// Everything pretraining reads: the training texts, then the corpora.
    pub fn pretraining_texts(&self) -> Vec<String> {
        let mut v = self.train.texts.clone();
        v.extend(self.corpora.iter().cloned());
        v
    }
}

/// Reads the training file (its labels fix the classes), the test file and the corpora.
pub fn load_text(
    train: &TextFile,
    test: Option<&TextFile>,
    corpora: &[TextFile],
    policy: BadInputPolicy,
) -> Result<TextData, DataError> {
    let mut out = TextData::default();
    let (raw, s) = reader::read_text_file(train, policy)?;
    out.skipped.merge(s);
    out.repaired += raw.repaired;
    let class_names = raw
        .labels
        .as_deref()
        .map(reader::class_names)
        .unwrap_or_default();
    let labelled = |raw: reader::RawTexts, path: &std::path::Path| -> Result<TextSet, DataError> {
        let labels = match &raw.labels {
            Some(l) => Some(reader::label_indices(l, &class_names, path)?),
            None => None,
        };
        Ok(TextSet {
            texts: raw.texts,
            labels,
            class_names: class_names.clone(),
        })
    };
    out.train = labelled(raw, &train.path)?;
    if let Some(t) = test {
        let (raw, s) = reader::read_text_file(t, policy)?;
        out.skipped.merge(s);
        out.repaired += raw.repaired;
        out.test = Some(labelled(raw, &t.path)?);
    }
    for c in corpora {
        let (raw, s) = reader::read_text_file(c, policy)?;
        out.skipped.merge(s);
        out.repaired += raw.repaired;
        out.corpora.extend(raw.texts);
    }
    Ok(out)
}
