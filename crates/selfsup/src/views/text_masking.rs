//! Which tokens of a sentence a text objective corrupts, and how.
//!
//! Strategies pick a share `rate` of a sentence's ordinary tokens (special tokens and padding
//! are never picked): single tokens (BERT, Devlin et al. 2019), whole words (every piece of a
//! picked word, BERT's later whole-word masking), or spans of whole words whose length in words
//! is geometric with p = 0.2, clipped at 10 (SpanBERT, Joshi et al. 2020). BERT's 80/10/10
//! rule then decides what a picked token becomes.
use crate::data::text::tokenizer::{MASK, N_SPECIAL};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStrategy {
    #[default]
    Token,
    WholeWord,
    Span,
}

/// SpanBERT's span lengths (in words): geometric with parameter `p`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpanLengths {
    pub p: f64,
    pub max: usize,
}

impl Default for SpanLengths {
    fn default() -> Self {
        SpanLengths { p: 0.2, max: 10 }
    }
}

impl SpanLengths {
    /// One length ℓ ≥ 1 with P(ℓ) ∝ (1 − p)^(ℓ−1) p on 1..=max.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> usize {
        loop {
            let mut l = 1;
            while rng.gen::<f64>() >= self.p {
                l += 1;
                if l > self.max {
                    break;
                }
            }
            if l <= self.max {
                return l;
            }
        }
    }
    /// The mean of [`SpanLengths::draw`] (the clipped geometric's).
    pub fn mean(&self) -> f64 {
        let q = 1.0 - self.p;
        let (mut num, mut den) = (0.0, 0.0);
        for l in 1..=self.max {
            let w = q.powi(l as i32 - 1) * self.p;
            num += l as f64 * w;
            den += w;
        }
        num / den
    }
}

/// How many of `n` ordinary tokens a rate picks: round(rate·n), at least one.
pub fn budget(n: usize, rate: f64) -> usize {
    if n == 0 {
        0
    } else {
        ((rate * n as f64).round() as usize).clamp(1, n)
    }
}

/// The words of a sentence: for each word index in order, the positions of its pieces.
fn word_groups(words: &[i32]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut last = -1;
    for (p, &w) in words.iter().enumerate() {
        if w < 0 {
            continue;
        }
        if w != last || groups.is_empty() {
            groups.push(Vec::new());
            last = w;
        }
        groups.last_mut().expect("pushed").push(p);
    }
    groups
}

/// The positions to corrupt: `picked[p]` for each position of `words` (the per-token word
/// indices of one sentence, -1 on specials and padding).
pub fn choose(
    words: &[i32],
    rate: f64,
    strategy: MaskStrategy,
    spans: SpanLengths,
    rng: &mut ChaCha8Rng,
) -> Vec<bool> {
    let mut picked = vec![false; words.len()];
    let n = words.iter().filter(|&&w| w >= 0).count();
    let want = budget(n, rate);
    if want == 0 {
        return picked;
    }
    match strategy {
        MaskStrategy::Token => {
            let mut cand: Vec<usize> = (0..words.len()).filter(|&p| words[p] >= 0).collect();
            cand.shuffle(rng);
            for &p in &cand[..want] {
                picked[p] = true;
            }
        }
        MaskStrategy::WholeWord => {
            let mut groups = word_groups(words);
            groups.shuffle(rng);
            let mut got = 0;
            for g in &groups {
                // A word that would overshoot the budget is passed over (BERT's rule), except
                // that something is always picked.
                if got + g.len() > want && got > 0 {
                    continue;
                }
                g.iter().for_each(|&p| picked[p] = true);
                got += g.len();
                if got >= want {
                    break;
                }
            }
        }
        MaskStrategy::Span => {
            let groups = word_groups(words);
            let mut taken = vec![false; groups.len()];
            let mut got = 0;
            // Enough tries to place the budget in any sentence; a sentence whose free words
            // run out ends with what it has.
            for _ in 0..4 * groups.len() + 8 {
                if got >= want {
                    break;
                }
                let len = spans.draw(rng).min(groups.len());
                let start = rng.gen_range(0..=groups.len() - len);
                for w in start..start + len {
                    if taken[w] {
                        continue;
                    }
                    if got + groups[w].len() > want && got > 0 {
                        break;
                    }
                    taken[w] = true;
                    groups[w].iter().for_each(|&p| picked[p] = true);
                    got += groups[w].len();
                }
            }
        }
    }
    picked
}

/// BERT's rule for a picked token: [MASK] with probability `mask`, a random ordinary token with
/// probability `random`, else left as it is. Returns the corrupted ids.
pub fn bert_corrupt(
    ids: &[u32],
    picked: &[bool],
    vocab: u32,
    mask: f64,
    random: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    ids.iter()
        .zip(picked)
        .map(|(&id, &p)| {
            if !p {
                return id;
            }
            let u: f64 = rng.gen();
            if u < mask {
                MASK
            } else if u < mask + random {
                rng.gen_range(N_SPECIAL..vocab)
            } else {
                id
            }
        })
        .collect()
}

