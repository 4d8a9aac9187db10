// SoftPool window math shared by every front-end of poolswap.
//
// The PyTorch CPU op, the PyTorch CUDA op and the ONNX Runtime custom-op
// kernels all include this header, so they keep one definition of the
// contract in shared/design/softpool.md:
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

#if !defined(__CUDACC__) && !defined(__HIPCC__)

// ---------------------------------------------------------------------------
// CPU: one (n, c) plane at a time. Strides are in elements, for (D, H, W).
// ---------------------------------------------------------------------------

// ---- float lanes: 8 adjacent outputs per vector, the arithmetic of
// WindowAccumulator::push with selects instead of branches -----------------
#if (defined(__GNUC__) || defined(__clang__)) && !defined(POOLSWAP_NO_LANES)
#define POOLSWAP_HAS_LANES 1
typedef float lanes_f __attribute__((vector_size(32)));
typedef int32_t lanes_i __attribute__((vector_size(32)));
constexpr int kWidth = 8;

inline lanes_f splat(float v) { return lanes_f{} + v; }

inline lanes_f exp_nonpositive(lanes_f a) {  // the scalar exp_nonpositive, lane-wise
  const lanes_f lowest = splat(-87.3f);
  const lanes_f c = a < lowest ? lowest : a;
  const lanes_f shifter = splat(12582912.0f);
  const lanes_f z = c * 1.44269504088896341f + shifter;
  const lanes_f n = z - shifter;
  const lanes_f r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  lanes_f p = splat(1.3981999507e-3f);
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const lanes_i scale_bits = (reinterpret_cast<const lanes_i&>(z) - 0x4B400000 + 127) << 23;
  const lanes_f v = p * reinterpret_cast<const lanes_f&>(scale_bits);
  return a < lowest ? splat(0.0f) : v;
}

inline void push_lanes(lanes_f x, lanes_f beta, lanes_f& m, lanes_f& s, lanes_f& t) {
  const lanes_f zero = splat(0.0f);
  const lanes_f d = x == m ? zero : x - m;
  const lanes_i new_max = d > zero;
  const lanes_f e = exp_nonpositive(-beta * (new_max ? d : -d));
  const lanes_i vanished = e == zero;
  const lanes_f t_max = vanished ? zero : e * (t - s * d);
  const lanes_f t_keep = t + (vanished ? zero : e * d);
  s = new_max ? e * s + 1.0f : s + e;
  t = new_max ? t_max : t_keep;
  m = new_max ? x : m;
}

template <typename scalar_t>
inline lanes_f load_lanes(const scalar_t* base, int64_t step) {
  lanes_f v;
  for (int j = 0; j < kWidth; ++j) v[j] = static_cast<float>(base[j * step]);
  return v;
}

inline lanes_f load_lanes_unit(const float* base) {
  lanes_f v;
  std::memcpy(&v, base, sizeof(v));
  return v;
}

inline lanes_f load_lanes_even(const float* base) {  // base[0], base[2], ..., base[14]
  lanes_f lo, hi;
  std::memcpy(&lo, base, sizeof(lo));
  std::memcpy(&hi, base + kWidth, sizeof(hi));
  return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
}

// Loads kWidth inputs spaced `step` apart; kStride = 1 or 2 with unit input
// stride uses vector loads (the caller guarantees they stay inside the row).
template <int kStride, typename scalar_t>
inline lanes_f load_window_lanes(const scalar_t* base, int64_t step) {
  if constexpr (std::is_same<scalar_t, float>::value && kStride == 1) return load_lanes_unit(base);
  if constexpr (std::is_same<scalar_t, float>::value && kStride == 2) return load_lanes_even(base);
  return load_lanes(base, step);
}

// 2 * kWidth adjacent outputs of one row whose windows lie inside the input along W.
constexpr int kLanes = 2 * kWidth;

