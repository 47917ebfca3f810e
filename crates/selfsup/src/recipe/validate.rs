//! Recipe rules, one error variant each, checked before any work starts.
use super::{DataConfig, Recipe};
use crate::rules::RecipeError;
use crate::views::image_aug::ImageAugment;

/// Field names of one `[views.*]` augmentation table, for error messages.
struct AugmentFields {
    table: &'static str,
    blur_p: &'static str,
    blur_sigma: &'static str,
    brightness: &'static str,
    contrast: &'static str,
    crop_ratio: &'static str,
    crop_scale: &'static str,
    grayscale_p: &'static str,
    hflip_p: &'static str,
    hue: &'static str,
    jitter_p: &'static str,
    mean: &'static str,
    saturation: &'static str,
    size: &'static str,
    eval_size: &'static str,
    solarize_p: &'static str,
}

macro_rules! augment_fields {
    ($p:literal) => {
        AugmentFields {
            table: $p,
            blur_p: concat!("views.", $p, ".blur_p"),
            blur_sigma: concat!("views.", $p, ".blur_sigma"),
            brightness: concat!("views.", $p, ".brightness"),
            contrast: concat!("views.", $p, ".contrast"),
            crop_ratio: concat!("views.", $p, ".crop_ratio"),
            crop_scale: concat!("views.", $p, ".crop_scale"),
            grayscale_p: concat!("views.", $p, ".grayscale_p"),
            hflip_p: concat!("views.", $p, ".hflip_p"),
            hue: concat!("views.", $p, ".hue"),
            jitter_p: concat!("views.", $p, ".jitter_p"),
            mean: concat!("views.", $p, ".mean"),
            saturation: concat!("views.", $p, ".saturation"),
            size: concat!("views.", $p, ".size"),
            eval_size: concat!("views.", $p, ".eval_size"),
            solarize_p: concat!("views.", $p, ".solarize_p"),
        }
    };
}

fn check_augment(a: &ImageAugment, f: &AugmentFields) -> R {
    let [lo, hi] = a.crop_scale;
    if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
        return Err(RecipeError::BadRange {
            field: f.crop_scale,
            lo,
            hi,
            rule: "need 0 < lo <= hi <= 1",
        });
    }
    let [lo, hi] = a.crop_ratio;
    if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
        return Err(RecipeError::BadRange {
            field: f.crop_ratio,
            lo,
            hi,
            rule: "need 0 < lo <= hi",
        });
    }
    let [lo, hi] = a.blur_sigma;
    if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
        return Err(RecipeError::BadRange {
            field: f.blur_sigma,
            lo,
            hi,
            rule: "need 0 < lo <= hi",
        });
    }
    for (f, p) in [
        (f.hflip_p, a.hflip_p),
        (f.jitter_p, a.jitter_p),
        (f.grayscale_p, a.grayscale_p),
        (f.blur_p, a.blur_p),
        (f.solarize_p, a.solarize_p),
    ] {
        probability(f, p)?;
    }
    for (f, v) in [
        (f.brightness, a.brightness),
        (f.contrast, a.contrast),
        (f.saturation, a.saturation),
    ] {
        non_negative(f, v)?;
    }
    if !(0.0..=0.5).contains(&a.hue) {
        return Err(RecipeError::BadRange {
            field: f.hue,
            lo: a.hue,
            hi: a.hue,
            rule: "hue jitter must be in [0, 0.5]",
        });
    }
    if a.blur_kernel != 0 && a.blur_kernel % 2 == 0 {
        return Err(RecipeError::EvenBlurKernel(a.blur_kernel));
    }
    if let Some(&s) = a.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
        return Err(RecipeError::NonPositiveStd(s));
    }
    // A non-finite mean would turn every normalised pixel into NaN or infinity.
    for &m in &a.mean {
        finite(f.mean, f64::from(m))?;
    }
    if let Some(size) = a.size {
        widths(f.size, size.iter().map(|&d| d as i64))?;
    }
    if let Some(size) = a.eval_size {
        // The evaluation input is the first view pipeline's; elsewhere the field would be ignored.
        if f.table != "image" {
            return Err(RecipeError::EvalSizeNotInImage { field: f.eval_size });
        }
        widths(f.eval_size, size.iter().map(|&d| d as i64))?;
    }
    Ok(())
}

