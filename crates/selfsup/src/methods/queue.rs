//! A first-in-first-out queue of feature rows (MoCo's negative keys, NNCLR's support set), kept in
//! the `VarStore` so that it is checkpointed, and written only after a successful step.
use std::cell::RefCell;
use tch::{nn, Kind, Tensor};

pub struct FeatureQueue {
    rows: Tensor,
    /// Next row to overwrite, stored as a one-element float tensor in the `VarStore`.
    next: Tensor,
    staged: RefCell<Option<Tensor>>,
}

impl FeatureQueue {
    /// `size` rows of width `dim`, initialised to random unit vectors (MoCo's initial queue).
    pub fn new(p: &nn::Path, size: i64, dim: i64) -> Self {
        let rows = p.zeros_no_train("rows", &[size, dim]);
        let next = p.zeros_no_train("next", &[1]);
        tch::no_grad(|| {
            let r = Tensor::randn([size, dim], (Kind::Float, p.device()));
            let norms = r.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            rows.shallow_clone().copy_(&(r / norms));
        });
        FeatureQueue {
            rows,
            next,
            staged: RefCell::new(None),
        }
    }
    /// The queue's rows `[size, dim]` (no gradient).
    pub fn rows(&self) -> &Tensor {
        &self.rows
    }
    /// Rows to enqueue when the step is committed; replaces anything staged before.
    pub fn stage(&self, rows: &Tensor) {
        *self.staged.borrow_mut() = Some(rows.detach());
    }
    /// Writes the staged rows at the head of the queue, wrapping around.
    pub fn commit(&self) {
        let Some(new) = self.staged.borrow_mut().take() else {
            return;
        };
        let size = self.rows.size()[0];
        let start = f64::try_from(&self.next).unwrap_or(0.0) as i64;
        let n = new.size()[0].min(size);
        let idx = (Tensor::arange(n, (Kind::Int64, self.rows.device())) + start).remainder(size);
        tch::no_grad(|| {
            let _ = self.rows.shallow_clone().index_copy_(
                0,
                &idx,
                &new.narrow(0, 0, n).to_kind(self.rows.kind()),
            );
            let _ = self.next.shallow_clone().fill_(((start + n) % size) as f64);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn rows_start_as_unit_vectors_and_wrap_around() {
        let vs = nn::VarStore::new(Device::Cpu);
        let q = FeatureQueue::new(&vs.root(), 5, 2);
        let norms = q.rows().norm_scalaropt_dim(2, [1], false);
        assert!(f64::try_from((norms - 1.0).abs().max()).unwrap() < 1e-5);
        // Nothing staged: no change.
        let before = q.rows().copy();
        q.commit();
        assert!(q.rows().equal(&before));
        let batch = |v: f32| Tensor::full([3, 2], v as f64, (Kind::Float, Device::Cpu));
        q.stage(&batch(1.0));
        q.commit(); // rows 0, 1, 2
        q.stage(&batch(2.0));
        q.commit(); // rows 3, 4, then 0
        let col: Vec<f32> = Vec::try_from(q.rows().select(1, 0)).unwrap();
        assert_eq!(col, vec![2.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(f64::try_from(&q.next).unwrap(), 1.0);
        // Committing twice without a new stage does nothing.
        q.commit();
        assert_eq!(f64::try_from(&q.next).unwrap(), 1.0);
    }
}