template <int kStride, typename scalar_t>
inline void forward_lanes(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const WindowRange& rd,
                          const WindowRange& rh, int64_t ow0, float beta, float* out) {
  lanes_f m0 = splat(-std::numeric_limits<float>::infinity()), m1 = m0;
  lanes_f s0 = splat(0.0f), s1 = s0, t0 = s0, t1 = s0;
  const lanes_f b = splat(beta);
  const int64_t step = g.stride[2] * x_stride[2];
  const int64_t first = ow0 * g.stride[2] - g.pad[2];
  for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const scalar_t* row = x + (rd.start + kd * g.dilation[0]) * x_stride[0] +
                            (rh.start + kh * g.dilation[1]) * x_stride[1] + first * x_stride[2];
      for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
        const scalar_t* base = row + kw * g.dilation[2] * x_stride[2];
        push_lanes(load_window_lanes<kStride>(base, step), b, m0, s0, t0);
        push_lanes(load_window_lanes<kStride>(base + kWidth * step, step), b, m1, s1, t1);
      }
    }
  }
  const lanes_f y0 = m0 + t0 / s0, y1 = m1 + t1 / s1;
  std::memcpy(out, &y0, sizeof(y0));
  std::memcpy(out + kWidth, &y1, sizeof(y1));
}

// Backward of 2 * kWidth adjacent interior outputs, in three passes over the
// window: its max, its weights (stored: each exp is computed once), then every
// element's gradient, added in a fixed order. grad_x is the plane's
// contiguous (D, H, W) float buffer. Windows of more than kMaxTaps positions
// recompute the weights instead of storing them.
constexpr int kMaxTaps = 64;

template <int kStride, typename scalar_t>
inline void backward_lanes(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const WindowRange& rd,
                           const WindowRange& rh, int64_t ow0, float beta, const float* grad, float* grad_x,
                           lanes_f& grad_beta) {
  const lanes_f b = splat(beta);
  const lanes_f zero = splat(0.0f);
  const int64_t step = g.stride[2] * x_stride[2];
  const int64_t first = ow0 * g.stride[2] - g.pad[2];
  const int64_t taps = (rd.hi - rd.lo) * (rh.hi - rh.lo) * g.kernel[2];
  const bool store = taps <= kMaxTaps;
  lanes_f weights[2][kMaxTaps];
  // A visitor over the window's positions in a fixed order: tap index, input row, column offset.
  auto for_each_tap = [&](auto&& visit) {
    int tap = 0;
    for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
      const int64_t id = rd.start + kd * g.dilation[0];
      for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
        const int64_t ih = rh.start + kh * g.dilation[1];
        const scalar_t* row = x + id * x_stride[0] + ih * x_stride[1] + first * x_stride[2];
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw, ++tap) visit(tap, id, ih, row, kw * g.dilation[2]);
      }
    }
  };
  // 1. the window max (NaN is caught by the sums below, as in the forward)
  lanes_f m[2] = {splat(-std::numeric_limits<float>::infinity()), splat(-std::numeric_limits<float>::infinity())};
  for_each_tap([&](int, int64_t, int64_t, const scalar_t* row, int64_t offset) {
    for (int v = 0; v < 2; ++v) {
      const lanes_f xv = load_window_lanes<kStride>(row + offset * x_stride[2] + v * kWidth * step, step);
      m[v] = xv > m[v] ? xv : m[v];
    }
  });
  // 2. exp(beta (x - m)), their sum s and t = sum e (x - m): y = m + t / s
  lanes_f s[2] = {zero, zero}, t[2] = {zero, zero};
  for_each_tap([&](int tap, int64_t, int64_t, const scalar_t* row, int64_t offset) {
    for (int v = 0; v < 2; ++v) {
      const lanes_f xv = load_window_lanes<kStride>(row + offset * x_stride[2] + v * kWidth * step, step);
      const lanes_f d = xv == m[v] ? zero : xv - m[v];
      const lanes_f e = exp_nonpositive(b * d);
      s[v] += e;
      t[v] += e == zero ? zero : e * d;
      if (store) weights[v][tap] = e;
    }
  });
  lanes_f y[2], inv_s[2], go[2];
  for (int v = 0; v < 2; ++v) {
    y[v] = m[v] + t[v] / s[v];
    inv_s[v] = 1.0f / s[v];
    std::memcpy(&go[v], grad + v * kWidth, sizeof(go[v]));
  }
  // 3. dy/dx = w (1 + beta (x - y)), dy/dbeta = w (x - y)^2
  for_each_tap([&](int tap, int64_t id, int64_t ih, const scalar_t* row, int64_t offset) {
    float* grow = grad_x + (id * g.in[1] + ih) * g.in[2] + first + offset;
    for (int v = 0; v < 2; ++v) {
      const lanes_f xv = load_window_lanes<kStride>(row + offset * x_stride[2] + v * kWidth * step, step);
      const lanes_f e = store ? weights[v][tap] : exp_nonpositive(b * (xv == m[v] ? zero : xv - m[v]));
      const lanes_f w = e * inv_s[v];
      const lanes_i live = w != zero;
      const lanes_f dy = xv == y[v] ? zero : xv - y[v];
      const lanes_f gw = go[v] * w;
      const lanes_f dx = live ? gw * (1.0f + b * dy) : zero;
      grad_beta += live ? gw * dy * dy : zero;
      float* target = grow + v * kWidth * g.stride[2];
      for (int j = 0; j < kWidth; ++j) target[j * g.stride[2]] += dx[j];
    }
  });
}
// Which outputs of a row take the vector path, and with which loads.
struct LanePlan {
  int64_t begin = 0;     // outputs [begin, end) of a row have windows fully inside the input along W
  int64_t end = 0;
  bool unit_w = false;   // the input is contiguous along W
  int64_t even_end = 0;  // the stride-2 vector load reads one element past a window: blocks below this stay in the row

