//! Batches of views built on worker threads, ahead of the model, through a bounded queue.
//!
//! Batch `k` of epoch `e` always holds the samples `perm(seed, e)[k·B .. (k+1)·B]` and each view
//! is drawn from a generator keyed by (seed, epoch, sample, view): the batches are the same for any
//! number of workers, and a resumed run can start at any (epoch, k).
use super::masking::MaskSpec;
use super::ViewSource;
use crate::rng::{self, Stream};
use crossbeam_channel::{bounded, Receiver};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tch::Tensor;

pub struct Batch {
    /// Position of this batch inside its epoch.
    pub step_in_epoch: u64,
    /// `views[v]` is `[B, ...sample_shape]`.
    pub views: Vec<Tensor>,
    pub indices: Vec<usize>,
    /// Class labels of the samples, when the source has them.
    pub labels: Option<Tensor>,
    /// Token masks for masked methods (see [`MaskSpec`]); empty otherwise.
    pub masks: Vec<Tensor>,
}

/// Number of whole batches per epoch (the last partial batch is dropped, as the reference does).
pub fn steps_per_epoch(n: usize, batch: usize) -> u64 {
    (n / batch.max(1)) as u64
}

pub struct BatchStream {
    rx: Receiver<Batch>,
    pending: BTreeMap<u64, Batch>,
    next: u64,
    end: u64,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// Time the consumer spent blocked waiting for a batch.
    pub wait: Duration,
}

/// This process's share of every batch in data-parallel training: rank r of W takes rows
/// r·B/W … (r+1)·B/W − 1 of each global batch of B (B divisible by W), so that the ranks
/// together see exactly the batches of one process, with the same views (they are keyed by
/// sample, not by position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// One process: the whole batch.
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// The rows of a global batch of `batch` that this rank builds.
    pub fn rows(self, batch: usize) -> std::ops::Range<usize> {
        let per = batch / self.world.max(1);
        self.rank * per..(self.rank + 1) * per
    }
}

impl BatchStream {
    /// Streams batches `start..steps_per_epoch` of `epoch`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: Arc<dyn ViewSource>,
        seed: u64,
        epoch: u64,
        start: u64,
        batch: usize,
        n_views: usize,
        mask: Option<MaskSpec>,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        let shape = (batch, n_views, mask);
        Self::sharded(
            source,
            seed,
            epoch,
            start,
            shape,
            Shard::WHOLE,
            workers,
            prefetch,
        )
    }

    /// [`BatchStream::new`] for one rank's share of each batch; `shape` is (global batch size,
    /// views, masks).
    #[allow(clippy::too_many_arguments)]
    pub fn sharded(
        source: Arc<dyn ViewSource>,
        seed: u64,
        epoch: u64,
        start: u64,
        shape: (usize, usize, Option<MaskSpec>),
        shard: Shard,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        let (batch, n_views, mask) = shape;
        let rows = shard.rows(batch);
        let mask = Arc::new(mask);
        let end = steps_per_epoch(source.len(), batch);
        let order = Arc::new(rng::epoch_permutation(seed, epoch, source.len()));
        let workers = workers.max(1);
        let (tx, rx) = bounded(prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..workers)
            .map(|w| {
                let rows = rows.clone();
                let (tx, source, order, stop, mask) = (
                    tx.clone(),
                    source.clone(),
                    order.clone(),
                    stop.clone(),
                    mask.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("views-{w}"))
                    .spawn(move || {
                        let mut k = start + w as u64;
                        while k < end && !stop.load(Ordering::Relaxed) {
                            let idx = &order[(k as usize) * batch..(k as usize + 1) * batch]
                                [rows.clone()];
                            let b = build_batch(
                                source.as_ref(),
                                seed,
                                epoch,
                                k,
                                idx,
                                n_views,
                                mask.as_ref().as_ref(),
                            );
                            if tx.send(b).is_err() {
                                break; // consumer gone
                            }
                            k += workers as u64;
                        }
                    })
                    .expect("spawning a view worker thread")
            })
            .collect();
        BatchStream {
            rx,
            pending: BTreeMap::new(),
            next: start,
            end,
            stop,
            workers: handles,
            wait: Duration::ZERO,
        }
    }
}

/// Builds one batch: every view of every sample, keyed so that the result is thread-independent.
pub fn build_batch(
    source: &dyn ViewSource,
    seed: u64,
    epoch: u64,
    step_in_epoch: u64,
    indices: &[usize],
    n_views: usize,
    mask: Option<&MaskSpec>,
) -> Batch {
    let views = (0..n_views)
        .map(|v| {
            let mut shape = vec![indices.len() as i64];
            shape.extend(source.view_shape(v));
            let per = shape[1..].iter().product::<i64>() as usize;
            let mut buf = vec![0f32; per * indices.len()];
            for (slot, &i) in buf.chunks_exact_mut(per).zip(indices) {
                let mut r = rng::keyed(seed, Stream::View, epoch, i as u64, v as u64);
                source.make_view(i, v, &mut r, slot);
            }
            Tensor::from_slice(&buf).view(shape.as_slice())
        })
        .collect();
    let labels: Option<Vec<i64>> = indices.iter().map(|&i| source.label(i)).collect();
    Batch {
        step_in_epoch,
        views,
        indices: indices.to_vec(),
        labels: labels.map(|l| Tensor::from_slice(&l)),
        masks: mask.map_or_else(Vec::new, |m| {
            m.make_batch(seed, epoch, step_in_epoch, indices)
        }),
    }
}

