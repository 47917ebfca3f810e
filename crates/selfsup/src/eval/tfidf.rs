//! The bag-of-n-grams baseline of text classification: TF-IDF features of word and character
//! n-grams, and multinomial logistic regression on them (L-BFGS on sparse features).
//!
//! Weighting as scikit-learn's `TfidfVectorizer(sublinear_tf=True)`: tf = 1 + ln(count),
//! idf = ln((1 + N) / (1 + df)) + 1, each row scaled to unit L2 norm. Words are the lower-cased
//! runs of alphanumeric characters; character n-grams run over the lower-cased text with its
//! whitespace collapsed to single spaces. Only n-grams seen in at least `min_df` training texts
//! are kept, the `max_features` most frequent of them.
use super::lbfgs::{minimise, LbfgsConfig};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TfidfConfig {
    /// Word n-gram lengths, inclusive (none: no word features).
    pub words: Option<(usize, usize)>,
    /// Character n-gram lengths, inclusive (none: no character features).
    pub chars: Option<(usize, usize)>,
    pub min_df: usize,
    pub max_features: usize,
}

impl TfidfConfig {
    /// Word unigrams and bigrams.
    pub fn words() -> TfidfConfig {
        TfidfConfig {
            words: Some((1, 2)),
            chars: None,
            min_df: 2,
            max_features: 200_000,
        }
    }
    /// Word 1–2-grams and character 2–5-grams.
    pub fn words_and_chars() -> TfidfConfig {
        TfidfConfig {
            chars: Some((2, 5)),
            ..TfidfConfig::words()
        }
    }
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((a, b)) = self.words {
            parts.push(format!("word {a}-{b}-grams"));
        }
        if let Some((a, b)) = self.chars {
            parts.push(format!("char {a}-{b}-grams"));
        }
        format!("TF-IDF ({})", parts.join(" + "))
    }
}

/// The n-grams of one text, as strings (word n-grams prefixed `w:`, character ones `c:`).
pub fn ngrams(text: &str, cfg: &TfidfConfig) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    if let Some((lo, hi)) = cfg.words {
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for n in lo..=hi {
            for w in words.windows(n) {
                out.push(format!("w:{}", w.join(" ")));
            }
        }
    }
    if let Some((lo, hi)) = cfg.chars {
        let chars: Vec<char> = lower
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .collect();
        for n in lo..=hi {
            for w in chars.windows(n) {
                let mut s = String::from("c:");
                s.extend(w);
                out.push(s);
            }
        }
    }
    out
}

/// A fitted vocabulary: n-gram → column, with its idf.
#[derive(Debug, Clone)]
pub struct Tfidf {
    cfg: TfidfConfig,
    columns: HashMap<String, usize>,
    idf: Vec<f32>,
}

/// Sparse rows: for each row, (column, value) pairs.
pub type SparseRows = Vec<Vec<(usize, f32)>>;

impl Tfidf {
    pub fn fit(texts: &[String], cfg: &TfidfConfig) -> Tfidf {
        let mut df: HashMap<String, usize> = HashMap::new();
        for t in texts {
            let mut grams = ngrams(t, cfg);
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                *df.entry(g).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, usize)> = df
            .into_iter()
            .filter(|(_, d)| *d >= cfg.min_df.max(1))
            .collect();
        // Most frequent first, ties by the n-gram itself: a deterministic vocabulary.
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(cfg.max_features);
        let n = texts.len() as f64;
        let idf = kept
            .iter()
            .map(|(_, d)| (((1.0 + n) / (1.0 + *d as f64)).ln() + 1.0) as f32)
            .collect();
        let columns = kept
            .into_iter()
            .enumerate()
            .map(|(i, (g, _))| (g, i))
            .collect();
        Tfidf {
            cfg: cfg.clone(),
            columns,
            idf,
        }
    }

    pub fn n_features(&self) -> usize {
        self.idf.len()
    }

