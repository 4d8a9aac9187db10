// PyTorch CPU front-end of SoftPool: registers the fused kernels of
// softpool_cpu.h for the CPU dispatch key of the poolswap::soft_pool and
// poolswap::soft_pool_backward ops (declared in poolswap/ops/_library.py),
// through the instruction-set dispatch of softpool_cpu_dispatch.h.
#include <ATen/Config.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>
#include <stdexcept>
#include <vector>

#include "softpool_cpu_dispatch.h"
#include "torch_problem.h"

namespace poolswap {
namespace {

// How many distinct threads of ATen's pool ran the planes of the last forward or
// backward call: the tests check it, so a build without the parallel backend
// (an extension compiled without OpenMP runs at::parallel_for on one thread) fails.
std::atomic<int64_t> g_threads_last_call{0};

// Collects the threads that run a call's chunks: a bit per ATen thread number.
class ThreadRecorder {
 public:
  void record() { mask_.fetch_or(uint64_t(1) << (at::get_thread_num() & 63), std::memory_order_relaxed); }
  ~ThreadRecorder() { g_threads_last_call.store(__builtin_popcountll(mask_.load()), std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> mask_{0};
};

// ATen's parallel backend as this extension was compiled: "openmp", "native", or
// "serial" (ATen uses OpenMP but this file was compiled without it).
std::string parallel_backend() {
#if AT_PARALLEL_OPENMP
#ifdef _OPENMP
  return "openmp";
#else
  return "serial";
#endif
#elif AT_PARALLEL_NATIVE
  return "native";
#else
  return "serial";
#endif
}

int64_t threads_last_call() { return g_threads_last_call.load(); }

// The chosen instruction-set table; a bad POOLSWAP_CPU_ISA is a ValueError naming it.
const cpu::IsaTable& checked_isa() {
  const cpu::IsaTable* table = nullptr;
  std::string error;
  try {
    table = &cpu::isa();
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  TORCH_CHECK_VALUE(table != nullptr, error);
  return *table;
}

// The instruction set the kernels run ("baseline", "avx2", "avx512"; POOLSWAP_CPU_ISA forces one).
std::string cpu_isa() { return checked_isa().name; }

int64_t plane_grain(const Geometry& g) {
  // Window positions per plane, in double: a kernel may reach 2^31 - 1 per dim (only min(kernel, in) are read).
  double work = 1.0;
  for (int i = 0; i < 3; ++i) work *= static_cast<double>(g.out[i]) * static_cast<double>(std::min(g.kernel[i], g.in[i]));
  const int64_t group = checked_isa().plane_group_size(g);  // chunks of whole groups of planes that share a buffer
  const int64_t planes = work >= 32768.0 ? 1 : std::max<int64_t>(1, static_cast<int64_t>(32768.0 / std::max(1.0, work)));
  return (planes + group - 1) / group * group;
}

at::Tensor soft_pool_cpu(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, double beta,
                         const c10::optional<at::Tensor>& beta_tensor) {
  const TorchProblem p = make_problem(x, kernel, stride, padding, dilation, ceil_mode);
  at::Tensor y = at::empty(p.out_shape, x.options().memory_format(output_memory_format(x)));
  if (y.numel() == 0) return y;
  int64_t xs[5], ys[5];
  plane_strides(x, p, xs);
  plane_strides(y, p, ys);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& kernels = cpu::Slot<scalar_t>::of(checked_isa());
    const at::Tensor betas =
        beta_values(beta_tensor, beta, p.channels, c10::CppTypeToScalarType<acc_t>::value, x.device());
    const acc_t* b = betas.const_data_ptr<acc_t>();
    const bool per_channel = betas.numel() > 1;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const cpu::PlaneLayout layout{p.channels, xs[0], xs[1], ys[0], ys[1]};
    const int64_t channels = p.channels;
    // Plane i = (n, c) of x and of y.
    auto x_of = [&](int64_t i) { return xp + (i / channels) * xs[0] + (i % channels) * xs[1]; };
    auto y_of = [&](int64_t i) { return yp + (i / channels) * ys[0] + (i % channels) * ys[1]; };
    ThreadRecorder threads;
    at::parallel_for(0, p.batch * channels, plane_grain(p.g), [&](int64_t begin, int64_t end) {
      threads.record();
      if (per_channel) {
        for (int64_t i = begin; i < end; ++i)
          kernels.forward_plane(x_of(i), xs + 2, y_of(i), ys + 2, p.g, b[i % channels]);
        return;
      }
      // One temperature: planes with short rows share the kernel's padded buffers.
      kernels.forward_planes(xp, xs + 2, yp, ys + 2, layout, begin, end - begin, p.g, b[0]);
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> soft_pool_backward_cpu(const at::Tensor& grad_output, const at::Tensor& x,
                                                          at::IntArrayRef kernel, at::IntArrayRef stride,
                                                          at::IntArrayRef padding, at::IntArrayRef dilation,
                                                          bool ceil_mode, double beta,
                                                          const c10::optional<at::Tensor>& beta_tensor) {
  const TorchProblem p = make_problem(x, kernel, stride, padding, dilation, ceil_mode);
  TORCH_CHECK_VALUE(grad_output.sizes().vec() == p.out_shape, "SoftPool backward: grad_output has shape ",
                    grad_output.sizes(), ", expected ", at::IntArrayRef(p.out_shape));
  TORCH_CHECK_TYPE(grad_output.scalar_type() == x.scalar_type(), "SoftPool backward: grad_output dtype ",
                   grad_output.scalar_type(), " differs from the input's ", x.scalar_type());
  const bool has_beta = is_given(beta_tensor);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_beta = has_beta ? at::zeros(beta_tensor->sizes(), beta_tensor->options()) : x.new_empty({0});
  const int64_t planes = p.batch * p.channels;
  if (x.numel() == 0) return {grad_x.zero_(), grad_beta};
  int64_t xs[5], gys[5], gxs[5];
  plane_strides(x, p, xs);
  plane_strides(grad_output, p, gys);
  plane_strides(grad_x, p, gxs);
  const Geometry& g = p.g;
  std::vector<double> beta_partials(static_cast<size_t>(planes), 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& kernels = cpu::Slot<scalar_t>::of(checked_isa());
    const at::Tensor betas =
        beta_values(beta_tensor, beta, p.channels, c10::CppTypeToScalarType<acc_t>::value, x.device());
    const acc_t* b = betas.const_data_ptr<acc_t>();
    const bool per_channel = betas.numel() > 1;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gyp = grad_output.const_data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
    const int64_t channels = p.channels;
    const int64_t plane_size = g.in[0] * g.in[1] * g.in[2];
    ThreadRecorder threads;
    at::parallel_for(0, planes, plane_grain(g), [&](int64_t begin, int64_t end) {
      threads.record();
      std::vector<acc_t> buffer(static_cast<size_t>(plane_size));
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / channels, c = i % channels;
        std::fill(buffer.begin(), buffer.end(), acc_t(0));
        beta_partials[i] = kernels.backward_plane(gyp + n * gys[0] + c * gys[1], gys + 2,
                                                           xp + n * xs[0] + c * xs[1], xs + 2, buffer.data(), g,
                                                           b[per_channel ? c : 0]);
        scalar_t* gx_plane = gxp + n * gxs[0] + c * gxs[1];
        const acc_t* src = buffer.data();
        const bool dense_plane = gxs[4] == 1 && gxs[3] == g.in[2] && gxs[2] == g.in[1] * g.in[2];
        if constexpr (std::is_same<scalar_t, acc_t>::value) {
          if (dense_plane) {
            std::copy(src, src + plane_size, gx_plane);
            continue;
          }
        }
        for (int64_t d = 0; d < g.in[0]; ++d)
          for (int64_t h = 0; h < g.in[1]; ++h)
            for (int64_t w = 0; w < g.in[2]; ++w)
              gx_plane[d * gxs[2] + h * gxs[3] + w * gxs[4]] = static_cast<scalar_t>(*src++);
      }
    });
  });
  if (has_beta) {
    // Reduce the per-plane shares in a fixed order: deterministic.
    const int64_t n_beta = grad_beta.numel();
    std::vector<double> totals(static_cast<size_t>(n_beta), 0.0);
    for (int64_t i = 0; i < planes; ++i) totals[n_beta == 1 ? 0 : i % p.channels] += beta_partials[i];
    at::Tensor t = at::empty({n_beta}, at::TensorOptions().dtype(at::kDouble));
    std::copy(totals.begin(), totals.end(), t.mutable_data_ptr<double>());
    grad_beta.copy_(t.reshape(grad_beta.sizes()));
  }
  return {grad_x, grad_beta};
}

}  // namespace

// Diagnostics of the build, read by poolswap doctor and the tests.
TORCH_LIBRARY_FRAGMENT(poolswap, m) {
  m.def("_cpu_parallel_backend() -> str", &parallel_backend);
  m.def("_cpu_threads_last_call() -> int", &threads_last_call);
  m.def("_cpu_isa() -> str", &cpu_isa);
}

TORCH_LIBRARY_IMPL(poolswap, CPU, m) {
  m.impl("soft_pool", &soft_pool_cpu);
  m.impl("soft_pool_backward", &soft_pool_backward_cpu);
}

}  // namespace poolswap
