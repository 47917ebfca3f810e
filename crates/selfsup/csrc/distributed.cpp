// c10d, libtorch's own distributed engine, for selfsup: a TCP store for the rendezvous, a Gloo
// process group over it, and the collectives selfsup needs on tch's tensors (which are
// at::Tensor pointers on the C side, so nothing is copied across the boundary).
//
// Two autograd functions carry gradients across ranks, each with the rule the popular Python
// tools first got wrong, selectable so that tests can show the wrong rule fails:
//   gather: forward all-gathers along dim 0; backward all-reduce-sums the incoming gradient and
//           returns this rank's rows (rule 1, the rank-slice bug: the rows without the sum);
//   sum:    forward all-reduce-sums; backward all-reduce-sums the incoming gradient (rule 1, a
//           raw all-reduce without backward: the gradient passes through unchanged).
//
// The PyTorch wheel carries Gloo inside libtorch_cpu.so but not Gloo's headers, so the two
// entry points of ProcessGroupGloo used here are declared below by hand, exactly as
// torch/csrc/distributed/c10d/ProcessGroupGloo.hpp declares them. The object is only ever built
// by libtorch's own constructor; the declaration over-reserves its size, and every call after
// construction goes through the virtual functions of c10d::Backend, whose header is complete.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace c10d {
class TORCH_API ProcessGroupGloo : public Backend {
 public:
  struct TORCH_API Options : public Backend::Options {
    static c10::intrusive_ptr<Options> create_default(std::chrono::milliseconds timeout);
  };
  explicit ProcessGroupGloo(const c10::intrusive_ptr<Store>& store, int rank, int size,
                            c10::intrusive_ptr<Options> options);
  ~ProcessGroupGloo() override;

 private:
  // Room for libtorch's members (a few hundred bytes in 2.x): `new` allocates this size and the
  // library's constructor fills what it needs of it.
  alignas(64) unsigned char reserved_[1 << 14];
};
}  // namespace c10d

namespace {

thread_local std::string last_error;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank;
  int world;
  std::chrono::milliseconds timeout;
};

std::mutex groups_lock;
std::map<int64_t, std::shared_ptr<Group>> groups;
int64_t next_group = 0;

std::shared_ptr<Group> find_group(int64_t id) {
  std::lock_guard<std::mutex> g(groups_lock);
  auto it = groups.find(id);
  if (it == groups.end()) {
    throw std::runtime_error("the process group was closed while tensors still used it");
  }
  return it->second;
}

void wait(const Group& g, const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  if (!work->wait(g.timeout)) {
    throw std::runtime_error(std::string(what) + " did not finish in time");
  }
}

void all_reduce_sum_(const Group& g, at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  wait(g, g.backend->allreduce(ts), "all-reduce");
}

// Checks that every rank offers the same shape (Gloo would otherwise fail obscurely or hang).
void check_same_shape(const Group& g, const at::Tensor& x) {
  constexpr int64_t kMaxDims = 8;
  TORCH_CHECK(x.dim() <= kMaxDims, "all-gather of a tensor with more than 8 dimensions");
  auto shape = at::full({kMaxDims + 1}, -1, at::kLong);
  shape[0] = x.dim();
  for (int64_t i = 0; i < x.dim(); ++i) shape[i + 1] = x.size(i);
  auto all = at::empty({g.world * (kMaxDims + 1)}, at::kLong);
  wait(g, g.backend->_allgather_base(all, shape), "shape exchange");
  all = all.view({g.world, kMaxDims + 1});
  for (int r = 0; r < g.world; ++r) {
    if (!all[r].equal(shape)) {
      std::ostringstream msg;
      msg << "all-gather: rank " << g.rank << " offers shape " << x.sizes() << " but rank " << r
          << " another (" << all[r] << "); every rank needs the same local batch";
      throw std::runtime_error(msg.str());
    }
  }
}

