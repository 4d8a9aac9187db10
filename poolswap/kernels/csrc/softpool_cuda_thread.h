// What one thread of each SoftPool CUDA kernel computes, in code that is both
// CUDA and plain C++: softpool_cuda.cuh wraps each function in a grid-stride
// loop, and tests/ops/cuda_thread_fuzz.cpp runs the same functions on the CPU
// (under AddressSanitizer) against a float64 brute force, so the indexing of
// the CUDA kernels (layouts, the stats buffer, the backward's gather) is
// tested on machines without a GPU.
//
//   forward_output:      output i, one online pass over its window;
//   window_stats_output: output i's m, 1/s and y (and its beta-gradient term),
//                        for the backward;
//   input_grad_element:  input i's gradient, a gather over the windows that
//                        cover it, always in the same order (no atomics).
#pragma once

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

// Coordinates (n, c, d, h, w) of element i of a tensor of spatial size `size`,
// in thread order: (n, c, d, h, w), or (n, d, h, w, c) when channels_fastest.
POOLSWAP_HD void coordinates(int64_t i, const Problem& p, const int64_t* size, int64_t* at) {
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

// The thread-order index of output `o` (n, c, d, h, w): the inverse of coordinates().
POOLSWAP_HD int64_t output_index(const Problem& p, const int64_t* o) {
  const int64_t spatial = (o[2] * p.g.out[1] + o[3]) * p.g.out[2] + o[4];
  const int64_t plane = p.g.out[0] * p.g.out[1] * p.g.out[2];
  return p.channels_fastest ? (o[0] * plane + spatial) * p.channels + o[1]
                            : (o[0] * p.channels + o[1]) * plane + spatial;
}

POOLSWAP_HD int64_t offset(const Strides& s, const int64_t* at) {
  return at[0] * s.n + at[1] * s.c + at[2] * s.s[0] + at[3] * s.s[1] + at[4] * s.s[2];
}

// The temperature of channel c: betas[c] (per channel), betas[0], or `beta` when betas is null.
template <typename acc_t>
POOLSWAP_HD acc_t temperature(const acc_t* betas, bool per_channel, acc_t beta, int64_t c) {
  return betas == nullptr ? beta : betas[per_channel ? c : 0];
}

// The output window along one dim that holds input position `i` at kernel tap k, if any.
POOLSWAP_HD bool covering_window(const Geometry& g, int dim, int64_t i, int64_t k, int64_t& o) {
  const int64_t t = i + g.pad[dim] - k * g.dilation[dim];
  if (t < 0 || t % g.stride[dim] != 0) return false;
  o = t / g.stride[dim];
  return o < g.out[dim];
}

template <typename scalar_t, typename acc_t>
POOLSWAP_HD WindowAccumulator<acc_t> output_window(const scalar_t* x, const Problem& p, const int64_t* at, acc_t beta) {
  const WindowRange rd = window_range(p.g, 0, at[2]);
  const WindowRange rh = window_range(p.g, 1, at[3]);
  const WindowRange rw = window_range(p.g, 2, at[4]);
  return accumulate_window<scalar_t, acc_t>(x + at[0] * p.x.n + at[1] * p.x.c, p.x.s, p.g, rd, rh, rw, beta);
}

template <typename scalar_t, typename acc_t>
POOLSWAP_HD void forward_output(int64_t i, const scalar_t* x, scalar_t* y, const Problem& p, const acc_t* betas,
                                bool per_channel, acc_t beta) {
  int64_t at[5];
  coordinates(i, p, p.g.out, at);
  const WindowAccumulator<acc_t> acc =
      output_window<scalar_t, acc_t>(x, p, at, temperature(betas, per_channel, beta, at[1]));
  y[offset(p.y, at)] = static_cast<scalar_t>(acc.value());
}

// stats: 3 * total values (m, 1/s, y per output, in thread order);
// beta_terms (or null): grad_y * sum_W w (x - y)^2 per output.
template <typename scalar_t, typename acc_t>
POOLSWAP_HD void window_stats_output(int64_t i, const scalar_t* grad_y, const Strides& gy, const scalar_t* x,
                                     const Problem& p, const acc_t* beta, bool per_channel, int64_t total,
                                     acc_t* stats, acc_t* beta_terms) {
  int64_t at[5];
  coordinates(i, p, p.g.out, at);
  const acc_t b = beta[per_channel ? at[1] : 0];
  const WindowAccumulator<acc_t> acc = output_window<scalar_t, acc_t>(x, p, at, b);
  const acc_t y = acc.value();
  stats[i] = acc.m;
  stats[total + i] = acc_t(1) / acc.s;
  stats[2 * total + i] = y;
  if (beta_terms == nullptr) return;
  const WindowRange rd = window_range(p.g, 0, at[2]);
  const WindowRange rh = window_range(p.g, 1, at[3]);
  const WindowRange rw = window_range(p.g, 2, at[4]);
  const scalar_t* plane = x + at[0] * p.x.n + at[1] * p.x.c;
  acc_t unused = 0, variance = 0;
  for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const scalar_t* row =
          plane + (rd.start + kd * p.g.dilation[0]) * p.x.s[0] + (rh.start + kh * p.g.dilation[1]) * p.x.s[1];
      for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
        const acc_t v = static_cast<acc_t>(row[(rw.start + kw * p.g.dilation[2]) * p.x.s[2]]);
        window_element_grad(acc, v, y, b, acc_t(1), &unused, &variance);
      }
    }
  }
  beta_terms[i] = static_cast<acc_t>(grad_y[offset(gy, at)]) * variance;
}

// Input i's gradient from the stats of window_stats_output.
template <typename scalar_t, typename acc_t>
POOLSWAP_HD void input_grad_element(int64_t i, const scalar_t* grad_y, const Strides& gy, const scalar_t* x,
                                    scalar_t* grad_x, const Strides& gx, const Problem& p, const acc_t* beta,
                                    bool per_channel, const acc_t* stats, int64_t total_out) {
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
        const int64_t j = output_index(p, o);
        const acc_t m = stats[j], inv_s = stats[total_out + j], y = stats[2 * total_out + j];
        const acc_t w = exp_nonpositive(b * ((v == m) ? acc_t(0) : v - m)) * inv_s;
        if (w != acc_t(0)) {  // absent and -inf positions get exactly 0
          const acc_t dy = (v == y) ? acc_t(0) : v - y;
          grad += static_cast<acc_t>(grad_y[offset(gy, o)]) * w * (acc_t(1) + b * dy);
        }
      }
    }
  }
  grad_x[offset(gx, at)] = static_cast<scalar_t>(grad);
}

}  // namespace cuda
}  // namespace poolswap
