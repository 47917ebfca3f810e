//! Graph attention's edge passes (GAT, Veličković et al. 2018, eqs. 1–4): per-edge logits
//! `LeakyReLU(el[src] + er[dst])`, the softmax over each target's incoming edges, attention
//! dropout and the weighted sum of the sources' features, in one call.
//!
//! On the CPU, with the C++ shim built, this is one kernel forward and one backward
//! (`csrc/graph_attention.cpp`) instead of about twenty libtorch ops per direction, each with its
//! own pass over the edges and its own temporary. Elsewhere (a GPU, or a build without libtorch's
//! headers) it is those ops ([`attend_ops`]). The two agree to rounding and draw the same dropout
//! mask ([`crate::torch_dropout`]; the tests below); `set_fused(false)` selects the ops for a
//! side-by-side benchmark.
use super::message::{wider, EdgeIndex};
use crate::torch_dropout::{bernoulli_mask, dropout};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

static FUSED: AtomicBool = AtomicBool::new(true);

/// Chooses the fused kernel (the default) or the op-by-op computation, process-wide.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether [`attend`] takes the fused kernel for tensors on `device`.
pub fn fused_available(device: Device) -> bool {
    cfg!(selfsup_shim) && device == Device::Cpu && FUSED.load(Ordering::Relaxed)
}

/// `out[i, h] = Σ_{j→i} dropout(softmax_{j→i}(LeakyReLU(el[j, h] + er[i, h]))) · feat[j, h]`.
///
/// `feat` is `[N, H, D]`, or `[N, D]` shared by the heads; `el`, `er` are `[N, H]`; the result
/// is `[N, H, D]` in the wider of the two kinds (under bf16 autocast the sums stay fp32).
pub fn attend(
    edges: &EdgeIndex,
    feat: &Tensor,
    el: &Tensor,
    er: &Tensor,
    slope: f64,
    attn_drop: f64,
    train: bool,
) -> Tensor {
    if !fused_available(feat.device()) {
        return attend_ops(edges, feat, el, er, slope, attn_drop, train);
    }
    let kind = wider(wider(feat.kind(), el.kind()), Kind::Float);
    let heads = el.size()[1];
    let feat = if feat.dim() == 2 {
        feat.unsqueeze(1)
    } else {
        feat.shallow_clone()
    };
    // The mask as [`dropout`] draws it, so both paths take the same numbers from the generator.
    let keep = (train && attn_drop > 0.0).then(|| {
        let shape = [edges.num_edges, heads];
        if attn_drop >= 1.0 {
            return Tensor::zeros(shape, (kind, feat.device()));
        }
        bernoulli_mask(
            &shape,
            1.0 - attn_drop,
            1.0 / (1.0 - attn_drop),
            kind,
            feat.device(),
        )
    });
    ffi::attend(
        &feat.to_kind(kind),
        &el.to_kind(kind),
        &er.to_kind(kind),
        keep.as_ref(),
        edges,
        slope,
    )
}

/// [`attend`] written with libtorch's ops (any device, autograd by libtorch).
pub fn attend_ops(
    edges: &EdgeIndex,
    feat: &Tensor,
    el: &Tensor,
    er: &Tensor,
    slope: f64,
    attn_drop: f64,
    train: bool,
) -> Tensor {
    let z = edges.gather_src(el) + edges.gather_dst(er);
    let z = z.maximum(&(&z * slope));
    let alpha = dropout(&edges.edge_softmax(&z), attn_drop, train);
    edges.propagate_heads(feat, &alpha)
}

#[cfg(selfsup_shim)]
mod ffi {
    use super::EdgeIndex;
    use std::ffi::c_void;
    use tch::Tensor;

    extern "C" {
        fn selfsup_graph_last_error(buf: *mut u8, cap: i64) -> i64;
        #[allow(clippy::too_many_arguments)]
        fn selfsup_gat_attend(
            feat: *const c_void,
            el: *const c_void,
            er: *const c_void,
            keep: *const c_void,
            src: *const c_void,
            dst: *const c_void,
            dst_ptr: *const c_void,
            by_src: *const c_void,
            src_ptr: *const c_void,
            slope: f64,
            out: *mut *mut c_void,
        ) -> i32;
    }

    fn ptr(t: &Tensor) -> *const c_void {
        t.as_ptr() as *const c_void
    }

