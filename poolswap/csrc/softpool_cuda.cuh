// SoftPool CUDA kernels, shared by the PyTorch CUDA op and the ONNX Runtime
// CUDA kernel. The window math is softpool_kernel.h's, the same code as on the
// CPU. Launchers take the stream they must run on and never synchronise.
//
// Forward: one thread per output, one online pass over its window.
// Backward (deterministic, no atomics):
//   1. window_stats_kernel: per output, m, 1/s and y (and, for the beta
//      gradient, grad_y * sum_W w (x - y)^2), into a buffer of output size
//      that lives only during the backward call;
//   2. input_grad_kernel: per input, a gather over the windows that cover it,
//      always in the same order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "softpool_kernel.h"

namespace poolswap {
namespace cuda {

struct Strides {
  int64_t n, c, s[3];  // elements; s = (d, h, w)
};

struct Problem {
  Geometry g;
  int64_t batch;
  int64_t channels;
  Strides x;
  Strides y;
  bool channels_fastest;  // thread order for channels-last tensors (coalesced along C)
};

constexpr int kThreads = 256;

inline unsigned int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 * 8 ? blocks : 65535 * 8);  // grid-stride loops cover the rest
}

// Coordinates (n, c, d, h, w) of element i of a tensor of spatial size `size`.
__device__ __forceinline__ void coordinates(int64_t i, const Problem& p, const int64_t* size, int64_t* at) {
  if (p.channels_fastest) {
    at[1] = i % p.channels;
    i /= p.channels;
    at[4] = i % size[2];
    i /= size[2];
    at[3] = i % size[1];
    i /= size[1];
    at[2] = i % size[0];
    at[0] = i / size[0];
  } else {
    at[4] = i % size[2];
    i /= size[2];
    at[3] = i % size[1];
    i /= size[1];
    at[2] = i % size[0];
    i /= size[0];
    at[1] = i % p.channels;
    at[0] = i / p.channels;
  }
}

__device__ __forceinline__ int64_t offset(const Strides& s, const int64_t* at) {
  return at[0] * s.n + at[1] * s.c + at[2] * s.s[0] + at[3] * s.s[1] + at[4] * s.s[2];
}

// The temperature of channel c: betas[c] (per channel), betas[0], or `beta` when betas is null.
template <typename acc_t>
__device__ __forceinline__ acc_t temperature(const acc_t* betas, bool per_channel, acc_t beta, int64_t c) {
  return betas == nullptr ? beta : betas[per_channel ? c : 0];
}

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, Problem p,
                               const acc_t* __restrict__ betas, bool per_channel, acc_t beta, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t at[5];
    coordinates(i, p, p.g.out, at);
    const WindowRange rd = window_range(p.g, 0, at[2]);
    const WindowRange rh = window_range(p.g, 1, at[3]);
    const WindowRange rw = window_range(p.g, 2, at[4]);
    const acc_t b = temperature(betas, per_channel, beta, at[1]);
    const WindowAccumulator<acc_t> acc =
        accumulate_window<scalar_t, acc_t>(x + at[0] * p.x.n + at[1] * p.x.c, p.x.s, p.g, rd, rh, rw, b);
    y[offset(p.y, at)] = static_cast<scalar_t>(acc.value());
  }
}

// stats: 3 * total values (m, 1/s, y per output, in output-index order);
// beta_terms (or null): grad_y * sum_W w (x - y)^2 per output.
template <typename scalar_t, typename acc_t>
__global__ void window_stats_kernel(const scalar_t* __restrict__ grad_y, Strides gy, const scalar_t* __restrict__ x,
                                    Problem p, const acc_t* __restrict__ beta, bool per_channel, int64_t total,
                                    acc_t* __restrict__ stats, acc_t* __restrict__ beta_terms) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t at[5];
    coordinates(i, p, p.g.out, at);
    const WindowRange rd = window_range(p.g, 0, at[2]);
    const WindowRange rh = window_range(p.g, 1, at[3]);
    const WindowRange rw = window_range(p.g, 2, at[4]);
    const acc_t b = beta[per_channel ? at[1] : 0];
    const scalar_t* plane = x + at[0] * p.x.n + at[1] * p.x.c;
    const WindowAccumulator<acc_t> acc = accumulate_window<scalar_t, acc_t>(plane, p.x.s, p.g, rd, rh, rw, b);
    const acc_t y = acc.value();
    stats[i] = acc.m;
    stats[total + i] = acc_t(1) / acc.s;
    stats[2 * total + i] = y;
    if (beta_terms != nullptr) {
      const acc_t go = static_cast<acc_t>(grad_y[offset(gy, at)]);
      acc_t unused = 0, variance = 0;
      for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
        for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
          const scalar_t* row = plane + (rd.start + kd * p.g.dilation[0]) * p.x.s[0] +
                                (rh.start + kh * p.g.dilation[1]) * p.x.s[1];
          for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
            const acc_t v = static_cast<acc_t>(row[(rw.start + kw * p.g.dilation[2]) * p.x.s[2]]);
            window_element_grad(acc, v, y, b, acc_t(1), &unused, &variance);
          }
        }
      }
      beta_terms[i] = go * variance;
    }
  }
}

