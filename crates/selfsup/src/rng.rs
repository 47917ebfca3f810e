//! Keyed randomness. Every random draw in a run is a pure function of
//! `(seed, stream, epoch, index, view)`, so results do not depend on thread count or scheduling,
//! and a resumed run draws exactly what the uninterrupted run would have drawn.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Independent purposes that draw random numbers; each gets its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Order of samples within an epoch.
    Shuffle = 1,
    /// Augmentations of one sample.
    View = 2,
    /// Anything a method draws per step (masks, queues, ...).
    Method = 3,
    /// Evaluation subsets, splits.
    Eval = 4,
    /// Token masks of masked methods (drawn by the loader, like views).
    Mask = 5,
}

/// SplitMix64 finaliser: a bijective mixer, so distinct keys give well-separated seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator keyed by the given coordinates.
pub fn keyed(seed: u64, stream: Stream, epoch: u64, index: u64, view: u64) -> ChaCha8Rng {
    let mut k = mix(seed);
    for part in [stream as u64, epoch, index, view] {
        k = mix(k ^ part);
    }
    ChaCha8Rng::seed_from_u64(k)
}

/// The order of `n` samples in `epoch` (Fisher–Yates with a keyed generator).
pub fn epoch_permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut keyed(seed, Stream::Shuffle, epoch, 0, 0));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_key_same_draws_and_different_keys_differ() {
        let a: u64 = keyed(7, Stream::View, 3, 11, 0).gen();
        let b: u64 = keyed(7, Stream::View, 3, 11, 0).gen();
        assert_eq!(a, b);
        let others = [
            keyed(8, Stream::View, 3, 11, 0).gen::<u64>(),
            keyed(7, Stream::Shuffle, 3, 11, 0).gen::<u64>(),
            keyed(7, Stream::View, 4, 11, 0).gen::<u64>(),
            keyed(7, Stream::View, 3, 12, 0).gen::<u64>(),
            keyed(7, Stream::View, 3, 11, 1).gen::<u64>(),
        ];
        for o in others {
            assert_ne!(a, o);
        }
    }

    #[test]
    fn permutation_is_a_permutation_and_changes_per_epoch() {
        let p0 = epoch_permutation(1, 0, 1000);
        let p1 = epoch_permutation(1, 1, 1000);
        let mut s = p0.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(p0, p1);
        assert_eq!(p0, epoch_permutation(1, 0, 1000));
    }
}
