// Graph attention's edge passes in one CPU kernel, forward and backward (GAT, Veličković et al.
// 2018, eqs. 1–4, as GraphMAE's and DGL's GATConv compute them):
//
//   z_e   = LeakyReLU(el[src_e, h] + er[dst_e, h])              per edge e, head h
//   a_e   = exp(z_e − max) / Σ_{e' into dst_e} exp(z_e' − max)  softmax over a target's edges
//   out[i, h, :] = Σ_{e into i} a_e · keep_e · feat[src_e, h', :]
//
// where keep is attention dropout's scaled mask (or none) and h' = h, or 0 when the heads share
// one feature table (the aggregate-first path of a widening layer). Written out with
// libtorch's ops this is about twenty passes over the edges per layer and direction, each a
// kernel launch with its own temporary; here it is one pass over each target's edges forward,
// and two backward: one over the targets (attention gradient, softmax and LeakyReLU backward,
// er's gradient) and one over the sources (feat's and el's gradients), so that every output
// row is written by one thread and no atomics are needed.
//
// Edges arrive sorted by target (dst_ptr: CSR offsets, N + 1); by_src lists the edge ids sorted
// by source with src_ptr its offsets. The result is checked against the op-by-op computation
// and against finite differences in crates/selfsup/src/views/graph/fused_attention.rs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

thread_local std::string last_error;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Graph {
  const int64_t* src;
  const int64_t* dst;
  const int64_t* dst_ptr;
  const int64_t* by_src;
  const int64_t* src_ptr;
  int64_t nodes;
};

Graph graph_of(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& dst_ptr,
               const at::Tensor& by_src, const at::Tensor& src_ptr) {
  return Graph{src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), dst_ptr.data_ptr<int64_t>(),
               by_src.data_ptr<int64_t>(), src_ptr.data_ptr<int64_t>(), dst_ptr.numel() - 1};
}

template <typename T>
inline T leaky(T z, T slope) {
  return z > 0 ? z : z * slope;
}

// The row loops below are compiled for x86-64-v4 (AVX-512), v3 (AVX2, FMA) and baseline x86-64 (GCC's target_clones
// picks one when the library loads), and their sums over a row are marked as SIMD reductions:
// without that the compiler must add the 512 products of a dot product one after another.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ROW_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static
#else
#define ROW_KERNEL static
#endif

template <typename T>
inline void axpy(T* __restrict y, T a, const T* __restrict x, int64_t d) {
#pragma omp simd
  for (int64_t c = 0; c < d; ++c) y[c] += a * x[c];
}

template <typename T>
inline T dot(const T* __restrict a, const T* __restrict b, int64_t d) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < d; ++c) s += a[c] * b[c];
  return s;
}

// Target i, all heads: softmax of its in-edges' logits (kept in alpha) and the weighted sum.
template <typename T>
inline void forward_row(const Graph& g, int64_t i, const T* feat, const T* el, const T* er,
                        const T* keep, T slope, int64_t heads, int64_t fheads, int64_t d,
                        T* alpha, T* out) {
  const int64_t b = g.dst_ptr[i], e_end = g.dst_ptr[i + 1];
  for (int64_t h = 0; h < heads; ++h) {
    T* o = out + (i * heads + h) * d;
    for (int64_t c = 0; c < d; ++c) o[c] = 0;
    if (b == e_end) continue;
    T m = -INFINITY;
    for (int64_t e = b; e < e_end; ++e) {
      T z = leaky(el[g.src[e] * heads + h] + er[i * heads + h], slope);
      alpha[e * heads + h] = z;
      m = z > m ? z : m;
    }
    T sum = 0;
    for (int64_t e = b; e < e_end; ++e) {
      T x = std::exp(alpha[e * heads + h] - m);
      alpha[e * heads + h] = x;
      sum += x;
    }
    const int64_t fh = fheads == 1 ? 0 : h;
    for (int64_t e = b; e < e_end; ++e) {
      T a = alpha[e * heads + h] / sum;
      alpha[e * heads + h] = a;
      axpy(o, keep ? a * keep[e * heads + h] : a, feat + (g.src[e] * fheads + fh) * d, d);
    }
  }
}

