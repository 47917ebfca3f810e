//! Dropout whose masks come from a parallel counter-based generator (SplitMix64 over the element
//! index, `csrc/keyed_bernoulli.cpp`)
//! instead of libtorch's CPU `bernoulli_`, which draws one number at a time on one thread (about
//! 15 ns an element: 21 ms for one 2,708 × 512 dropout, a tenth of a GraphMAE step on Cora).
//!
//! Each mask takes one 64-bit seed from libtorch's generator and numbers its elements under it,
//! so masks depend on the generator's state (which checkpoints carry: a resumed run draws the
//! same masks), not on the thread count. On a GPU, or in a build without the shim, the masks
//! are libtorch's `bernoulli_`.
use tch::{Device, Kind, Tensor};

#[cfg(selfsup_shim)]
mod ffi {
    extern "C" {
        pub fn selfsup_keyed_bernoulli(
            out: *mut std::ffi::c_void,
            keep: f64,
            value: f64,
            seed: u64,
        ) -> i32;
    }
}

/// A `shape` tensor of `kind` (floating or bool) holding `value` with probability `keep` and 0
/// otherwise, independently per element.
pub fn bernoulli_mask(shape: &[i64], keep: f64, value: f64, kind: Kind, device: Device) -> Tensor {
    #[cfg(selfsup_shim)]
    if device == Device::Cpu && matches!(kind, Kind::Float | Kind::Double | Kind::Bool) {
        let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]);
        let out = Tensor::empty(shape, (kind, device));
        let code = unsafe {
            ffi::selfsup_keyed_bernoulli(out.as_ptr() as *mut _, keep, value, seed as u64)
        };
        assert_eq!(code, 0, "a fresh CPU tensor of a supported kind");
        return out;
    }
    let mut m = Tensor::empty(shape, (Kind::Float, device));
    let _ = m.bernoulli_float_(keep.clamp(0.0, 1.0));
    if kind == Kind::Bool {
        m.to_kind(Kind::Bool)
    } else {
        (m * value).to_kind(kind)
    }
}

/// Inverted dropout: each element zeroed with probability `p`, the others scaled by 1 / (1 − p);
/// the identity when not training. Same kind as `x`; the gradient is the same mask.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let kind = match x.kind() {
        Kind::Double => Kind::Double,
        _ => Kind::Float,
    };
    let mask = bernoulli_mask(&x.size(), 1.0 - p, 1.0 / (1.0 - p), kind, x.device());
    (x * mask).to_kind(x.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_asked_fraction_and_value() {
        let _g = crate::torch_rng::lock();
        tch::manual_seed(1);
        let m = bernoulli_mask(&[1000, 100], 0.8, 1.25, Kind::Float, Device::Cpu);
        let v: Vec<f32> = Vec::try_from(m.flatten(0, -1)).unwrap();
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.25));
        let kept = v.iter().filter(|&&x| x > 0.0).count() as f64 / v.len() as f64;
        // 100,000 draws: the standard error of the fraction is 0.0013.
        assert!((kept - 0.8).abs() < 0.006, "{kept}");
        // No visible pattern by position: even and odd elements (the two halves of one 64-bit
        // output) and every fourth element keep ~0.8.
        for lane in 0..4 {
            let l: Vec<f32> = v.iter().skip(lane).step_by(4).copied().collect();
            let k = l.iter().filter(|&&x| x > 0.0).count() as f64 / l.len() as f64;
            assert!((k - 0.8).abs() < 0.012, "lane {lane}: {k}");
        }
        let b = bernoulli_mask(&[10_000], 0.3, 1.0, Kind::Bool, Device::Cpu);
        let kept = b.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.3).abs() < 0.03, "{kept}");
    }

    /// The mask is a function of the generator's state, not of the thread count.
    #[test]
    fn masks_follow_the_generator_and_not_the_threads() {
        let _g = crate::torch_rng::lock();
        let threads = tch::get_num_threads();
        let draw = |t: i32| {
            tch::set_num_threads(t);
            tch::manual_seed(7);
            let a = bernoulli_mask(&[3, 50_001], 0.5, 2.0, Kind::Float, Device::Cpu);
            let b = bernoulli_mask(&[3, 50_001], 0.5, 2.0, Kind::Float, Device::Cpu);
            (a, b)
        };
        let (a1, b1) = draw(1);
        let (a2, b2) = draw(2);
        tch::set_num_threads(threads);
        assert!(a1.equal(&a2) && b1.equal(&b2));
        assert!(!a1.equal(&b1), "two draws gave one mask");
    }

    #[test]
    fn dropout_scales_survivors_and_passes_the_mask_back() {
        let _g = crate::torch_rng::lock();
        tch::manual_seed(3);
        let x = Tensor::randn([64, 33], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.25, true);
        assert_eq!(y.kind(), Kind::Double);
        let ratio = (&y / &x).detach();
        let r: Vec<f64> = Vec::try_from(ratio.flatten(0, -1)).unwrap();
        assert!(r
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
        y.sum(Kind::Double).backward();
        let off = (x.grad() - &ratio).abs().max().double_value(&[]);
        assert!(off < 1e-12, "{off}");
        assert!(dropout(&x, 0.25, false).equal(&x));
        let half = x.detach().to_kind(Kind::BFloat16);
        assert_eq!(dropout(&half, 0.5, true).kind(), Kind::BFloat16);
    }
}
