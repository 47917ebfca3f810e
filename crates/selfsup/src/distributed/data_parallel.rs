//! What data-parallel training does to a model between steps, over a [`ProcessGroup`]: the
//! same starting weights on every rank (rank 0's, broadcast), gradients averaged over the ranks
//! after each backward pass, and batch-norm running statistics re-broadcast from rank 0 after
//! each step, as PyTorch's DistributedDataParallel does by default (`broadcast_buffers`).
//!
//! Tensors travel in buckets: each bucket is one flat buffer of tensors of one dtype (at most
//! [`BUCKET_BYTES`]), so a model with hundreds of small tensors costs a few collectives.
use super::group::ProcessGroup;
use anyhow::Result;
use tch::nn::VarStore;
use tch::Tensor;

/// PyTorch DDP's default bucket size (25 MiB).
pub const BUCKET_BYTES: usize = 25 << 20;

/// Rank 0's values of every variable (parameters and buffers), written into every rank's.
pub fn broadcast_variables(group: &ProcessGroup, vs: &VarStore) -> Result<()> {
    let tensors = sorted_variables(vs, |_, _| true);
    in_buckets(&tensors, |flat| group.broadcast_(flat, 0))
}

/// Rank 0's batch-norm running statistics. Other non-trainable state (EMA targets, MoCo's
/// queue, DINO's centre) follows the averaged update identically on every rank and is not sent.
pub fn broadcast_buffers(group: &ProcessGroup, vs: &VarStore) -> Result<()> {
    let tensors = sorted_variables(vs, |n, t| {
        !t.requires_grad() && (n.ends_with("running_mean") || n.ends_with("running_var"))
    });
    in_buckets(&tensors, |flat| group.broadcast_(flat, 0))
}

/// The variables `keep` selects, in name order (the same order on every rank).
fn sorted_variables(vs: &VarStore, keep: impl Fn(&str, &Tensor) -> bool) -> Vec<Tensor> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, t)| keep(n, t))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter().map(|(_, t)| t).collect()
}

/// Replaces every trainable variable's gradient by its mean over the ranks. A variable that
/// received no gradient on this rank is skipped; every rank runs the same method, so the set
/// is the same everywhere (checked: the ranks' counts are compared first).
pub fn average_gradients(group: &ProcessGroup, vs: &VarStore) -> Result<()> {
    let grads: Vec<Tensor> = sorted_variables(vs, |_, t| t.requires_grad())
        .iter()
        .map(|t| t.grad())
        .filter(|g| g.defined())
        .collect();
    let mut count = Tensor::from_slice(&[grads.len() as f64, 1.0]);
    group.all_reduce_sum_(&mut count)?;
    let counts = Vec::<f64>::try_from(&count)?;
    if counts[0] != grads.len() as f64 * counts[1] {
        anyhow::bail!(
            "rank {}: {} parameters have gradients here but not on every rank; the ranks run \
             different models",
            group.rank(),
            grads.len()
        );
    }
    in_buckets(&grads, |flat| group.all_reduce_sum_(flat))?;
    let scale = 1.0 / group.world_size() as f64;
    tch::no_grad(|| {
        for g in &grads {
            let _ = g.shallow_clone().g_mul_scalar_(scale);
        }
    });
    Ok(())
}

/// Applies `op` to flat buffers holding `tensors` (grouped by dtype, up to BUCKET_BYTES each)
/// and writes the results back into the tensors.
fn in_buckets(tensors: &[Tensor], mut op: impl FnMut(&mut Tensor) -> Result<()>) -> Result<()> {
    let mut start = 0;
    while start < tensors.len() {
        let kind = tensors[start].kind();
        let mut end = start;
        let mut bytes = 0usize;
        while end < tensors.len()
            && tensors[end].kind() == kind
            && (end == start || bytes + size_bytes(&tensors[end]) <= BUCKET_BYTES)
        {
            bytes += size_bytes(&tensors[end]);
            end += 1;
        }
        let bucket = &tensors[start..end];
        tch::no_grad(|| -> Result<()> {
            let parts: Vec<Tensor> = bucket.iter().map(|t| t.reshape([-1])).collect();
            let mut flat = Tensor::cat(&parts, 0).contiguous();
            op(&mut flat)?;
            let mut offset = 0;
            for t in bucket {
                let n = t.numel() as i64;
                t.shallow_clone()
                    .copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                offset += n;
            }
            Ok(())
        })?;
        start = end;
    }
    Ok(())
}

fn size_bytes(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}
