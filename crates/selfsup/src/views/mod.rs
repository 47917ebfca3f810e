//! Views: stochastic transforms that turn one sample into the views a method needs.
//! Randomness is keyed by (seed, epoch, sample index, view), never by thread, so results do not
//! depend on how many workers build them.

pub mod audio;
pub mod graph;
pub mod image_aug;
pub mod image_views;
pub mod loader;
pub mod masking;
pub mod paired;
pub mod series;
pub mod table_corruption;
pub mod text;
pub mod text_masking;

use rand_chacha::ChaCha8Rng;

/// A dataset that can produce augmented views and plain (evaluation) inputs of its samples.
pub trait ViewSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one plain (evaluation) input as the model sees it (`[C, H, W]` or `[D]`).
    fn sample_shape(&self) -> Vec<i64>;
    /// Shape of view `view` (multi-crop local views are smaller than the global ones).
    fn view_shape(&self, _view: usize) -> Vec<i64> {
        self.sample_shape()
    }
    fn sample_len(&self) -> usize {
        self.sample_shape().iter().product::<i64>() as usize
    }
    /// View `view` of sample `index`, drawn from `rng` (already keyed by seed/epoch/index/view).
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]);
    /// The un-augmented model input of sample `index`.
    fn make_plain(&self, index: usize, out: &mut [f32]);
    /// Class label of sample `index`, if the data has labels.
    fn label(&self, index: usize) -> Option<i64>;
    /// Where sample `index` came from (an image's file), if the data knows.
    fn source(&self, _index: usize) -> Option<String> {
        None
    }
    /// Number of classes (0 when unlabeled).
    fn n_classes(&self) -> usize;
    /// For tables: where each feature sits in a sample (feature tokenizers need it).
    fn feature_spans(&self) -> Option<Vec<crate::data::FeatureSpan>> {
        None
    }
    /// Regression target of sample `index`, for tables with a numeric label.
    fn target(&self, _index: usize) -> Option<f32> {
        None
    }
    /// The plain input shape of each modality (one for every source but paired ones, whose
    /// view `v` is modality `v`'s).
    fn modality_shapes(&self) -> Vec<Vec<i64>> {
        vec![self.sample_shape()]
    }
    /// Errors met while building views since the last call (sources that read from disk on
    /// demand); the learner and the evaluation stop on the first.
    fn take_errors(&self) -> Vec<crate::error::DataError> {
        Vec::new()
    }
}
