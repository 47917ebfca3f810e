//! `selfsup eval fine-tune` and `selfsup eval self-train`: a run's encoder fine-tuned once per
//! seed with the recipe's `eval.finetune_*` settings (objective, SAM), and, for self-training,
//! the recipe's `eval.self_training` rounds after it.
use super::commands::load_run_weights;
use crate::backend;
use crate::error::BadInputPolicy;
use crate::eval::fine_tune::{fine_tune, FineTuneConfig, FineTuneResult};
use crate::eval::self_training::self_train;
use crate::eval::suite::SuiteRecord;
use crate::recipe::EvalConfig;
use crate::run::pipeline;
use crate::train::checkpoint;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;
use tch::Device;

/// The fine-tuning configuration of a recipe's `[eval]` at `seed`.
pub fn fine_tune_config(ev: &EvalConfig, seed: u64) -> FineTuneConfig {
    FineTuneConfig {
        epochs: ev.finetune_epochs,
        batch: ev.finetune_batch,
        lr: ev.finetune_lr,
        label_fraction: ev.finetune_label_fraction,
        seed,
        layer_decay: ev.finetune_layer_decay,
        weight_decay: ev.finetune_weight_decay,
        cosine: ev.finetune_cosine,
        exclude_bias_and_norm: ev.finetune_exclude_bias_and_norm,
        objective: ev.finetune_objective,
        sam: ev.finetune_sam,
        ..Default::default()
    }
}

/// How a fine-tuning configuration prints in a record's protocol.
pub fn describe(cfg: &FineTuneConfig, layered: bool, from_scratch: bool) -> String {
    let mut opts = vec![format!("lr={}", cfg.lr)];
    if cfg.weight_decay > 0.0 {
        opts.push(format!("wd={}", cfg.weight_decay));
        if cfg.exclude_bias_and_norm {
            opts.push("no wd on 1-d/cls/pos".into());
        }
    }
    if let (Some(d), true) = (cfg.layer_decay, layered) {
        opts.push(format!("layer_decay={d}"));
    }
    if cfg.cosine {
        opts.push("cosine".into());
    }
    if let Some(s) = &cfg.sam {
        opts.push(format!(
            "{}(rho={})",
            if s.adaptive { "asam" } else { "sam" },
            s.rho
        ));
    }
    let objective = cfg.objective.describe();
    if objective != "ce" {
        opts.push(objective);
    }
    format!(
        "fine-tune({},{},epochs={},batch={},labels={}%,augmented view 1{})",
        if cfg.weight_decay > 0.0 {
            "adamw"
        } else {
            "adam"
        },
        opts.join(","),
        cfg.epochs,
        cfg.batch,
        cfg.label_fraction * 100.0,
        if from_scratch { ",from scratch" } else { "" }
    )
}

/// Fine-tunes a run's encoder once per seed (each from the checkpoint, or from scratch) and
/// records accuracy and calibration error (mean ± std over seeds); with `self_training`, also the
/// last student's accuracy and error after the recipe's self-training rounds.
pub fn fine_tune_run(
    dir: &Path,
    overrides: &[String],
    seeds: &[u64],
    from_scratch: bool,
    self_training: bool,
    device: Device,
    threads: usize,
) -> Result<Vec<SuiteRecord>> {
    backend::set_threads(threads);
    let started = std::time::Instant::now();
    // The run's recipe, data and checkpoint are read once; each seed fine-tunes a fresh model,
    // restored from the checkpoint or (from scratch) initialised from that seed.
    let r = load_run_weights(dir, overrides, device, BadInputPolicy::Fail, false)?;
    let checkpoint = if from_scratch {
        None
    } else {
        Some(
            checkpoint::load_latest(&r.run.checkpoints())?
                .with_context(|| format!("{}: no checkpoint to fine-tune", r.run.dir.display()))?,
        )
    };
    let ev = &r.recipe.eval;
    let test = r
        .prepared
        .test
        .clone()
        .context("the run's recipe names no test split")?;
    let n_test = ev.max_test_samples.unwrap_or(usize::MAX).min(test.len());
    let n_classes = r.prepared.train.n_classes().max(test.n_classes()) as i64;
    let mut name = String::new();
    let (mut teacher, mut student) = (Vec::<FineTuneResult>::new(), Vec::<FineTuneResult>::new());
    let mut details = Vec::new();
    for &seed in seeds {
        let mut recipe = r.recipe.clone();
        if from_scratch {
            recipe.seed = seed;
        }
        let model = pipeline::build_model(
            &recipe,
            &r.prepared.train.sample_shape(),
            r.prepared.train.feature_spans().as_deref(),
            device,
        )?;
        if let Some(c) = &checkpoint {
            checkpoint::restore_model(&model.vs, &c.model, &c.path)?;
        }
        let cfg = fine_tune_config(ev, seed);
        let encoder = model.method.encoder();
        name = describe(&cfg, encoder.lr_layers().is_some(), from_scratch);
        let train = r.prepared.train.clone();
        if self_training {
            let st = &ev.self_training;
            let res = self_train(
                encoder,
                &model.vs,
                train,
                test.as_ref(),
                n_test,
                n_classes,
                &cfg,
                st,
                device,
            )?;
            tracing::info!(
                "self-training seed {seed}: teacher {:.2}%, student {:.2}%",
                res.teacher.test_accuracy * 100.0,
                res.last().test_accuracy * 100.0
            );
            teacher.push(res.teacher.clone());
            student.push(res.last().clone());
            details.push(json!(res));
        } else {
            let res = fine_tune(
                encoder,
                &model.vs,
                train,
                test.as_ref(),
                n_test,
                n_classes,
                &cfg,
                device,
            )?;
            tracing::info!(
                "fine-tune seed {seed}: {:.2}% in {:.0}s",
                res.test_accuracy * 100.0,
                res.seconds
            );
            teacher.push(res.clone());
            details.push(json!(res));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rec = |metric: &str, protocol: String, v: Vec<f64>| {
        let (value, std) = crate::stats::mean_std(&v);
        SuiteRecord {
            protocol,
            metric: metric.into(),
            features: if from_scratch { "scratch" } else { "learned" }.into(),
            value,
            std,
            per_seed: v,
            seconds,
            details: json!({ "seeds": seeds, "runs": details }),
        }
    };
    let acc = |v: &[FineTuneResult]| v.iter().map(|r| r.test_accuracy).collect::<Vec<_>>();
    let ece = |v: &[FineTuneResult]| v.iter().map(|r| r.test_ece).collect::<Vec<_>>();
    let mut out = vec![
        rec("accuracy", name.clone(), acc(&teacher)),
        rec("ece", format!("{name} ECE(15 bins)"), ece(&teacher)),
    ];
    if self_training {
        let st = &ev.self_training;
        let s = format!(
            "{name} + self-training({} round(s),threshold={},student epochs={})",
            st.rounds, st.threshold, st.student_epochs
        );
        out.push(rec("accuracy", s.clone(), acc(&student)));
        out.push(rec("ece", format!("{s} ECE(15 bins)"), ece(&student)));
    }
    Ok(out)
}
