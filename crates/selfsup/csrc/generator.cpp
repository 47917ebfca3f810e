// The state of libtorch's default CPU generator, which tch does not expose. Dropout and
// initialisation draw from it, so a run whose method uses dropout saves it in every checkpoint
// and restores it on resume: the resumed run then draws the same dropout masks as an
// uninterrupted one.
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/TensorImpl.h>

#include <cstdint>
#include <cstring>
#include <mutex>

static c10::GeneratorImpl* cpu_generator() {
  return at::detail::getDefaultCPUGenerator().unsafeGetGeneratorImpl();
}

extern "C" {

// Copies the generator's state into out (when it holds cap bytes or more); returns the state's
// length in bytes, or -1 on an exception.
int64_t selfsup_cpu_generator_state(uint8_t* out, int64_t cap) {
  try {
    auto* g = cpu_generator();
    std::lock_guard<std::mutex> lock(g->mutex_);
    auto state = g->get_state();
    int64_t n = state->numel() * static_cast<int64_t>(state->itemsize());
    if (out != nullptr && n <= cap) {
      std::memcpy(out, state->data(), static_cast<size_t>(n));
    }
    return n;
  } catch (...) {
    return -1;
  }
}

// Sets the generator's state from n bytes written by selfsup_cpu_generator_state. Returns 0,
// -2 when n is not the state's length, or -1 on an exception (e.g. a state libtorch refuses).
int selfsup_set_cpu_generator_state(const uint8_t* in, int64_t n) {
  try {
    auto* g = cpu_generator();
    std::lock_guard<std::mutex> lock(g->mutex_);
    auto state = g->get_state();
    int64_t len = state->numel() * static_cast<int64_t>(state->itemsize());
    if (len != n) {
      return -2;
    }
    std::memcpy(state->mutable_data(), in, static_cast<size_t>(n));
    g->set_state(*state);
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