use crate::rules::*;

impl Recipe {
    pub fn validate(&self) -> R {
        let clip = matches!(self.method, crate::methods::MethodConfig::Clip(_));
        if self.data.is_paired() {
            return self.validate_paired();
        }
        if clip {
            return Err(RecipeError::ClipNeedsPaired);
        }
        self.validate_graph()?;
        self.validate_data_and_views()?;
        self.validate_method()?;
        self.validate_train()?;
        self.validate_eval()
    }

    /// A paired recipe: CLIP over at least two modalities, each a valid recipe of its own, and
    /// the run's `[encoder]` the first modality's.
    fn validate_paired(&self) -> R {
        if !matches!(self.method, crate::methods::MethodConfig::Clip(_)) {
            return Err(RecipeError::PairedNeedsClip(self.method.name()));
        }
        let modalities = self.modalities();
        if modalities.len() < 2 {
            return Err(RecipeError::Modalities(format!(
                "{} given; pairs need at least two",
                modalities.len()
            )));
        }
        for (k, m) in modalities.iter().enumerate() {
            if m.name.is_empty() || m.name.contains([',', '.', '/', ' ']) {
                return Err(RecipeError::Modalities(format!(
                    "name {:?}: a modality's name is non-empty, without commas, dots, slashes or spaces",
                    m.name
                )));
            }
            if modalities[..k].iter().any(|o| o.name == m.name) {
                return Err(RecipeError::Modalities(format!(
                    "name {:?} given twice",
                    m.name
                )));
            }
            if m.data.is_paired() || m.data.is_graph() || m.encoder.is_graph() {
                return Err(RecipeError::Modalities(format!(
                    "{}: a modality holds samples of one kind (not pairs, not graphs)",
                    m.name
                )));
            }
            let sub = self.modality_recipe(k).expect("k < modalities");
            sub.validate_data_and_views()
                .map_err(|e| RecipeError::Modalities(format!("{}: {e}", m.name)))?;
        }
        if self.encoder != modalities[0].encoder {
            return Err(RecipeError::Modalities(
                "the recipe's [encoder] is the first modality's; leave it out".into(),
            ));
        }
        self.validate_method()?;
        self.validate_train()?;
        self.validate_eval()
    }