impl Iterator for BatchStream {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let t = Instant::now();
        while !self.pending.contains_key(&self.next) {
            match self.rx.recv() {
                Ok(b) => {
                    self.pending.insert(b.step_in_epoch, b);
                }
                Err(_) => return None, // workers ended early (cannot happen unless one panicked)
            }
        }
        self.wait += t.elapsed();
        let b = self.pending.remove(&self.next);
        self.next += 1;
        b
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock workers waiting on a full queue.
        while self.rx.try_recv().is_ok() {}
        for h in self.workers.drain(..) {
            while !h.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = h.join();
        }
    }
}

/// The plain (un-augmented) inputs of `indices`, as one `[N, ...]` tensor.
pub fn plain_batch(source: &dyn ViewSource, indices: std::ops::Range<usize>) -> Tensor {
    let per = source.sample_len();
    let n = indices.len();
    let mut buf = vec![0f32; per * n];
    for (slot, i) in buf.chunks_exact_mut(per).zip(indices) {
        source.make_plain(i, slot);
    }
    let mut shape = vec![n as i64];
    shape.extend(source.sample_shape());
    Tensor::from_slice(&buf).view(shape.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    /// A source whose views are (index, view, one random draw): enough to see order and keying.
    struct Probe(usize);
    impl ViewSource for Probe {
        fn len(&self) -> usize {
            self.0
        }
        fn sample_shape(&self) -> Vec<i64> {
            vec![3]
        }
        fn make_view(&self, index: usize, view: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
            out.copy_from_slice(&[index as f32, view as f32, rng.gen::<f32>()]);
        }
        fn make_plain(&self, index: usize, out: &mut [f32]) {
            out.copy_from_slice(&[index as f32, -1.0, 0.0]);
        }
        fn label(&self, _: usize) -> Option<i64> {
            None
        }
        fn n_classes(&self) -> usize {
            0
        }
    }

    fn collect(workers: usize, start: u64) -> Vec<Vec<f32>> {
        BatchStream::new(Arc::new(Probe(103)), 5, 2, start, 10, 2, None, workers, 2)
            .map(|b| {
                assert_eq!(b.views[0].size(), vec![10, 3]);
                let mut v = Vec::<f32>::try_from(b.views[0].flatten(0, -1)).unwrap();
                v.extend(Vec::<f32>::try_from(b.views[1].flatten(0, -1)).unwrap());
                v
            })
            .collect()
    }

    #[test]
    fn batches_do_not_depend_on_worker_count_and_can_start_midway() {
        let one = collect(1, 0);
        assert_eq!(one.len(), 10); // 103 / 10, last partial batch dropped
        assert_eq!(one, collect(3, 0));
        assert_eq!(one[4..], collect(2, 4)[..]);
        // Each sample appears at most once per epoch.
        let mut seen: Vec<i64> = one
            .iter()
            .flat_map(|b| b[..30].chunks(3).map(|c| c[0] as i64).collect::<Vec<_>>())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100);
    }

    /// Multi-crop: two global views of 3 values, then smaller local views of 2; labels follow
    /// the batch's samples.
    struct MultiCrop;
    impl ViewSource for MultiCrop {
        fn len(&self) -> usize {
            8
        }
        fn sample_shape(&self) -> Vec<i64> {
            vec![3]
        }
        fn view_shape(&self, view: usize) -> Vec<i64> {
            vec![if view < 2 { 3 } else { 2 }]
        }
        fn make_view(&self, index: usize, view: usize, _: &mut ChaCha8Rng, out: &mut [f32]) {
            out.fill(index as f32 * 10.0 + view as f32);
        }
        fn make_plain(&self, _: usize, out: &mut [f32]) {
            out.fill(0.0);
        }
        fn label(&self, index: usize) -> Option<i64> {
            Some(index as i64 % 3)
        }
        fn n_classes(&self) -> usize {
            3
        }
    }

    #[test]
    fn local_views_take_their_own_shape_and_labels_follow_the_samples() {
        let b = build_batch(&MultiCrop, 0, 0, 0, &[5, 1, 7], 4, None);
        let shapes: Vec<Vec<i64>> = b.views.iter().map(|v| v.size()).collect();
        assert_eq!(shapes, vec![vec![3, 3], vec![3, 3], vec![3, 2], vec![3, 2]]);
        let v3 = Vec::<f32>::try_from(b.views[3].flatten(0, -1)).unwrap();
        assert_eq!(v3, vec![53.0, 53.0, 13.0, 13.0, 73.0, 73.0]);
        let labels = Vec::<i64>::try_from(b.labels.unwrap()).unwrap();
        assert_eq!(labels, vec![2, 1, 1]);
        // Unlabelled sources give no labels.
        assert!(build_batch(&Probe(4), 0, 0, 0, &[0, 1], 2, None)
            .labels
            .is_none());
    }

    #[test]
    fn dropping_midway_stops_workers() {
        let mut s = BatchStream::new(Arc::new(Probe(1000)), 1, 0, 0, 10, 2, None, 2, 1);
        assert!(s.next().is_some());
        drop(s); // must return (joins the workers)
    }
}