  // The W stride of the vector loads for the block starting at `ow` (1 or 2), or 0 for element-wise loads.
  int load_stride(const Geometry& g, int64_t ow) const {
    if (unit_w && g.stride[2] == 1) return 1;
    if (unit_w && g.stride[2] == 2 && ow < even_end) return 2;
    return 0;
  }
};

inline LanePlan plan_lanes(const Geometry& g, const int64_t* x_stride) {
  LanePlan plan;
  const int64_t extent = g.dilation[2] * (g.kernel[2] - 1);
  plan.begin = (g.pad[2] + g.stride[2] - 1) / g.stride[2];
  const int64_t last = g.in[2] - 1 - extent + g.pad[2];  // start <= in - 1 - extent
  plan.end = last < 0 ? 0 : last / g.stride[2] + 1;
  if (plan.end > g.out[2]) plan.end = g.out[2];
  if (plan.end < plan.begin) plan.end = plan.begin;
  plan.unit_w = x_stride[2] == 1;
  plan.even_end = (g.in[2] - 2 - extent + g.pad[2]) / 2 + 1 - (kLanes - 1);
  return plan;
}

// Calls f(std::integral_constant<int, S>) with S the block's load stride: vector loads are compile-time.
template <typename F>
inline void with_load_stride(int stride, F&& f) {
  if (stride == 1) {
    f(std::integral_constant<int, 1>{});
  } else if (stride == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

#endif  // lanes

template <typename scalar_t, typename acc_t>
void forward_plane(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                   const Geometry& g, acc_t beta) {
#if defined(POOLSWAP_HAS_LANES)
  constexpr bool use_lanes = std::is_same<acc_t, float>::value;
  const LanePlan plan = use_lanes ? plan_lanes(g, x_stride) : LanePlan{};
  float lanes[kLanes];
#endif
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      const WindowRange rh = window_range(g, 1, oh);
      scalar_t* yrow = y + od * y_stride[0] + oh * y_stride[1];
      int64_t ow = 0;
#if defined(POOLSWAP_HAS_LANES)
      for (; ow < plan.begin; ++ow) {
        yrow[ow * y_stride[2]] =
            static_cast<scalar_t>(accumulate_window(x, x_stride, g, rd, rh, window_range(g, 2, ow), beta).value());
      }
      for (; ow + kLanes <= plan.end; ow += kLanes) {
        with_load_stride(plan.load_stride(g, ow), [&](auto stride) {
          forward_lanes<decltype(stride)::value>(x, x_stride, g, rd, rh, ow, static_cast<float>(beta), lanes);
        });
        for (int j = 0; j < kLanes; ++j) yrow[(ow + j) * y_stride[2]] = static_cast<scalar_t>(lanes[j]);
      }
#endif
      for (; ow < g.out[2]; ++ow) {
        yrow[ow * y_stride[2]] =
            static_cast<scalar_t>(accumulate_window(x, x_stride, g, rd, rh, window_range(g, 2, ow), beta).value());
      }
    }
  }
}