    fn validate_data_and_views(&self) -> R {
        if let DataConfig::CsvImages { options, .. } = &self.data {
            options.validate().map_err(RecipeError::CsvImages)?;
        }
        self.validate_series()?;
        self.validate_audio()?;
        self.validate_text()?;
        let table = self.data.is_table();
        if !table && self.views.table.is_some() {
            return Err(RecipeError::ViewsMismatch {
                given: "table",
                data: "image",
            });
        }
        if table && self.encoder.wants_images() {
            return Err(RecipeError::EncoderNeedsImages {
                encoder: self.encoder.kind(),
            });
        }
        if let DataConfig::ImageFolder { options, .. } | DataConfig::ImageShards { options, .. } =
            &self.data
        {
            if options.max_pixels == 0 {
                return Err(RecipeError::ZeroCount {
                    field: "data.options.max_pixels",
                });
            }
        }
        let views = &self.views;
        for (a, f) in [
            (&views.image, augment_fields!("image")),
            (&views.image2, augment_fields!("image2")),
            (&views.local, augment_fields!("local")),
        ] {
            if let Some(a) = a {
                if table {
                    return Err(RecipeError::ViewsMismatch {
                        given: f.table,
                        data: "table",
                    });
                }
                check_augment(a, &f)?;
            }
        }
        if let Some(a) = &views.image {
            if a.eval_size.is_some()
                && a.eval_size != a.size
                && !self.encoder.takes_any_input_size()
            {
                return Err(RecipeError::EvalSizeNeedsAnySize {
                    encoder: self.encoder.kind(),
                });
            }
        }
        if views.local_crops > 0 {
            if views.local.is_none() {
                return Err(RecipeError::LocalCropsWithoutPipeline(views.local_crops));
            }
            if !self.method.accepts_local_crops() {
                return Err(RecipeError::NoMultiCrop {
                    method: self.method.name(),
                });
            }
        }
        if let Some(t) = &self.views.table {
            probability("views.table.corruption_rate", t.corruption_rate)?;
            non_negative("views.table.noise_std", t.noise_std)?;
        }
        match &self.encoder {
            crate::encoders::EncoderConfig::Mlp { dims, .. } => {
                widths("encoder.dims", dims.iter().copied())
            }
            crate::encoders::EncoderConfig::SmallCnn { widths: w } => {
                widths("encoder.widths", w.iter().copied())
            }
            crate::encoders::EncoderConfig::Resnet18 { width, .. } => {
                widths("encoder.width", [*width])
            }
            crate::encoders::EncoderConfig::AudioCnn {
                widths: w,
                dim,
                dropout,
            } => {
                widths("encoder.widths", w.iter().copied())?;
                widths("encoder.dim", [*dim])?;
                probability("encoder.dropout", *dropout)
            }
            crate::encoders::EncoderConfig::FrameTransformer {
                dim, depth, heads, ..
            } => {
                widths("encoder.dim", [*dim])?;
                widths("encoder.depth", [*depth as i64])?;
                widths("encoder.heads", [*heads])
            }
            crate::encoders::EncoderConfig::Vit {
                patch,
                dim,
                depth,
                heads,
                mlp_ratio,
                ..
            } => {
                widths("encoder.patch", [*patch])?;
                widths("encoder.dim", [*dim])?;
                widths("encoder.depth", [*depth as i64])?;
                widths("encoder.heads", [*heads])?;
                positive("encoder.mlp_ratio", *mlp_ratio)
            }
            crate::encoders::EncoderConfig::TextTransformer {
                vocab,
                dim,
                depth,
                heads,
                mlp_ratio,
                dropout,
                ..
            } => {
                widths("encoder.vocab", [vocab.unwrap_or(1)])?;
                widths("encoder.dim", [*dim])?;
                widths("encoder.depth", [*depth as i64])?;
                widths("encoder.heads", [*heads])?;
                positive("encoder.mlp_ratio", *mlp_ratio)?;
                probability("encoder.dropout", *dropout)
            }
            crate::encoders::EncoderConfig::FeatureTransformer {
                dim,
                depth,
                heads,
                mlp_ratio,
                ..
            } => {
                widths("encoder.dim", [*dim])?;
                widths("encoder.depth", [*depth as i64])?;
                widths("encoder.heads", [*heads])?;
                positive("encoder.mlp_ratio", *mlp_ratio)
            }
            crate::encoders::EncoderConfig::Cnn1d { widths: w, kernel } => {
                widths("encoder.widths", w.iter().copied())?;
                widths("encoder.kernel", [*kernel])
            }
            crate::encoders::EncoderConfig::TstccConv {
                widths: w,
                kernel,
                dropout,
            } => {
                widths("encoder.widths", w.iter().copied())?;
                widths("encoder.kernel", [*kernel])?;
                probability("encoder.dropout", *dropout)
            }
            crate::encoders::EncoderConfig::DilatedConv {
                hidden,
                out,
                depth,
                kernel,
            } => {
                widths("encoder.hidden", [*hidden])?;
                widths("encoder.out", [*out])?;
                widths("encoder.depth", [*depth as i64])?;
                widths("encoder.kernel", [*kernel])?;
                if kernel % 2 == 0 {
                    return Err(RecipeError::EvenKernel(*kernel));
                }
                Ok(())
            }
            crate::encoders::EncoderConfig::Gcn(c) => {
                widths("encoder.dims", c.dims.iter().copied())?;
                probability("encoder.dropout", c.dropout)
            }
            crate::encoders::EncoderConfig::Gat(c) => {
                widths("encoder.layers", [c.layers as i64])?;
                widths("encoder.hidden", [c.hidden])?;
                widths("encoder.heads", [c.heads])?;
                widths("encoder.out", [c.out])?;
                widths("encoder.out_heads", [c.out_heads])?;
                probability("encoder.feat_drop", c.feat_drop)?;
                probability("encoder.attn_drop", c.attn_drop)?;
                non_negative("encoder.negative_slope", c.negative_slope)
            }
            crate::encoders::EncoderConfig::Gin(c) => {
                widths("encoder.layers", [c.layers as i64])?;
                widths("encoder.hidden", [c.hidden])?;
                if let Some(out) = c.out {
                    widths("encoder.out", [out])?;
                }
                probability("encoder.dropout", c.dropout)
            }
        }
    }