// Target i: dL/da_e = keep_e · (grad[i, h] · feat[src_e, h']), then the softmax's and
// LeakyReLU's backward into gz; their sum over i's edges is er's gradient.
template <typename T>
inline void backward_target_row(const Graph& g, int64_t i, const T* feat, const T* el,
                                const T* er, const T* keep, const T* alpha, const T* grad,
                                T slope, int64_t heads, int64_t fheads, int64_t d, T* gz,
                                T* g_er) {
  const int64_t b = g.dst_ptr[i], e_end = g.dst_ptr[i + 1];
  for (int64_t h = 0; h < heads; ++h) {
    const T* gi = grad + (i * heads + h) * d;
    const int64_t fh = fheads == 1 ? 0 : h;
    T weighted = 0;
    for (int64_t e = b; e < e_end; ++e) {
      T ga = dot(gi, feat + (g.src[e] * fheads + fh) * d, d);
      if (keep) ga *= keep[e * heads + h];
      gz[e * heads + h] = ga;
      weighted += alpha[e * heads + h] * ga;
    }
    T ger = 0;
    for (int64_t e = b; e < e_end; ++e) {
      T gs = alpha[e * heads + h] * (gz[e * heads + h] - weighted);
      T z = el[g.src[e] * heads + h] + er[i * heads + h];
      T v = z > 0 ? gs : gs * slope;
      gz[e * heads + h] = v;
      ger += v;
    }
    g_er[i * heads + h] = ger;
  }
}

// Source j: feat's gradient collects every out-edge's weighted output gradient, el's the
// out-edges' logit gradients.
template <typename T>
inline void backward_source_row(const Graph& g, int64_t j, const T* keep, const T* alpha,
                                const T* grad, const T* gz, int64_t heads, int64_t fheads,
                                int64_t d, T* g_feat, T* g_el) {
  T* gf = g_feat + j * fheads * d;
  for (int64_t c = 0; c < fheads * d; ++c) gf[c] = 0;
  for (int64_t h = 0; h < heads; ++h) g_el[j * heads + h] = 0;
  for (int64_t k = g.src_ptr[j]; k < g.src_ptr[j + 1]; ++k) {
    const int64_t e = g.by_src[k], i = g.dst[e];
    for (int64_t h = 0; h < heads; ++h) {
      T a = alpha[e * heads + h];
      axpy(gf + (fheads == 1 ? 0 : h) * d, keep ? a * keep[e * heads + h] : a,
           grad + (i * heads + h) * d, d);
      g_el[j * heads + h] += gz[e * heads + h];
    }
  }
}

// One clone per instruction set of each row range; the types are spelled out because
// target_clones does not apply to templates.
#define ROW_RANGES(T)                                                                           \
  ROW_KERNEL void forward_rows_##T(const Graph& g, int64_t lo, int64_t hi, const T* feat,       \
                                   const T* el, const T* er, const T* keep, T slope,            \
                                   int64_t heads, int64_t fheads, int64_t d, T* alpha, T* out) { \
    for (int64_t i = lo; i < hi; ++i)                                                           \
      forward_row(g, i, feat, el, er, keep, slope, heads, fheads, d, alpha, out);               \
  }                                                                                             \
  ROW_KERNEL void backward_target_rows_##T(                                                     \
      const Graph& g, int64_t lo, int64_t hi, const T* feat, const T* el, const T* er,          \
      const T* keep, const T* alpha, const T* grad, T slope, int64_t heads, int64_t fheads,     \
      int64_t d, T* gz, T* g_er) {                                                              \
    for (int64_t i = lo; i < hi; ++i)                                                           \
      backward_target_row(g, i, feat, el, er, keep, alpha, grad, slope, heads, fheads, d, gz,   \
                          g_er);                                                                \
  }                                                                                             \
  ROW_KERNEL void backward_source_rows_##T(const Graph& g, int64_t lo, int64_t hi,              \
                                           const T* keep, const T* alpha, const T* grad,        \
                                           const T* gz, int64_t heads, int64_t fheads,          \
                                           int64_t d, T* g_feat, T* g_el) {                     \
    for (int64_t j = lo; j < hi; ++j)                                                           \
      backward_source_row(g, j, keep, alpha, grad, gz, heads, fheads, d, g_feat, g_el);         \
  }

