// Bernoulli masks for dropout from a counter-based generator, filled in parallel on libtorch's
// threads.
//
// libtorch's CPU bernoulli_ draws one number at a time from its Mersenne Twister on one thread:
// about 15 ns per element here, 21 ms for one 2,708 × 512 dropout (PyTorch's own dropout costs
// the same). Here element i's number is half of SplitMix64's output for counter i / 2 under the
// key `seed` (Steele, Lea & Flood 2014: a 64-bit Weyl sequence through a bijective mixer; its
// outputs pass BigCrush), so the mask depends on (seed, i) only, not on the thread count or
// the split into chunks. (ATen's Philox4x32-10 was measured at 3.5 ns per element on 2 threads,
// about seven times this.) The caller draws `seed` from libtorch's generator, whose state
// checkpoints carry, so a resumed run draws the same masks. Tested in
// crates/selfsup/src/torch_dropout.rs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace {

inline uint64_t splitmix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Compiled for x86-64-v4 (AVX-512), v3 (AVX2) and baseline x86-64 (GCC's target_clones picks one at load time):
// with AVX-512 the 64-bit multiplies of eight counters run as one instruction.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define FILL_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static
#else
#define FILL_KERNEL static
#endif

#define FILL_RANGE(T)                                                                        \
  FILL_KERNEL void fill_range_##T(T* __restrict p, int64_t lo, int64_t hi, int64_t n,       \
                                  uint64_t t, T on, uint64_t seed) {                         \
    /* Whole pairs first, so that the loop has no branch; then a last odd element. */        \
    const int64_t whole = std::min(hi, n / 2);                                               \
    _Pragma("omp simd") for (int64_t k = lo; k < whole; ++k) {                               \
      const uint64_t r = splitmix64(seed, static_cast<uint64_t>(k));                         \
      p[2 * k] = static_cast<T>((r & 0xFFFFFFFFull) < t) * on;                              \
      p[2 * k + 1] = static_cast<T>((r >> 32) < t) * on;                                     \
    }                                                                                        \
    if (hi > whole && 2 * whole < n) {                                                       \
      const uint64_t r = splitmix64(seed, static_cast<uint64_t>(whole));                     \
      p[2 * whole] = static_cast<T>((r & 0xFFFFFFFFull) < t) * on;                          \
    }                                                                                        \
  }

FILL_RANGE(float)
FILL_RANGE(double)
FILL_RANGE(bool)

inline void fill_range(float* p, int64_t lo, int64_t hi, int64_t n, uint64_t t, float on,
                       uint64_t seed) {
  fill_range_float(p, lo, hi, n, t, on, seed);
}
inline void fill_range(double* p, int64_t lo, int64_t hi, int64_t n, uint64_t t, double on,
                       uint64_t seed) {
  fill_range_double(p, lo, hi, n, t, on, seed);
}
inline void fill_range(bool* p, int64_t lo, int64_t hi, int64_t n, uint64_t t, bool on,
                       uint64_t seed) {
  fill_range_bool(p, lo, hi, n, t, on, seed);
}

}  // namespace

extern "C" {

// out (contiguous, floating or bool, on the CPU) gets `value` with probability `keep`, else 0.
// Returns 0, or -1 for any other tensor.
int selfsup_keyed_bernoulli(at::Tensor* out, double keep, double value, uint64_t seed) {
  if (!out->is_contiguous() || !out->device().is_cpu()) return -1;
  const int64_t n = out->numel();
  // keep as a 32-bit threshold: P(r < t) = t / 2^32.
  const uint64_t t = keep >= 1.0 ? (uint64_t(1) << 32)
                                 : keep <= 0.0 ? 0 : static_cast<uint64_t>(keep * 4294967296.0);
  // Branch-free fills: each comparison is a coin flip no predictor can learn.
  auto fill = [&](auto* p, auto on) {
    at::parallel_for(0, (n + 1) / 2, 4096,
                     [&](int64_t lo, int64_t hi) { fill_range(p, lo, hi, n, t, on, seed); });
  };
  switch (out->scalar_type()) {
    case at::kFloat: fill(out->data_ptr<float>(), static_cast<float>(value)); return 0;
    case at::kDouble: fill(out->data_ptr<double>(), value); return 0;
    case at::kBool: fill(out->data_ptr<bool>(), true); return 0;
    default: return -1;
  }
}

}  // extern "C"
