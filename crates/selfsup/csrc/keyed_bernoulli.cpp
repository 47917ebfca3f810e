// Bernoulli masks for dropout from a counter-based generator (Philox4x32-10, the generator
// libtorch's CUDA kernels use, from ATen's header), filled in parallel on libtorch's threads.
//
// libtorch's CPU bernoulli_ draws one number at a time from its Mersenne Twister on one thread:
// about 15 ns per element here, 21 ms for one 2,708 × 512 dropout (PyTorch's own dropout costs
// the same). Element i's number is lane i mod 4 of Philox block i / 4 under the key `seed`, so
// the mask depends on (seed, i) only: not on the thread count or the split into chunks. The
// caller draws `seed` from libtorch's generator, whose state checkpoints carry, so a resumed run
// draws the same masks. Tested in crates/selfsup/src/torch_dropout.rs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/PhiloxRNGEngine.h>
#include <ATen/ATen.h>

#include <cstdint>

extern "C" {

// out (contiguous, floating or bool) gets `value` with probability `keep`, else 0.
// Returns 0, or -1 when out is not contiguous or of another type.
int selfsup_keyed_bernoulli(at::Tensor* out, double keep, double value, uint64_t seed) {
  if (!out->is_contiguous() || !out->device().is_cpu()) return -1;
  const int64_t n = out->numel();
  // keep as a 32-bit threshold: P(r < t) = t / 2^32.
  const uint64_t t = keep >= 1.0 ? (uint64_t(1) << 32)
                                 : keep <= 0.0 ? 0 : static_cast<uint64_t>(keep * 4294967296.0);
  auto fill = [&](auto* p, auto on) {
    at::parallel_for(0, (n + 3) / 4, 2048, [&](int64_t lo, int64_t hi) {
      at::philox_engine engine(seed, 0, static_cast<uint64_t>(lo));
      for (int64_t i = lo * 4, end = std::min(n, hi * 4); i < end; ++i) {
        p[i] = static_cast<uint64_t>(engine()) < t ? on : decltype(on)(0);
      }
    });
  };
  switch (out->scalar_type()) {
    case at::kFloat: fill(out->data_ptr<float>(), static_cast<float>(value)); return 0;
    case at::kDouble: fill(out->data_ptr<double>(), value); return 0;
    case at::kBool: fill(out->data_ptr<bool>(), true); return 0;
    default: return -1;
  }
}

}  // extern "C"
