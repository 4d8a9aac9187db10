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
#include <cstring>
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

// Channels-last input: the plane kernels read (D, H, W) planes, and a channels-last
// plane's elements lie C apart, one per cache line. Where the channels-last strips of
// softpool_cpu.h do not serve (the backward, double), a block of kChannelBlock channels
// of one image is transposed into contiguous planes (each cache line read once, for all
// the block's channels; the ISA table's vector transposes for float), run through the
// NCHW plane kernels, and transposed back.
using cpu::kChannelBlock;

int64_t plane_size(const int64_t size[3]) { return size[0] * size[1] * size[2]; }

// Whether t's planes (strides s, from plane_strides) are channels-last (channels adjacent, positions
// apart) with rows long enough for the vector transposes. Output rows shorter than a vector block
// (16) are pooled 8 planes at a time, one per lane (softpool_cpu.h's interleaved planes), which
// read 8 adjacent channels in place: as fast as NCHW there (14x14 and 16x16 maps, 2026-12-04).
bool channels_last_planes(const TorchProblem& p, const int64_t s[5]) {
  return p.channels > 1 && s[1] == 1 && p.g.in[2] >= 8 && p.g.out[2] >= 16;
}

// Planes c0 .. c0 + count - 1 of one image (src: channel c0, channel stride cs, position strides s)
// into `count` contiguous planes of `size` in dst.
template <typename T>
void gather_planes(const T* src, int64_t cs, const int64_t* s, const int64_t size[3], int64_t count, T* dst) {
  if constexpr (std::is_same<T, float>::value) {
    if (cs == 1 && count == kChannelBlock && checked_isa().gather_channels != nullptr)
      return checked_isa().gather_channels(src, s, size, dst);
  }
  const int64_t plane = plane_size(size);
  int64_t i = 0;
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h, i += size[2])
      for (int64_t w = 0; w < size[2]; ++w) {
        const T* at = src + d * s[0] + h * s[1] + w * s[2];
        for (int64_t j = 0; j < count; ++j) dst[j * plane + i + w] = at[j * cs];
      }
}

// The inverse of gather_planes for a channels-last destination (channel stride 1), converting to T.
template <typename T, typename U>
void scatter_planes(const U* src, const int64_t size[3], int64_t count, T* dst, const int64_t* s) {
  if constexpr (std::is_same<T, float>::value && std::is_same<U, float>::value) {
    if (count == kChannelBlock && checked_isa().scatter_channels != nullptr)
      return checked_isa().scatter_channels(src, size, dst, s);
  }
  const int64_t plane = plane_size(size);
  int64_t i = 0;
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h, i += size[2])
      for (int64_t w = 0; w < size[2]; ++w) {
        T* at = dst + d * s[0] + h * s[1] + w * s[2];
        for (int64_t j = 0; j < count; ++j) at[j] = static_cast<T>(src[j * plane + i + w]);
      }
}

// The strides of a contiguous (D, H, W) plane of `size`.
void contiguous_strides(const int64_t size[3], int64_t out[3]) {
  out[0] = size[1] * size[2];
  out[1] = size[2];
  out[2] = 1;
}

// A channels-last problem cut into tasks of up to kChannelBlock channels of one image, each gathered
// into contiguous planes (in_plane / out_plane elements apart) for the NCHW plane kernels.
struct ChannelBlocks {
  int64_t channels, blocks, in_plane, out_plane;
  int64_t in_strides[3], out_strides[3];

