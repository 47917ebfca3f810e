//! Images → views: every view is an independent draw of the recipe's augmentation pipeline.
use super::image_aug::ImageAugment;
use super::ViewSource;
use crate::data::ImageSource;
use crate::error::DataError;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub struct ImageViews {
    pub images: Arc<dyn ImageSource>,
    /// One pipeline per view (asymmetric pairs such as BYOL's use different ones); when shorter
    /// than the number of views, the last one is reused.
    pub augments: Vec<ImageAugment>,
}

impl ImageViews {
    pub fn new(images: Arc<dyn ImageSource>, augments: Vec<ImageAugment>) -> Self {
        assert!(!augments.is_empty(), "at least one augmentation pipeline");
        ImageViews { images, augments }
    }
    fn augment_for(&self, view: usize) -> &ImageAugment {
        &self.augments[view.min(self.augments.len() - 1)]
    }
}

impl ViewSource for ImageViews {
    fn len(&self) -> usize {
        self.images.len()
    }
    /// The evaluation input's shape (`[views.image]`'s `eval_size`, else its `size`).
    fn sample_shape(&self) -> Vec<i64> {
        let (c, h, w) = self.images.shape();
        let s = self.augments[0].eval_shape(c, h, w);
        s.iter().map(|&d| d as i64).collect()
    }
    fn view_shape(&self, view: usize) -> Vec<i64> {
        let (c, h, w) = self.images.shape();
        let s = self.augment_for(view).output_shape(c, h, w);
        s.iter().map(|&d| d as i64).collect()
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let (c, h, w) = self.images.shape();
        let pixels = self.images.image(index);
        self.augment_for(view).augment(&pixels, c, h, w, rng, out);
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        let (c, h, w) = self.images.shape();
        self.augments[0].plain(&self.images.image(index), c, h, w, out);
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.images.label(index)
    }
    fn source(&self, index: usize) -> Option<String> {
        self.images.source(index)
    }
    fn n_classes(&self) -> usize {
        self.images.n_classes()
    }
    fn take_errors(&self) -> Vec<DataError> {
        self.images.take_errors()
    }
}