    /// Series go with series views and an encoder of series (cnn1d, or mlp on the flat values),
    /// and the series encoder with series alone.
    fn validate_series(&self) -> R {
        let series = self.data.is_series();
        let v = &self.views;
        if series {
            if v.image.is_some() || v.image2.is_some() || v.local.is_some() || v.table.is_some() {
                return Err(RecipeError::ViewsMismatch {
                    given: "image/table",
                    data: "series",
                });
            }
            let kind = self.encoder.kind();
            if !matches!(kind, "cnn1d" | "dilated_conv" | "tstcc_conv" | "mlp") {
                return Err(RecipeError::NeedsSeriesEncoder { encoder: kind });
            }
            if let DataConfig::Ucr { options, .. } = &self.data {
                if options.length == Some(0) {
                    return Err(RecipeError::ZeroCount {
                        field: "data.options.length",
                    });
                }
            }
        } else {
            if v.series.is_some() || v.series2.is_some() {
                return Err(RecipeError::ViewsMismatch {
                    given: "series",
                    data: "non-series",
                });
            }
            let kind = self.encoder.kind();
            if matches!(kind, "cnn1d" | "dilated_conv" | "tstcc_conv") {
                return Err(RecipeError::NeedsSeriesEncoder { encoder: kind });
            }
        }
        for (a, [jitter, scale, crop, time_warp, magnitude_warp]) in [
            (
                &v.series,
                [
                    "views.series.jitter",
                    "views.series.scale",
                    "views.series.crop_scale",
                    "views.series.time_warp",
                    "views.series.magnitude_warp",
                ],
            ),
            (
                &v.series2,
                [
                    "views.series2.jitter",
                    "views.series2.scale",
                    "views.series2.crop_scale",
                    "views.series2.time_warp",
                    "views.series2.magnitude_warp",
                ],
            ),
        ] {
            if let Some(a) = a {
                non_negative(jitter, a.jitter)?;
                non_negative(scale, a.scale)?;
                fraction_range(crop, a.crop_scale, true)?;
                non_negative(time_warp, a.time_warp)?;
                non_negative(magnitude_warp, a.magnitude_warp)?;
            }
        }
        Ok(())
    }

    /// Audio goes with audio views and an encoder of spectrograms, and the audio encoders with
    /// audio alone.
    /// Text goes with the text encoder and no views of other data, and the text encoder with
    /// text alone; the tokenizer's vocabulary must fit the encoder's embedding table.
    fn validate_text(&self) -> R {
        let kind = self.encoder.kind();
        let DataConfig::Text {
            train,
            test,
            corpora,
            tokenizer,
        } = &self.data
        else {
            if kind == "text_transformer" {
                return Err(RecipeError::NeedsTextEncoder { encoder: kind });
            }
            return Ok(());
        };
        let v = &self.views;
        if v.image.is_some()
            || v.image2.is_some()
            || v.local.is_some()
            || v.table.is_some()
            || v.series.is_some()
            || v.series2.is_some()
            || v.audio.is_some()
        {
            return Err(RecipeError::ViewsMismatch {
                given: "image/table/series/audio",
                data: "text",
            });
        }
        if kind != "text_transformer" {
            return Err(RecipeError::NeedsTextEncoder { encoder: kind });
        }
        if self.method.needs().encoders != ["text_transformer"] {
            return Err(RecipeError::TextOptions(format!(
                "method.name = {}: text data takes the text methods (mlm, rts, slm, simcse)",
                self.method.name()
            )));
        }
        tokenizer.check().map_err(RecipeError::TextOptions)?;
        for f in std::iter::once(train).chain(test).chain(corpora) {
            f.check()
                .map_err(|m| RecipeError::TextOptions(format!("data: {m}")))?;
        }
        if let Some(vocab) = self.encoder_vocab() {
            if (vocab as usize) < tokenizer.vocab_size {
                return Err(RecipeError::TextOptions(format!(
                    "encoder.vocab = {vocab} is smaller than data.tokenizer.vocab_size = {}",
                    tokenizer.vocab_size
                )));
            }
        }
        Ok(())
    }

