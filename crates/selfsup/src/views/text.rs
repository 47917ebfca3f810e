//! Tokenized texts as the loader hands them to a text method.
//!
//! A text sample has two views, both `[max_len]` numbers: view 0 is its token ids (what the
//! encoder reads, also the plain input), view 1 the word each token belongs to (-1 on special
//! tokens and padding). Text methods corrupt the ids themselves (masking, substitution, swaps)
//! and read word boundaries from view 1 for whole-word and span masking; SimCSE's two views are
//! two dropout passes over view 0. Ids are held as f32, which is exact below 2²⁴.
use super::ViewSource;
use crate::data::text::{Encoded, TextSet, TextTokenizer};
use rand_chacha::ChaCha8Rng;

pub struct TextViews {
    ids: Vec<u32>,
    words: Vec<i32>,
    labels: Option<Vec<i64>>,
    n_classes: usize,
    max_len: usize,
}

impl TextViews {
    /// Tokenizes `texts` with `tok`; `labels`/`n_classes` describe them when labelled.
    pub fn new(
        texts: &[String],
        labels: Option<Vec<i64>>,
        n_classes: usize,
        tok: &TextTokenizer,
    ) -> anyhow::Result<TextViews> {
        Ok(Self::from_encoded(
            &tok.encode(texts)?,
            labels,
            n_classes,
            tok.max_len(),
        ))
    }

    pub fn from_set(set: &TextSet, tok: &TextTokenizer) -> anyhow::Result<TextViews> {
        Self::new(&set.texts, set.labels.clone(), set.class_names.len(), tok)
    }

    pub fn from_encoded(
        enc: &[Encoded],
        labels: Option<Vec<i64>>,
        n_classes: usize,
        max_len: usize,
    ) -> TextViews {
        TextViews {
            ids: enc.iter().flat_map(|e| e.ids.iter().copied()).collect(),
            words: enc.iter().flat_map(|e| e.words.iter().copied()).collect(),
            labels,
            n_classes,
            max_len,
        }
    }

    /// The samples `order[0]`, `order[1]`, … of this set, as a set of their own.
    pub fn reordered(&self, order: &[usize]) -> TextViews {
        let l = self.max_len;
        TextViews {
            ids: order
                .iter()
                .flat_map(|&i| self.ids[i * l..(i + 1) * l].iter().copied())
                .collect(),
            words: order
                .iter()
                .flat_map(|&i| self.words[i * l..(i + 1) * l].iter().copied())
                .collect(),
            labels: self
                .labels
                .as_ref()
                .map(|v| order.iter().map(|&i| v[i]).collect()),
            n_classes: self.n_classes,
            max_len: l,
        }
    }

    /// Sample indices from the shortest text to the longest (stable): batches of similar
    /// lengths waste little on padding.
    pub fn by_length(&self) -> Vec<usize> {
        let len = |i: usize| {
            self.ids(i)
                .iter()
                .filter(|&&t| t != crate::data::text::tokenizer::PAD)
                .count()
        };
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| len(i));
        order
    }

    /// The token ids of sample `i`.
    pub fn ids(&self, i: usize) -> &[u32] {
        &self.ids[i * self.max_len..(i + 1) * self.max_len]
    }
}

impl ViewSource for TextViews {
    fn len(&self) -> usize {
        self.ids.len() / self.max_len.max(1)
    }
    fn sample_shape(&self) -> Vec<i64> {
        vec![self.max_len as i64]
    }
    fn make_view(&self, index: usize, view: usize, _rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let at = index * self.max_len..(index + 1) * self.max_len;
        if view % 2 == 0 {
            for (o, &i) in out.iter_mut().zip(&self.ids[at]) {
                *o = i as f32;
            }
        } else {
            for (o, &w) in out.iter_mut().zip(&self.words[at]) {
                *o = w as f32;
            }
        }
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(self.ids(index)) {
            *o = i as f32;
        }
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[index])
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn views_are_ids_then_words() {
        let enc = vec![
            Encoded {
                ids: vec![2, 7, 8, 3, 0],
                words: vec![-1, 0, 0, -1, -1],
            },
            Encoded {
                ids: vec![2, 9, 3, 0, 0],
                words: vec![-1, 0, -1, -1, -1],
            },
        ];
        let v = TextViews::from_encoded(&enc, Some(vec![1, 0]), 2, 5);
        assert_eq!((v.len(), v.sample_shape()), (2, vec![5]));
        let mut out = [0f32; 5];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        v.make_view(1, 0, &mut rng, &mut out);
        assert_eq!(out, [2.0, 9.0, 3.0, 0.0, 0.0]);
        v.make_view(0, 1, &mut rng, &mut out);
        assert_eq!(out, [-1.0, 0.0, 0.0, -1.0, -1.0]);
        v.make_plain(0, &mut out);
        assert_eq!(out, [2.0, 7.0, 8.0, 3.0, 0.0]);
        assert_eq!((v.label(0), v.n_classes()), (Some(1), 2));
        // Shortest first, and a reordered set carries ids, words and labels along.
        assert_eq!(v.by_length(), vec![1, 0]);
        let r = v.reordered(&[1, 0]);
        assert_eq!(r.ids(0), v.ids(1));
        assert_eq!((r.label(0), r.label(1)), (Some(0), Some(1)));
        r.make_view(1, 1, &mut rng, &mut out);
        assert_eq!(out, [-1.0, 0.0, 0.0, -1.0, -1.0]);
    }
}
