// SoftPool CUDA kernels, shared by the PyTorch CUDA op and the ONNX Runtime
// CUDA kernel. Each kernel is a grid-stride loop over one function of
// softpool_cuda_thread.h (the work of one thread, also run on the CPU by the
// tests); the window math is softpool_kernel.h's, the same code as on the CPU.
// Launchers take the stream they must run on and never synchronise.
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

#include "softpool_cuda_thread.h"

namespace poolswap {
namespace cuda {

constexpr int kThreads = 256;

inline unsigned int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 * 8 ? blocks : 65535 * 8);  // grid-stride loops cover the rest
}

#define POOLSWAP_GRID_STRIDE_LOOP(i, total)                                                      \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (total); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, Problem p,
                               const acc_t* __restrict__ betas, bool per_channel, acc_t beta, int64_t total) {
  POOLSWAP_GRID_STRIDE_LOOP(i, total) { forward_output<scalar_t, acc_t>(i, x, y, p, betas, per_channel, beta); }
}

template <typename scalar_t, typename acc_t>
__global__ void window_stats_kernel(const scalar_t* __restrict__ grad_y, Strides gy, const scalar_t* __restrict__ x,
                                    Problem p, const acc_t* __restrict__ beta, bool per_channel, int64_t total,
                                    acc_t* __restrict__ stats, acc_t* __restrict__ beta_terms) {
  POOLSWAP_GRID_STRIDE_LOOP(i, total) {
    window_stats_output<scalar_t, acc_t>(i, grad_y, gy, x, p, beta, per_channel, total, stats, beta_terms);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void input_grad_kernel(const scalar_t* __restrict__ grad_y, Strides gy, const scalar_t* __restrict__ x,
                                  scalar_t* __restrict__ grad_x, Strides gx, Problem p,
                                  const acc_t* __restrict__ beta, bool per_channel, const acc_t* __restrict__ stats,
                                  int64_t total_out, int64_t total_in) {
  POOLSWAP_GRID_STRIDE_LOOP(i, total_in) {
    input_grad_element<scalar_t, acc_t>(i, grad_y, gy, x, grad_x, gx, p, beta, per_channel, stats, total_out);
  }
}

#undef POOLSWAP_GRID_STRIDE_LOOP

// betas: device memory (one value or one per channel), or null to use `beta` for every channel.
template <typename scalar_t, typename acc_t>
void launch_forward(const scalar_t* x, scalar_t* y, const Problem& p, const acc_t* betas, bool per_channel,
                    acc_t beta, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.g.out[0] * p.g.out[1] * p.g.out[2];
  if (total == 0) return;
  forward_kernel<scalar_t, acc_t>
      <<<grid_for(total), kThreads, 0, stream>>>(x, y, p, betas, per_channel, beta, total);
}

// stats: device memory for 3 values per output; beta_terms: one per output, or null.
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