    fn validate_audio(&self) -> R {
        let v = &self.views;
        let kind = self.encoder.kind();
        if let DataConfig::AudioFolder { options, .. } = &self.data {
            if v.image.is_some()
                || v.image2.is_some()
                || v.local.is_some()
                || v.table.is_some()
                || v.series.is_some()
                || v.series2.is_some()
            {
                return Err(RecipeError::ViewsMismatch {
                    given: "image/table/series",
                    data: "audio",
                });
            }
            if !matches!(
                kind,
                "audio_cnn" | "frame_transformer" | "vit" | "small_cnn" | "resnet18" | "mlp"
            ) {
                return Err(RecipeError::NeedsAudioEncoder { encoder: kind });
            }
            if options.frames == 0 {
                return Err(RecipeError::ZeroCount {
                    field: "data.options.frames",
                });
            }
            options
                .mel
                .check(options.sample_rate)
                .map_err(|m| RecipeError::AudioOptions(format!("mel: {m}")))?;
        } else {
            if v.audio.is_some() {
                return Err(RecipeError::ViewsMismatch {
                    given: "audio",
                    data: "non-audio",
                });
            }
            if matches!(kind, "audio_cnn" | "frame_transformer") {
                return Err(RecipeError::NeedsAudioEncoder { encoder: kind });
            }
        }
        if let Some(a) = &v.audio {
            non_negative("views.audio.gain_db", a.gain_db)?;
            if !(0.0..1.0).contains(&a.mixup) {
                return Err(RecipeError::AudioOptions(format!(
                    "views.audio.mixup = {}: α must be in [0, 1)",
                    a.mixup
                )));
            }
            for (name, r) in [
                ("views.audio.rrc_canvas", a.rrc_canvas),
                ("views.audio.rrc_freq_scale", a.rrc_freq_scale),
                ("views.audio.rrc_time_scale", a.rrc_time_scale),
            ] {
                if !(r[0] > 0.0 && r[0] <= r[1] && r[1].is_finite()) {
                    return Err(RecipeError::AudioOptions(format!(
                        "{name} = {r:?}: needs 0 < lo ≤ hi"
                    )));
                }
            }
            if a.rrc_canvas[0] < 1.0 || a.rrc_canvas[1] < 1.0 {
                return Err(RecipeError::AudioOptions(
                    "views.audio.rrc_canvas: the canvas is at least the spectrogram (≥ 1)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Graph data, a graph encoder, a graph method and a graph protocol go together.
    fn validate_graph(&self) -> R {
        use crate::methods::Modality;
        let graph_data = self.data.is_graph();
        let graph_method = self.method.modality() == Modality::Graphs;
        if graph_data != graph_method {
            return Err(RecipeError::ModalityMismatch {
                what: "method.name",
                value: self.method.name().into(),
                graph_data,
            });
        }
        if graph_data != self.encoder.is_graph() {
            return Err(RecipeError::ModalityMismatch {
                what: "encoder.kind",
                value: self.encoder.kind().into(),
                graph_data,
            });
        }
        if !graph_data {
            if self.eval.graph.is_some() {
                return Err(RecipeError::GraphProtocolWithoutGraphs);
            }
            return Ok(());
        }
        if self.views != super::ViewsConfig::default() {
            return Err(RecipeError::ViewsMismatch {
                given: "image/table",
                data: "graph",
            });
        }
        let Some(protocol) = &self.eval.graph else {
            return Err(RecipeError::NoGraphProtocol);
        };
        protocol.validate()?;
        if protocol.is_graph_level() != self.data.is_graph_level() {
            return Err(RecipeError::ProtocolLevel);
        }
        if let Some(seeds) = &self.seeds {
            if seeds.is_empty() {
                return Err(RecipeError::NoSeeds);
            }
        }
        Ok(())
    }

    fn validate_method(&self) -> R {
        let spec = self.method.spec();
        spec.validate()?;
        let kinds = spec.needs().encoders;
        if !kinds.is_empty() && !kinds.contains(&self.encoder.kind()) {
            return Err(RecipeError::NeedsEncoder {
                method: self.method.name(),
                kind: kinds.join(" or "),
            });
        }
        if spec.needs().own_views && (self.views.series.is_some() || self.views.series2.is_some()) {
            return Err(RecipeError::OwnViews {
                method: self.method.name(),
            });
        }
        let min = spec.needs().min_batch;
        if self.train.batch_size < min {
            return Err(RecipeError::BatchTooSmall {
                method: self.method.name(),
                batch: self.train.batch_size,
                min,
            });
        }
        Ok(())
    }

    fn validate_train(&self) -> R {
        self.train.validate()
    }

    fn validate_eval(&self) -> R {
        let e = &self.eval;
        if e.knn_k == 0 {
            return Err(RecipeError::KnnKZero);
        }
        temperature("eval.knn_temperature", e.knn_temperature)?;
        if e.nearest_raw && !self.data.is_series() {
            return Err(RecipeError::NearestNeedsSeries);
        }
        non_negative("eval.probe_weight_decay", e.probe_weight_decay)?;
        if !(e.finetune_lr.is_finite() && e.finetune_lr > 0.0) {
            return Err(RecipeError::BadRange {
                field: "eval.finetune_lr",
                lo: e.finetune_lr,
                hi: e.finetune_lr,
                rule: "the learning rate must be > 0",
            });
        }
        if let Some(d) = e.finetune_layer_decay {
            if !(d > 0.0 && d <= 1.0) {
                return Err(RecipeError::BadRange {
                    field: "eval.finetune_layer_decay",
                    lo: d,
                    hi: d,
                    rule: "a layer decay must be in (0, 1]",
                });
            }
        }
        non_negative("eval.finetune_weight_decay", e.finetune_weight_decay)?;
        let f = e.finetune_label_fraction;
        if !(f > 0.0 && f <= 1.0) {
            return Err(RecipeError::BadRange {
                field: "eval.finetune_label_fraction",
                lo: f,
                hi: f,
                rule: "a fraction of the labels must be in (0, 1]",
            });
        }
        self.validate_few_labels()?;
        for (field, n) in [
            ("eval.probe_iters", e.probe_iters),
            ("eval.batch", e.batch),
            ("eval.monitor_train_samples", e.monitor_train_samples),
            ("eval.max_train_samples", e.max_train_samples.unwrap_or(1)),
            ("eval.max_test_samples", e.max_test_samples.unwrap_or(1)),
            ("eval.finetune_batch", e.finetune_batch),
            ("eval.finetune_epochs", e.finetune_epochs as usize),
        ] {
            if n == 0 {
                return Err(RecipeError::ZeroCount { field });
            }
        }
        Ok(())
    }
}

impl Recipe {
    /// The few-label settings of `[eval]`: the fine-tuning objective, SAM, self-training.
    fn validate_few_labels(&self) -> Result<(), RecipeError> {
        use crate::eval::supervised::SupervisedObjective;
        let e = &self.eval;
        match e.finetune_objective {
            SupervisedObjective::Sla { rotations, .. } if !(1..=4).contains(&rotations) => {
                return Err(RecipeError::BadRange {
                    field: "eval.finetune_objective.rotations",
                    lo: rotations as f64,
                    hi: rotations as f64,
                    rule: "SLA rotates by 0, 90, 180 and 270 degrees: 1 to 4 rotations",
                })
            }
            SupervisedObjective::PsKd { alpha_t } => {
                probability("eval.finetune_objective.alpha_t", alpha_t)?
            }
            _ => {}
        }
        if let Some(s) = &e.finetune_sam {
            if !(s.rho.is_finite() && s.rho > 0.0) {
                return Err(RecipeError::BadRange {
                    field: "eval.finetune_sam.rho",
                    lo: s.rho,
                    hi: s.rho,
                    rule: "SAM's radius must be > 0",
                });
            }
            non_negative("eval.finetune_sam.eta", s.eta)?;
        }
        let st = &e.self_training;
        probability("eval.self_training.threshold", st.threshold)?;
        probability("eval.self_training.labelled_share", st.labelled_share)?;
        for (field, n) in [
            ("eval.self_training.rounds", st.rounds),
            (
                "eval.self_training.student_epochs",
                st.student_epochs as usize,
            ),
        ] {
            if n == 0 {
                return Err(RecipeError::ZeroCount { field });
            }
        }
        Ok(())
    }
}

/// The dotted path of the first NaN or infinite float in `v`.
pub(super) fn first_non_finite(v: &toml::Value, path: &str) -> Option<String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some(path.to_string()),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| first_non_finite(x, &join(k))),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_non_finite(x, &format!("{path}[{i}]"))),
        _ => None,
    }
}
