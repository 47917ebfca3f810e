//! The evaluation protocols as functions of (train features, labels, test features, labels):
//! usable on a run's representations, on exported embeddings and on raw inputs alike. Each
//! result names its protocol and, where randomness enters (label subsets, episodes, k-means
//! initialisation), is repeated over seeds and reported as mean ± std.
use super::calibration::softmax_ece_from_logits;
use super::clustering::clustering_scores;
use super::few_shot::{few_shot_accuracy, FewShotConfig};
use super::knn::{knn_accuracy, knn_inputs, KnnConfig};
use super::label_fraction::stratified_subset;
use super::linear_probe::{fit_linear_probe, LinearProbeConfig};
use crate::stats::mean_std;
use anyhow::{anyhow, Result};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;
use tch::Tensor;

/// One protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteProtocol {
    /// Weighted kNN at the configured k.
    Knn,
    /// Weighted kNN over a grid of k (the best k is reported, and every k in the details).
    KnnGrid,
    /// Logistic regression on frozen features (L-BFGS, standardised).
    Linear,
    /// The linear probe trained on 1 %, 10 % and 100 % of the training labels (stratified).
    LabelFractions,
    /// N-way K-shot episodes with a nearest-prototype classifier.
    FewShot,
    /// k-means (k = number of classes) on the test features, scored by NMI and ARI.
    Cluster,
    /// Expected calibration error of the linear probe's softmax on the test split.
    Calibration,
}

impl SuiteProtocol {
    pub const ALL: [SuiteProtocol; 7] = [
        SuiteProtocol::Knn,
        SuiteProtocol::KnnGrid,
        SuiteProtocol::Linear,
        SuiteProtocol::LabelFractions,
        SuiteProtocol::FewShot,
        SuiteProtocol::Cluster,
        SuiteProtocol::Calibration,
    ];
}

#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub knn: KnnConfig,
    pub knn_grid: Vec<usize>,
    pub probe: LinearProbeConfig,
    pub fractions: Vec<f64>,
    pub n_way: usize,
    pub k_shots: Vec<usize>,
    pub n_query: usize,
    pub episodes: usize,
    pub ece_bins: usize,
    /// Seeds for every protocol with randomness.
    pub seeds: Vec<u64>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            knn: KnnConfig::default(),
            knn_grid: vec![1, 5, 10, 20, 50, 100, 200],
            probe: LinearProbeConfig::default(),
            // SimCLR's semi-supervised protocol (Chen et al. 2020, §6.2): 1 % and 10 % of labels.
            fractions: vec![0.01, 0.1, 1.0],
            // The usual few-shot settings: 5-way 1-shot and 5-shot, 15 queries per class.
            n_way: 5,
            k_shots: vec![1, 5],
            n_query: 15,
            episodes: 600,
            // Guo et al. 2017 use 15 bins.
            ece_bins: 15,
            seeds: vec![0, 1, 2],
        }
    }
}

/// One figure: `value` is the mean over `per_seed` (a single entry when no randomness enters).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRecord {
    /// Full protocol name, e.g. `linear-probe(lbfgs,wd=0.0001,standardised,labels=1%)`.
    pub protocol: String,
    /// `accuracy`, `nmi`, `ari` or `ece`.
    pub metric: String,
    /// Whose features: `learned`, `raw`, or a file name.
    pub features: String,
    pub value: f64,
    pub std: f64,
    pub per_seed: Vec<f64>,
    pub seconds: f64,
    pub details: serde_json::Value,
}

/// The data a protocol runs on.
pub struct Split<'a> {
    pub train: &'a Tensor,
    pub train_labels: &'a Tensor,
    pub test: &'a Tensor,
    pub test_labels: &'a Tensor,
    pub n_classes: i64,
}

