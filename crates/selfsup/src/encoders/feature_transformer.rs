//! A transformer over table features: each feature becomes one token (the feature tokenizer of
//! FT-Transformer, Gorishniy et al. 2021 §3.3), optionally with learned register tokens beside them
//! (T-JEPA's regularisation tokens, Thimonier et al. 2025), then pre-norm blocks.
//!
//! Tokenizer: a numeric feature x_j gives x_j·W_j + b_j; a categorical one with one-hot block o_j
//! gives o_jᵀE_j + b_j (an embedding lookup). Both are one product over the encoded row — each
//! encoded column c has its own weight row W[c], and feature j sums the columns of its block — so
//! the whole tokenizer is `A·(x ⊙ W) + b` with a fixed 0/1 block-assignment matrix A.
//!
//! Categories unseen in training: the CSV reader maps them to the column's missing level ("?")
//! when the training file had missing values, else to level 0, and counts them with a warning
//! (`data/csv_table.rs`); the tokenizer therefore always sees a valid one-hot block. An all-zero
//! block (possible only for hand-built rows) yields the feature's bias b_j alone.
use super::transformer::{Attention, TransformerStack};
use crate::data::FeatureSpan;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TablePooling {
    /// Mean of the feature-token outputs.
    Mean,
    /// All feature-token outputs side by side (`features × dim` wide), as T-JEPA's downstream
    /// models read them.
    Flatten,
}

#[derive(Debug)]
pub struct FeatureTokenizer {
    /// `[D_encoded, dim]`: one weight row per encoded column.
    weight: Tensor,
    /// `[F, dim]`.
    bias: Tensor,
    /// `[F, D_encoded]`, 1 where column c belongs to feature j.
    assign: Tensor,
}

impl FeatureTokenizer {
    pub fn new(p: &nn::Path, spans: &[FeatureSpan], dim: i64) -> Self {
        let d_enc: usize = spans.iter().map(|s| s.len).sum();
        let f = spans.len();
        // U(±1/√dim), FT-Transformer's initialisation of the tokenizer.
        let bound = 1.0 / (dim as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let mut a = vec![0f32; f * d_enc];
        for (j, s) in spans.iter().enumerate() {
            for c in s.start..s.start + s.len {
                a[j * d_enc + c] = 1.0;
            }
        }
        FeatureTokenizer {
            weight: p.var("weight", &[d_enc as i64, dim], init),
            bias: p.var("bias", &[f as i64, dim], init),
            assign: Tensor::from_slice(&a)
                .view([f as i64, d_enc as i64])
                .to_device(p.device()),
        }
    }
    /// `[N, D_encoded]` → `[N, F, dim]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.assign.matmul(&(x.unsqueeze(-1) * &self.weight)) + &self.bias
    }
}

#[derive(Debug)]
pub struct FeatureTransformer {
    tokenizer: FeatureTokenizer,
    registers: Option<Tensor>,
    stack: TransformerStack,
    pooling: TablePooling,
    n_features: i64,
    dim: i64,
}

