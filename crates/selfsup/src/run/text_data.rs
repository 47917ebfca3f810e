//! A text recipe's data as a run reads it: the files, the tokenizer (trained on the
//! pretraining texts, or the run's saved one) and the tokenized view sources.
use crate::data;
use crate::error::{BadInputPolicy, SkipReport};
use crate::recipe::{DataConfig, Recipe};
use crate::views::ViewSource;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

/// A text run is evaluated with the tokenizer it was trained with: its `tokenizer.json`.
pub fn use_run_tokenizer(recipe: &mut Recipe, run_dir: &Path) {
    let saved = run_dir.join("tokenizer.json");
    if let DataConfig::Text { tokenizer, .. } = &mut recipe.data {
        if saved.exists() {
            tokenizer.file = Some(saved);
        }
    }
}

/// A text recipe's view sources.
pub(super) struct TextSources {
    pub train: Arc<dyn ViewSource>,
    pub test: Option<Arc<dyn ViewSource>>,
    pub pretrain: Arc<dyn ViewSource>,
    pub tokenizer: Arc<data::text::TextTokenizer>,
    pub skipped: SkipReport,
}

/// Reads a text recipe's files, trains its tokenizer on the pretraining texts (or loads
/// `options.file`) and tokenizes: the labelled training set, the test set, and the training
/// texts followed by the corpora for pretraining.
#[allow(clippy::too_many_arguments)]
pub(super) fn text_sources(
    recipe: &Recipe,
    train: &data::text::TextFile,
    test: Option<&data::text::TextFile>,
    corpora: &[data::text::TextFile],
    options: &data::text::TokenizerOptions,
    policy: BadInputPolicy,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<TextSources> {
    use crate::views::text::TextViews;
    let mut d = data::text::load_text(train, test, corpora, policy)?;
    if d.repaired > 0 {
        tracing::warn!(
            "{} text lines repaired by their file's utf8/long_lines policy",
            d.repaired
        );
    }
    let cut = |s: &data::text::TextSet, n: Option<usize>| match n.filter(|&n| n < s.len()) {
        Some(n) => s.subset(&(0..n).collect::<Vec<_>>()),
        None => s.clone(),
    };
    d.train = cut(&d.train, train_limit);
    let texts = d.pretraining_texts();
    let tok = match &options.file {
        Some(f) => data::text::TextTokenizer::load(f, options.max_len)?,
        None => data::text::TextTokenizer::train(&texts, options)?,
    };
    anyhow::ensure!(
        tok.vocab_size() as i64 <= recipe.encoder_vocab().unwrap_or(i64::MAX),
        "the tokenizer has {} tokens, more than encoder.vocab = {:?}",
        tok.vocab_size(),
        recipe.encoder_vocab()
    );
    let train_views = TextViews::from_set(&d.train, &tok)?;
    let pretrain = if d.corpora.is_empty() {
        None
    } else {
        Some(Arc::new(TextViews::new(&texts, None, 0, &tok)?) as Arc<dyn ViewSource>)
    };
    let test_views = match &d.test {
        Some(t) => {
            Some(Arc::new(TextViews::from_set(&cut(t, test_limit), &tok)?) as Arc<dyn ViewSource>)
        }
        None => None,
    };
    let train_views: Arc<dyn ViewSource> = Arc::new(train_views);
    Ok(TextSources {
        pretrain: pretrain.unwrap_or_else(|| train_views.clone()),
        train: train_views,
        test: test_views,
        tokenizer: Arc::new(tok),
        skipped: d.skipped,
    })
}