fn record(
    features: &str,
    protocol: String,
    metric: &str,
    per_seed: Vec<f64>,
    started: Instant,
    details: serde_json::Value,
) -> SuiteRecord {
    let (value, std) = mean_std(&per_seed);
    SuiteRecord {
        protocol,
        metric: metric.into(),
        features: features.into(),
        value,
        std,
        per_seed,
        seconds: started.elapsed().as_secs_f64(),
        details,
    }
}

fn labels_vec(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.to_kind(tch::Kind::Int64).flatten(0, -1)).unwrap_or_default()
}

/// Weighted-kNN accuracy on `split` for one configuration, on the protocol's inputs for
/// `features` (prepared once and shared by every configuration scored).
fn knn_scorer<'a>(features: &str, split: &Split<'a>) -> impl Fn(&KnnConfig) -> f64 + 'a {
    let (train, test) = knn_inputs(features, split.train, split.test);
    let (ytr, yte, n_classes) = (split.train_labels, split.test_labels, split.n_classes);
    move |kc| knn_accuracy(&train, ytr, &test, yte, n_classes, kc)
}

/// Runs `protocol` on `split`; several records for protocols with several settings.
pub fn run_protocol(
    protocol: SuiteProtocol,
    features: &str,
    split: &Split,
    cfg: &SuiteConfig,
) -> Result<Vec<SuiteRecord>> {
    let t = Instant::now();
    let probe_name = |extra: &str| {
        format!(
            "linear-probe(lbfgs,wd={},standardised{extra})",
            cfg.probe.weight_decay
        )
    };
    cfg.probe.validate().map_err(|e| anyhow!(e))?;
    Ok(match protocol {
        SuiteProtocol::Knn => {
            cfg.knn.validate().map_err(|e| anyhow!(e))?;
            let a = knn_scorer(features, split)(&cfg.knn);
            vec![record(
                features,
                format!("knn(k={},T={},cosine)", cfg.knn.k, cfg.knn.temperature),
                "accuracy",
                vec![a],
                t,
                json!({}),
            )]
        }
        SuiteProtocol::KnnGrid => {
            let score = knn_scorer(features, split);
            let mut by_k = Vec::new();
            for &k in &cfg.knn_grid {
                let kc = KnnConfig {
                    k,
                    ..cfg.knn.clone()
                };
                kc.validate().map_err(|e| anyhow!(e))?;
                by_k.push((k, score(&kc)));
            }
            let (best_k, best) =
                by_k.iter()
                    .copied()
                    .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
            // Selecting k on the test split is optimistic; the name says so.
            vec![record(
                features,
                format!(
                    "knn-grid(best k on test,T={},cosine,k={best_k})",
                    cfg.knn.temperature
                ),
                "accuracy",
                vec![best],
                t,
                json!({ "accuracy_by_k": by_k }),
            )]
        }
        SuiteProtocol::Linear => {
            let p = fit_linear_probe(split.train, split.train_labels, split.n_classes, &cfg.probe);
            vec![record(
                features,
                probe_name(""),
                "accuracy",
                vec![p.accuracy(split.test, split.test_labels)],
                t,
                json!({ "iterations": p.report.iterations, "train_accuracy": p.accuracy(split.train, split.train_labels) }),
            )]
        }
        SuiteProtocol::LabelFractions => {
            let ytr = labels_vec(split.train_labels);
            let mut out = Vec::new();
            for &f in &cfg.fractions {
                let t = Instant::now();
                let seeds: &[u64] = if f >= 1.0 { &[0] } else { &cfg.seeds };
                let mut accs = Vec::new();
                let mut sizes = Vec::new();
                for &s in seeds {
                    let idx = stratified_subset(&ytr, f, s).map_err(|e| anyhow!(e))?;
                    sizes.push(idx.len());
                    let idx =
                        Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
                    let x = split.train.index_select(0, &idx);
                    let y = split.train_labels.index_select(0, &idx);
                    let p = fit_linear_probe(&x, &y, split.n_classes, &cfg.probe);
                    accs.push(p.accuracy(split.test, split.test_labels));
                }
                out.push(record(
                    features,
                    probe_name(&format!(",labels={}%,stratified", f * 100.0)),
                    "accuracy",
                    accs,
                    t,
                    json!({ "train_samples": sizes, "seeds": seeds }),
                ));
            }
            out
        }
        SuiteProtocol::FewShot => {
            let mut out = Vec::new();
            for &k_shot in &cfg.k_shots {
                let t = Instant::now();
                let mut accs = Vec::new();
                for &s in &cfg.seeds {
                    let fc = FewShotConfig {
                        n_way: cfg.n_way,
                        k_shot,
                        n_query: cfg.n_query,
                        episodes: cfg.episodes,
                        seed: s,
                    };
                    let r = few_shot_accuracy(split.test, split.test_labels, &fc)
                        .map_err(|e| anyhow!(e))?;
                    accs.push(r.mean);
                }
                out.push(record(
                    features,
                    format!(
                        "few-shot({}-way {k_shot}-shot,{} queries,{} episodes,nearest prototype,test split)",
                        cfg.n_way, cfg.n_query, cfg.episodes
                    ),
                    "accuracy",
                    accs,
                    t,
                    json!({ "seeds": cfg.seeds }),
                ));
            }
            out
        }
        SuiteProtocol::Cluster => {
            let (mut nmi, mut ari) = (Vec::new(), Vec::new());
            for &s in &cfg.seeds {
                let c =
                    clustering_scores(split.test, split.test_labels, split.n_classes as usize, s);
                nmi.push(c.nmi);
                ari.push(c.ari);
            }
            let name = format!("k-means(k={},l2-normalised,test split)", split.n_classes);
            vec![
                record(
                    features,
                    name.clone(),
                    "nmi",
                    nmi,
                    t,
                    json!({ "seeds": cfg.seeds }),
                ),
                record(features, name, "ari", ari, t, json!({ "seeds": cfg.seeds })),
            ]
        }
        SuiteProtocol::Calibration => {
            let p = fit_linear_probe(split.train, split.train_labels, split.n_classes, &cfg.probe);
            let ece =
                softmax_ece_from_logits(&p.logits(split.test), split.test_labels, cfg.ece_bins);
            vec![record(
                features,
                format!("{} ECE({} bins)", probe_name(""), cfg.ece_bins),
                "ece",
                vec![ece],
                t,
                json!({}),
            )]
        }
    })
}