    /// Unit-norm TF-IDF rows of `texts` (n-grams outside the vocabulary are dropped).
    pub fn transform(&self, texts: &[String]) -> SparseRows {
        texts
            .iter()
            .map(|t| {
                let mut counts: HashMap<usize, f32> = HashMap::new();
                for g in ngrams(t, &self.cfg) {
                    if let Some(&c) = self.columns.get(&g) {
                        *counts.entry(c).or_default() += 1.0;
                    }
                }
                let mut row: Vec<(usize, f32)> = counts
                    .into_iter()
                    .map(|(c, k)| (c, (1.0 + k.ln()) * self.idf[c]))
                    .collect();
                row.sort_unstable_by_key(|e| e.0);
                let norm = row.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|e| e.1 /= norm);
                }
                row
            })
            .collect()
    }
}

/// Rows as a sparse COO tensor `[rows, n_features]`.
pub fn sparse_tensor(rows: &SparseRows, n_features: usize) -> Tensor {
    let (mut r, mut c, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in rows.iter().enumerate() {
        for &(j, x) in row {
            r.push(i as i64);
            c.push(j as i64);
            v.push(x);
        }
    }
    let idx = Tensor::stack(&[Tensor::from_slice(&r), Tensor::from_slice(&c)], 0);
    Tensor::sparse_coo_tensor_indices_size(
        &idx,
        &Tensor::from_slice(&v),
        [rows.len() as i64, n_features as i64],
        (Kind::Float, Device::Cpu),
        true,
    )
}

/// The regularised cross-entropy of a softmax regression on sparse rows, with its gradient
/// written out: ∂/∂W = Xᵀ(P − Y)/N + wd·W, ∂/∂b = Σ_rows (P − Y)/N.
struct Objective {
    xs: Tensor,
    xt: Tensor,
    onehot: Tensor,
    f: i64,
    c: i64,
    wd: f64,
    n: f64,
}

impl Objective {
    fn new(x: &SparseRows, n_features: usize, y: &[i64], n_classes: i64, wd: f64) -> Objective {
        let xs = sparse_tensor(x, n_features);
        Objective {
            xt: xs.transpose(0, 1).coalesce(),
            xs,
            onehot: Tensor::from_slice(y)
                .one_hot(n_classes)
                .to_kind(Kind::Float),
            f: n_features as i64,
            c: n_classes,
            wd,
            n: x.len() as f64,
        }
    }
    fn len(&self) -> i64 {
        self.f * self.c + self.c
    }
    fn split(&self, theta: &Tensor) -> (Tensor, Tensor) {
        (
            theta.narrow(0, 0, self.f * self.c).view([self.f, self.c]),
            theta.narrow(0, self.f * self.c, self.c),
        )
    }
    fn loss_and_grad(&self, theta: &Tensor) -> (f64, Tensor) {
        let (w, b) = self.split(theta);
        let logp = (self.xs.mm(&w) + &b).log_softmax(1, Kind::Float);
        let ce = -(&logp * &self.onehot).sum(Kind::Float).double_value(&[]) / self.n;
        let loss = ce + 0.5 * self.wd * w.square().sum(Kind::Float).double_value(&[]);
        let d = (logp.exp() - &self.onehot) / self.n;
        let gw = self.xt.mm(&d) + &w * self.wd;
        let gb = d.sum_dim_intlist(0, false, Kind::Float);
        (loss, Tensor::cat(&[gw.flatten(0, -1), gb], 0))
    }
}

/// Multinomial logistic regression on sparse rows: weights `[F, C]`, bias `[C]`.
pub struct SparseLogistic {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl SparseLogistic {
    /// Minimises mean cross-entropy + ½·wd·‖W‖² with L-BFGS (`max_iter` iterations). With
    /// wd = 1/(C·N) this is scikit-learn's `LogisticRegression(C)`, whose default is C = 1.
    pub fn fit(
        x: &SparseRows,
        n_features: usize,
        y: &[i64],
        n_classes: i64,
        wd: f64,
        max_iter: usize,
    ) -> SparseLogistic {
        let obj = Objective::new(x, n_features, y, n_classes, wd);
        let theta0 = Tensor::zeros([obj.len()], (Kind::Float, Device::Cpu));
        let cfg = LbfgsConfig {
            lr: 1.0,
            max_iter,
            history_size: 20,
            ..LbfgsConfig::default()
        };
        let (theta, _) = tch::no_grad(|| minimise(&theta0, &cfg, |t| obj.loss_and_grad(t)));
        let (w, b) = obj.split(&theta);
        SparseLogistic {
            weight: w.contiguous(),
            bias: b.contiguous(),
        }
    }

    pub fn predict(&self, x: &SparseRows) -> Vec<i64> {
        let xs = sparse_tensor(x, self.weight.size()[0] as usize);
        let z = tch::no_grad(|| xs.mm(&self.weight) + &self.bias);
        Vec::try_from(z.argmax(1, false)).expect("int64 predictions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ngrams_of_words_and_characters() {
        let g = ngrams(
            "Good  film!",
            &TfidfConfig {
                chars: Some((3, 3)),
                ..TfidfConfig::words()
            },
        );
        let want = [
            "w:good",
            "w:film",
            "w:good film",
            "c:goo",
            "c:ood",
            "c:od ",
            "c:d f",
            "c: fi",
            "c:fil",
            "c:ilm",
            "c:lm!",
        ];
        assert_eq!(g, want.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    }

    /// Weights against scikit-learn's formula computed by hand for a three-text corpus.
    #[test]
    fn weights_follow_the_sublinear_tfidf_formula() {
        let cfg = TfidfConfig {
            words: Some((1, 1)),
            chars: None,
            min_df: 1,
            max_features: 100,
        };
        let texts = s(&["a a b", "b c", "c"]);
        let t = Tfidf::fit(&texts, &cfg);
        assert_eq!(t.n_features(), 3);
        let rows = t.transform(&s(&["a a b"]));
        let idf = |df: f64| ((4.0 / (1.0 + df)) as f64).ln() + 1.0;
        let (wa, wb) = ((1.0 + 2f64.ln()) * idf(1.0), idf(2.0));
        let norm = (wa * wa + wb * wb).sqrt();
        let mut got: Vec<f64> = rows[0].iter().map(|e| e.1 as f64).collect();
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut want = vec![wa / norm, wb / norm];
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // min_df drops n-grams of a single text.
        let t2 = Tfidf::fit(&texts, &TfidfConfig { min_df: 2, ..cfg });
        assert_eq!(t2.n_features(), 2);
    }

    /// The written-out gradient against central finite differences of the loss.
    #[test]
    fn gradient_matches_finite_differences() {
        let rows: SparseRows = vec![
            vec![(0, 0.6), (2, 0.8)],
            vec![(1, 1.0)],
            vec![(0, 0.3), (1, 0.4), (2, 0.866)],
        ];
        let obj = Objective::new(&rows, 3, &[0, 2, 1], 3, 0.1);
        let theta = (Tensor::arange(obj.len(), (Kind::Double, Device::Cpu)) * 0.37)
            .sin()
            .to_kind(Kind::Float);
        let (_, g) = obj.loss_and_grad(&theta);
        let g: Vec<f32> = Vec::try_from(g).unwrap();
        let eps = 1e-2;
        for i in 0..obj.len() {
            let bump = |s: f64| {
                let t = theta.copy();
                let _ = t.get(i).fill_(theta.get(i).double_value(&[]) + s);
                obj.loss_and_grad(&t).0
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
            assert!(
                (fd - g[i as usize] as f64).abs() < 1e-3,
                "{i}: {fd} vs {}",
                g[i as usize]
            );
        }
    }

    /// Separable sentiment words are learned.
    #[test]
    fn logistic_regression_learns_separable_words() {
        let train = s(&[
            "good great",
            "great fun",
            "good fun film",
            "bad awful",
            "awful film",
            "bad boring",
        ]);
        let y = [1i64, 1, 1, 0, 0, 0];
        let cfg = TfidfConfig {
            words: Some((1, 1)),
            chars: None,
            min_df: 1,
            max_features: 100,
        };
        let t = Tfidf::fit(&train, &cfg);
        let m = SparseLogistic::fit(&t.transform(&train), t.n_features(), &y, 2, 1e-3, 100);
        assert_eq!(m.predict(&t.transform(&train)), y.to_vec());
        assert_eq!(
            m.predict(&t.transform(&s(&["great film", "boring awful"]))),
            vec![1, 0]
        );
    }
}