/// A random ordinary token other than `id` (when the vocabulary has another).
pub fn other_token(id: u32, vocab: u32, rng: &mut ChaCha8Rng) -> u32 {
    if vocab <= N_SPECIAL + 1 {
        return N_SPECIAL;
    }
    let t = rng.gen_range(N_SPECIAL..vocab - 1);
    if t >= id && id >= N_SPECIAL {
        t + 1
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// [CLS] w0 w0 w1 w2 w2 w2 w3 ... [SEP] [PAD]…: 60 words of 1–3 pieces.
    fn sentence() -> Vec<i32> {
        let mut w = vec![-1];
        for i in 0..60 {
            for _ in 0..(1 + i % 3) {
                w.push(i);
            }
        }
        w.push(-1);
        w.extend([-1; 5]);
        w
    }

    #[test]
    fn token_masking_picks_exactly_the_rate_and_never_a_special() {
        let words = sentence();
        let n = words.iter().filter(|&&w| w >= 0).count();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for rate in [0.15, 0.4] {
            let p = choose(
                &words,
                rate,
                MaskStrategy::Token,
                SpanLengths::default(),
                &mut rng,
            );
            assert_eq!(p.iter().filter(|&&b| b).count(), budget(n, rate));
            assert!(p.iter().zip(&words).all(|(&b, &w)| !b || w >= 0));
        }
        // One ordinary token: it is picked whatever the rate.
        let p = choose(
            &[-1, 0, -1],
            0.01,
            MaskStrategy::Token,
            SpanLengths::default(),
            &mut rng,
        );
        assert_eq!(p, vec![false, true, false]);
    }

    #[test]
    fn whole_word_masking_takes_words_whole_within_the_budget() {
        let words = sentence();
        let n = words.iter().filter(|&&w| w >= 0).count();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut total = 0;
        for _ in 0..50 {
            let p = choose(
                &words,
                0.15,
                MaskStrategy::WholeWord,
                SpanLengths::default(),
                &mut rng,
            );
            for g in word_groups(&words) {
                let k = g.iter().filter(|&&q| p[q]).count();
                assert!(k == 0 || k == g.len(), "a word was cut");
            }
            let got = p.iter().filter(|&&b| b).count();
            assert!(
                got <= budget(n, 0.15) && got + 2 >= budget(n, 0.15),
                "{got}"
            );
            total += got;
        }
        let rate = total as f64 / (50 * n) as f64;
        assert!((rate - 0.15).abs() < 0.01, "{rate}");
    }

    #[test]
    fn span_lengths_follow_the_clipped_geometric() {
        let s = SpanLengths::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<usize> = (0..20000).map(|_| s.draw(&mut rng)).collect();
        assert!(draws.iter().all(|&l| (1..=10).contains(&l)));
        let mean = draws.iter().sum::<usize>() as f64 / draws.len() as f64;
        // SpanBERT reports a mean span of 3.8 words for p = 0.2, max 10.
        assert!((s.mean() - 3.8).abs() < 0.05, "{}", s.mean());
        assert!((mean - s.mean()).abs() < 0.06, "{mean}");
        let ones = draws.iter().filter(|&&l| l == 1).count() as f64 / draws.len() as f64;
        assert!(
            (ones - 0.2 / (1.0 - 0.8f64.powi(10))).abs() < 0.015,
            "{ones}"
        );
    }

    #[test]
    fn span_masking_covers_the_rate_in_runs_of_whole_words() {
        let words = sentence();
        let n = words.iter().filter(|&&w| w >= 0).count();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut total, mut runs) = (0, 0);
        for _ in 0..50 {
            let p = choose(
                &words,
                0.15,
                MaskStrategy::Span,
                SpanLengths::default(),
                &mut rng,
            );
            let groups = word_groups(&words);
            let taken: Vec<bool> = groups.iter().map(|g| p[g[0]]).collect();
            for (g, &t) in groups.iter().zip(&taken) {
                assert!(g.iter().all(|&q| p[q] == t), "a word was cut");
            }
            runs += taken.windows(2).filter(|w| w[1] && !w[0]).count() + usize::from(taken[0]);
            total += p.iter().filter(|&&b| b).count();
        }
        let rate = total as f64 / (50 * n) as f64;
        assert!((rate - 0.15).abs() < 0.02, "{rate}");
        // Contiguous runs: far fewer runs than masked words (single-token masking would give
        // about one run per word).
        let words_masked = total as f64 / 2.0; // two pieces per word on average
        assert!(
            (runs as f64) < 0.6 * words_masked,
            "{runs} runs for {words_masked} words"
        );
    }

    #[test]
    fn bert_rule_splits_80_10_10() {
        let n = 30000;
        let ids: Vec<u32> = (0..n).map(|i| 10 + (i % 50) as u32).collect();
        let picked = vec![true; n];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let out = bert_corrupt(&ids, &picked, 100, 0.8, 0.1, &mut rng);
        let masked = out.iter().filter(|&&t| t == MASK).count() as f64 / n as f64;
        let same = out.iter().zip(&ids).filter(|(a, b)| a == b).count() as f64 / n as f64;
        assert!((masked - 0.8).abs() < 0.01, "{masked}");
        // Kept: 10 %, plus random draws that hit the same token (1 in 95).
        assert!((same - (0.1 + 0.1 / 95.0)).abs() < 0.01, "{same}");
        assert!(out.iter().all(|&t| t == MASK || t >= N_SPECIAL));
        let unpicked = bert_corrupt(&ids, &vec![false; n], 100, 0.8, 0.1, &mut rng);
        assert_eq!(unpicked, ids);
    }

    #[test]
    fn other_token_differs_and_stays_ordinary() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for _ in 0..1000 {
            let t = other_token(7, 9, &mut rng);
            assert!(t != 7 && (N_SPECIAL..9).contains(&t));
        }
    }
}
