// libtorch's autocast switches, which tch exposes for CUDA and float16 only: selfsup needs them
// per device type and with bfloat16. The declarations are libtorch's own (ATen/autocast_mode.h);
// they are repeated here so that this file compiles without ATen's heavy headers.
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace at::autocast {
bool is_autocast_enabled(c10::DeviceType device_type);
void set_autocast_enabled(c10::DeviceType device_type, bool enabled);
void set_autocast_dtype(c10::DeviceType device_type, c10::ScalarType dtype);
void clear_cache();
int increment_nesting();
int decrement_nesting();
}  // namespace at::autocast

static c10::DeviceType device_type(int cuda) {
  return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
}

extern "C" {

// Enters a bfloat16 autocast region on the CPU (cuda = 0) or CUDA (cuda = 1). Returns whether
// autocast was enabled before (to hand back to selfsup_autocast_exit), or -1 on an exception.
int selfsup_autocast_enter_bf16(int cuda) {
  try {
    auto dt = device_type(cuda);
    int was = at::autocast::is_autocast_enabled(dt) ? 1 : 0;
    at::autocast::set_autocast_dtype(dt, c10::ScalarType::BFloat16);
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::increment_nesting();
    return was;
  } catch (...) {
    return -1;
  }
}

// Leaves the region: restores the previous switch and, at the outermost level, frees the cast
// copies of weights autocast cached inside it.
int selfsup_autocast_exit(int cuda, int was_enabled) {
  try {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device_type(cuda), was_enabled != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

int selfsup_autocast_is_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