// Rows of every rank in rank order: [world * n, ...].
at::Tensor all_gather(const Group& g, const at::Tensor& x) {
  check_same_shape(g, x);
  auto in = x.contiguous();
  std::vector<int64_t> sizes(in.sizes().begin(), in.sizes().end());
  if (sizes.empty()) sizes.push_back(1);
  sizes[0] *= g.world;
  auto out = at::empty(sizes, in.options());
  auto flat_in = in.dim() == 0 ? in.reshape({1}) : in;
  wait(g, g.backend->_allgather_base(out, flat_in), "all-gather");
  return out;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct GatherWithGrad : public torch::autograd::Function<GatherWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t id, int64_t rule) {
    auto g = find_group(id);
    ctx->saved_data["id"] = id;
    ctx->saved_data["rule"] = rule;
    ctx->saved_data["rows"] = x.size(0);
    return all_gather(*g, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto g = find_group(ctx->saved_data["id"].toInt());
    int64_t rows = ctx->saved_data["rows"].toInt();
    auto grad = grads[0].contiguous().clone();
    if (ctx->saved_data["rule"].toInt() == 0) all_reduce_sum_(*g, grad);
    return {grad.narrow(0, g->rank * rows, rows), at::Tensor(), at::Tensor()};
  }
};

struct SumWithGrad : public torch::autograd::Function<SumWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t id, int64_t rule) {
    auto g = find_group(id);
    ctx->saved_data["id"] = id;
    ctx->saved_data["rule"] = rule;
    auto out = x.contiguous().clone();
    all_reduce_sum_(*g, out);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto grad = grads[0].contiguous().clone();
    if (ctx->saved_data["rule"].toInt() == 0) {
      all_reduce_sum_(*find_group(ctx->saved_data["id"].toInt()), grad);
    }
    return {grad, at::Tensor(), at::Tensor()};
  }
};

template <typename F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return -1;
}

}  // namespace

extern "C" {

// Copies this thread's last error message into buf (cap bytes, NUL-terminated); returns its length.
int64_t selfsup_dist_last_error(char* buf, int64_t cap) {
  if (buf && cap > 0) {
    auto n = std::min<int64_t>(cap - 1, last_error.size());
    std::memcpy(buf, last_error.data(), n);
    buf[n] = 0;
  }
  return last_error.size();
}

// Rendezvous at addr:port and build a Gloo group. host_store: this process serves the store
// (rank 0 unless an agent such as torchrun already does); prefix: key prefix of the group's keys
// (torchrun's agent store wants one per restart). Writes the group's id into *out.
int selfsup_dist_init_gloo(const char* addr, int port, int rank, int world, int64_t timeout_ms,
                           int host_store, const char* prefix, int64_t* out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = host_store != 0;
    o.numWorkers = world;
    o.waitWorkers = false;
    o.timeout = timeout;
    o.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(addr, o);
    if (prefix && *prefix) store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto group = std::make_shared<Group>();
    group->store = store;
    group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    group->rank = rank;
    group->world = world;
    group->timeout = timeout;
    std::lock_guard<std::mutex> g(groups_lock);
    *out = next_group++;
    groups[*out] = group;
  });
}

int selfsup_dist_close(int64_t id) {
  return guarded([&] {
    std::shared_ptr<Group> g;
    {
      std::lock_guard<std::mutex> l(groups_lock);
      auto it = groups.find(id);
      if (it == groups.end()) return;
      g = it->second;
      groups.erase(it);
    }
    g->backend->shutdown();
  });
}

int selfsup_dist_barrier(int64_t id) {
  return guarded([&] {
    auto g = find_group(id);
    wait(*g, g->backend->barrier(), "barrier");
  });
}

// In place: t becomes the sum over ranks.
int selfsup_dist_all_reduce_sum(int64_t id, at::Tensor* t) {
  return guarded([&] {
    TORCH_CHECK(t->is_contiguous(), "all-reduce needs a contiguous tensor");
    all_reduce_sum_(*find_group(id), *t);
  });
}

// In place: t becomes root's t.
int selfsup_dist_broadcast(int64_t id, at::Tensor* t, int root) {
  return guarded([&] {
    TORCH_CHECK(t->is_contiguous(), "broadcast needs a contiguous tensor");
    auto g = find_group(id);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    wait(*g, g->backend->broadcast(ts, o), "broadcast");
  });
}

int selfsup_dist_gather_with_grad(int64_t id, const at::Tensor* x, int rule, at::Tensor** out) {
  return guarded([&] { *out = new at::Tensor(GatherWithGrad::apply(*x, id, rule)); });
}

int selfsup_dist_sum_with_grad(int64_t id, const at::Tensor* x, int rule, at::Tensor** out) {
  return guarded([&] { *out = new at::Tensor(SumWithGrad::apply(*x, id, rule)); });
}

}  // extern "C"