ROW_RANGES(float)
ROW_RANGES(double)

inline void forward_rows(const Graph& g, int64_t lo, int64_t hi, const float* feat,
                         const float* el, const float* er, const float* keep, float slope,
                         int64_t heads, int64_t fheads, int64_t d, float* alpha, float* out) {
  forward_rows_float(g, lo, hi, feat, el, er, keep, slope, heads, fheads, d, alpha, out);
}
inline void forward_rows(const Graph& g, int64_t lo, int64_t hi, const double* feat,
                         const double* el, const double* er, const double* keep, double slope,
                         int64_t heads, int64_t fheads, int64_t d, double* alpha, double* out) {
  forward_rows_double(g, lo, hi, feat, el, er, keep, slope, heads, fheads, d, alpha, out);
}
inline void backward_target_rows(const Graph& g, int64_t lo, int64_t hi, const float* feat,
                                 const float* el, const float* er, const float* keep,
                                 const float* alpha, const float* grad, float slope,
                                 int64_t heads, int64_t fheads, int64_t d, float* gz,
                                 float* g_er) {
  backward_target_rows_float(g, lo, hi, feat, el, er, keep, alpha, grad, slope, heads, fheads,
                             d, gz, g_er);
}
inline void backward_target_rows(const Graph& g, int64_t lo, int64_t hi, const double* feat,
                                 const double* el, const double* er, const double* keep,
                                 const double* alpha, const double* grad, double slope,
                                 int64_t heads, int64_t fheads, int64_t d, double* gz,
                                 double* g_er) {
  backward_target_rows_double(g, lo, hi, feat, el, er, keep, alpha, grad, slope, heads, fheads,
                              d, gz, g_er);
}
inline void backward_source_rows(const Graph& g, int64_t lo, int64_t hi, const float* keep,
                                 const float* alpha, const float* grad, const float* gz,
                                 int64_t heads, int64_t fheads, int64_t d, float* g_feat,
                                 float* g_el) {
  backward_source_rows_float(g, lo, hi, keep, alpha, grad, gz, heads, fheads, d, g_feat, g_el);
}
inline void backward_source_rows(const Graph& g, int64_t lo, int64_t hi, const double* keep,
                                 const double* alpha, const double* grad, const double* gz,
                                 int64_t heads, int64_t fheads, int64_t d, double* g_feat,
                                 double* g_el) {
  backward_source_rows_double(g, lo, hi, keep, alpha, grad, gz, heads, fheads, d, g_feat, g_el);
}

template <typename T>
void forward_kernel(const Graph& g, const T* feat, const T* el, const T* er, const T* keep,
                    T slope, int64_t heads, int64_t fheads, int64_t d, T* alpha, T* out) {
  at::parallel_for(0, g.nodes, 16, [&](int64_t lo, int64_t hi) {
    forward_rows(g, lo, hi, feat, el, er, keep, slope, heads, fheads, d, alpha, out);
  });
}

// Two passes, so that every output row is written by one thread: over the targets (gz, er's
// gradient), then over the sources (feat's and el's gradients).
template <typename T>
void backward_kernel(const Graph& g, const T* feat, const T* el, const T* er, const T* keep,
                     const T* alpha, const T* grad, T slope, int64_t heads, int64_t fheads,
                     int64_t d, T* gz, T* g_feat, T* g_el, T* g_er) {
  at::parallel_for(0, g.nodes, 16, [&](int64_t lo, int64_t hi) {
    backward_target_rows(g, lo, hi, feat, el, er, keep, alpha, grad, slope, heads, fheads, d, gz,
                         g_er);
  });
  at::parallel_for(0, g.nodes, 16, [&](int64_t lo, int64_t hi) {
    backward_source_rows(g, lo, hi, keep, alpha, grad, gz, heads, fheads, d, g_feat, g_el);
  });
}

