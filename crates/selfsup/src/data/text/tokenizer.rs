//! Subword tokenizers trained on the training text with the `tokenizers` crate: WordPiece
//! (BERT, Devlin et al. 2019) or BPE (Sennrich et al. 2016), both with BERT's normaliser and
//! pre-tokeniser and `##` marking a piece that continues a word (so whole-word masking reads
//! word boundaries the same way for both).
//!
//! The five special tokens take the first ids in a fixed order, which the encoder and the
//! methods rely on: `[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4.
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Tokenizer};

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const CLS: u32 = 2;
pub const SEP: u32 = 3;
pub const MASK: u32 = 4;
/// Ids below this are special tokens; ordinary pieces follow.
pub const N_SPECIAL: u32 = 5;
const SPECIAL_NAMES: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
/// The prefix of a piece that continues a word.
pub const CONTINUES: &str = "##";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    #[default]
    WordPiece,
    Bpe,
}

/// `[data.tokenizer]`: what tokenizer to train and how long a sequence may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerOptions {
    pub kind: TokenizerKind,
    /// Largest vocabulary, special tokens included (the trained one may be smaller).
    pub vocab_size: usize,
    /// Pieces seen fewer times are not learned.
    pub min_frequency: u64,
    pub lowercase: bool,
    /// Tokens per sequence, [CLS] and [SEP] included; longer texts are cut, shorter padded.
    pub max_len: usize,
    /// A `tokenizer.json` to use instead of training one (a run's own, for evaluation).
    pub file: Option<std::path::PathBuf>,
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        TokenizerOptions {
            kind: TokenizerKind::WordPiece,
            vocab_size: 8000,
            min_frequency: 2,
            lowercase: true,
            max_len: 64,
            file: None,
        }
    }
}

impl TokenizerOptions {
    pub fn check(&self) -> Result<(), String> {
        if self.vocab_size < 100 {
            return Err(format!(
                "data.tokenizer.vocab_size = {} is too small (at least 100)",
                self.vocab_size
            ));
        }
        if self.max_len < 4 {
            return Err(format!(
                "data.tokenizer.max_len = {} leaves no room for text",
                self.max_len
            ));
        }
        Ok(())
    }
}

/// One text as the model reads it: `max_len` ids (padded with [PAD]) and, per position, the
/// index of the word the piece belongs to (-1 for special tokens and padding).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub words: Vec<i32>,
}

/// A trained tokenizer and the sequence length it encodes to.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TextTokenizer(vocab {}, max_len {})",
            self.vocab_size(),
            self.max_len
        )
    }
}

