//! One test per validation rule: a valid base recipe, broken in exactly one place with `--set`.
use super::*;
use crate::methods::Modality;

const IMAGE: &str = r#"
name = "t"
seed = 3
[data]
format = "idx"
train_images = "train.gz"
[encoder]
kind = "small_cnn"
[method]
name = "simclr"
[train]
epochs = 2
batch_size = 8
optimizer = { name = "adam", lr = 1e-3 }
[views.image]
crop_scale = [0.2, 1.0]
"#;

const TABLE: &str = r#"
name = "tab"
[data]
format = "csv"
train = "a.csv"
options = { header = true }
[encoder]
kind = "mlp"
dims = [32, 16]
[method]
name = "barlow_twins"
[train]
epochs = 1
batch_size = 4
optimizer = { name = "lars", lr = 0.1 }
"#;

fn with(base: &str, sets: &[&str]) -> Result<Recipe, RecipeError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Recipe::from_toml(base, "test.toml", &sets)
}

fn err(base: &str, set: &str) -> RecipeError {
    match with(base, &[set]) {
        Ok(_) => panic!("--set {set} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn valid_recipes_parse_with_defaults() {
    let r = with(IMAGE, &[]).unwrap();
    assert_eq!(r.seed, 3);
    assert_eq!(r.eval.knn_k, 200);
    assert_eq!(r.image_augment().crop_scale, [0.2, 1.0]);
    assert!(matches!(&r.method, MethodConfig::Simclr(c) if c.temperature == 0.5));
    let t = with(TABLE, &[]).unwrap();
    assert!(t.data.is_table());
    assert_eq!(t.table_corruption().corruption_rate, 0.6);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let e = err(IMAGE, "train.epochz=3");
    assert!(
        matches!(&e, RecipeError::Parse { message, .. } if message.contains("epochz")),
        "{e}"
    );
    let e = err(IMAGE, "method.temprature=0.2");
    assert!(e.to_string().contains("temprature"), "{e}");
    let e = err(IMAGE, "views.image.flip=0.5");
    assert!(e.to_string().contains("flip"), "{e}");
}

#[test]
fn overrides_set_nested_values_lists_and_strings() {
    let r = with(
        IMAGE,
        &[
            "train.epochs=5",
            "views.image.crop_scale=[0.5, 0.9]",
            "views.image.crop_scale.0=0.4",
            "name=other",
        ],
    )
    .unwrap();
    assert_eq!(r.train.epochs, 5);
    assert_eq!(r.image_augment().crop_scale, [0.4, 0.9]);
    assert_eq!(r.name, "other");
    assert!(matches!(
        err(IMAGE, "train.epochs"),
        RecipeError::Override { .. }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.crop_scale.7=1"),
        RecipeError::Override { .. }
    ));
    assert!(matches!(
        err(IMAGE, "seed.x=1"),
        RecipeError::Override { .. }
    ));
}

#[test]
fn rule_temperature_positive() {
    assert!(matches!(
        err(IMAGE, "method.temperature=0"),
        RecipeError::TemperatureNotPositive {
            field: "method.temperature",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "method.temperature=-0.5"),
        RecipeError::TemperatureNotPositive { .. }
    ));
    assert!(matches!(
        err(IMAGE, "eval.knn_temperature=0"),
        RecipeError::TemperatureNotPositive {
            field: "eval.knn_temperature",
            ..
        }
    ));
}

#[test]
fn rule_batch_of_one_refused() {
    assert!(matches!(
        err(TABLE, "train.batch_size=1"),
        RecipeError::BatchTooSmall {
            method: "barlow_twins",
            batch: 1,
            min: 2
        }
    ));
    assert!(matches!(
        err(IMAGE, "train.batch_size=1"),
        RecipeError::BatchTooSmall {
            method: "simclr",
            ..
        }
    ));
}

#[test]
fn rule_epochs_nonzero() {
    assert_eq!(err(IMAGE, "train.epochs=0"), RecipeError::ZeroEpochs);
}

#[test]
fn rule_learning_rate_positive() {
    assert_eq!(
        err(IMAGE, "train.optimizer.lr=0"),
        RecipeError::LearningRateNotPositive(0.0)
    );
}

#[test]
fn rule_non_negative_values() {
    assert!(matches!(
        err(IMAGE, "train.optimizer.weight_decay=-1"),
        RecipeError::Negative {
            field: "train.optimizer.weight_decay",
            ..
        }
    ));
    assert!(matches!(
        err(TABLE, "views.table.noise_std=-0.1"),
        RecipeError::Negative {
            field: "views.table.noise_std",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.brightness=-0.4"),
        RecipeError::Negative { .. }
    ));
}

#[test]
fn rule_momentum_in_range() {
    assert_eq!(
        err(TABLE, "train.optimizer.momentum=1.0"),
        RecipeError::MomentumOutOfRange(1.0)
    );
}

#[test]
fn rule_betas_in_range() {
    assert!(matches!(
        err(IMAGE, "train.optimizer.betas=[0.9, 1.5]"),
        RecipeError::BetasOutOfRange(_)
    ));
}

#[test]
fn rule_probabilities_in_unit_interval() {
    assert!(matches!(
        err(IMAGE, "views.image.blur_p=1.5"),
        RecipeError::ProbabilityOutOfRange {
            field: "views.image.blur_p",
            ..
        }
    ));
    assert!(matches!(
        err(TABLE, "views.table.corruption_rate=-0.1"),
        RecipeError::ProbabilityOutOfRange { .. }
    ));
}

#[test]
fn rule_ranges_ordered() {
    assert!(matches!(
        err(IMAGE, "views.image.crop_scale=[0.9, 0.2]"),
        RecipeError::BadRange {
            field: "views.image.crop_scale",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.crop_scale=[0.0, 1.0]"),
        RecipeError::BadRange { .. }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.crop_ratio=[0, 1]"),
        RecipeError::BadRange {
            field: "views.image.crop_ratio",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.blur_sigma=[2.0, 0.1]"),
        RecipeError::BadRange {
            field: "views.image.blur_sigma",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "views.image.hue=0.9"),
        RecipeError::BadRange {
            field: "views.image.hue",
            ..
        }
    ));
}

#[test]
fn rule_layers_present() {
    assert!(matches!(
        err(TABLE, "encoder.dims=[]"),
        RecipeError::NoLayers {
            field: "encoder.dims"
        }
    ));
    assert!(matches!(
        err(IMAGE, "method.projector=[]"),
        RecipeError::NoLayers {
            field: "method.projector"
        }
    ));
}

#[test]
fn rule_widths_positive() {
    assert!(matches!(
        err(TABLE, "encoder.dims=[32, 0]"),
        RecipeError::NonPositiveWidth {
            field: "encoder.dims",
            value: 0
        }
    ));
}

#[test]
fn rule_lambda_positive() {
    assert_eq!(
        err(TABLE, "method.lambda=0"),
        RecipeError::LambdaNotPositive(0.0)
    );
}

#[test]
fn rule_knn_k_nonzero() {
    assert_eq!(err(IMAGE, "eval.knn_k=0"), RecipeError::KnnKZero);
}

#[test]
fn rule_views_match_data() {
    assert_eq!(
        err(TABLE, "views.image.hflip_p=0.5"),
        RecipeError::ViewsMismatch {
            given: "image",
            data: "table"
        }
    );
    assert_eq!(
        err(IMAGE, "views.table.corruption_rate=0.5"),
        RecipeError::ViewsMismatch {
            given: "table",
            data: "image"
        }
    );
}

#[test]
fn rule_image_encoder_on_tables_refused() {
    assert_eq!(
        err(TABLE, "encoder={ kind = \"resnet18\" }"),
        RecipeError::EncoderNeedsImages {
            encoder: "resnet18"
        }
    );
}

#[test]
fn rule_warmup_within_training() {
    assert!(matches!(
        err(IMAGE, "train.warmup_epochs=3"),
        RecipeError::WarmupTooLong { epochs: 2, .. }
    ));
}

#[test]
fn rule_grad_clip_positive() {
    assert_eq!(
        err(IMAGE, "train.grad_clip=0"),
        RecipeError::GradClipNotPositive(0.0)
    );
}

#[test]
fn rule_counts_nonzero() {
    assert_eq!(
        err(IMAGE, "train.workers=0"),
        RecipeError::ZeroCount {
            field: "train.workers"
        }
    );
    assert_eq!(
        err(IMAGE, "train.log_every=0"),
        RecipeError::ZeroCount {
            field: "train.log_every"
        }
    );
    assert_eq!(
        err(IMAGE, "eval.batch=0"),
        RecipeError::ZeroCount {
            field: "eval.batch"
        }
    );
}

#[test]
fn rule_blur_kernel_odd() {
    assert_eq!(
        err(IMAGE, "views.image.blur_kernel=4"),
        RecipeError::EvenBlurKernel(4)
    );
}

#[test]
fn rule_eval_size_only_in_the_first_pipeline_and_for_encoders_of_any_input_size() {
    assert_eq!(
        err(IMAGE, "views.image2.eval_size=[28, 28]"),
        RecipeError::EvalSizeNotInImage {
            field: "views.image2.eval_size"
        }
    );
    assert_eq!(
        err(IMAGE, "views.image.eval_size=[0, 28]"),
        RecipeError::NonPositiveWidth {
            field: "views.image.eval_size",
            value: 0
        }
    );
    let vit = [
        "encoder={ kind = \"vit\", patch = 4 }",
        "views.image.size=[20, 20]",
        "views.image.eval_size=[28, 28]",
    ];
    assert_eq!(
        with(IMAGE, &vit).unwrap_err(),
        RecipeError::EvalSizeNeedsAnySize { encoder: "vit" }
    );
    // The same size is harmless for any encoder; a CNN takes a different one.
    assert!(with(IMAGE, &[vit[0], vit[1], "views.image.eval_size=[20, 20]"]).is_ok());
    let r = with(IMAGE, &vit[1..]).unwrap();
    assert_eq!(r.image_augment().eval_size, Some([28, 28]));
}

#[test]
fn rule_std_positive() {
    assert_eq!(
        err(IMAGE, "views.image.std=[0.0]"),
        RecipeError::NonPositiveStd(0.0)
    );
}

#[test]
fn rule_numbers_finite() {
    assert!(matches!(
        err(IMAGE, "train.final_lr=nan"),
        RecipeError::NotFinite {
            field: "train.final_lr",
            ..
        }
    ));
}

#[test]
fn training_hash_ignores_threads_and_eval_but_not_the_model() {
    let a = with(IMAGE, &[]).unwrap();
    let b = with(
        IMAGE,
        &[
            "train.workers=4",
            "eval.knn_k=20",
            "train.max_steps=3",
            "views.image.eval_size=[28, 28]",
        ],
    )
    .unwrap();
    let c = with(IMAGE, &["method.temperature=0.2"]).unwrap();
    assert_eq!(a.training_hash(), b.training_hash());
    assert_ne!(a.training_hash(), c.training_hash());
}

#[test]
fn rule_local_crops_need_a_pipeline_and_a_multi_crop_method() {
    assert_eq!(
        err(IMAGE, "views.local_crops=2"),
        RecipeError::LocalCropsWithoutPipeline(2)
    );
    let e = with(IMAGE, &["views.local_crops=2", "views.local.size=[8, 8]"]).unwrap_err();
    assert_eq!(e, RecipeError::NoMultiCrop { method: "simclr" });
    let r = with(
        IMAGE,
        &[
            "views.local_crops=2",
            "views.local.size=[8, 8]",
            "method.name=\"dino\"",
        ],
    )
    .unwrap();
    // Two global views, then one pipeline shared by every local crop.
    assert_eq!(r.n_views(), 4);
    let aug = r.image_augments();
    assert_eq!(aug.len(), 3);
    assert_eq!(aug[2].size, Some([8, 8]));
    assert_eq!(aug[0], aug[1]);
}

#[test]
fn rule_second_view_and_local_pipelines_are_checked_like_the_first() {
    assert_eq!(
        err(IMAGE, "views.image2.solarize_p=2.0"),
        RecipeError::ProbabilityOutOfRange {
            field: "views.image2.solarize_p",
            value: 2.0
        }
    );
    assert!(matches!(
        err(IMAGE, "views.local.crop_scale=[0.5, 0.1]"),
        RecipeError::BadRange {
            field: "views.local.crop_scale",
            ..
        }
    ));
    assert_eq!(
        err(TABLE, "views.image2.hflip_p=0.5"),
        RecipeError::ViewsMismatch {
            given: "image2",
            data: "table"
        }
    );
    let r = with(IMAGE, &["views.image2.solarize_p=0.2"]).unwrap();
    let aug = r.image_augments();
    assert_eq!((aug[0].solarize_p, aug[1].solarize_p), (0.0, 0.2));
}

#[test]
fn rule_joint_embedding_method_settings() {
    assert!(matches!(
        err(IMAGE, "method={ name = \"moco_v2\", temperature = 0.0 }"),
        RecipeError::TemperatureNotPositive {
            field: "method.temperature",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "method={ name = \"byol\", base_momentum = 1.5 }"),
        RecipeError::BadRange {
            field: "method.base_momentum",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "method={ name = \"swav\", prototypes = 0 }"),
        RecipeError::NonPositiveWidth {
            field: "method.prototypes",
            ..
        }
    ));
    assert!(matches!(
        err(IMAGE, "method={ name = \"nnclr\", predictor = [] }"),
        RecipeError::NoLayers {
            field: "method.predictor"
        }
    ));
    // Unknown keys inside a method's table are refused by name.
    let e = err(IMAGE, "method={ name = \"vicreg\", lambda = 1.0 }");
    assert!(e.to_string().contains("lambda"), "{e}");
}

/// Loads (and so validates) every `.toml` recipe directly in `recipes/<sub>` (`""` = the top
/// folder), panicking with the file's path on the first that fails.
fn shipped_recipes(sub: &str) -> Vec<(std::path::PathBuf, Recipe)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../recipes")
        .join(sub);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("toml") {
            let r = Recipe::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p, r));
        }
    }
    out
}

/// Every method's shipped Fashion-MNIST recipe parses and validates: joint-embedding methods in
/// `recipes/fmnist` (CNN), masked ones in `recipes/fmnist-vit` (ViT).
#[test]
fn the_fashion_mnist_comparison_recipes_are_valid() {
    let mut names = Vec::new();
    for (dir, masked) in [("fmnist", false), ("fmnist-vit", true)] {
        for (p, r) in shipped_recipes(dir) {
            assert_eq!(r.method.is_masked(), masked, "{}", p.display());
            names.push(r.method.name());
        }
    }
    names.sort_unstable();
    let mut all: Vec<&str> = MethodConfig::all_defaults()
        .iter()
        .filter(|m| {
            !m.needs_tables()
                && m.modality() == Modality::Samples
                && !m
                    .needs()
                    .encoders
                    .iter()
                    .any(|k| {
                        matches!(
                            *k,
                            "dilated_conv" | "tstcc_conv" | "frame_transformer" | "text_transformer"
                        )
                    })
                // Audio's masked-patch method: its recipe is in recipes/audio.
                && m.name() != "ssast"
                // Aligns modalities: its recipes are in recipes/multimodal.
                && m.name() != "clip"
        })
        .map(|m| m.name())
        .collect();
    all.sort_unstable();
    assert_eq!(names, all, "one recipe per registered method");
}

/// Every shipped graph recipe parses and validates as a graph recipe with a protocol, and every
/// registered graph method has at least one.
#[test]
fn the_graph_recipes_are_valid() {
    let recipes = shipped_recipes("graph");
    assert_eq!(recipes.len(), 19, "the nineteen graph recipes");
    let mut names = Vec::new();
    for (p, r) in &recipes {
        assert!(r.data.is_graph(), "{}", p.display());
        assert_eq!(r.method.modality(), Modality::Graphs, "{}", p.display());
        let protocol = r.eval.graph.as_ref().expect("validated");
        assert_eq!(
            protocol.is_graph_level(),
            r.data.is_graph_level(),
            "{}",
            p.display()
        );
        assert!(
            r.seeds.as_ref().is_some_and(|s| !s.is_empty()),
            "{}",
            p.display()
        );
        names.push(r.method.name());
    }
    names.sort_unstable();
    names.dedup();
    let mut all: Vec<&str> = MethodConfig::all_defaults()
        .iter()
        .filter(|m| m.modality() == Modality::Graphs)
        .map(|m| m.name())
        .collect();
    all.sort_unstable();
    assert_eq!(names, all, "a recipe for every graph method");
}

/// The graph rules: data, encoder, method and protocol must agree; a graph method's own rules;
/// non-finite numbers are refused in graph recipes.
#[test]
fn graph_recipe_rules() {
    let base = include_str!("../../../../recipes/graph/graphmae-cora.toml");
    let bad = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_toml(base, "t", &sets).unwrap_err().to_string()
    };
    assert!(bad(&["method.mask_rate=1.5"]).contains("method.mask_rate"));
    assert!(bad(&["method.mask_rate=0.0"]).contains("nothing to reconstruct"));
    assert!(bad(&["method.alpha=0.5"]).contains("exponent"));
    assert!(bad(&["train.epochs=0"]).contains("train.epochs"));
    assert!(bad(&["encoder.layers=0"]).contains("encoder.layers"));
    assert!(bad(&["method.unknown=1"]).contains("unknown field"));
    assert!(bad(&["method.alpha=nan"]).contains("finite"));
    assert!(bad(&["seeds=[]"]).contains("at least one seed"));
    // GraphMAE's decoder mirrors a GAT or GIN encoder.
    let e = bad(&["encoder={ kind = \"gcn\", dims = [16] }"]);
    assert!(e.contains("gat or gin"), "{e}");
    // A graph protocol on the wrong level, a sample method on a graph, a graph method on images.
    let e = bad(&["eval.graph={ protocol = \"graph_cv\" }"]);
    assert!(e.contains("graph_cv goes with tu"), "{e}");
    let e = bad(&["method={ name = \"simclr\" }"]);
    assert!(e.contains("graph method"), "{e}");
    // The multi-task methods need a task; D-SLA its margin and rates in range.
    let e = bad(&[
        "encoder={ kind = \"gcn\", dims = [16] }",
        "method={ name = \"selftask\", node_property = 0.0, pairwise_distance = 0.0, attr_similarity = 0.0, edge_mask = 0.0 }",
    ]);
    assert!(e.contains("no pretext task is on"), "{e}");
    let e = bad(&[
        "encoder={ kind = \"gcn\", dims = [16] }",
        "method={ name = \"pareto_gnn\", tasks = [] }",
    ]);
    assert!(e.contains("no pretext task is on"), "{e}");
    let e = bad(&["method={ name = \"pareto_gnn\", tasks = [\"dgi\", \"rotation\"] }"]);
    assert!(e.contains("rotation"), "{e}");
    let e = bad(&["method={ name = \"dsla\", mask_rate = 1.5 }"]);
    assert!(e.contains("method.mask_rate"), "{e}");
    let quickstart = include_str!("../../../../recipes/quickstart.toml");
    let e = Recipe::from_toml(quickstart, "q", &["method={ name = \"dgi\" }".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("need graph data"), "{e}");
}

/// Every shipped audio recipe parses and validates on audio data, and the audio methods each
/// have one.
#[test]
fn the_audio_recipes_are_valid() {
    let mut names: Vec<&str> = shipped_recipes("audio")
        .iter()
        .map(|(p, r)| {
            assert!(r.data.is_audio(), "{}", p.display());
            r.method.name()
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["byol", "simclr", "ssast", "tera"]);
}

/// The audio rules: audio views and encoders with audio data only, and the front end's fields.
#[test]
fn audio_recipe_rules() {
    let base = include_str!("../../../../recipes/audio/byol-a.toml");
    let bad = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_toml(base, "t", &sets).unwrap_err().to_string()
    };
    assert!(bad(&["views.audio.mixup=1.5"]).contains("mixup"));
    assert!(bad(&["views.audio.rrc_canvas=[0.5, 1.0]"]).contains("rrc_canvas"));
    assert!(bad(&["data.options.frames=0"]).contains("data.options.frames"));
    assert!(bad(&["data.options.mel.f_max=9000.0"]).contains("f_max"));
    let e = bad(&["encoder={ kind = \"feature_transformer\" }"]);
    assert!(e.contains("audio data takes"), "{e}");
    let quickstart = include_str!("../../../../recipes/quickstart.toml");
    let e = Recipe::from_toml(
        quickstart,
        "q",
        &["encoder={ kind = \"audio_cnn\" }".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("audio data only"), "{e}");
}

/// Every shipped text recipe parses and validates on text data with the text encoder, and the
/// text methods each have one (RTS twice: uniform and cluster substitutes).
#[test]
fn the_text_recipes_are_valid() {
    let mut names: Vec<String> = shipped_recipes("text")
        .iter()
        .map(|(p, r)| {
            assert!(r.data.is_text(), "{}", p.display());
            assert_eq!(r.encoder.kind(), "text_transformer", "{}", p.display());
            // The encoder's vocabulary came from the tokenizer's settings.
            assert_eq!(r.encoder_vocab(), Some(8000), "{}", p.display());
            match &r.method {
                MethodConfig::Rts(c) => format!("rts-{:?}", c.substitutes),
                m => m.name().to_string(),
            }
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["mlm", "rts-Cluster", "rts-Uniform", "simcse", "slm"]
    );
}

/// The text rules: the text encoder with text data only and the reverse, the tokenizer's and
/// files' fields, the methods' rates.
#[test]
fn text_recipe_rules() {
    let base = include_str!("../../../../recipes/text/mlm.toml");
    let bad = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_toml(base, "t", &sets).unwrap_err().to_string()
    };
    assert!(bad(&["data.tokenizer.vocab_size=10"]).contains("vocab_size"));
    assert!(bad(&["data.tokenizer.max_len=2"]).contains("max_len"));
    assert!(bad(&["encoder.vocab=500"]).contains("smaller than data.tokenizer.vocab_size"));
    assert!(bad(&["method.rate=0.0"]).contains("method.rate"));
    assert!(bad(&["method.rate_end=1.5"]).contains("method.rate_end"));
    assert!(bad(&["method.mask_prob=0.95"]).contains("mask_prob + method.random_prob"));
    assert!(bad(&["data.train.max_line_bytes=0"]).contains("max_line_bytes"));
    assert!(bad(&["views.audio={ gain_db = 1.0 }"]).contains("[views.audio]"));
    let e = bad(&["encoder={ kind = \"mlp\", dims = [8] }"]);
    assert!(
        e.contains("text data (format = \"text\") takes text_transformer"),
        "{e}"
    );
    let e = bad(&["method={ name = \"simclr\" }"]);
    assert!(e.contains("text data takes the text methods"), "{e}");
    let quickstart = include_str!("../../../../recipes/quickstart.toml");
    let e = Recipe::from_toml(
        quickstart,
        "q",
        &["encoder={ kind = \"text_transformer\" }".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("text data only"), "{e}");
    let e = Recipe::from_toml(quickstart, "q", &["method={ name = \"mlm\" }".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("text_transformer"), "{e}");
}

/// Every shipped table recipe parses and validates, and each names a table method or SCARF.
#[test]
fn the_table_recipes_are_valid() {
    let mut names: Vec<&str> = shipped_recipes("tables")
        .iter()
        .map(|(_, r)| r.method.name())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, vec!["simclr", "tjepa", "vime"]);
}

/// Every shipped `selfsup pretrain` recipe at the top of `recipes/` (quickstart, long benchmarks,
/// Adult) parses and validates, so a recipe the README names cannot rot unnoticed.
#[test]
fn the_top_level_pretrain_recipes_are_valid() {
    let checked: Vec<String> = shipped_recipes("")
        .into_iter()
        .map(|(_, r)| r.name)
        .collect();
    for name in [
        "quickstart",
        "fmnist-simclr-long",
        "fmnist-simclr-long-wide",
        "scarf-adult",
    ] {
        assert!(
            checked.iter().any(|n| n == name),
            "{name} missing from {checked:?}"
        );
    }
}

/// The shipped series recipes parse and validate; the series rules hold.
#[test]
fn series_recipes_and_rules() {
    let recipes = shipped_recipes("timeseries");
    assert!(!recipes.is_empty());
    for (p, r) in &recipes {
        assert!(r.data.is_series(), "{}", p.display());
    }
    let base = include_str!("../../../../recipes/timeseries/simclr-gunpoint.toml");
    let bad = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_toml(base, "t", &sets).unwrap_err().to_string()
    };
    assert!(bad(&["encoder={ kind = \"small_cnn\" }"])
        .contains("cnn1d, dilated_conv, tstcc_conv or mlp"));
    assert!(bad(&["views.image={ hflip_p = 0.5 }"]).contains("[views.image/table]"));
    assert!(bad(&["views.series.jitter=-1.0"]).contains("views.series.jitter"));
    assert!(bad(&["views.series.crop_scale=[0.0, 0.5]"]).contains("crop_scale"));
    assert!(bad(&["data.options.length=0"]).contains("data.options.length"));
    Recipe::from_toml(
        base,
        "t",
        &["encoder={ kind = \"mlp\", dims = [32] }".into()],
    )
    .unwrap();
    // cnn1d needs series; series views need series data.
    let quickstart = include_str!("../../../../recipes/quickstart.toml");
    let e = Recipe::from_toml(quickstart, "q", &["encoder={ kind = \"cnn1d\" }".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cnn1d"), "{e}");
    // TS2Vec: its own views, its own encoder, steps or epochs but not both.
    let ts2vec = include_str!("../../../../recipes/timeseries/ts2vec.toml");
    let bad = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_toml(ts2vec, "t", &sets)
            .unwrap_err()
            .to_string()
    };
    assert!(bad(&["views.series={ jitter = 0.1 }"]).contains("makes its own views"));
    assert!(bad(&["encoder={ kind = \"cnn1d\" }"]).contains("dilated_conv"));
    assert!(bad(&["train.epochs=3"]).contains("train.steps"));
    assert!(bad(&["train.steps=0"]).contains("nothing to train"));
    assert!(bad(&["encoder.kernel=4"]).contains("odd kernel"));
    assert!(bad(&["method.max_train_length=1"]).contains("max_train_length"));
    let e = Recipe::from_toml(quickstart, "q", &["eval.nearest_raw=true".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("series data"), "{e}");
    // TS-TCC: the strong view's fields are checked by name.
    let tstcc = include_str!("../../../../recipes/timeseries/ts-tcc.toml");
    let e = Recipe::from_toml(tstcc, "t", &["views.series2.jitter=-1.0".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("views.series2.jitter"), "{e}");
}

#[test]
fn few_label_settings_parse_and_are_checked() {
    use crate::eval::supervised::SupervisedObjective;
    let r = with(
        IMAGE,
        &[
            "eval.finetune_objective.name=\"sla\"",
            "eval.finetune_sam.rho=0.1",
            "eval.self_training.threshold=0.7",
        ],
    )
    .unwrap();
    assert_eq!(
        r.eval.finetune_objective,
        SupervisedObjective::Sla {
            rotations: 4,
            aggregate: true
        }
    );
    let sam = r.eval.finetune_sam.unwrap();
    assert_eq!((sam.rho, sam.adaptive, sam.eta), (0.1, false, 0.01));
    assert_eq!(r.eval.self_training.threshold, 0.7);
    assert_eq!(r.eval.self_training.rounds, 1);
    let r = with(IMAGE, &["eval.finetune_objective.name=\"ps_kd\""]).unwrap();
    assert_eq!(
        r.eval.finetune_objective,
        SupervisedObjective::PsKd { alpha_t: 0.8 }
    );
    let e = err(IMAGE, "eval.self_training.threshold=1.5");
    assert!(
        e.to_string().contains("eval.self_training.threshold"),
        "{e}"
    );
    let e = err(IMAGE, "eval.finetune_sam.rho=0");
    assert!(e.to_string().contains("eval.finetune_sam.rho"), "{e}");
    let e = err(IMAGE, "eval.self_training.rounds=0");
    assert!(e.to_string().contains("eval.self_training.rounds"), "{e}");
    let e = err(IMAGE, "eval.finetune_objective.name=\"mixup\"");
    assert!(e.to_string().contains("mixup"), "{e}");
}

/// Settings added to `[eval]` later stay out of the written recipe at their defaults, so a run
/// folder's training hash — and with it `--resume` — does not change under it.
#[test]
fn default_few_label_settings_are_not_written() {
    let r = with(IMAGE, &[]).unwrap();
    let text = r.to_toml();
    for key in ["finetune_objective", "finetune_sam", "self_training"] {
        assert!(!text.contains(key), "{key} written:\n{text}");
    }
    let r = with(IMAGE, &["eval.self_training.rounds=2"]).unwrap();
    assert!(r.to_toml().contains("self_training"));
}

/// The shipped multimodal recipes: AV-digits is CLIP over an audio and an image modality taken
/// from their unimodal recipes (files relative to the recipe's folder), its `[encoder]` the
/// first modality's; the digits recipe reads scikit-learn's 8x8 images.
#[test]
fn the_multimodal_recipes_are_valid() {
    let recipes = shipped_recipes("multimodal");
    let (_, clip) = recipes
        .iter()
        .find(|(p, _)| p.ends_with("av-digits-clip.toml"))
        .expect("av-digits-clip.toml");
    assert!(matches!(clip.method, MethodConfig::Clip(_)));
    let m = clip.modalities();
    assert_eq!(
        m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["audio", "image"]
    );
    assert!(m[0].data.is_audio());
    assert!(matches!(m[1].data, DataConfig::CsvImages { .. }));
    assert_eq!(clip.encoder, m[0].encoder);
    assert_eq!(m[1].encoder.kind(), "small_cnn");
    assert!(m
        .iter()
        .all(|m| m.recipe.as_ref().is_some_and(|p| p.exists())));
    // The modality's views are its recipe's (BYOL-A's mixup), not the paired recipe's.
    assert_eq!(m[0].views.audio.as_ref().map(|a| a.mixup), Some(0.4));
    let sub = clip.modality_recipe(1).unwrap();
    assert_eq!(sub.views.image.as_ref().map(|a| a.hflip_p), Some(0.0));
    // A written recipe holds the modalities whole and reads back the same.
    let again = Recipe::from_toml(&clip.to_toml(), "written", &[]).unwrap();
    assert!(
        again.to_toml() == clip.to_toml(),
        "the written recipe reads back differently"
    );
    assert_eq!(again.modalities().len(), 2);
}

const PAIRED: &str = r#"
name = "p"
[data]
format = "paired"
pairing = { by = "label" }
[[data.modalities]]
name = "a"
data = { format = "csv_images", train = "a.csv", options = { height = 4, width = 4, max_value = 1.0 } }
encoder = { kind = "small_cnn", widths = [4, 8] }
[[data.modalities]]
name = "b"
data = { format = "csv", train = "b.csv", options = { header = true } }
encoder = { kind = "mlp", dims = [8] }
[method]
name = "clip"
[train]
epochs = 1
batch_size = 4
optimizer = { name = "adam", lr = 1e-3 }
"#;

/// The paired rules: CLIP and paired data go together, two modalities or more with distinct
/// plain names, each valid as a recipe of its own, and the run's encoder the first one's.
#[test]
fn paired_recipe_rules() {
    let ok = with(PAIRED, &[]).unwrap();
    assert_eq!(ok.encoder.kind(), "small_cnn");
    let e = with(PAIRED, &["method={ name = \"simclr\" }"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("clip"), "{e}");
    let e = with(IMAGE, &["method={ name = \"clip\" }"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("paired data"), "{e}");
    let e = with(PAIRED, &["data.modalities.1.name=\"a\""]);
    let e = e.map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("given twice"), "{e}");
    let e = with(PAIRED, &["data.modalities.0.name=\"a,b\""])
        .unwrap_err()
        .to_string();
    assert!(e.contains("commas"), "{e}");
    // A modality broken as a recipe of its own is named.
    let e = with(
        PAIRED,
        &[
            "data.modalities.0.encoder={ kind = \"mlp\", dims = [8] }",
            "encoder={ kind = \"mlp\", dims = [8] }",
        ],
    );
    assert!(e.is_ok(), "an MLP on images is allowed: {e:?}");
    let e = with(
        PAIRED,
        &["data.modalities.1.encoder={ kind = \"small_cnn\" }"],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.modalities: b:"), "{e}");
    let e = with(PAIRED, &["encoder={ kind = \"mlp\", dims = [8] }"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("first modality"), "{e}");
    let e = with(
        PAIRED,
        &["data.modalities.0.data.options.test_fraction=1.5"],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("test_fraction"), "{e}");
    let e = with(PAIRED, &["method.temperature=0.0"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("temperature"), "{e}");
}
