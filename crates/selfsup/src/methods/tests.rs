//! Every registered method: a few real training steps on a tiny batch (loss, backward, the
//! method's hooks, an SGD update), with local crops and labels where the method takes them.
use super::*;
use crate::encoders::{self, EncoderConfig};
use crate::heads::Block;
use tch::{Device, Kind};

/// A small version of every method (narrow heads, short queues).
pub(crate) fn all_methods() -> Vec<MethodConfig> {
    let small = vec![
        Block::new(16, true, true, true),
        Block::new(8, false, false, true),
    ];
    vec![
        MethodConfig::Simclr(simclr::SimclrConfig {
            temperature: 0.5,
            projector: small.clone(),
        }),
        MethodConfig::BarlowTwins(barlow_twins::BarlowTwinsConfig {
            lambda: 5e-3,
            projector: small.clone(),
        }),
        MethodConfig::Byol(byol::ByolConfig {
            projector: small.clone(),
            predictor: small.clone(),
            ..Default::default()
        }),
        MethodConfig::Simsiam(simsiam::SimSiamConfig {
            projector: small.clone(),
            predictor: small.clone(),
        }),
        MethodConfig::MocoV2(moco::MocoV2Config {
            projector: small.clone(),
            queue_size: 10,
            symmetric: true,
            ..Default::default()
        }),
        MethodConfig::MocoV3(moco_v3::MocoV3Config {
            projector: small.clone(),
            predictor: small.clone(),
            ..Default::default()
        }),
        MethodConfig::Vicreg(vicreg::VicregConfig {
            projector: small.clone(),
            ..Default::default()
        }),
        MethodConfig::Dino(dino::DinoConfig {
            hidden: 16,
            bottleneck: 8,
            out_dim: 32,
            // Past the frozen first epoch from the second step on, so the last layer trains.
            freeze_last_layer_epochs: 1.0,
            ..Default::default()
        }),
        // The head with the reference's `use_bn_in_head` (the Fashion-MNIST recipe's setting).
        MethodConfig::Dino(dino::DinoConfig {
            hidden: 16,
            bottleneck: 8,
            out_dim: 32,
            batch_norm_in_head: true,
            ..Default::default()
        }),
        MethodConfig::Swav(swav::SwavConfig {
            projector: small.clone(),
            prototypes: 12,
            freeze_prototypes_epochs: 1.0,
            ..Default::default()
        }),
        MethodConfig::Nnclr(nnclr::NnclrConfig {
            projector: small.clone(),
            predictor: small.clone(),
            support_size: 10,
            ..Default::default()
        }),
        MethodConfig::Supcon(supcon::SupConConfig {
            projector: small,
            ..Default::default()
        }),
        MethodConfig::Mae(mae::MaeConfig {
            decoder_dim: 8,
            decoder_depth: 1,
            decoder_heads: 2,
            ..Default::default()
        }),
        MethodConfig::MixedAe(mixed_ae::MixedAeConfig {
            group: 2,
            decoder_dim: 8,
            decoder_depth: 1,
            decoder_heads: 2,
            ..Default::default()
        }),
        MethodConfig::Simmim(Default::default()),
        MethodConfig::Cae(cae::CaeConfig {
            regressor_depth: 1,
            decoder_depth: 1,
            heads: 2,
            ..Default::default()
        }),
        MethodConfig::Ijepa(ijepa::IjepaConfig {
            predictor_dim: 8,
            predictor_depth: 1,
            predictor_heads: 2,
            ..Default::default()
        }),
        MethodConfig::Vime(Default::default()),
        MethodConfig::Ssast(ssast::SsastConfig {
            head_hidden: Some(8),
            ..Default::default()
        }),
        MethodConfig::Tera(Default::default()),
        MethodConfig::Mlm(mlm::MlmConfig {
            strategy: crate::views::text_masking::MaskStrategy::WholeWord,
            rate_end: Some(0.3),
            ..Default::default()
        }),
        MethodConfig::Rts(Default::default()),
        MethodConfig::Rts(rts::RtsConfig {
            substitutes: rts::Substitutes::Cluster,
            clusters: 3,
            refresh_steps: 2,
            ..Default::default()
        }),
        MethodConfig::Slm(slm::SlmConfig {
            strategy: crate::views::text_masking::MaskStrategy::Span,
            ..Default::default()
        }),
        MethodConfig::Simcse(Default::default()),
        MethodConfig::Tjepa(tjepa::TjepaConfig {
            predictor_dim: 8,
            predictor_depth: 1,
            predictor_heads: 2,
            ..Default::default()
        }),
    ]
}

/// Four table features (numeric, 3-level categorical, numeric, 2-level categorical) → 7 encoded
/// columns; width 8 with mean pooling, like the CNN's output.
fn table_spans() -> Vec<crate::data::FeatureSpan> {
    [(0, 1, false), (1, 3, true), (4, 1, false), (5, 2, true)]
        .iter()
        .map(|&(start, len, categorical)| crate::data::FeatureSpan {
            start,
            len,
            categorical,
        })
        .collect()
}