    /// The kernel's shapes are this module's to get right (checked by the tests): a failure is
    /// a bug, reported with the kernel's message.
    pub fn attend(
        feat: &Tensor,
        el: &Tensor,
        er: &Tensor,
        keep: Option<&Tensor>,
        e: &EdgeIndex,
        slope: f64,
    ) -> Tensor {
        let mut out: *mut c_void = std::ptr::null_mut();
        let code = unsafe {
            selfsup_gat_attend(
                ptr(feat),
                ptr(el),
                ptr(er),
                keep.map_or(std::ptr::null(), ptr),
                ptr(&e.src),
                ptr(&e.dst),
                ptr(&e.dst_ptr),
                ptr(&e.by_src),
                ptr(&e.src_ptr),
                slope,
                &mut out,
            )
        };
        if code != 0 {
            let mut buf = vec![0u8; 4096];
            let n = unsafe { selfsup_graph_last_error(buf.as_mut_ptr(), buf.len() as i64) };
            let n = (n.max(0) as usize).min(buf.len() - 1);
            panic!(
                "graph attention kernel: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        unsafe { Tensor::from_ptr(out as *mut _) }
    }
}

#[cfg(not(selfsup_shim))]
mod ffi {
    use super::EdgeIndex;
    use tch::Tensor;
    pub fn attend(
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: Option<&Tensor>,
        _: &EdgeIndex,
        _: f64,
    ) -> Tensor {
        unreachable!("fused_available is false without the shim")
    }
}

#[cfg(all(test, selfsup_shim))]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A random graph with self-loops, some nodes without other in-edges, some without out-edges.
    fn graph(n: usize, m: usize, seed: u64) -> EdgeIndex {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let edges: Vec<[u32; 2]> = (0..m)
            .map(|_| [rng.gen_range(0..n as u32), rng.gen_range(0..n as u32 / 2)])
            .collect();
        EdgeIndex::new(&edges, n, true, Device::Cpu)
    }

    fn leaf(shape: &[i64], kind: Kind) -> Tensor {
        Tensor::randn(shape, (kind, Device::Cpu)).set_requires_grad(true)
    }

    fn grads(out: &Tensor, w: &Tensor, xs: &[&Tensor]) -> Vec<Tensor> {
        let xs: Vec<Tensor> = xs.iter().map(|x| x.shallow_clone()).collect();
        Tensor::run_backward(&[(out * w).sum(out.kind())], &xs, false, false)
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(1e-12);
        (a - b).abs().max().double_value(&[]) / scale
    }

    /// Forward and every gradient of the kernel equal the op-by-op computation, for separate and
    /// shared head features, with and without the dropout mask (same generator state).
    #[test]
    fn the_kernel_equals_the_ops_forward_and_backward() {
        let e = graph(23, 70, 1);
        for (fshape, heads) in [(vec![23, 3, 5], 3), (vec![23, 7], 2), (vec![23, 1, 4], 1)] {
            for drop in [0.0, 0.3] {
                let feat = leaf(&fshape, Kind::Double);
                let el = leaf(&[23, heads], Kind::Double);
                let er = leaf(&[23, heads], Kind::Double);
                tch::manual_seed(5);
                let fused = attend(&e, &feat, &el, &er, 0.2, drop, true);
                tch::manual_seed(5);
                let ops = attend_ops(&e, &feat, &el, &er, 0.2, drop, true);
                assert_eq!(fused.size(), ops.size());
                assert!(max_rel(&fused, &ops) < 1e-12, "forward, {fshape:?}, {drop}");
                let w = Tensor::randn(fused.size(), (Kind::Double, Device::Cpu));
                let gf = grads(&fused, &w, &[&feat, &el, &er]);
                let go = grads(&ops, &w, &[&feat, &el, &er]);
                for (name, (a, b)) in ["feat", "el", "er"].iter().zip(gf.iter().zip(&go)) {
                    assert!(max_rel(a, b) < 1e-10, "{name}: {fshape:?}, drop {drop}");
                }
            }
        }
    }

    /// The kernel's gradients against central finite differences of its own forward pass.
    #[test]
    fn the_kernel_gradients_match_finite_differences() {
        let e = graph(9, 20, 2);
        let feat = leaf(&[9, 2, 3], Kind::Double);
        let el = leaf(&[9, 2], Kind::Double);
        let er = leaf(&[9, 2], Kind::Double);
        let w = Tensor::randn([9, 2, 3], (Kind::Double, Device::Cpu));
        let f = |feat: &Tensor, el: &Tensor, er: &Tensor| {
            (attend(&e, feat, el, er, 0.2, 0.0, false) * &w)
                .sum(Kind::Double)
                .double_value(&[])
        };
        let out = attend(&e, &feat, &el, &er, 0.2, 0.0, false);
        let analytic = grads(&out, &w, &[&feat, &el, &er]);
        let h = 1e-6;
        for (which, g) in analytic.iter().enumerate() {
            let base = [&feat, &el, &er][which].detach();
            let flat = base.flatten(0, -1);
            for k in 0..flat.size()[0] {
                let bump = |d: f64| {
                    let t = flat.copy();
                    let _ = t.get(k).fill_(flat.double_value(&[k]) + d);
                    let t = t.view(base.size().as_slice());
                    let mut args = [feat.detach(), el.detach(), er.detach()];
                    args[which] = t;
                    f(&args[0], &args[1], &args[2])
                };
                let numeric = (bump(h) - bump(-h)) / (2.0 * h);
                let a = g.flatten(0, -1).double_value(&[k]);
                assert!(
                    (a - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "input {which}[{k}]: {a} vs {numeric}"
                );
            }
        }
    }

    /// Under fp32 (and bf16 features) the kernel still agrees with the ops to float rounding.
    #[test]
    fn the_kernel_takes_float_and_bfloat16_features() {
        let e = graph(40, 150, 3);
        let feat = leaf(&[40, 4, 8], Kind::Float);
        let el = leaf(&[40, 4], Kind::Float);
        let er = leaf(&[40, 4], Kind::Float);
        let fused = attend(&e, &feat, &el, &er, 0.2, 0.0, false);
        let ops = attend_ops(&e, &feat, &el, &er, 0.2, 0.0, false);
        assert!(max_rel(&fused, &ops) < 1e-5);
        let half = feat.to_kind(Kind::BFloat16);
        let fused = attend(&e, &half, &el, &er, 0.2, 0.0, false);
        assert_eq!(fused.kind(), Kind::Float);
        let ops = attend_ops(&e, &half, &el, &er, 0.2, 0.0, false);
        assert!(max_rel(&fused, &ops) < 1e-5);
    }
}