// Output windows along one dim that hold input position `i` at kernel tap k.
__device__ __forceinline__ bool covering_window(const Geometry& g, int dim, int64_t i, int64_t k, int64_t& o) {
  const int64_t t = i + g.pad[dim] - k * g.dilation[dim];
  if (t < 0 || t % g.stride[dim] != 0) return false;
  o = t / g.stride[dim];
  return o < g.out[dim];
}

template <typename scalar_t, typename acc_t>
__global__ void input_grad_kernel(const scalar_t* __restrict__ grad_y, Strides gy, const scalar_t* __restrict__ x,
                                  scalar_t* __restrict__ grad_x, Strides gx, Problem p,
                                  const acc_t* __restrict__ beta, bool per_channel, const acc_t* __restrict__ stats,
                                  int64_t total_out, int64_t total_in) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total_in;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t at[5];
    coordinates(i, p, p.g.in, at);
    const acc_t b = beta[per_channel ? at[1] : 0];
    const acc_t v = static_cast<acc_t>(x[offset(p.x, at)]);
    acc_t grad = 0;
    int64_t o[5] = {at[0], at[1], 0, 0, 0};
    for (int64_t kd = 0; kd < p.g.kernel[0]; ++kd) {
      if (!covering_window(p.g, 0, at[2], kd, o[2])) continue;
      for (int64_t kh = 0; kh < p.g.kernel[1]; ++kh) {
        if (!covering_window(p.g, 1, at[3], kh, o[3])) continue;
        for (int64_t kw = 0; kw < p.g.kernel[2]; ++kw) {
          if (!covering_window(p.g, 2, at[4], kw, o[4])) continue;
          // index of window o in the stats buffer (output-index order of `coordinates`)
          const int64_t spatial = (o[2] * p.g.out[1] + o[3]) * p.g.out[2] + o[4];
          const int64_t j = p.channels_fastest
                                ? ((o[0] * p.g.out[0] * p.g.out[1] * p.g.out[2] + spatial) * p.channels + o[1])
                                : ((o[0] * p.channels + o[1]) * p.g.out[0] * p.g.out[1] * p.g.out[2] + spatial);
          const acc_t m = stats[j], inv_s = stats[total_out + j], y = stats[2 * total_out + j];
          const acc_t w = exp_nonpositive(b * ((v == m) ? acc_t(0) : v - m)) * inv_s;
          if (w != acc_t(0)) {
            const acc_t dy = (v == y) ? acc_t(0) : v - y;
            grad += static_cast<acc_t>(grad_y[offset(gy, o)]) * w * (acc_t(1) + b * dy);
          }
        }
      }
    }
    grad_x[offset(gx, at)] = static_cast<scalar_t>(grad);
  }
}

// betas: device memory (one value or one per channel), or null to use `beta` for every channel.
template <typename scalar_t, typename acc_t>
void launch_forward(const scalar_t* x, scalar_t* y, const Problem& p, const acc_t* betas, bool per_channel,
                    acc_t beta, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.g.out[0] * p.g.out[1] * p.g.out[2];
  if (total == 0) return;
  forward_kernel<scalar_t, acc_t>
      <<<grid_for(total), kThreads, 0, stream>>>(x, y, p, betas, per_channel, beta, total);
}

template <typename scalar_t, typename acc_t>
void launch_backward(const scalar_t* grad_y, const Strides& gy, const scalar_t* x, scalar_t* grad_x,
                     const Strides& gx, const Problem& p, const acc_t* beta, bool per_channel, acc_t* stats,
                     acc_t* beta_terms, cudaStream_t stream) {
  const int64_t total_out = p.batch * p.channels * p.g.out[0] * p.g.out[1] * p.g.out[2];
  const int64_t total_in = p.batch * p.channels * p.g.in[0] * p.g.in[1] * p.g.in[2];
  if (total_in == 0) return;
  window_stats_kernel<scalar_t, acc_t><<<grid_for(total_out), kThreads, 0, stream>>>(
      grad_y, gy, x, p, beta, per_channel, total_out, stats, beta_terms);
  input_grad_kernel<scalar_t, acc_t><<<grid_for(total_in), kThreads, 0, stream>>>(
      grad_y, gy, x, grad_x, gx, p, beta, per_channel, stats, total_out, total_in);
}

}  // namespace cuda
}  // namespace poolswap
