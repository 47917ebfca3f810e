//! Pairs of samples of several modalities as a view source: view `v` of pair `i` is a view of
//! modality `v`'s member of the pair (`data/pairs.rs`), drawn by that modality's own views. The
//! plain input, label and source of a pair are its first modality's, so the run's own
//! evaluation scores the first encoder.
use super::ViewSource;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub struct PairedViews {
    pub parts: Vec<Arc<dyn ViewSource>>,
    /// `pairs[i][m]`: the index in `parts[m]` of pair `i`'s member.
    pub pairs: Arc<Vec<Vec<usize>>>,
}

impl ViewSource for PairedViews {
    fn len(&self) -> usize {
        self.pairs.len()
    }
    fn sample_shape(&self) -> Vec<i64> {
        self.parts[0].sample_shape()
    }
    fn view_shape(&self, view: usize) -> Vec<i64> {
        self.parts[view.min(self.parts.len() - 1)].view_shape(0)
    }
    fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let m = view.min(self.parts.len() - 1);
        self.parts[m].make_view(self.pairs[index][m], 0, rng, out)
    }
    fn make_plain(&self, index: usize, out: &mut [f32]) {
        self.parts[0].make_plain(self.pairs[index][0], out)
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.parts[0].label(self.pairs[index][0])
    }
    fn source(&self, index: usize) -> Option<String> {
        self.parts[0].source(self.pairs[index][0])
    }
    fn n_classes(&self) -> usize {
        self.parts[0].n_classes()
    }
    fn modality_shapes(&self) -> Vec<Vec<i64>> {
        self.parts.iter().map(|p| p.sample_shape()).collect()
    }
    fn take_errors(&self) -> Vec<crate::error::DataError> {
        self.parts.iter().flat_map(|p| p.take_errors()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::loader::plain_batch;

    /// A source whose sample `i` is the constant `base + i`, of a given shape.
    struct Constant {
        base: f32,
        shape: Vec<i64>,
    }
    impl ViewSource for Constant {
        fn len(&self) -> usize {
            10
        }
        fn sample_shape(&self) -> Vec<i64> {
            self.shape.clone()
        }
        fn make_view(&self, i: usize, _: usize, _: &mut ChaCha8Rng, out: &mut [f32]) {
            out.fill(self.base + i as f32 + 0.5)
        }
        fn make_plain(&self, i: usize, out: &mut [f32]) {
            out.fill(self.base + i as f32)
        }
        fn label(&self, i: usize) -> Option<i64> {
            Some(i as i64 % 2)
        }
        fn n_classes(&self) -> usize {
            2
        }
    }

    #[test]
    fn view_m_of_a_pair_is_modality_m_of_its_member() {
        let p = PairedViews {
            parts: vec![
                Arc::new(Constant {
                    base: 0.0,
                    shape: vec![3],
                }),
                Arc::new(Constant {
                    base: 100.0,
                    shape: vec![1, 2, 2],
                }),
            ],
            pairs: Arc::new(vec![vec![4, 7], vec![1, 2]]),
        };
        assert_eq!(p.len(), 2);
        assert_eq!(p.view_shape(1), vec![1, 2, 2]);
        assert_eq!(p.modality_shapes(), vec![vec![3], vec![1, 2, 2]]);
        let mut rng = crate::rng::keyed(0, crate::rng::Stream::View, 0, 0, 0);
        let mut out = vec![0.0; 4];
        p.make_view(0, 1, &mut rng, &mut out);
        assert_eq!(out, vec![107.5; 4]);
        let mut out = vec![0.0; 3];
        p.make_view(1, 0, &mut rng, &mut out);
        assert_eq!(out, vec![1.5; 3]);
        let plain = plain_batch(&p, 0..2);
        assert_eq!(
            Vec::<f32>::try_from(plain.flatten(0, -1)).unwrap(),
            vec![4., 4., 4., 1., 1., 1.]
        );
        assert_eq!((p.label(0), p.label(1)), (Some(0), Some(1)));
    }
}