// Backward of one plane: grad_x is a zeroed, contiguous (D, H, W) buffer in
// acc_t; windows are visited in a fixed order, so the result is bitwise
// deterministic. Returns this plane's share of dL/dbeta.
template <typename scalar_t, typename acc_t>
inline void backward_window(const scalar_t* grad_y_at, const scalar_t* x, const int64_t* x_stride, acc_t* grad_x,
                            const Geometry& g, const WindowRange& rd, const WindowRange& rh, const WindowRange& rw,
                            acc_t beta, acc_t& grad_beta) {
  const WindowAccumulator<acc_t> acc = accumulate_window(x, x_stride, g, rd, rh, rw, beta);
  const acc_t y = acc.value();
  const acc_t go = static_cast<acc_t>(*grad_y_at);
  for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
    const int64_t id = rd.start + kd * g.dilation[0];
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const int64_t ih = rh.start + kh * g.dilation[1];
      const scalar_t* xh = x + id * x_stride[0] + ih * x_stride[1];
      acc_t* gxh = grad_x + (id * g.in[1] + ih) * g.in[2];
      for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
        const int64_t iw = rw.start + kw * g.dilation[2];
        window_element_grad(acc, static_cast<acc_t>(xh[iw * x_stride[2]]), y, beta, go, gxh + iw, &grad_beta);
      }
    }
  }
}

template <typename scalar_t, typename acc_t>
double backward_plane(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                      acc_t* grad_x, const Geometry& g, acc_t beta) {
  double grad_beta = 0.0;
#if defined(POOLSWAP_HAS_LANES)
  constexpr bool use_lanes = std::is_same<acc_t, float>::value;
  const LanePlan plan = use_lanes ? plan_lanes(g, x_stride) : LanePlan{};
  float grads[kLanes];
#endif
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      const WindowRange rh = window_range(g, 1, oh);
      const scalar_t* gyrow = grad_y + od * gy_stride[0] + oh * gy_stride[1];
      acc_t row_beta = 0;
      int64_t ow = 0;
#if defined(POOLSWAP_HAS_LANES)
      for (; ow < plan.begin; ++ow) {
        backward_window(gyrow + ow * gy_stride[2], x, x_stride, grad_x, g, rd, rh, window_range(g, 2, ow), beta,
                        row_beta);
      }
      if constexpr (use_lanes) {
        lanes_f lane_beta = splat(0.0f);
        for (; ow + kLanes <= plan.end; ow += kLanes) {
          for (int j = 0; j < kLanes; ++j) grads[j] = static_cast<float>(gyrow[(ow + j) * gy_stride[2]]);
          float* gx = reinterpret_cast<float*>(grad_x);
          with_load_stride(plan.load_stride(g, ow), [&](auto stride) {
            backward_lanes<decltype(stride)::value>(x, x_stride, g, rd, rh, ow, beta, grads, gx, lane_beta);
          });
        }
        for (int j = 0; j < kWidth; ++j) row_beta += lane_beta[j];
      }
#endif
      for (; ow < g.out[2]; ++ow) {
        backward_window(gyrow + ow * gy_stride[2], x, x_stride, grad_x, g, rd, rh, window_range(g, 2, ow), beta,
                        row_beta);
      }
      grad_beta += static_cast<double>(row_beta);
    }
  }
  return grad_beta;
}

#endif  // CPU

}  // namespace poolswap