impl TextTokenizer {
    /// Trains on `texts`. Not bit-reproducible: the `tokenizers` crate iterates hash maps
    /// seeded per map, so ties between equally frequent merges can fall differently from one
    /// training to the next; a run saves the tokenizer it trained and reads that one back.
    pub fn train(texts: &[String], opts: &TokenizerOptions) -> anyhow::Result<TextTokenizer> {
        opts.check().map_err(anyhow::Error::msg)?;
        let specials: Vec<AddedToken> = SPECIAL_NAMES
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect();
        let mut tok = Tokenizer::new(match opts.kind {
            TokenizerKind::WordPiece => {
                tokenizers::models::ModelWrapper::from(WordPiece::default())
            }
            TokenizerKind::Bpe => BPE::builder()
                .continuing_subword_prefix(CONTINUES.into())
                .unk_token("[UNK]".into())
                .build()
                .map_err(|e| anyhow::anyhow!("BPE: {e}"))?
                .into(),
        });
        tok.with_normalizer(Some(BertNormalizer::new(true, true, None, opts.lowercase)));
        tok.with_pre_tokenizer(Some(BertPreTokenizer));
        tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::new(
            CONTINUES.into(),
            true,
        )));
        let mut trainer: TrainerWrapper = match opts.kind {
            TokenizerKind::WordPiece => WordPieceTrainerBuilder::new()
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(specials.clone())
                .continuing_subword_prefix(CONTINUES.into())
                .show_progress(false)
                .build()
                .into(),
            TokenizerKind::Bpe => BpeTrainerBuilder::new()
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(specials.clone())
                .continuing_subword_prefix(CONTINUES.into())
                .show_progress(false)
                .build()
                .into(),
        };
        tok.train(&mut trainer, texts.iter())
            .map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
        let t = TextTokenizer {
            inner: tok,
            max_len: opts.max_len,
        };
        t.check_specials()?;
        Ok(t)
    }

    /// Loads a saved `tokenizer.json`.
    pub fn load(path: &Path, max_len: usize) -> anyhow::Result<TextTokenizer> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{}: not a tokenizer: {e}", path.display()))?;
        let t = TextTokenizer { inner, max_len };
        t.check_specials()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(t)
    }

    fn check_specials(&self) -> anyhow::Result<()> {
        for (id, name) in SPECIAL_NAMES.iter().enumerate() {
            anyhow::ensure!(
                self.inner.token_to_id(name) == Some(id as u32),
                "the special token {name} must have id {id}"
            );
        }
        Ok(())
    }

    /// The tokenizer as JSON (what `tokenizer.json` holds).
    pub fn to_json(&self) -> anyhow::Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| anyhow::anyhow!("serialising the tokenizer: {e}"))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.to_json()?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// `[CLS] pieces… [SEP]` cut to `max_len` and padded with [PAD].
    pub fn encode(&self, texts: &[String]) -> anyhow::Result<Vec<Encoded>> {
        let encodings = self
            .inner
            .encode_batch(texts.iter().map(|t| t.as_str()).collect::<Vec<_>>(), false)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        let room = self.max_len - 2;
        Ok(encodings
            .iter()
            .map(|e| {
                let n = e.get_ids().len().min(room);
                let mut ids = Vec::with_capacity(self.max_len);
                let mut words = Vec::with_capacity(self.max_len);
                ids.push(CLS);
                words.push(-1);
                ids.extend_from_slice(&e.get_ids()[..n]);
                words.extend(
                    e.get_word_ids()[..n]
                        .iter()
                        .map(|w| w.map_or(-1, |w| w as i32)),
                );
                ids.push(SEP);
                words.push(-1);
                ids.resize(self.max_len, PAD);
                words.resize(self.max_len, -1);
                Encoded { ids, words }
            })
            .collect())
    }

    /// The text of `ids`, special tokens left out and `##` pieces joined to their word.
    pub fn decode(&self, ids: &[u32]) -> anyhow::Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }

    /// The piece of `id`.
    pub fn piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let words = [
            "the",
            "film",
            "is",
            "good",
            "bad",
            "great",
            "boring",
            "plot",
            "actors",
            "wonderful",
            "terrible",
            "story",
            "and",
            "but",
            "not",
            "very",
            "movie",
            "funny",
            "sad",
            "music",
        ];
        (0..400)
            .map(|i| {
                (0..8)
                    .map(|j| words[(i * 7 + j * 13 + i / 3) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn opts(kind: TokenizerKind) -> TokenizerOptions {
        TokenizerOptions {
            kind,
            vocab_size: 120,
            max_len: 12,
            ..Default::default()
        }
    }

    /// Encode then decode gives the (normalised) text back, for both kinds; specials sit at
    /// their fixed ids; words are numbered; the JSON reloads to the same encodings.
    #[test]
    fn round_trip_and_reload() {
        for kind in [TokenizerKind::WordPiece, TokenizerKind::Bpe] {
            let long = TokenizerOptions {
                max_len: 32,
                ..opts(kind)
            };
            let tok = TextTokenizer::train(&corpus(), &long).unwrap();
            assert!(tok.vocab_size() <= 120 && tok.vocab_size() > 30, "{kind:?}");
            // Lower-cased by the normaliser; every character was in the training text.
            let text = vec!["The FILM is wonderful  not boring".to_string()];
            let e = &tok.encode(&text).unwrap()[0];
            assert_eq!(e.ids.len(), 32);
            assert_eq!(e.ids[0], CLS);
            let end = e.ids.iter().position(|&i| i == SEP).unwrap();
            assert!(e.ids[end + 1..].iter().all(|&i| i == PAD));
            assert!(!e.ids.contains(&UNK));
            assert_eq!(
                tok.decode(&e.ids).unwrap(),
                "the film is wonderful not boring"
            );
            // Word indices: -1 on specials, non-decreasing, a new word wherever a piece does
            // not start with ##.
            assert_eq!(e.words[0], -1);
            for p in 2..end {
                let piece = tok.piece(e.ids[p]).unwrap();
                let same = e.words[p] == e.words[p - 1];
                assert_eq!(same, piece.starts_with(CONTINUES), "{kind:?} {piece}");
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokenizer.json");
            tok.save(&path).unwrap();
            let again = TextTokenizer::load(&path, 32).unwrap();
            assert_eq!(again.encode(&text).unwrap(), tok.encode(&text).unwrap());
            // Training again need not give the same pieces (the crate's hash maps are seeded
            // per map), which is why runs save and reload theirs; the layout stays the same.
            let twice = TextTokenizer::train(&corpus(), &long).unwrap();
            assert!(twice.vocab_size() <= 120);
            assert_eq!(twice.encode(&text).unwrap()[0].ids[0], CLS);
        }
    }

    #[test]
    fn long_texts_are_cut_and_unknown_characters_map_to_unk() {
        let tok = TextTokenizer::train(&corpus(), &opts(TokenizerKind::WordPiece)).unwrap();
        let long = vec![corpus()[..5].join(" "), "☃".to_string()];
        let e = tok.encode(&long).unwrap();
        assert_eq!(e[0].ids.len(), 12);
        assert_eq!(e[0].ids[11], SEP);
        assert_eq!(e[1].ids[..3], [CLS, UNK, SEP]);
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        std::fs::write(&p, "{\"not\": 1}").unwrap();
        let err = TextTokenizer::load(&p, 8).unwrap_err().to_string();
        assert!(err.contains("t.json"), "{err}");
    }
}