/// A plain-text table of suite records.
pub fn format_records(records: &[SuiteRecord]) -> String {
    let mut s = format!(
        "{:<10} {:<72} {:<8} {:>16}\n",
        "features", "protocol", "metric", "value"
    );
    for r in records {
        let scale = if r.metric == "accuracy" { 100.0 } else { 1.0 };
        let v = if r.per_seed.len() > 1 {
            format!("{:.3} ± {:.3}", r.value * scale, r.std * scale)
        } else {
            format!("{:.3}", r.value * scale)
        };
        s.push_str(&format!(
            "{:<10} {:<72} {:<8} {:>16}\n",
            r.features,
            r.protocol,
            if scale == 100.0 { "acc %" } else { &r.metric },
            v
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Raw inputs are standardised before the kNN cosine, as in `selfsup pretrain`'s evaluation:
    /// the one informative column (±1) sits beside a constant column of 1000 that makes every raw
    /// vector point the same way. Unstandardised, the 3:1 majority class wins every vote (50 %);
    /// standardised, the constant column is centred away and the sign decides (100 %).
    #[test]
    fn knn_standardises_raw_inputs_only() {
        let rows = |signs: &[f32]| {
            let v: Vec<f32> = signs.iter().flat_map(|&s| [s, 1000.0]).collect();
            Tensor::from_slice(&v).view([signs.len() as i64, 2])
        };
        let label = |signs: &[f32]| {
            Tensor::from_slice(
                &signs
                    .iter()
                    .map(|&s| i64::from(s < 0.0))
                    .collect::<Vec<_>>(),
            )
        };
        let tr: Vec<f32> = [vec![1.0; 30], vec![-1.0; 10]].concat();
        let te = [1.0f32, 1.0, -1.0, -1.0];
        let (xtr, ytr, xte, yte) = (rows(&tr), label(&tr), rows(&te), label(&te));
        let split = Split {
            train: &xtr,
            train_labels: &ytr,
            test: &xte,
            test_labels: &yte,
            n_classes: 2,
        };
        let cfg = SuiteConfig {
            knn: KnnConfig {
                k: 40,
                ..Default::default()
            },
            knn_grid: vec![40],
            ..Default::default()
        };
        for p in [SuiteProtocol::Knn, SuiteProtocol::KnnGrid] {
            let acc = |features| run_protocol(p, features, &split, &cfg).unwrap()[0].value;
            assert_eq!(acc("raw"), 1.0, "{p:?}");
            assert_eq!(acc("learned"), 0.5, "{p:?}");
        }
    }

    /// Three tight, well-separated classes: every accuracy protocol gives 100 %, clustering
    /// NMI = ARI = 1.
    #[test]
    fn separable_data_scores_perfectly_under_every_protocol() {
        tch::manual_seed(0);
        let centres = Tensor::from_slice(&[
            10.0f32, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0, -10.0, 0.0, 0.0, 0.0, -10.0, 0.0,
        ])
        .view([5, 3]);
        let make = |per: i64| {
            let y = Tensor::arange(5, (Kind::Int64, Device::Cpu))
                .repeat_interleave_self_int(per, 0, None);
            let x = centres.index_select(0, &y)
                + Tensor::randn([5 * per, 3], (Kind::Float, Device::Cpu)) * 0.1;
            (x, y)
        };
        let (xtr, ytr) = make(100);
        let (xte, yte) = make(40);
        let split = Split {
            train: &xtr,
            train_labels: &ytr,
            test: &xte,
            test_labels: &yte,
            n_classes: 5,
        };
        let cfg = SuiteConfig {
            knn: KnnConfig {
                k: 10,
                ..Default::default()
            },
            knn_grid: vec![1, 10],
            episodes: 20,
            seeds: vec![0, 1],
            ..Default::default()
        };
        for p in SuiteProtocol::ALL {
            for r in run_protocol(p, "synthetic", &split, &cfg).unwrap() {
                match r.metric.as_str() {
                    "accuracy" | "nmi" | "ari" => {
                        assert!(
                            (r.value - 1.0).abs() < 1e-9,
                            "{} {}: {}",
                            r.protocol,
                            r.metric,
                            r.value
                        )
                    }
                    // Perfect but not fully confident predictions: ECE is the mean shortfall of
                    // confidence from 1, small here.
                    "ece" => assert!(r.value < 0.05, "{}: {}", r.protocol, r.value),
                    m => panic!("unexpected metric {m}"),
                }
            }
        }
    }

    #[test]
    fn label_fractions_train_on_the_stated_number_of_samples() {
        let x = Tensor::randn([200, 4], (Kind::Float, Device::Cpu));
        let y = Tensor::arange(200, (Kind::Int64, Device::Cpu)).remainder(4);
        let split = Split {
            train: &x,
            train_labels: &y,
            test: &x,
            test_labels: &y,
            n_classes: 4,
        };
        let cfg = SuiteConfig {
            fractions: vec![0.1, 1.0],
            seeds: vec![3, 4],
            ..Default::default()
        };
        let r = run_protocol(SuiteProtocol::LabelFractions, "x", &split, &cfg).unwrap();
        assert_eq!(r.len(), 2);
        // 10 % of 50 per class = 5 per class = 20 samples, for each of the two seeds.
        assert_eq!(r[0].details["train_samples"], json!([20, 20]));
        assert_eq!(r[0].per_seed.len(), 2);
        assert!(r[0].protocol.contains("labels=10%"));
        assert_eq!(r[1].details["train_samples"], json!([200]));
    }
}
