//! Images → views: every view is an independent draw of the recipe's augmentation pipeline.
use super::image_aug::ImageAugment;
use super::ViewSource;
use crate::data::ImageSet;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub struct ImageViews {
    pub images: Arc<ImageSet>,
    /// One pipeline per view (asymmetric pairs such as BYOL's use different ones); when shorter
    /// than the number of views, the last one is reused.
    pub augments: Vec<ImageAugment>,
}

impl ImageViews {
    pub fn new(images: Arc<ImageSet>, augments: Vec<ImageAugment>) -> Self {
        assert!(!augments.is_empty(), "at least one augmentation pipeline");
        ImageViews { images, augments }
    }
    fn augment_for(&self, view: usize) -> &ImageAugment {
        &self.augments[view.min(self.augments.len() - 1)]
    }
}

impl ViewSource for ImageViews {
    fn len(&self) -> usize {
        self.images.len
    }
    /// The evaluation input's shape (`[views.image]`'s `eval_size`, else its `size`).
    fn sample_shape(&self) -> Vec<i64> {
        let s = self.augments[0].eval_shape(
            self.images.channels,
            self.images.height,
            self.images.width,
        );
        s.iter().map(|&d| d as i64).collect()
    }
    fn view_shape(&self, view: usize) -> Vec<i64> {
        let s = self.augment_for(view).output_shape(
            self.images.channels,
            self.images.height,
            self.images.width,
        );
        s.iter().map(|&d| d as i64).collect()
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let im = &self.images;
        self.augment_for(view)
            .augment(im.image(index), im.channels, im.height, im.width, rng, out);
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        let im = &self.images;
        self.augments[0].plain(im.image(index), im.channels, im.height, im.width, out);
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.images.labels.as_ref().map(|l| l[index])
    }
    fn n_classes(&self) -> usize {
        match &self.images.labels {
            Some(l) => self
                .images
                .class_names
                .len()
                .max(l.iter().copied().max().map_or(0, |m| m as usize + 1)),
            None => 0,
        }
    }
}