struct GatAttend : public torch::autograd::Function<GatAttend> {
  // feat [N, H', D] (H' = H or 1), el and er [N, H], keep [E, H] or empty; the graph tensors
  // are int64 and carry no gradient.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& feat, const at::Tensor& el,
                            const at::Tensor& er, const at::Tensor& keep, const at::Tensor& src,
                            const at::Tensor& dst, const at::Tensor& dst_ptr,
                            const at::Tensor& by_src, const at::Tensor& src_ptr, double slope) {
    auto f = feat.contiguous();
    auto l = el.contiguous();
    auto r = er.contiguous();
    auto k = keep.contiguous();
    const bool masked = k.numel() > 0;
    const int64_t n = dst_ptr.numel() - 1, heads = l.size(1), fheads = f.size(1), d = f.size(2);
    TORCH_CHECK(f.size(0) == n && l.size(0) == n && r.size(0) == n && r.size(1) == heads,
                "graph attention: feature, logit and node counts disagree");
    TORCH_CHECK(fheads == heads || fheads == 1, "graph attention: feature heads ", fheads,
                " for ", heads, " attention heads");
    TORCH_CHECK(!masked || (k.dim() == 2 && k.size(0) == src.numel() && k.size(1) == heads),
                "graph attention: the dropout mask is not [E, H]");
    auto alpha = at::empty({src.numel(), heads}, f.options());
    auto out = at::empty({n, heads, d}, f.options());
    auto g = graph_of(src, dst, dst_ptr, by_src, src_ptr);
    AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "gat_attend_forward", [&] {
      forward_kernel<scalar_t>(g, f.data_ptr<scalar_t>(), l.data_ptr<scalar_t>(),
                               r.data_ptr<scalar_t>(),
                               masked ? k.data_ptr<scalar_t>() : nullptr,
                               static_cast<scalar_t>(slope), heads, fheads, d,
                               alpha.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({f, l, r, k, alpha, src, dst, dst_ptr, by_src, src_ptr});
    ctx->saved_data["slope"] = slope;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    auto &f = s[0], &l = s[1], &r = s[2], &k = s[3], &alpha = s[4];
    const double slope = ctx->saved_data["slope"].toDouble();
    auto grad = grads[0].contiguous();
    const int64_t heads = l.size(1), fheads = f.size(1), d = f.size(2);
    auto gz = at::empty_like(alpha);
    auto g_feat = at::empty_like(f);
    auto g_el = at::empty_like(l);
    auto g_er = at::empty_like(r);
    auto g = graph_of(s[5], s[6], s[7], s[8], s[9]);
    AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "gat_attend_backward", [&] {
      backward_kernel<scalar_t>(g, f.data_ptr<scalar_t>(), l.data_ptr<scalar_t>(),
                                r.data_ptr<scalar_t>(),
                                k.numel() > 0 ? k.data_ptr<scalar_t>() : nullptr,
                                alpha.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                                static_cast<scalar_t>(slope), heads, fheads, d,
                                gz.data_ptr<scalar_t>(), g_feat.data_ptr<scalar_t>(),
                                g_el.data_ptr<scalar_t>(), g_er.data_ptr<scalar_t>());
    });
    return {g_feat,       g_el,         g_er,         at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

int64_t selfsup_graph_last_error(char* buf, int64_t cap) {
  if (buf && cap > 0) {
    auto n = std::min<int64_t>(cap - 1, last_error.size());
    std::memcpy(buf, last_error.data(), n);
    buf[n] = 0;
  }
  return last_error.size();
}

// keep may be null (no attention dropout). Returns 0, or -1 with the message kept for
// selfsup_graph_last_error.
int selfsup_gat_attend(const at::Tensor* feat, const at::Tensor* el, const at::Tensor* er,
                       const at::Tensor* keep, const at::Tensor* src, const at::Tensor* dst,
                       const at::Tensor* dst_ptr, const at::Tensor* by_src,
                       const at::Tensor* src_ptr, double slope, at::Tensor** out) {
  try {
    *out = new at::Tensor(GatAttend::apply(*feat, *el, *er, keep ? *keep : at::empty({0}, feat->options()), *src,
                                           *dst, *dst_ptr, *by_src, *src_ptr, slope));
    return 0;
  } catch (const c10::Error& e) {
    last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error = e.what();
  }
  return -1;
}

}  // extern "C"