  ChannelBlocks(const Geometry& g, int64_t channels_)
      : channels(channels_),
        blocks((channels_ + kChannelBlock - 1) / kChannelBlock),
        in_plane(plane_size(g.in)),
        out_plane(plane_size(g.out)) {
    contiguous_strides(g.in, in_strides);
    contiguous_strides(g.out, out_strides);
  }
  int64_t tasks(int64_t batch) const { return batch * blocks; }
  int64_t image(int64_t task) const { return task / blocks; }
  int64_t first_channel(int64_t task) const { return (task % blocks) * kChannelBlock; }
  int64_t count(int64_t task) const { return std::min(kChannelBlock, channels - first_channel(task)); }
};

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
    ThreadRecorder threads;
    if (channels_last_planes(p, xs) && ys[1] == 1) {
      const Geometry& g = p.g;
      // Eight channels per vector, each image's rows read in place, by strips of output rows: where the
      // ISA and type have that kernel (an empty range asks), and channels fill its vectors.
      if (channels >= 8 && kernels.forward_channels_last(xp, xs + 2, yp, ys + 2, channels, g, b, per_channel, 0, 0, 0)) {
        const int64_t strip = std::max<int64_t>(1, 16 / g.stride[1]);
        const int64_t strips = (g.out[1] + strip - 1) / strip, per_image = g.out[0] * strips;
        at::parallel_for(0, p.batch * per_image, 1, [&](int64_t begin, int64_t end) {
          threads.record();
          for (int64_t task = begin; task < end; ++task) {
            const int64_t n = task / per_image, od = task % per_image / strips, oh0 = task % strips * strip;
            kernels.forward_channels_last(xp + n * xs[0], xs + 2, yp + n * ys[0], ys + 2, channels, g, b, per_channel,
                                          od, oh0, std::min(g.out[1], oh0 + strip));
          }
        });
        return;
      }
      const ChannelBlocks cb(g, channels);
      const int64_t in_plane = cb.in_plane, out_plane = cb.out_plane;
      const int64_t* in_strides = cb.in_strides;
      const int64_t* out_strides = cb.out_strides;
      at::parallel_for(0, cb.tasks(p.batch), 1, [&](int64_t begin, int64_t end) {
        threads.record();
        std::vector<scalar_t> xin(static_cast<size_t>(kChannelBlock * in_plane));
        std::vector<scalar_t> yout(static_cast<size_t>(kChannelBlock * out_plane));
        for (int64_t task = begin; task < end; ++task) {
          const int64_t n = cb.image(task), c0 = cb.first_channel(task), count = cb.count(task);
          gather_planes(xp + n * xs[0] + c0, int64_t(1), xs + 2, g.in, count, xin.data());
          const cpu::PlaneLayout block{count, 0, in_plane, 0, out_plane};  // plane k at k * plane size
          if (per_channel)
            kernels.forward_planes_betas(xin.data(), in_strides, yout.data(), out_strides, block, 0, count, g, b + c0);
          else
            kernels.forward_planes(xin.data(), in_strides, yout.data(), out_strides, block, 0, count, g, b[0]);
          scatter_planes(yout.data(), g.out, count, yp + n * ys[0] + c0, ys + 2);
        }
      });
      return;
    }
    at::parallel_for(0, p.batch * channels, plane_grain(p.g), [&](int64_t begin, int64_t end) {
      threads.record();
      if (per_channel) {
        kernels.forward_planes_betas(xp, xs + 2, yp, ys + 2, layout, begin, end - begin, p.g, b);
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
    const int64_t in_plane = plane_size(g.in);
    ThreadRecorder threads;
    if (channels_last_planes(p, xs) && gxs[1] == 1 && gys[1] == 1 && !has_beta && channels >= 8 &&
        kernels.backward_channels_last_dx(gyp, gys + 2, xp, xs + 2, gxp, gxs + 2, g, b, per_channel, 0, 0)) {
      // Eight channels per vector, each image read where it lies: a task per image (all its channels, so
      // that each cache line of a strip's rows serves every channel group while hot), or per block of 64
      // channels (whole cache lines) where images are fewer than threads.
      const int64_t block = p.batch >= at::get_num_threads() ? channels : 64;
      const int64_t blocks = (channels + block - 1) / block;
      at::parallel_for(0, p.batch * blocks, 1, [&](int64_t begin, int64_t end) {
        threads.record();
        for (int64_t task = begin; task < end; ++task) {
          const int64_t n = task / blocks, c0 = task % blocks * block;
          kernels.backward_channels_last_dx(gyp + n * gys[0], gys + 2, xp + n * xs[0], xs + 2, gxp + n * gxs[0], gxs + 2,
                                            g, b, per_channel, c0, std::min(channels, c0 + block));
        }
      });
      return;
    }
    if (channels_last_planes(p, xs) && gxs[1] == 1) {
      const ChannelBlocks cb(g, channels);
      const int64_t out_plane = cb.out_plane;
      const int64_t* in_strides = cb.in_strides;
      const int64_t* out_strides = cb.out_strides;
      at::parallel_for(0, cb.tasks(p.batch), 1, [&](int64_t begin, int64_t end) {
        threads.record();
        std::vector<scalar_t> xin(static_cast<size_t>(kChannelBlock * in_plane));
        std::vector<scalar_t> gyin(static_cast<size_t>(kChannelBlock * out_plane));
        std::vector<acc_t> gx(static_cast<size_t>(kChannelBlock * in_plane));
        for (int64_t task = begin; task < end; ++task) {
          const int64_t n = cb.image(task), c0 = cb.first_channel(task), count = cb.count(task);
          gather_planes(xp + n * xs[0] + c0, int64_t(1), xs + 2, g.in, count, xin.data());
          gather_planes(gyp + n * gys[0] + c0 * gys[1], gys[1], gys + 2, g.out, count, gyin.data());
          std::fill(gx.begin(), gx.begin() + count * in_plane, acc_t(0));
          for (int64_t k = 0; k < count; ++k) {
            const acc_t beta_k = b[per_channel ? c0 + k : 0];
            if (has_beta)
              beta_partials[n * channels + c0 + k] = kernels.backward_plane(
                  gyin.data() + k * out_plane, out_strides, xin.data() + k * in_plane, in_strides,
                  gx.data() + k * in_plane, g, beta_k);
            else
              kernels.backward_plane_dx(gyin.data() + k * out_plane, out_strides, xin.data() + k * in_plane,
                                        in_strides, gx.data() + k * in_plane, g, beta_k);
          }
          scatter_planes(gx.data(), g.in, count, gxp + n * gxs[0] + c0, gxs + 2);
        }
      });
      return;
    }
    const cpu::PlaneLayout layout{channels, xs[0], xs[1], gys[0], gys[1]};
    const cpu::PlaneLayout grad_layout{channels, gxs[0], gxs[1], gxs[0], gxs[1]};
    at::parallel_for(0, planes, plane_grain(g), [&](int64_t begin, int64_t end) {
      threads.record();
      // Short rows, no beta gradient: planes side by side, one per lane.
      if (!has_beta && kernels.backward_planes_dx(gyp, gys + 2, xp, xs + 2, gxp, gxs + 2, layout, grad_layout, begin,
                                                  end - begin, g, b, per_channel))
        return;
      // A dense plane of grad_x in the accumulator's type is the kernels' buffer itself: no copy.
      constexpr bool same_type = std::is_same<scalar_t, acc_t>::value;
      const bool dense_planes = gxs[4] == 1 && gxs[3] == g.in[2] && gxs[2] == g.in[1] * g.in[2];
      std::vector<acc_t> buffer(same_type && dense_planes ? 0 : static_cast<size_t>(in_plane));
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / channels, c = i % channels;
        scalar_t* gx_plane = gxp + n * gxs[0] + c * gxs[1];
        acc_t* target = buffer.data();
        if constexpr (same_type) {
          if (dense_planes) target = reinterpret_cast<acc_t*>(gx_plane);  // the same type
        }
        std::fill(target, target + in_plane, acc_t(0));
        const scalar_t* gy_plane = gyp + n * gys[0] + c * gys[1];
        const scalar_t* x_plane = xp + n * xs[0] + c * xs[1];
        // dL/dbeta only where beta is a tensor (a learnt temperature); else the cheaper dL/dx-only path
        if (has_beta)
          beta_partials[i] = kernels.backward_plane(gy_plane, gys + 2, x_plane, xs + 2, target, g,
                                                    b[per_channel ? c : 0]);
        else
          kernels.backward_plane_dx(gy_plane, gys + 2, x_plane, xs + 2, target, g, b[per_channel ? c : 0]);
        if (static_cast<void*>(target) == static_cast<void*>(gx_plane)) continue;
        const acc_t* src = target;
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