impl FeatureTransformer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        spans: &[FeatureSpan],
        dim: i64,
        depth: usize,
        heads: i64,
        mlp_ratio: f64,
        registers: usize,
        pooling: TablePooling,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !spans.is_empty(),
            "feature_transformer: the table has no features"
        );
        anyhow::ensure!(
            heads > 0 && dim % heads == 0,
            "feature_transformer: width {dim} is not divisible by {heads} heads"
        );
        let registers = (registers > 0).then(|| {
            p.var(
                "registers",
                &[1, registers as i64, dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
        });
        Ok(FeatureTransformer {
            tokenizer: FeatureTokenizer::new(&(p / "tokenizer"), spans, dim),
            registers,
            stack: TransformerStack::new(p, dim, depth, heads, mlp_ratio, Attention::Fused, |_| {
                None
            }),
            pooling,
            n_features: spans.len() as i64,
            dim,
        })
    }
    pub fn n_features(&self) -> i64 {
        self.n_features
    }
    pub fn dim(&self) -> i64 {
        self.dim
    }
    /// Feature tokens `[N, F, dim]` of encoded rows `[N, D_encoded]`.
    pub fn tokens(&self, x: &Tensor) -> Tensor {
        self.tokenizer.forward(x)
    }
    /// Runs the blocks on (a subset of) feature tokens `[N, K, dim]`, with the register tokens in
    /// front; returns the K feature-token outputs.
    pub fn encode(&self, tokens: &Tensor) -> Tensor {
        match &self.registers {
            Some(r) => {
                let (n, k) = (tokens.size()[0], tokens.size()[1]);
                let r_len = r.size()[1];
                let x = Tensor::cat(
                    &[
                        r.expand([n, r_len, self.dim], false),
                        tokens.shallow_clone(),
                    ],
                    1,
                );
                self.stack.forward(&x).narrow(1, r_len, k)
            }
            None => self.stack.forward(tokens),
        }
    }
    pub fn pool(&self, h: &Tensor) -> Tensor {
        match self.pooling {
            TablePooling::Mean => h.mean_dim(1, false, Kind::Float),
            TablePooling::Flatten => h.flatten(1, 2),
        }
    }
}

impl nn::ModuleT for FeatureTransformer {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.pool(&self.encode(&self.tokens(x)))
    }
}

impl super::Encoder for FeatureTransformer {
    fn out_dim(&self) -> i64 {
        match self.pooling {
            TablePooling::Mean => self.dim,
            TablePooling::Flatten => self.dim * self.n_features,
        }
    }
    fn as_feature_transformer(&self) -> Option<&FeatureTransformer> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn spans() -> Vec<FeatureSpan> {
        // numeric, categorical with 3 levels, numeric
        vec![
            FeatureSpan {
                start: 0,
                len: 1,
                categorical: false,
            },
            FeatureSpan {
                start: 1,
                len: 3,
                categorical: true,
            },
            FeatureSpan {
                start: 4,
                len: 1,
                categorical: false,
            },
        ]
    }

    /// The block product equals the per-feature definition: x_j·W_j + b_j for numeric features,
    /// the embedding row of the active level plus b_j for categorical ones.
    #[test]
    fn tokens_are_scaled_weights_and_embedding_rows() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let t = FeatureTokenizer::new(&(vs.root() / "t"), &spans(), 4);
        let x = Tensor::from_slice(&[2.5f32, 0., 1., 0., -1.0]).view([1, 5]);
        let tok = t.forward(&x);
        assert_eq!(tok.size(), vec![1, 3, 4]);
        let w = &t.weight;
        let b = &t.bias;
        let want = [
            w.get(0) * 2.5 + b.get(0),
            w.get(2) + b.get(1), // level 1 of the categorical block
            w.get(4) * -1.0 + b.get(2),
        ];
        for (j, wj) in want.iter().enumerate() {
            let d = (tok.get(0).get(j as i64) - wj)
                .abs()
                .max()
                .double_value(&[]);
            assert!(d < 1e-6, "feature {j}: {d}");
        }
        // An all-zero categorical block gives the bias alone.
        let z = t.forward(&Tensor::zeros([1, 5], (Kind::Float, Device::Cpu)));
        assert!((z.get(0).get(1) - b.get(1)).abs().max().double_value(&[]) < 1e-7);
    }

    #[test]
    fn registers_are_dropped_from_the_output_and_pooling_sets_the_width() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let f = FeatureTransformer::new(
            &(vs.root() / "e"),
            &spans(),
            8,
            1,
            2,
            2.0,
            2,
            TablePooling::Flatten,
        )
        .unwrap();
        let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        let h = f.encode(&f.tokens(&x));
        assert_eq!(h.size(), vec![4, 3, 8]);
        use crate::encoders::Encoder;
        use nn::ModuleT;
        assert_eq!(f.forward_t(&x, false).size(), vec![4, f.out_dim()]);
        assert_eq!(f.out_dim(), 24);
    }
}