fn table_factory() -> impl Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> {
    move |p: &nn::Path| {
        encoders::build_for(
            &EncoderConfig::FeatureTransformer {
                dim: 8,
                depth: 1,
                heads: 2,
                mlp_ratio: 2.0,
                registers: 2,
                pooling: encoders::feature_transformer::TablePooling::Mean,
            },
            p,
            &[7],
            Some(&table_spans()),
        )
    }
}

/// 8×8 single-channel images in 2×2 patches (a 4×4 grid), width 8 like the CNN's output.
pub(super) fn vit_factory(
    shape: Vec<i64>,
) -> impl Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> {
    move |p: &nn::Path| {
        encoders::build(
            &EncoderConfig::Vit {
                patch: 2,
                dim: 8,
                depth: 1,
                heads: 2,
                mlp_ratio: 2.0,
                positions: encoders::vit::Positions::Sincos,
                pooling: encoders::vit::Pooling::Cls,
            },
            p,
            &shape,
        )
    }
}

fn cnn_factory(shape: Vec<i64>) -> impl Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> {
    move |p: &nn::Path| encoders::build(&EncoderConfig::SmallCnn { widths: vec![4, 8] }, p, &shape)
}

/// A series encoder of the kind a series method needs, for series `[1, 32]`.
fn series_factory(kind: &str) -> impl Fn(&nn::Path) -> anyhow::Result<Box<dyn Encoder>> {
    let cfg = if kind == "dilated_conv" {
        EncoderConfig::DilatedConv {
            hidden: 4,
            out: 8,
            depth: 2,
            kernel: 3,
        }
    } else {
        EncoderConfig::TstccConv {
            widths: vec![4, 8],
            kernel: 3,
            dropout: 0.1,
        }
    };
    move |p: &nn::Path| encoders::build(&cfg, p, &[1, 32])
}

fn series_kind(cfg: &MethodConfig) -> Option<&'static str> {
    cfg.needs()
        .encoders
        .iter()
        .copied()
        .find(|k| matches!(*k, "dilated_conv" | "tstcc_conv"))
}

/// Sentences of 8 positions over a vocabulary of 40: [CLS], 3–6 pieces (words of one or two
/// pieces), [SEP], padding; view 0 the ids, view 1 the word of each token.
fn text_views(n: i64) -> Vec<Tensor> {
    let (mut ids, mut words) = (Vec::new(), Vec::new());
    for s in 0..n {
        let k = 3 + s % 4;
        ids.push(2f32);
        words.push(-1f32);
        for j in 0..8 - 2 {
            if j < k {
                ids.push((5 + (s * 7 + j * 3) % 35) as f32);
                words.push((j / 2) as f32);
            } else if j == k {
                ids.push(3.0);
                words.push(-1.0);
            } else {
                ids.push(0.0);
                words.push(-1.0);
            }
        }
        ids.push(if k == 6 { 3.0 } else { 0.0 });
        words.push(-1.0);
    }
    vec![
        Tensor::from_slice(&ids).view([n, 8]),
        Tensor::from_slice(&words).view([n, 8]),
    ]
}

fn views_for(m: &dyn Method, n: i64) -> Vec<Tensor> {
    if matches!(m.name(), "mlm" | "rts" | "c_rts" | "slm" | "simcse") {
        return text_views(n);
    }
    if matches!(m.name(), "ts2vec" | "ts_tcc") {
        return (0..m.n_views())
            .map(|_| Tensor::randn([n, 1, 32], (Kind::Float, Device::Cpu)))
            .collect();
    }
    if m.name() == "tjepa" {
        return vec![Tensor::randn([n, 7], (Kind::Float, Device::Cpu))];
    }
    if m.name() == "vime" {
        // Clean rows, then the same rows with a few entries replaced.
        let clean = Tensor::randn([n, 7], (Kind::Float, Device::Cpu));
        let keep = Tensor::rand([n, 7], (Kind::Float, Device::Cpu)).gt(0.3);
        let other = Tensor::randn([n, 7], (Kind::Float, Device::Cpu));
        return vec![clean.shallow_clone(), clean.where_self(&keep, &other)];
    }
    let mut v: Vec<Tensor> = (0..m.n_views())
        .map(|_| Tensor::randn([n, 1, 8, 8], (Kind::Float, Device::Cpu)))
        .collect();
    if m.accepts_local_crops() {
        v.extend((0..2).map(|_| Tensor::randn([n, 1, 6, 6], (Kind::Float, Device::Cpu))));
    }
    v
}

