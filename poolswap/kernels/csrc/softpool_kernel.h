// SoftPool window math shared by every front-end of poolswap.
//
// The PyTorch CPU op, the PyTorch CUDA op and the ONNX Runtime custom-op
// kernels all include this header (the CPU ones through softpool_cpu.h), so
// they keep one definition of the contract in docs/softpool.md:
//
//   m = max_W x,  w_i = exp(beta (x_i - m)) / sum_W exp(beta (x_j - m)),
//   y = sum_W w_i x_i = m + sum_W w_i (x_i - m)
//   dy/dx_i = w_i (1 + beta (x_i - y)),  dy/dbeta = sum_W w_i (x_i - y)^2
//
// One pass per window with an online max: every exp argument is <= 0, so no
// input overflows. NaN propagates, +inf wins, -inf gets weight 0.
// No dependency on PyTorch or ONNX Runtime: plain C++ (and CUDA).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define POOLSWAP_HD __host__ __device__ __forceinline__
#else
#define POOLSWAP_HD inline
#endif

namespace poolswap {

// Geometry of one pooling problem, always seen as 3 spatial dims (D, H, W);
// 1-d and 2-d problems have leading dims of size 1 with kernel 1.
struct Geometry {
  int64_t in[3];
  int64_t out[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t pad[3];
  int64_t dilation[3];
};

// Output length along one dim: torch.nn.MaxPoolNd's rule (ONNX MaxPool's with
// begin and end pads), ceil_mode included: a window that would start inside the
// end padding is dropped. The one home of this rule for every front-end.
inline int64_t pooled_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end,
                           int64_t dilation, bool ceil_mode) {
  const int64_t extent = dilation * (kernel - 1) + 1;
  const int64_t numerator = size + pad_begin + pad_end - extent + (ceil_mode ? stride - 1 : 0);
  // floor division, numerator may be negative
  int64_t out = (numerator >= 0 ? numerator / stride : -((-numerator + stride - 1) / stride)) + 1;
  if (ceil_mode && out > 0 && (out - 1) * stride >= size + pad_begin) --out;
  return out;
}

// The input positions of output window `o` along one dim are
// start + k * dilation for k in [lo, hi): exactly the ones inside the input.
struct WindowRange {
  int64_t start;
  int64_t lo;
  int64_t hi;
};

POOLSWAP_HD WindowRange window_range(const Geometry& g, int dim, int64_t o) {
  WindowRange r;
  const int64_t d = g.dilation[dim];
  r.start = o * g.stride[dim] - g.pad[dim];
  r.lo = r.start < 0 ? (-r.start + d - 1) / d : 0;
  const int64_t past_end = (g.in[dim] - r.start + d - 1) / d;  // first k at or past the end
  r.hi = past_end < g.kernel[dim] ? past_end : g.kernel[dim];
  return r;
}

// exp(a) for a <= 0, -inf or NaN: Cody-Waite reduction and a degree-6
// polynomial (relative error below 2e-7), built branch-free with no
// float-to-int conversion so that NaN propagates and compilers vectorise it.
// Results under FLT_MIN flush to 0: a window's max always has weight 1, so a
// weight below 1e-38 changes nothing.
POOLSWAP_HD float exp_nonpositive(float a) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693359375f;
  const float ln2_lo = -2.12194440e-4f;
  const float lowest = -87.3f;
  const float c = a < lowest ? lowest : a;  // NaN stays NaN
  const float shifter = 12582912.0f;         // 1.5 * 2^23: rounds to an integer
  const float z = c * log2e + shifter;
  const float n = z - shifter;
  const float r = (c - n * ln2_hi) - n * ln2_lo;
  float p = 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
#if defined(__CUDA_ARCH__)
  const uint32_t zi = __float_as_uint(z);
#else
  uint32_t zi;
  std::memcpy(&zi, &z, sizeof(zi));
#endif
  const uint32_t scale_bits = (zi - 0x4B400000u + 127u) << 23;  // 2^n (z's low mantissa bits hold n)
#if defined(__CUDA_ARCH__)
  const float scale = __uint_as_float(scale_bits);
#else
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
#endif
  const float v = p * scale;
  return a < lowest ? 0.0f : v;
}

POOLSWAP_HD double exp_nonpositive(double a) { return exp(a); }

// Online accumulation of one window: running max m, s = sum exp(beta (x - m)),
// t = sum exp(beta (x - m)) (x - m). The output is m + t / s.
template <typename acc_t>
struct WindowAccumulator {
  acc_t m;
  acc_t s;
  acc_t t;

  POOLSWAP_HD WindowAccumulator() : m(-std::numeric_limits<acc_t>::infinity()), s(0), t(0) {}

  POOLSWAP_HD void push(acc_t x, acc_t beta) {
    const acc_t d = (x == m) ? acc_t(0) : x - m;  // equal infinities differ by 0
    const acc_t e = exp_nonpositive(-beta * (d > 0 ? d : -d));
    if (d > 0) {  // a new max: rescale what was accumulated
      t = (e == acc_t(0)) ? acc_t(0) : e * (t - s * d);
      s = e * s + acc_t(1);
      m = x;
    } else {  // e == 0 marks -inf (or a negligible weight): it adds nothing, not 0 * inf
      s += e;
      t += (e == acc_t(0)) ? acc_t(0) : e * d;
    }
  }

  POOLSWAP_HD acc_t value() const { return m + t / s; }

  // Normalised weight w of x in the finished window.
  POOLSWAP_HD acc_t weight(acc_t x, acc_t beta) const {
    const acc_t d = (x == m) ? acc_t(0) : x - m;
    return exp_nonpositive(beta * d) / s;
  }
};

// Gradient contribution of one window element: adds dy/dx * grad to *grad_x
// and w (x - y)^2 * grad (the beta gradient) to *grad_beta.
template <typename acc_t>
POOLSWAP_HD void window_element_grad(const WindowAccumulator<acc_t>& acc, acc_t x, acc_t y, acc_t beta,
                                     acc_t grad, acc_t* grad_x, acc_t* grad_beta) {
  const acc_t w = acc.weight(x, beta);
  if (w != acc_t(0)) {  // absent and -inf positions get exactly 0
    const acc_t dy = (x == y) ? acc_t(0) : x - y;
    *grad_x += grad * w * (acc_t(1) + beta * dy);
    *grad_beta += grad * w * dy * dy;
  }
}

// One window, scalar: the accumulator after every valid position was pushed.
template <typename scalar_t, typename acc_t>
POOLSWAP_HD WindowAccumulator<acc_t> accumulate_window(const scalar_t* x, const int64_t* x_stride, const Geometry& g,
                                                   const WindowRange& rd, const WindowRange& rh, const WindowRange& rw,
                                                   acc_t beta) {
  WindowAccumulator<acc_t> acc;
  for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
    const scalar_t* xd = x + (rd.start + kd * g.dilation[0]) * x_stride[0];
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const scalar_t* xh = xd + (rh.start + kh * g.dilation[1]) * x_stride[1];
      for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
        acc.push(static_cast<acc_t>(xh[(rw.start + kw * g.dilation[2]) * x_stride[2]]), beta);
      }
    }
  }
  return acc;
}

// The CPU plane loops (vector lanes, padded planes) are in softpool_cpu.h.


}  // namespace poolswap