/// Loss finite, a finite gradient on every trainable variable through the hooks, and a
/// representation of the encoder's width.
#[test]
fn every_method_trains_for_a_few_steps() {
    for cfg in all_methods() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = if matches!(cfg, MethodConfig::Vime(_)) {
            let f = |p: &nn::Path| {
                encoders::build(
                    &EncoderConfig::Mlp {
                        dims: vec![16, 8],
                        batch_norm: true,
                    },
                    p,
                    &[7],
                )
            };
            build(&cfg, &vs, &f).unwrap()
        } else if matches!(cfg, MethodConfig::Clip(_)) {
            // Two modalities, both small images here (the method takes any encoders).
            let f = cnn_factory(vec![1, 8, 8]);
            let encoders = vec![
                f(&(vs.root() / "encoder")).unwrap(),
                f(&(vs.root() / "modality1")).unwrap(),
            ];
            cfg.spec().build_paired(&vs, encoders).unwrap()
        } else if let Some(kind) = series_kind(&cfg) {
            build(&cfg, &vs, &series_factory(kind)).unwrap()
        } else if cfg.needs().encoders == ["frame_transformer"] {
            // Spectrograms of 8 mel bins × 8 frames.
            let f = |p: &nn::Path| {
                encoders::build(
                    &EncoderConfig::FrameTransformer {
                        dim: 8,
                        depth: 1,
                        heads: 2,
                        mlp_ratio: 2.0,
                    },
                    p,
                    &[1, 8, 8],
                )
            };
            build(&cfg, &vs, &f).unwrap()
        } else if cfg.needs().encoders == ["text_transformer"] {
            let f = |p: &nn::Path| {
                encoders::build(
                    &EncoderConfig::TextTransformer {
                        vocab: Some(40),
                        dim: 8,
                        depth: 1,
                        heads: 2,
                        mlp_ratio: 2.0,
                        dropout: 0.1,
                        pooling: encoders::text_transformer::TextPooling::Mean,
                    },
                    p,
                    &[8],
                )
            };
            build(&cfg, &vs, &f).unwrap()
        } else if cfg.needs_tables() {
            build(&cfg, &vs, &table_factory()).unwrap()
        } else if cfg.is_masked() {
            build(&cfg, &vs, &vit_factory(vec![1, 8, 8])).unwrap()
        } else {
            build(&cfg, &vs, &cnn_factory(vec![1, 8, 8])).unwrap()
        };
        let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 2, 2]);
        let total = 3;
        for step in 0..total {
            let views = views_for(m.as_ref(), 6);
            let progress = Progress::at(step, total, 1);
            let masks = m
                .mask_spec()
                .map_or_else(Vec::new, |s| s.make_batch(1, 0, step, &[0, 1, 2, 3, 4, 5]));
            let mut input = StepInput::new(&views, progress);
            input.masks = &masks;
            if m.needs_labels() {
                input.labels = Some(&labels);
            }
            for (_, p) in vs.variables() {
                if p.requires_grad() {
                    p.grad().defined().then(|| p.grad().zero_());
                }
            }
            let loss = m.loss(&input);
            let l = f64::try_from(&loss).unwrap();
            assert!(l.is_finite(), "{} loss {l}", m.name());
            loss.backward();
            m.before_update(progress);
            tch::no_grad(|| {
                for (name, p) in vs.variables() {
                    if p.requires_grad() {
                        let g = p.grad();
                        assert!(g.defined(), "{}: no gradient for {name}", m.name());
                        assert!(
                            bool::try_from(g.isfinite().all()).unwrap(),
                            "{}: non-finite gradient for {name}",
                            m.name()
                        );
                        let _ = p.shallow_clone().g_sub_(&(g * 0.01));
                    }
                }
            });
            m.after_update(progress);
        }
        let views = views_for(m.as_ref(), 6);
        let e = tch::no_grad(|| m.embed(&views[0]));
        let width = if series_kind(&cfg).is_some() {
            m.encoder().out_dim()
        } else {
            8
        };
        assert_eq!(e.size(), vec![6, width], "{}", m.name());
    }
}

/// T-JEPA's `embed_with = "target"` reads the momentum encoder: moving the online weights leaves
/// it unchanged until an EMA update, while `"online"` follows them.
#[test]
fn tjepa_embeds_with_the_chosen_encoder() {
    let x = Tensor::randn([5, 7], (Kind::Float, Device::Cpu));
    for embed_with in [tjepa::EmbedWith::Online, tjepa::EmbedWith::Target] {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = MethodConfig::Tjepa(tjepa::TjepaConfig {
            predictor_dim: 8,
            predictor_depth: 1,
            predictor_heads: 2,
            embed_with,
            ..Default::default()
        });
        let m = build(&cfg, &vs, &table_factory()).unwrap();
        let _g = tch::no_grad_guard();
        let before = m.embed(&x);
        for (name, mut v) in vs.variables() {
            if !name.starts_with("method.") {
                let _ = v.g_add_scalar_(0.1);
            }
        }
        let after = m.embed(&x);
        let online = m.encoder().forward_t(&x, false);
        let moved = (&after - &before).abs().max().double_value(&[]);
        match embed_with {
            tjepa::EmbedWith::Online => {
                assert!(moved > 1e-3, "online embedding ignored the weights");
                assert!(after.equal(&online));
            }
            tjepa::EmbedWith::Target => {
                assert_eq!(moved, 0.0, "target embedding moved with the online weights");
                assert!(!after.equal(&online));
            }
        }
    }
}
