// SoftPool on the CPU: the plane loops shared by the PyTorch CPU op and the
// ONNX Runtime CPU kernel, built on the window math of softpool_kernel.h.
//
// One (n, c) plane at a time; strides are in elements, for (D, H, W). Each path
// keeps the contract (the special values included) and differs from the others
// only by float rounding:
//
// - Separable strips (kernel 1 along D, stride 1 or 2 along W): a strip of
//   output rows shares one shift, e and e x are computed once per input and
//   summed along each window's row, then down its rows. The forward of wide
//   rows, and the backward where beta takes no gradient (the same sums run
//   from outputs back to inputs). Channels-last images take the same strips
//   with eight channels per vector.
// - Shared-exponent tiles (stride 1 and 2, forward and backward): 4 output
//   rows by 16 outputs share one shift, so each input's exponential is
//   computed once; tiles whose range is too wide for one shift fall back to
//   per-window shifts.
//   In the forward, planes whose rows fill less than half a tile share one
//   padded buffer side by side (forward_planes), so a tile covers several.
// - Interleaved planes (rows shorter than a vector block, forward): eight
//   planes side by side, one per lane.
// - Padded planes (stride 1, and short rows at any stride): the plane is copied
//   into a float buffer whose padding holds -inf, and 16 consecutive positions
//   of the buffer's flattened (H, W) grid form one vector block. Lanes that
//   land on padding columns are computed and thrown away. The tiles read the
//   same buffer.
// - Row blocks (long rows at stride 2 and more): 16 adjacent outputs of a row
//   whose windows lie inside the input; the last block of a row is moved back
//   to end at the last such output, so that only true border windows are left.
// - Scalar windows: the borders of row blocks, double precision, and compilers
//   without vector extensions.
//
// A -inf from the padding is exactly as absent as a skipped position (its
// weight is 0 and it adds 0), except in a window whose valid inputs are all
// -inf: such blocks are detected in the backward and redone window by window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>  // a no-op inside softpool_cpu_isa.inc, which includes it first, outside any namespace
#endif

#include "softpool_kernel.h"

namespace poolswap {

// Backward of one window, scalar: adds each element's dy/dx * grad to grad_x
// (the plane's contiguous (D, H, W) buffer) and the beta gradient to grad_beta.
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
inline acc_t window_value(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const WindowRange& rd,
                          const WindowRange& rh, int64_t ow, acc_t beta) {
  return accumulate_window(x, x_stride, g, rd, rh, window_range(g, 2, ow), beta).value();
}

#if (defined(__GNUC__) || defined(__clang__)) && !defined(POOLSWAP_NO_LANES)
#define POOLSWAP_HAS_LANES 1

// ---- float lanes: 8 outputs per vector, the window math with selects
// instead of branches -------------------------------------------------------
typedef float lanes_f __attribute__((vector_size(32)));
typedef int32_t lanes_i __attribute__((vector_size(32)));
typedef uint32_t lanes_u __attribute__((vector_size(32)));  // bit arithmetic that wraps (NaN, garbage lanes)
constexpr int kWidth = 8;
constexpr int kLanes = 2 * kWidth;  // outputs per block: two vectors

inline lanes_f splat(float v) { return lanes_f{} + v; }

// The same 32 bytes as another vector type.
template <typename To, typename From>
inline To same_bits(const From& v) {
  static_assert(sizeof(To) == sizeof(From), "one size");
  To out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}

inline bool any_lane(lanes_i v) {
  for (int j = 0; j < kWidth; ++j)
    if (v[j]) return true;
  return false;
}

#if defined(__AVX2__)
// 2^(i / 16) for i in [0, 16), rounded to float: the table of the vector exp below.
alignas(32) constexpr float kExp2Sixteenths[16] = {
    1.000000000e+00f, 1.044273734e+00f, 1.090507746e+00f, 1.138788581e+00f, 1.189207077e+00f, 1.241857767e+00f,
    1.296839595e+00f, 1.354255557e+00f, 1.414213538e+00f, 1.476826191e+00f, 1.542210817e+00f, 1.610490322e+00f,
    1.681792855e+00f, 1.756252170e+00f, 1.834008098e+00f, 1.915206552e+00f};

// kExp2Sixteenths[i & 15], lane-wise.
inline lanes_f exp2_sixteenths(lanes_i i) {
  const __m256 lo = _mm256_load_ps(kExp2Sixteenths), hi = _mm256_load_ps(kExp2Sixteenths + 8);
#if defined(__AVX512VL__)
  return reinterpret_cast<lanes_f>(_mm256_permutex2var_ps(lo, reinterpret_cast<__m256i>(i), hi));
#else
  const lanes_f from_lo = reinterpret_cast<lanes_f>(_mm256_permutevar8x32_ps(lo, reinterpret_cast<__m256i>(i)));
  const lanes_f from_hi = reinterpret_cast<lanes_f>(_mm256_permutevar8x32_ps(hi, reinterpret_cast<__m256i>(i)));
  return (i & 8) != 0 ? from_hi : from_lo;
#endif
}
#endif

// exp(a) for a <= 0, -inf or NaN, lane-wise: the scalar exp_nonpositive's contract (relative error
// below 2e-7, NaN propagates, results under FLT_MIN flush to 0). With AVX2 it costs six multiply-adds
// instead of ten: a = (16 k + i) ln2 / 16 + r, |r| <= ln2 / 32, and exp(a) = 2^k 2^(i / 16) e^r with
// 2^(i / 16) from a table and e^r from its degree-3 Taylor polynomial (truncation error r^4 / 24 < 1e-8).
constexpr float kExpLowest = -87.3f;  // exp_nonpositive(a) is 0 for every a below this

inline lanes_f exp_nonpositive(lanes_f a) {
  const lanes_f lowest = splat(kExpLowest);
  const lanes_i below = a < lowest;
  const lanes_f c = below ? lowest : a;
  const lanes_f shifter = splat(12582912.0f);  // 1.5 * 2^23: z's low mantissa bits hold n = round(c * scale)
#if defined(__AVX2__)
  const lanes_f z = c * 23.0831206542f + shifter;  // 16 / ln 2
  const lanes_f n = z - shifter;
  const lanes_f r = (c - n * (0.693359375f / 16)) - n * (-2.12194440e-4f / 16);
  const lanes_f p = ((r * (1.0f / 6) + 0.5f) * r + 1.0f) * r + 1.0f;
  const lanes_i ni = same_bits<lanes_i>(same_bits<lanes_u>(z) - 0x4B400000u);  // n, as z's low bits hold it
  // 2^(i / 16) 2^k by adding k to the table value's exponent: k >= -126 as c >= lowest, so it stays normal
  // (unsigned: a NaN's bits wrap instead of overflowing)
  const lanes_f t = exp2_sixteenths(ni);
  const lanes_u scaled = same_bits<lanes_u>(t) + (same_bits<lanes_u>(ni >> 4) << 23);
  const lanes_f v = p * same_bits<lanes_f>(scaled);
#else
  const lanes_f z = c * 1.44269504088896341f + shifter;
  const lanes_f n = z - shifter;
  const lanes_f r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  lanes_f p = splat(1.3981999507e-3f);
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const lanes_u scale_bits = (same_bits<lanes_u>(z) - 0x4B400000u + 127u) << 23;
  const lanes_f v = p * same_bits<lanes_f>(scale_bits);
#endif
  return below ? splat(0.0f) : v;
}

// min(a, b) lane-wise, b where either is NaN (so a NaN in b survives).
inline lanes_f min_keeping_nan(lanes_f a, lanes_f b) {
#if defined(__AVX__)
  return reinterpret_cast<lanes_f>(_mm256_min_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b)));
#else
  return a < b ? a : b;
#endif
}

// The trust test of every shared shift (tiles, strips, interleaved planes): a window whose sum of
// weights falls below this (2^-60) is redone with its own shift.
constexpr float kTileSmallestSum = 8.67361738e-19f;

// Lanes whose value is finite (not NaN, not +-inf).
inline lanes_i finite_lanes(lanes_f v) { return (v < splat(0.0f) ? -v : v) <= splat(std::numeric_limits<float>::max()); }

// The trust test of a shared shift as two running values over the windows it served: the least sum of
// weights, and 0 * y summed (NaN as soon as one y, or another value checked, is NaN or infinite).
struct ShiftTrust {
  lanes_f least = splat(1.0f), probe = splat(0.0f);
  void add(lanes_f sum, lanes_f y) {
    least = min_keeping_nan(least, sum);
    probe += y * splat(0.0f);
  }
  void add_finite(lanes_f v) { probe += v * splat(0.0f); }
  // The lanes where some window needs its own shift (NaN fails every comparison).
  lanes_i failed() const { return ~((least >= splat(kTileSmallestSum)) & (probe == splat(0.0f))); }
};

// How a block reads its inputs (and, in the backward, adds to grad_x, always a
// contiguous float buffer): kGather element by element at any stride;
// kUnit stride 1, one vector load; kEven stride 2, reading base[0, 16);
// kOdd stride 2, reading base[-1, 15), for blocks at the end of a row where
// kEven would read one element past it.
enum LoadMode : int { kGather = 0, kUnit = 1, kEven = 2, kOdd = 3 };

template <typename scalar_t>
inline lanes_f load_lanes(const scalar_t* base, int64_t step) {
  lanes_f v;
  for (int j = 0; j < kWidth; ++j) v[j] = static_cast<float>(base[j * step]);
  return v;
}

inline void load_pair(const float* base, lanes_f& lo, lanes_f& hi) {
  std::memcpy(&lo, base, sizeof(lo));
  std::memcpy(&hi, base + kWidth, sizeof(hi));
}

// kWidth inputs spaced `step` apart; vector loads where the input is float and
// contiguous along W (kUnitX).
template <int kMode, bool kUnitX, typename scalar_t>
inline lanes_f load_window_lanes(const scalar_t* base, int64_t step) {
  if constexpr (std::is_same<scalar_t, float>::value && kUnitX && kMode == kUnit) {
    lanes_f v;
    std::memcpy(&v, base, sizeof(v));
    return v;
  } else if constexpr (std::is_same<scalar_t, float>::value && kUnitX && kMode == kEven) {
    lanes_f lo, hi;
    load_pair(base, lo, hi);
    return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
  } else if constexpr (std::is_same<scalar_t, float>::value && kUnitX && kMode == kOdd) {
    lanes_f lo, hi;
    load_pair(base - 1, lo, hi);
    return __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
  } else {
    return load_lanes(base, step);
  }
}

// target[j * stride] += dx[j]: vector read-modify-writes at stride 1 and 2
// (the same positions the loads read, so they stay inside the buffer).
template <int kMode>
inline void add_lanes(float* target, lanes_f dx, int64_t stride) {
  if constexpr (kMode == kUnit) {
    lanes_f t;
    std::memcpy(&t, target, sizeof(t));
    t += dx;
    std::memcpy(target, &t, sizeof(t));
  } else if constexpr (kMode == kEven || kMode == kOdd) {
    float* base = kMode == kEven ? target : target - 1;
    const lanes_i even = {-1, 0, -1, 0, -1, 0, -1, 0};
    const lanes_i mine = kMode == kEven ? even : ~even;
    lanes_f lo, hi;
    load_pair(base, lo, hi);
    lo = mine ? lo + __builtin_shufflevector(dx, dx, 0, 0, 1, 1, 2, 2, 3, 3) : lo;
    hi = mine ? hi + __builtin_shufflevector(dx, dx, 4, 4, 5, 5, 6, 6, 7, 7) : hi;
    std::memcpy(base, &lo, sizeof(lo));
    std::memcpy(base + kWidth, &hi, sizeof(hi));
  } else {
    for (int j = 0; j < kWidth; ++j) target[j * stride] += dx[j];
  }
}

// Calls f(std::integral_constant<int, M>{}) with M the block's load mode: the loads are compile-time.
template <typename F>
inline void with_mode(int mode, F&& f) {
  switch (mode) {
    case kUnit: return f(std::integral_constant<int, kUnit>{});
    case kEven: return f(std::integral_constant<int, kEven>{});
    case kOdd: return f(std::integral_constant<int, kOdd>{});
    default: return f(std::integral_constant<int, kGather>{});
  }
}

// The kLanes outputs ow0 + j of one row (row `rh` of slice `rd`), every window
// inside the input along W, in two passes: the window max, then
// s = sum exp(beta (x - m)) and t = sum exp(beta (x - m)) (x - m), y = m + t / s.
// The same arithmetic as passes 1 and 2 of backward_lanes, with no rescaling.
template <int kMode, bool kUnitX, typename scalar_t>
inline void forward_lanes(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const WindowRange& rd,
                          const WindowRange& rh, int64_t ow0, float beta, float* out) {
  const lanes_f zero = splat(0.0f);
  const lanes_f b = splat(beta);
  const int64_t step = g.stride[2] * x_stride[2];
  const int64_t first = ow0 * g.stride[2] - g.pad[2];
  auto for_each_tap = [&](auto&& visit) {
    for (int64_t kd = rd.lo; kd < rd.hi; ++kd)
      for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
        const scalar_t* row = x + (rd.start + kd * g.dilation[0]) * x_stride[0] +
                              (rh.start + kh * g.dilation[1]) * x_stride[1] + first * x_stride[2];
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
          const scalar_t* base = row + kw * g.dilation[2] * x_stride[2];
          visit(load_window_lanes<kMode, kUnitX>(base, step), load_window_lanes<kMode, kUnitX>(base + kWidth * step, step));
        }
      }
  };
  lanes_f m0 = splat(-std::numeric_limits<float>::infinity()), m1 = m0;
  for_each_tap([&](lanes_f x0, lanes_f x1) {  // NaN never wins the max: the sums below catch it
    m0 = x0 > m0 ? x0 : m0;
    m1 = x1 > m1 ? x1 : m1;
  });
  lanes_f s0 = zero, s1 = zero, t0 = zero, t1 = zero;
  auto add = [&](lanes_f xv, lanes_f m, lanes_f& s, lanes_f& t) {
    const lanes_f d = xv == m ? zero : xv - m;  // equal infinities differ by 0
    const lanes_f e = exp_nonpositive(b * d);
    s += e;
    t += e == zero ? zero : e * d;  // e == 0 marks -inf: it adds nothing, not 0 * inf
  };
  for_each_tap([&](lanes_f x0, lanes_f x1) {
    add(x0, m0, s0, t0);
    add(x1, m1, s1, t1);
  });
  const lanes_f y0 = m0 + t0 / s0, y1 = m1 + t1 / s1;
  std::memcpy(out, &y0, sizeof(y0));
  std::memcpy(out + kWidth, &y1, sizeof(y1));
}

// Backward of the kLanes outputs ow0 + j whose `active` lanes are set, in three
// passes over the window: its max, its weights (stored: each exp is computed
// once), then every element's gradient, added to grad_x (the contiguous float
// buffer of the plane described by g) in a fixed order. Windows of more than
// kMaxTaps positions recompute the weights instead of storing them. Returns
// false, having changed nothing, when an active window's max is -inf: padding
// would then take a share of the weight, so the caller redoes those windows.
constexpr int kMaxTaps = 64;

template <int kMode, bool kUnitX, typename scalar_t>
inline bool backward_lanes(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const WindowRange& rd,
                           const WindowRange& rh, int64_t ow0, float beta, const float* grad, const lanes_i* active,
                           float* grad_x, lanes_f& grad_beta) {
  const lanes_f b = splat(beta);
  const lanes_f zero = splat(0.0f);
  const lanes_f minus_inf = splat(-std::numeric_limits<float>::infinity());
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
  lanes_f m[2] = {minus_inf, minus_inf};
  for_each_tap([&](int, int64_t, int64_t, const scalar_t* row, int64_t offset) {
    for (int v = 0; v < 2; ++v) {
      const lanes_f xv = load_window_lanes<kMode, kUnitX>(row + offset * x_stride[2] + v * kWidth * step, step);
      m[v] = xv > m[v] ? xv : m[v];
    }
  });
  if (any_lane(active[0] & (m[0] == minus_inf)) || any_lane(active[1] & (m[1] == minus_inf))) return false;
  // 2. exp(beta (x - m)), their sum s and t = sum e (x - m): y = m + t / s
  lanes_f s[2] = {zero, zero}, t[2] = {zero, zero};
  for_each_tap([&](int tap, int64_t, int64_t, const scalar_t* row, int64_t offset) {
    for (int v = 0; v < 2; ++v) {
      const lanes_f xv = load_window_lanes<kMode, kUnitX>(row + offset * x_stride[2] + v * kWidth * step, step);
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
      const lanes_f xv = load_window_lanes<kMode, kUnitX>(row + offset * x_stride[2] + v * kWidth * step, step);
      const lanes_f e = store ? weights[v][tap] : exp_nonpositive(b * (xv == m[v] ? zero : xv - m[v]));
      const lanes_f w = e * inv_s[v];
      const lanes_i live = active[v] & (w != zero);
      const lanes_f dy = xv == y[v] ? zero : xv - y[v];
      const lanes_f gw = go[v] * w;
      const lanes_f dx = live ? gw * (1.0f + b * dy) : zero;
      grad_beta += live ? gw * dy * dy : zero;
      add_lanes<kMode>(grow + v * kWidth * g.stride[2], dx, g.stride[2]);
    }
  });
  return true;
}

// Lanes [lo, hi) of a block set, as the two masks of backward_lanes.
inline void lane_masks(int lo, int hi, lanes_i active[2]) {
  for (int j = 0; j < kLanes; ++j) active[j / kWidth][j % kWidth] = (j >= lo && j < hi) ? -1 : 0;
}

// ---- row blocks -------------------------------------------------------------

// Which outputs of a row take vector blocks, and with which loads.
struct RowPlan {
  int64_t begin = 0;     // outputs [begin, end) of a row have windows fully inside the input along W
  int64_t end = 0;
  bool unit_w = false;   // the input is contiguous along W
  int64_t even_end = 0;  // blocks starting below this read in kEven mode without leaving the row

  // The load mode of the block starting at output `ow`.
  int mode(const Geometry& g, int64_t ow) const {
    if (g.stride[2] == 1) return kUnit;
    if (g.stride[2] != 2) return kGather;
    if (ow < even_end) return kEven;
    return ow * 2 - g.pad[2] >= 1 ? kOdd : kGather;  // kOdd reads one element before the block
  }

  // The block after the full ones: moved back to end at `end`, lanes below `overlap` already done.
  bool has_last_block(int64_t ow) const { return ow < end && end - begin >= kLanes; }
};

inline RowPlan plan_rows(const Geometry& g, const int64_t* x_stride) {
  RowPlan plan;
  const int64_t extent = g.dilation[2] * (g.kernel[2] - 1);
  // Dilated windows can leave even the first outputs of a short row in the padding: begin <= out.
  plan.begin = std::min((g.pad[2] + g.stride[2] - 1) / g.stride[2], g.out[2]);
  const int64_t last = g.in[2] - 1 - extent + g.pad[2];  // start <= in - 1 - extent
  plan.end = last < 0 ? 0 : last / g.stride[2] + 1;
  if (plan.end > g.out[2]) plan.end = g.out[2];
  if (plan.end < plan.begin) plan.end = plan.begin;
  plan.unit_w = x_stride[2] == 1;
  plan.even_end = (g.in[2] - 2 - extent + g.pad[2]) / 2 + 1 - (kLanes - 1);
  return plan;
}

// Calls f(mode, unit_x) as compile-time constants.
template <typename F>
inline void with_block_kind(int mode, bool unit_x, F&& f) {
  with_mode(mode, [&](auto m) {
    if (unit_x) {
      f(m, std::true_type{});
    } else {
      f(m, std::false_type{});
    }
  });
}

// ---- padded planes ----------------------------------------------------------

// A plane copied into a float buffer of (D, hp, wp) with -inf around it, read
// as one long row: block position j stands for output (j / wp, j % wp).
//
// Planes whose rows are too short to fill a tile's 16 lanes can share one
// buffer side by side: plane k holds columns [k plane_wp, (k + 1) plane_wp),
// each with its own -inf padding, and output column c of the buffer stands for
// output c % plane_cols of plane c / plane_cols (plane_wp = s plane_cols).
struct PaddedPlan {
  Geometry g;            // the buffer's geometry: no H/W padding, same kernel, stride and dilation
  int64_t pad_h = 0, pad_w = 0;
  int64_t hp = 0, wp = 0;  // rows, and the row pitch (planes * plane_wp)
  int64_t planes = 1, plane_wp = 0, plane_cols = 0;
  int64_t size = 0;      // floats in the buffer, with the slack that the last block reads
  int64_t stride[3];     // the buffer's strides (D, H, W)
  int mode = kGather;
};

inline bool tiles_fit(const Geometry& g);

// Padded planes serve the tiles, stride 1, and rows too short for row
// blocks (where every other lane of a stride-2 block is a padding column), where
// H and W strides agree.
inline bool plan_padded(const Geometry& g, PaddedPlan& plan, int64_t max_planes = 1) {
  const int64_t s = g.stride[2];
  if (g.out[1] > 1 && g.stride[1] != s) return false;
  if (!tiles_fit(g) && s != 1 && g.out[2] >= kLanes) return false;
  const int64_t ext_h = g.dilation[1] * (g.kernel[1] - 1) + 1;
  const int64_t ext_w = g.dilation[2] * (g.kernel[2] - 1) + 1;
  plan.pad_h = g.pad[1];
  plan.pad_w = g.pad[2];
  plan.hp = std::max(g.in[1] + plan.pad_h, (g.out[1] - 1) * g.stride[1] + ext_h);
  plan.plane_wp = std::max(g.in[2] + plan.pad_w, (g.out[2] - 1) * s + ext_w);
  plan.plane_cols = g.out[2];
  plan.planes = 1;
  if (max_planes > 1 && tiles_fit(g)) {  // pack planes whose rows leave half a tile's lanes idle
    const int64_t cols = (plan.plane_wp + s - 1) / s;
    const int64_t fit = std::min<int64_t>(max_planes, kLanes / cols);
    if (fit > 1) plan.planes = fit, plan.plane_cols = cols, plan.plane_wp = cols * s;
  }
  plan.wp = plan.planes * plan.plane_wp;
  // Huge padded extents (pads and dilations up to 2^31) take row blocks; no product below overflows.
  if (plan.hp > (int64_t(1) << 20) || plan.wp > (int64_t(1) << 20)) return false;
  const int64_t slice = plan.hp * plan.wp;
  // 4 MB of buffer per thread at most (kept for the thread's life); larger planes take row blocks.
  if (g.in[0] * slice > (int64_t(1) << 20)) return false;
  plan.g = g;
  plan.g.in[1] = plan.hp;
  plan.g.in[2] = plan.wp;
  plan.g.pad[1] = plan.g.pad[2] = 0;
  plan.stride[0] = slice;
  plan.stride[1] = plan.wp;
  plan.stride[2] = 1;
  // The last block of the last slice reads up to s * (kLanes + wp) + ext_w past the slice.
  plan.size = g.in[0] * slice + s * (kLanes + plan.wp) + ext_w + 2 * kLanes;
  plan.mode = s == 1 ? kUnit : (s == 2 ? kEven : kGather);
  return true;
}

// The blocks of one padded slice: positions [0, out_h * wp) in steps of kLanes.
inline int64_t padded_positions(const Geometry& g, const PaddedPlan& plan) { return g.out[1] * plan.wp; }

// Per-thread scratch: buffers for the input, the gradient and the interleaved planes' terms.
inline std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[4];
  return buffers[which];
}

// Copies planes x_of(0) .. x_of(count - 1) (count <= plan.planes) into the scratch buffer.
template <typename scalar_t, typename XOf>
inline float* pad_planes(int64_t count, XOf&& x_of, const int64_t* x_stride, const Geometry& g,
                         const PaddedPlan& plan) {
  std::vector<float>& buffer = scratch(0);
  buffer.assign(static_cast<size_t>(plan.size), -std::numeric_limits<float>::infinity());
  float* data = buffer.data();
  for (int64_t k = 0; k < count; ++k) {
    const scalar_t* x = x_of(k);
    for (int64_t d = 0; d < g.in[0]; ++d)
      for (int64_t h = 0; h < g.in[1]; ++h) {
        const scalar_t* src = x + d * x_stride[0] + h * x_stride[1];
        float* dst = data + d * plan.stride[0] + (h + plan.pad_h) * plan.wp + k * plan.plane_wp + plan.pad_w;
        for (int64_t w = 0; w < g.in[2]; ++w) dst[w] = static_cast<float>(src[w * x_stride[2]]);
      }
  }
  return data;
}

template <typename scalar_t>
inline float* pad_plane(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const PaddedPlan& plan) {
  return pad_planes<scalar_t>(1, [x](int64_t) { return x; }, x_stride, g, plan);
}

// Calls f(j, oh, ow) for the block lanes j in [0, kLanes) that stand for an output.
template <typename F>
inline void for_each_output_lane(const Geometry& g, const PaddedPlan& plan, int64_t j0, F&& f) {
  int64_t oh = j0 / plan.wp, ow = j0 % plan.wp;
  for (int j = 0; j < kLanes; ++j) {
    if (oh < g.out[1] && ow < g.out[2]) f(j, oh, ow);
    if (++ow == plan.wp) ow = 0, ++oh;
  }
}

// ---- interleaved planes: kWidth planes side by side, one per lane -----------
//
// Rows shorter than one block (late-stage 7x7 and 4x4 maps, small inputs) leave
// most lanes of a row block idle, and per-plane work (padding, tiles, window
// ranges) outweighs the windows themselves. There, kWidth planes are
// transposed into one buffer, x[d][h][w][lane], and every window is computed
// for all of them at once, with the two passes and selects of forward_lanes
// and a beta per lane. Only a window's valid positions are read (window_range),
// so no padding is stored; a plane's result does not depend on its neighbours.

// Planes up to this many elements are interleaved: the buffer (8 lanes) stays within L2.
constexpr int64_t kMaxInterleavedPlane = 8192;
// At most this many window positions per plane (the tap list, built once per call).
constexpr int64_t kMaxInterleavedTaps = 65536;

// Valid window positions of a plane: the product over dims of the sum over outputs of each range.
inline int64_t plane_taps(const Geometry& g) {
  int64_t taps = 1;
  for (int dim = 0; dim < 3; ++dim) {
    int64_t sum = 0;
    for (int64_t o = 0; o < g.out[dim]; ++o) {
      const WindowRange r = window_range(g, dim, o);
      sum += std::max<int64_t>(0, r.hi - r.lo);
    }
    if (sum > kMaxInterleavedTaps) return kMaxInterleavedTaps + 1;
    taps *= sum;
    if (taps > kMaxInterleavedTaps) return kMaxInterleavedTaps + 1;
  }
  return taps;
}

inline bool interleave_fits(const Geometry& g) {
  // each dim bounded before any product: no overflow whatever the pads
  return g.out[2] < kLanes && g.in[0] * g.in[1] * g.in[2] <= kMaxInterleavedPlane &&
         g.out[0] <= kMaxInterleavedPlane && g.out[1] <= kMaxInterleavedPlane &&
         g.out[0] * g.out[1] * g.out[2] <= kMaxInterleavedPlane && plane_taps(g) <= kMaxInterleavedTaps;
}

// The windows of a plane as one list: window o's valid positions are taps[first[o] .. first[o + 1]),
// each the position's index in the (D, H, W) plane; built once per call, shared by every plane.
struct TapList {
  std::vector<int32_t> taps, first;
  void build(const Geometry& g) {
    taps.clear();
    first.assign(1, 0);
    for (int64_t od = 0; od < g.out[0]; ++od) {
      const WindowRange rd = window_range(g, 0, od);
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        const WindowRange rh = window_range(g, 1, oh);
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          const WindowRange rw = window_range(g, 2, ow);
          for (int64_t kd = rd.lo; kd < rd.hi; ++kd)
            for (int64_t kh = rh.lo; kh < rh.hi; ++kh)
              for (int64_t kw = rw.lo; kw < rw.hi; ++kw)
                taps.push_back(static_cast<int32_t>(((rd.start + kd * g.dilation[0]) * g.in[1] + rh.start +
                                                     kh * g.dilation[1]) * g.in[2] + rw.start + kw * g.dilation[2]));
          first.push_back(static_cast<int32_t>(taps.size()));
        }
      }
    }
  }
};

// The shift of each interleaved plane: its max m, 0 where m is not finite (those lanes are redone, and
// no inf - inf arises).
inline lanes_f interleaved_shift(lanes_f m) { return finite_lanes(m) ? m : splat(0.0f); }

// Whether plane k is plane 0's next-but-k element (count planes side by side: channels-last channels).
template <typename T>
inline bool lanes_adjacent(T* const* planes, int count) {
  for (int lane = 1; lane < count; ++lane)
    if (planes[lane] != planes[0] + lane) return false;
  return true;
}

// Whether strides of a (D, H, W) block of `size` are those of a dense one: positions p at element p.
inline bool positions_dense(const int64_t* stride, const int64_t* size) {
  return (size[2] == 1 || stride[2] == 1) && (size[1] == 1 || stride[1] == size[2]) &&
         (size[0] == 1 || stride[0] == size[1] * size[2]);
}

// Eight vectors r[k] (8 planes' values at position k) become r[j] (plane j at the 8 positions), and back.
inline void transpose8(lanes_f r[8]) {
  lanes_f t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = __builtin_shufflevector(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[k + 1] = __builtin_shufflevector(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int k = 0; k < 8; k += 4) {
    u[k] = __builtin_shufflevector(t[k], t[k + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 1] = __builtin_shufflevector(t[k], t[k + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[k + 2] = __builtin_shufflevector(t[k + 1], t[k + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 3] = __builtin_shufflevector(t[k + 1], t[k + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[k + 4] = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// kWidth planes' values at the positions of `size` (strides `stride`, the same for every plane) into dst,
// position by position: dst[p * kWidth + lane] for the p-th position in (D, H, W) order. Float planes that
// lie side by side (channels-last: one vector per position) or are dense (8 positions per transpose) take
// vector loads.
template <typename scalar_t>
inline void interleave_lanes(const scalar_t* const* planes, const int64_t* stride, const int64_t* size, float* dst) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (lanes_adjacent(planes, kWidth)) {
      for (int64_t d = 0; d < size[0]; ++d)
        for (int64_t h = 0; h < size[1]; ++h)
          for (int64_t w = 0; w < size[2]; ++w, dst += kWidth)
            std::memcpy(dst, planes[0] + d * stride[0] + h * stride[1] + w * stride[2], sizeof(lanes_f));
      return;
    }
    if (positions_dense(stride, size)) {
      const int64_t count = size[0] * size[1] * size[2];
      int64_t p = 0;
      for (; p + kWidth <= count; p += kWidth) {
        lanes_f r[kWidth];
        for (int lane = 0; lane < kWidth; ++lane) std::memcpy(&r[lane], planes[lane] + p, sizeof(lanes_f));
        transpose8(r);
        std::memcpy(dst + p * kWidth, r, sizeof(r));
      }
      for (; p < count; ++p)
        for (int lane = 0; lane < kWidth; ++lane) dst[p * kWidth + lane] = planes[lane][p];
      return;
    }
  }
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h)
      for (int64_t w = 0; w < size[2]; ++w, dst += kWidth) {
        const int64_t at = d * stride[0] + h * stride[1] + w * stride[2];
        for (int lane = 0; lane < kWidth; ++lane) dst[lane] = static_cast<float>(planes[lane][at]);
      }
}

// The inverse of interleave_lanes for the first n lanes (planes past them are not written).
template <typename scalar_t>
inline void deinterleave_lanes(const float* src, const int64_t* size, int n, scalar_t* const* planes,
                               const int64_t* stride) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (n == kWidth && lanes_adjacent(planes, kWidth)) {
      for (int64_t d = 0; d < size[0]; ++d)
        for (int64_t h = 0; h < size[1]; ++h)
          for (int64_t w = 0; w < size[2]; ++w, src += kWidth)
            std::memcpy(planes[0] + d * stride[0] + h * stride[1] + w * stride[2], src, sizeof(lanes_f));
      return;
    }
    if (n == kWidth && positions_dense(stride, size)) {
      const int64_t count = size[0] * size[1] * size[2];
      int64_t p = 0;
      for (; p + kWidth <= count; p += kWidth) {
        lanes_f r[kWidth];
        std::memcpy(r, src + p * kWidth, sizeof(r));
        transpose8(r);
        for (int lane = 0; lane < kWidth; ++lane) std::memcpy(planes[lane] + p, &r[lane], sizeof(lanes_f));
      }
      for (; p < count; ++p)
        for (int lane = 0; lane < kWidth; ++lane) planes[lane][p] = src[p * kWidth + lane];
      return;
    }
  }
  for (int lane = 0; lane < n; ++lane) {  // plane by plane: each written in order
    const float* from = src + lane;
    for (int64_t d = 0; d < size[0]; ++d)
      for (int64_t h = 0; h < size[1]; ++h)
        for (int64_t w = 0; w < size[2]; ++w, from += kWidth)
          planes[lane][d * stride[0] + h * stride[1] + w * stride[2]] = static_cast<scalar_t>(*from);
  }
}

// A contiguous (D, H, W) float plane of `size` into dst at `stride`, converted to scalar_t.
template <typename scalar_t>
inline void store_plane(const float* src, const int64_t* size, scalar_t* dst, const int64_t* stride) {
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h)
      for (int64_t w = 0; w < size[2]; ++w) dst[d * stride[0] + h * stride[1] + w * stride[2]] = static_cast<scalar_t>(*src++);
}

// kWidth planes (planes_x[lane], the same strides) into data (interleave_lanes); returns each plane's max
// (NaN never wins: the trust tests catch it).
template <typename scalar_t>
inline lanes_f interleave_planes(const scalar_t* const* planes_x, const int64_t* x_stride, const Geometry& g,
                                 float* data) {
  interleave_lanes(planes_x, x_stride, g.in, data);
  lanes_f mv = splat(-std::numeric_limits<float>::infinity());
  const int64_t count = g.in[0] * g.in[1] * g.in[2];
  for (int64_t p = 0; p < count; ++p) {
    lanes_f v;
    std::memcpy(&v, data + p * kWidth, sizeof(v));
    mv = v > mv ? v : mv;
  }
  return mv;
}

// A thread's interleaved workspace of at least `size` floats in scratch(which) (its address may change
// between calls: the per-plane fallbacks use the same buffers).
inline float* interleaved_buffer(int which, int64_t size) {
  std::vector<float>& buffer = scratch(which);
  if (buffer.size() < static_cast<size_t>(size)) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

// TapList turned around: the windows holding input i are windows[first[i] .. first[i + 1]), in output
// order (a fixed order of summation: the backward is deterministic).
struct InputWindows {
  std::vector<int32_t> windows, first;
  void build(const TapList& list, int64_t in_size) {
    first.assign(static_cast<size_t>(in_size + 1), 0);
    for (const int32_t tap : list.taps) ++first[static_cast<size_t>(tap) + 1];
    for (int64_t i = 0; i < in_size; ++i) first[i + 1] += first[i];
    windows.resize(list.taps.size());
    std::vector<int32_t> next(first.begin(), first.end() - 1);
    const int64_t outputs = static_cast<int64_t>(list.first.size()) - 1;
    for (int64_t o = 0; o < outputs; ++o)
      for (int32_t t = list.first[o]; t < list.first[o + 1]; ++t) windows[next[list.taps[t]]++] = static_cast<int32_t>(o);
  }
};

// The interleaved planes' windows under one shift per plane (lane), the plane's max m: e = exp(beta (x - m))
// and e x once per input, then each window's sums over its taps, y = sum e x / sum e at most the window's
// max, into results (one vector per output, in output order). Returns the lanes that need per-window
// shifts: a window's weights under 2^-60, a y not finite (an input of -inf makes e x NaN), m not finite.
// Each lane's outcome depends on its own plane only.
// weights: 2 in_size kWidth floats, left holding e (then e x); sums, where given, gets each window's sum e.
inline lanes_i interleaved_shared_shift(const float* data, int64_t in_size, int64_t outputs, const int32_t* taps,
                                        const int32_t* first_tap, lanes_f b, lanes_f m, float* weights,
                                        float* results, float* sums = nullptr) {
  const lanes_f zero = splat(0.0f), minus_inf = splat(-std::numeric_limits<float>::infinity());
  const lanes_i finite = finite_lanes(m);
  const lanes_f shift = interleaved_shift(m);
  float* const e_at = weights;
  float* const t_at = e_at + in_size * kWidth;
  for (int64_t i = 0; i < in_size * kWidth; i += kWidth) {
    lanes_f v;
    std::memcpy(&v, data + i, sizeof(v));
    const lanes_f e = exp_nonpositive(b * (v - shift));
    const lanes_f t = e * v;
    std::memcpy(e_at + i, &e, sizeof(e));
    std::memcpy(t_at + i, &t, sizeof(t));
  }
  ShiftTrust trust;
  for (int64_t o = 0; o < outputs; ++o) {
    lanes_f s = zero, t = zero, xm = minus_inf;
    for (int32_t i = first_tap[o]; i < first_tap[o + 1]; ++i) {
      const int64_t at = static_cast<int64_t>(taps[i]) * kWidth;
      lanes_f e, ex, v;
      std::memcpy(&e, e_at + at, sizeof(e));
      std::memcpy(&ex, t_at + at, sizeof(ex));
      std::memcpy(&v, data + at, sizeof(v));
      s += e, t += ex;
      xm = v > xm ? v : xm;
    }
    const lanes_f y = min_keeping_nan(xm, t / s);  // rounding never lifts y above the window's max
    trust.add(s, y);
    std::memcpy(results + o * kWidth, &y, sizeof(y));
    if (sums != nullptr) std::memcpy(sums + o * kWidth, &s, sizeof(s));
  }
  return ~finite | trust.failed();
}

// Window [begin, end) of a tap list over interleaved planes under its own shift: m its max (NaN never wins:
// the sums catch it), s = sum e and t = sum e d with d = x - m (equal infinities differ by 0) and e =
// exp(beta d); each e stored at its tap's position in e_out where given.
inline void window_own_shift(const float* data, const int32_t* taps, int32_t begin, int32_t end, lanes_f b, lanes_f& m,
                             lanes_f& s, lanes_f& t, float* e_out = nullptr) {
  const lanes_f zero = splat(0.0f);
  m = splat(-std::numeric_limits<float>::infinity());
  for (int32_t i = begin; i < end; ++i) {
    lanes_f v;
    std::memcpy(&v, data + static_cast<int64_t>(taps[i]) * kWidth, sizeof(v));
    m = v > m ? v : m;
  }
  s = zero, t = zero;
  for (int32_t i = begin; i < end; ++i) {
    const int64_t at = static_cast<int64_t>(taps[i]) * kWidth;
    lanes_f v;
    std::memcpy(&v, data + at, sizeof(v));
    const lanes_f d = v == m ? zero : v - m;
    const lanes_f e = exp_nonpositive(b * d);
    s += e;
    t += e == zero ? zero : e * d;  // e == 0 marks -inf: it adds nothing, not 0 * inf
    if (e_out != nullptr) std::memcpy(e_out + at, &e, sizeof(e));
  }
}

// Whether no two windows share an input: along each dim, the stride at least the window's extent.
inline bool windows_disjoint(const Geometry& g) {
  for (int dim = 0; dim < 3; ++dim)
    if (g.stride[dim] < g.dilation[dim] * (g.kernel[dim] - 1) + 1 && g.out[dim] > 1) return false;
  return true;
}

// dL/dx of interleaved planes whose windows share no input, each window under its own shift m: dx_i =
// (g / s) e_i (1 + beta (d_i - y')), d = x - m, e = exp(beta d), s = sum e and y' = sum e d / s, into dx
// (0 where no window holds an input); per_g holds each window's upstream gradient. Returns the lanes that
// need backward_plane: a window's max or y' not finite (NaN, +inf, a window of -inf only), or g / s.
inline lanes_i disjoint_windows_dx(const float* data, int64_t in_size, int64_t outputs, const int32_t* taps,
                                   const int32_t* first_tap, lanes_f b, const float* per_g, float* dx) {
  const lanes_f zero = splat(0.0f), one = splat(1.0f);
  std::fill(dx, dx + in_size * kWidth, 0.0f);
  lanes_i bad = {};
  for (int64_t o = 0; o < outputs; ++o) {
    const int32_t begin = first_tap[o], end = first_tap[o + 1];
    lanes_f m, s, t;
    window_own_shift(data, taps, begin, end, b, m, s, t, dx);  // e in dx's place until y' is known
    lanes_f g;
    std::memcpy(&g, per_g + o * kWidth, sizeof(g));
    const lanes_f y = t / s, a = g / s;
    bad |= ~finite_lanes(m) | ~finite_lanes(y) | ~finite_lanes(a);
    for (int32_t i = begin; i < end; ++i) {
      const int64_t at = static_cast<int64_t>(taps[i]) * kWidth;
      lanes_f v, e;
      std::memcpy(&v, data + at, sizeof(v));
      std::memcpy(&e, dx + at, sizeof(e));
      const lanes_f d = e == zero ? zero : a * e * (one + b * (v - m - y));  // lanes with m not finite: redone
      std::memcpy(dx + at, &d, sizeof(d));
    }
  }
  return bad;
}

// The plane of `lane` in the group of n planes from `first`: lanes past the last plane repeat the
// group's first (their results are never stored).
inline int64_t lane_plane(int64_t first, int n, int lane) { return first + (lane < n ? lane : 0); }

// Forward of planes 0 .. count - 1 (any count), kWidth at a time: x_of(k), y_of(k) and beta_of(k) are
// plane k's input, output and temperature.
template <typename scalar_t, typename XOf, typename YOf, typename BetaOf>
void forward_interleaved(int64_t count, XOf&& x_of, const int64_t* x_stride, YOf&& y_of, const int64_t* y_stride,
                         const Geometry& g, BetaOf&& beta_of) {
  const int64_t in_size = g.in[0] * g.in[1] * g.in[2], outputs = g.out[0] * g.out[1] * g.out[2];
  float* const data = interleaved_buffer(0, in_size * kWidth);
  float* const weights = interleaved_buffer(1, 2 * in_size * kWidth);
  float* const results = interleaved_buffer(2, outputs * kWidth);
  thread_local TapList list;
  list.build(g);
  const int32_t* taps = list.taps.data();
  const int32_t* first_tap = list.first.data();
  const bool disjoint = windows_disjoint(g);
  for (int64_t first = 0; first < count; first += kWidth) {
    const int n = static_cast<int>(std::min<int64_t>(kWidth, count - first));
    const scalar_t* planes_x[kWidth];
    scalar_t* planes_y[kWidth];
    lanes_f b;
    for (int lane = 0; lane < kWidth; ++lane) {
      const int64_t k = lane_plane(first, n, lane);
      planes_x[lane] = x_of(k);
      planes_y[lane] = y_of(k);
      b[lane] = static_cast<float>(beta_of(k));
    }
    // One shift per plane where its windows allow (each exponential computed once), else per-window shifts;
    // where no two windows share an input (k2 s2), per-window shifts compute each exponential once anyway.
    lanes_i redo = ~lanes_i{};
    if (disjoint) {
      interleave_lanes(planes_x, x_stride, g.in, data);
    } else {
      const lanes_f mv = interleave_planes(planes_x, x_stride, g, data);
      redo = interleaved_shared_shift(data, in_size, outputs, taps, first_tap, b, mv, weights, results);
    }
    if (any_lane(redo))
      for (int64_t o = 0; o < outputs; ++o) {
        lanes_f m, s, t;
        window_own_shift(data, taps, first_tap[o], first_tap[o + 1], b, m, s, t);
        lanes_f out = m + t / s;
        if (!disjoint) {
          lanes_f shared;
          std::memcpy(&shared, results + o * kWidth, sizeof(shared));
          out = redo ? out : shared;
        }
        std::memcpy(results + o * kWidth, &out, sizeof(out));
      }
    deinterleave_lanes(results, g.out, n, planes_y, y_stride);
  }
}

// ---- shared-exponent tiles (stride 1 and 2) ----------------------------------
//
// Per window element, exp(beta (x - m)) costs kernel_h * kernel_w exps per output;
// an input lies in that many windows at stride 1, in about a quarter of them at
// stride 2 with a 3x3 kernel. A tile of kTileRows output
// rows by kLanes outputs shares one shift M, the tile's max, instead: e = exp(beta
// (x - M)) once per input, y = sum e x / sum e by separable sums, clamped to the
// window's max. That is the window's softmax exactly (the shift cancels), kept to
// the float precision of the window's own values, as long as no window's weights
// vanish under the shared shift: a tile whose sum of weights falls below 2^-60
// anywhere, or whose output is not finite (NaN, inf, overflow of sum e x), is
// redone with per-window shifts. The backward takes w = e / s from the same
// exponentials and adds each window element's gradient terms as the per-window
// path does.
constexpr int kTileRows = 4;
constexpr int kTileInputRows = kTileRows + 12;   // kernel_h * dilation_h up to 13
constexpr int kTileVectors = 5;                  // input columns of a tile row: (kLanes - 1) s + extent_w < 40

inline bool tiles_fit(const Geometry& g) {
  const int64_t s = g.stride[2];
  const int64_t ext_h = g.dilation[1] * (g.kernel[1] - 1) + 1, ext_w = g.dilation[2] * (g.kernel[2] - 1) + 1;
  return g.kernel[0] == 1 && (s == 1 || s == 2) && (g.stride[1] == s || g.out[1] == 1) &&
         g.kernel[1] * g.kernel[2] > 1 && (kTileRows - 1) * s + ext_h <= kTileInputRows &&
         (kLanes - 1) * s + ext_w + 1 <= kTileVectors * kWidth;  // + 1: kEven loads read one past
}

inline float max_lane(lanes_f v) {
  float m = v[0];
  for (int j = 1; j < kWidth; ++j) m = v[j] > m ? v[j] : m;
  return m;
}

// One tile under its shared shift: per input row q its inputs and their
// exponentials, per output its y and sum of weights. The tile's outputs are
// (oh0 + r, j0 + j) for r < rows, j < kLanes, of a padded slice of row pitch wp
// whose output (oh, ow) has its window's top-left input at (s oh, s ow),
// s = kStride; `base` points at that input of output (oh0, j0).
struct TileStats {
  float x[kTileInputRows][kTileVectors * kWidth];
  float e[kTileInputRows][kTileVectors * kWidth];
  lanes_f y[kTileRows][2];
  lanes_f s[kTileRows][2];
};

// Fills `st`; false when an output with r < rows in an `active` lane needs per-window shifts.
template <int kStride>
inline bool tile_stats(const float* base, int64_t wp, const Geometry& pg, int rows, const lanes_i active[2],
                       float beta, TileStats& st) {
  constexpr int kMode = kStride == 1 ? kUnit : kEven;
  const int64_t dh = pg.dilation[1], dw = pg.dilation[2];
  const int inputs = (rows - 1) * kStride + static_cast<int>(dh * (pg.kernel[1] - 1) + 1);
  const int vectors = ((kLanes - 1) * kStride + static_cast<int>(dw * (pg.kernel[2] - 1) + 1) + kStride - 1 +
                       kWidth - 1) / kWidth;
  const lanes_f zero = splat(0.0f), minus_inf = splat(-std::numeric_limits<float>::infinity());
  // The tile's max (NaN never wins: the finite check below catches it).
  lanes_f mv = minus_inf;
  for (int q = 0; q < inputs; ++q)
    for (int v = 0; v < vectors; ++v) {
      const lanes_f xv = load_window_lanes<kUnit, true>(base + q * wp + v * kWidth, 1);
      std::memcpy(st.x[q] + v * kWidth, &xv, sizeof(xv));
      mv = xv > mv ? xv : mv;
    }
  const float shift = max_lane(mv);
  if (!(std::fabs(shift) <= std::numeric_limits<float>::max())) return false;
  // Per input row q: e = exp(beta (x - M)) and e x, then their sums (and the max)
  // along each window's row, for the kLanes outputs of the tile's columns.
  float ex[kTileVectors * kWidth];
  lanes_f row_s[kTileInputRows][2], row_t[kTileInputRows][2], row_m[kTileInputRows][2];
  const lanes_f b = splat(beta), m = splat(shift);
  for (int q = 0; q < inputs; ++q) {
    for (int v = 0; v < vectors; ++v) {
      lanes_f xv;
      std::memcpy(&xv, st.x[q] + v * kWidth, sizeof(xv));
      const lanes_f ev = exp_nonpositive(b * (xv == m ? zero : xv - m));
      const lanes_f exv = ev == zero ? zero : ev * xv;  // -inf adds nothing, not 0 * inf
      std::memcpy(st.e[q] + v * kWidth, &ev, sizeof(ev));
      std::memcpy(ex + v * kWidth, &exv, sizeof(exv));
    }
    for (int v = 0; v < 2; ++v) {
      lanes_f sv = zero, tv = zero, hv = minus_inf;
      for (int64_t kw = 0; kw < pg.kernel[2]; ++kw) {
        const int64_t at = v * kWidth * kStride + kw * dw;
        sv += load_window_lanes<kMode, true>(st.e[q] + at, kStride);
        tv += load_window_lanes<kMode, true>(ex + at, kStride);
        const lanes_f xv = load_window_lanes<kMode, true>(st.x[q] + at, kStride);
        hv = xv > hv ? xv : hv;
      }
      row_s[q][v] = sv, row_t[q][v] = tv, row_m[q][v] = hv;
    }
  }
  // Down the window's rows: each output's sums and max.
  const lanes_f smallest = splat(kTileSmallestSum), largest = splat(std::numeric_limits<float>::max());
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < 2; ++v) {
      lanes_f sv = zero, tv = zero, hv = minus_inf;
      for (int64_t kh = 0; kh < pg.kernel[1]; ++kh) {
        const int64_t q = r * kStride + kh * dh;
        sv += row_s[q][v], tv += row_t[q][v];
        hv = row_m[q][v] > hv ? row_m[q][v] : hv;
      }
      lanes_f yv = tv / sv;
      yv = yv > hv ? hv : yv;  // rounding never lifts y above the window's max
      const lanes_f magnitude = yv < zero ? -yv : yv;
      const lanes_i trusted = (sv >= smallest) & (magnitude <= largest);  // false for NaN too
      if (any_lane(active[v] & ~trusted)) return false;
      st.y[r][v] = yv, st.s[r][v] = sv;
    }
  }
  return true;
}

// Forward of one tile into out[r][j]; false, writing nothing, when it needs per-window shifts.
template <int kStride>
inline bool forward_tile(const float* slice, int64_t wp, const Geometry& pg, int64_t oh0, int64_t j0, int rows,
                         const lanes_i active[2], float beta, float out[kTileRows][kLanes]) {
  TileStats st;
  if (!tile_stats<kStride>(slice + kStride * (oh0 * wp + j0), wp, pg, rows, active, beta, st)) return false;
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < 2; ++v) std::memcpy(out[r] + v * kWidth, &st.y[r][v], sizeof(lanes_f));
  return true;
}

// Backward of one tile: dy/dx = w (1 + beta (x - y)) and dy/dbeta = w (x - y)^2 for
// every window element, w = e / s from the shared exponentials, added to the padded
// gradient slice `gslice` (same layout as `slice`) in a fixed order. False, having
// changed nothing, when the tile needs per-window shifts.
template <int kStride>
inline bool backward_tile(const float* slice, float* gslice, int64_t wp, const Geometry& pg, int64_t oh0, int64_t j0,
                          int rows, int cols, float beta, const float grads[kTileRows][kLanes], lanes_f& grad_beta) {
  constexpr int kMode = kStride == 1 ? kUnit : kEven;
  TileStats st;
  const int64_t offset = kStride * (oh0 * wp + j0);
  lanes_i active[2];
  lane_masks(0, cols, active);
  if (!tile_stats<kStride>(slice + offset, wp, pg, rows, active, beta, st)) return false;
  const lanes_f b = splat(beta), zero = splat(0.0f);
  float* gbase = gslice + offset;
  for (int r = 0; r < rows; ++r) {
    lanes_f go[2], inv_s[2];
    for (int v = 0; v < 2; ++v) {
      std::memcpy(&go[v], grads[r] + v * kWidth, sizeof(lanes_f));
      inv_s[v] = 1.0f / st.s[r][v];
    }
    for (int64_t kh = 0; kh < pg.kernel[1]; ++kh) {
      const int64_t q = r * kStride + kh * pg.dilation[1];
      for (int64_t kw = 0; kw < pg.kernel[2]; ++kw) {
        for (int v = 0; v < 2; ++v) {
          const int64_t at = v * kWidth * kStride + kw * pg.dilation[2];
          const lanes_f xv = load_window_lanes<kMode, true>(st.x[q] + at, kStride);
          const lanes_f w = load_window_lanes<kMode, true>(st.e[q] + at, kStride) * inv_s[v];
          const lanes_i live = active[v] & (w != zero);
          const lanes_f dy = xv == st.y[r][v] ? zero : xv - st.y[r][v];
          const lanes_f gw = go[v] * w;
          const lanes_f dx = live ? gw * (1.0f + b * dy) : zero;
          grad_beta += live ? gw * dy * dy : zero;
          add_lanes<kMode>(gbase + q * wp + at, dx, kStride);
        }
      }
    }
  }
  return true;
}

// Padded planes by tiles (up to plan.planes side by side); tiles that need per-window
// shifts go block by block. y_of(k) is plane k's output.
template <typename scalar_t, typename YOf>
void forward_tiles(const float* buffer, int64_t count, YOf&& y_of, const int64_t* y_stride, const Geometry& g,
                   const PaddedPlan& plan, float beta) {
  const WindowRange rh = window_range(plan.g, 1, 0);
  const int64_t columns = plan.planes == 1 ? g.out[2] : count * plan.plane_cols;
  float tile[kTileRows][kLanes];
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);  // kernel 1 along D: one input slice
    const float* slice = buffer + (rd.start + rd.lo * g.dilation[0]) * plan.stride[0];
    for (int64_t j0 = 0; j0 < columns; j0 += kLanes) {
      lanes_i active[2];  // the lanes that stand for an output of one of the planes
      for (int j = 0; j < kLanes; ++j) {
        const int64_t c = j0 + j;
        active[j / kWidth][j % kWidth] = (c < columns && c % plan.plane_cols < g.out[2]) ? -1 : 0;
      }
      for (int64_t oh0 = 0; oh0 < g.out[1]; oh0 += kTileRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kTileRows, g.out[1] - oh0));
        const bool done =
            g.stride[2] == 1 ? forward_tile<1>(slice, plan.wp, plan.g, oh0, j0, rows, active, beta, tile)
                             : forward_tile<2>(slice, plan.wp, plan.g, oh0, j0, rows, active, beta, tile);
        if (!done) {
          with_mode(plan.mode, [&](auto mode) {
            for (int r = 0; r < rows; ++r)
              forward_lanes<decltype(mode)::value, true>(buffer, plan.stride, plan.g, rd, rh,
                                                         (oh0 + r) * plan.wp + j0, beta, tile[r]);
          });
        }
        for (int j = 0; j < kLanes; ++j) {
          if (!active[j / kWidth][j % kWidth]) continue;
          const int64_t c = j0 + j;
          scalar_t* y = y_of(c / plan.plane_cols) + od * y_stride[0] + (c % plan.plane_cols) * y_stride[2];
          for (int r = 0; r < rows; ++r) y[(oh0 + r) * y_stride[1]] = static_cast<scalar_t>(tile[r][j]);
        }
      }
    }
  }
}

template <typename scalar_t>
void forward_padded(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                    const Geometry& g, const PaddedPlan& plan, float beta) {
  const float* buffer = pad_plane(x, x_stride, g, plan);
  if (tiles_fit(g)) return forward_tiles<scalar_t>(buffer, 1, [y](int64_t) { return y; }, y_stride, g, plan, beta);
  const WindowRange rh = window_range(plan.g, 1, 0);
  const int64_t positions = padded_positions(g, plan);
  float lanes[kLanes];
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    scalar_t* yslice = y + od * y_stride[0];
    for (int64_t j0 = 0; j0 < positions; j0 += kLanes) {
      with_mode(plan.mode, [&](auto mode) {
        forward_lanes<decltype(mode)::value, true>(buffer, plan.stride, plan.g, rd, rh, j0, beta, lanes);
      });
      for_each_output_lane(g, plan, j0, [&](int j, int64_t oh, int64_t ow) {
        yslice[oh * y_stride[1] + ow * y_stride[2]] = static_cast<scalar_t>(lanes[j]);
      });
    }
  }
}

// Backward of one flat block of a padded slice: the lanes with (oh, ow) from for_each_output_lane
// or the tile fallback, their grads in `grads`; windows of -inf are redone one by one from x.
template <typename scalar_t, typename Lanes>
inline void padded_block_backward(const float* buffer, float* gpad, const scalar_t* gyslice, const int64_t* gy_stride,
                                  const scalar_t* x, const int64_t* x_stride, float* grad_x, const Geometry& g,
                                  const PaddedPlan& plan, const WindowRange& rd, int64_t j_flat, Lanes&& lanes,
                                  float beta, lanes_f& lane_beta, float& scalar_beta) {
  lanes_i active[2] = {lanes_i{}, lanes_i{}};
  float grads[kLanes] = {};
  lanes([&](int j, int64_t oh, int64_t ow) {
    grads[j] = static_cast<float>(gyslice[oh * gy_stride[1] + ow * gy_stride[2]]);
    active[j / kWidth][j % kWidth] = -1;
  });
  bool done = false;
  with_mode(plan.mode, [&](auto mode) {
    done = backward_lanes<decltype(mode)::value, true>(buffer, plan.stride, plan.g, rd, window_range(plan.g, 1, 0),
                                                       j_flat, beta, grads, active, gpad, lane_beta);
  });
  if (done) return;
  lanes([&](int, int64_t oh, int64_t ow) {  // a window of -inf: the exact way
    backward_window(gyslice + oh * gy_stride[1] + ow * gy_stride[2], x, x_stride, grad_x, g, rd,
                    window_range(g, 1, oh), window_range(g, 2, ow), beta, scalar_beta);
  });
}

template <typename scalar_t>
double backward_padded(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                       float* grad_x, const Geometry& g, const PaddedPlan& plan, float beta) {
  const float* buffer = pad_plane(x, x_stride, g, plan);
  std::vector<float>& grad_buffer = scratch(1);
  grad_buffer.assign(static_cast<size_t>(plan.size), 0.0f);
  float* gpad = grad_buffer.data();
  const bool tiles = tiles_fit(g);
  double grad_beta = 0.0;
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    const scalar_t* gyslice = grad_y + od * gy_stride[0];
    lanes_f lane_beta = splat(0.0f);
    float scalar_beta = 0.0f;
    auto block = [&](int64_t j_flat, auto&& lanes) {
      padded_block_backward(buffer, gpad, gyslice, gy_stride, x, x_stride, grad_x, g, plan, rd, j_flat, lanes, beta,
                            lane_beta, scalar_beta);
    };
    if (tiles) {
      // Kernel 1 along D: one input slice, the same offset in the input and the gradient buffer.
      const int64_t slice = (rd.start + rd.lo * g.dilation[0]) * plan.stride[0];
      float grads[kTileRows][kLanes];
      for (int64_t oh0 = 0; oh0 < g.out[1]; oh0 += kTileRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kTileRows, g.out[1] - oh0));
        for (int64_t j0 = 0; j0 < g.out[2]; j0 += kLanes) {
          const int cols = static_cast<int>(std::min<int64_t>(kLanes, g.out[2] - j0));
          for (int r = 0; r < rows; ++r)
            for (int j = 0; j < kLanes; ++j)
              grads[r][j] = j < cols ? static_cast<float>(gyslice[(oh0 + r) * gy_stride[1] + (j0 + j) * gy_stride[2]]) : 0.0f;
          const bool done =
              g.stride[2] == 1
                  ? backward_tile<1>(buffer + slice, gpad + slice, plan.wp, plan.g, oh0, j0, rows, cols, beta, grads, lane_beta)
                  : backward_tile<2>(buffer + slice, gpad + slice, plan.wp, plan.g, oh0, j0, rows, cols, beta, grads, lane_beta);
          if (done) continue;
          for (int r = 0; r < rows; ++r)  // per-window shifts, one row of the tile at a time
            block((oh0 + r) * plan.wp + j0, [&](auto&& f) {
              for (int j = 0; j < cols; ++j) f(j, oh0 + r, j0 + j);
            });
        }
      }
    } else {
      for (int64_t j0 = 0; j0 < padded_positions(g, plan); j0 += kLanes)
        block(j0, [&](auto&& f) { for_each_output_lane(g, plan, j0, f); });
    }
    for (int j = 0; j < kWidth; ++j) grad_beta += static_cast<double>(lane_beta[j]);
    grad_beta += static_cast<double>(scalar_beta);
  }
  for (int64_t d = 0; d < g.in[0]; ++d)
    for (int64_t h = 0; h < g.in[1]; ++h) {
      const float* src = gpad + d * plan.stride[0] + (h + plan.pad_h) * plan.wp + plan.pad_w;
      float* dst = grad_x + (d * g.in[1] + h) * g.in[2];
      for (int64_t w = 0; w < g.in[2]; ++w) dst[w] += src[w];
    }
  return grad_beta;
}

#endif  // lanes

// Forward of the outputs (od, oh) for oh in [oh_begin, oh_end), every ow: row blocks
// where windows lie inside the input along W, scalar windows at the borders.
template <typename scalar_t, typename acc_t>
void forward_rows(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride, const Geometry& g,
                  acc_t beta, int64_t od, int64_t oh_begin, int64_t oh_end) {
#if defined(POOLSWAP_HAS_LANES)
  constexpr bool use_lanes = std::is_same<acc_t, float>::value;
  const RowPlan plan = use_lanes ? plan_rows(g, x_stride) : RowPlan{};
  float lanes[kLanes];
  auto block = [&](const WindowRange& rd, const WindowRange& rh, int64_t ow) {
    with_block_kind(plan.mode(g, ow), plan.unit_w, [&](auto mode, auto unit_x) {
      forward_lanes<decltype(mode)::value, decltype(unit_x)::value>(x, x_stride, g, rd, rh, ow,
                                                                    static_cast<float>(beta), lanes);
    });
  };
#endif
  const WindowRange rd = window_range(g, 0, od);
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    scalar_t* yrow = y + od * y_stride[0] + oh * y_stride[1];
    int64_t ow = 0;
#if defined(POOLSWAP_HAS_LANES)
    if constexpr (use_lanes) {
      for (; ow < plan.begin; ++ow) yrow[ow * y_stride[2]] = static_cast<scalar_t>(window_value(x, x_stride, g, rd, rh, ow, beta));
      for (; ow + kLanes <= plan.end; ow += kLanes) {
        block(rd, rh, ow);
        for (int j = 0; j < kLanes; ++j) yrow[(ow + j) * y_stride[2]] = static_cast<scalar_t>(lanes[j]);
      }
      if (plan.has_last_block(ow)) {
        const int64_t ow0 = plan.end - kLanes;
        block(rd, rh, ow0);
        for (int64_t o = ow; o < plan.end; ++o) yrow[o * y_stride[2]] = static_cast<scalar_t>(lanes[o - ow0]);
        ow = plan.end;
      }
    }
#endif
    for (; ow < g.out[2]; ++ow) yrow[ow * y_stride[2]] = static_cast<scalar_t>(window_value(x, x_stride, g, rd, rh, ow, beta));
  }
}

#if defined(POOLSWAP_HAS_LANES)
// ---- separable strips (kernel 1 along D, stride 1 or 2 along W) -------------
//
// The arithmetic floor of SoftPool: one exponential per input element and two
// window sums per output, shared between neighbouring windows. A strip of output
// rows takes one shift M, the max of its input rows: e = exp(beta (x - M)) once
// per input, then row sums of e, e x (and the max of x) for every output column,
// then column sums of those down each window's rows, y = sum e x / sum e clamped
// to the window's max. Exactly the window's softmax (the shift cancels), as in the
// tiles above, under the same trust test: a strip where any window's sum of
// weights falls below 2^-60, or whose output is not finite (NaN, inf, overflow of
// sum e x), is redone by forward_rows with per-window shifts.
//
// Each input row is copied once into a float buffer in padded coordinates (-FLT_MAX
// outside the input: weight 0 under the strip's shift, as absent positions, or the
// strip goes to per-window shifts); at stride 2 its even and odd
// positions go to two phase arrays, so every row sum reads unit-stride vectors.
struct SeparablePlan {
  int64_t s = 1;             // stride along W: 1 or 2
  int64_t vec_out = 0;       // output columns rounded up to whole vectors
  int64_t phase_len = 0;     // entries of each phase array (a multiple of kWidth)
  int64_t row_len = 0;       // floats of a padded input row: s * phase_len
  int64_t strip_rows = 0;    // output rows per strip
  int64_t strip_inputs = 0;  // input rows a strip reads at most
};

inline bool plan_separable(const Geometry& g, SeparablePlan& plan) {
  const int64_t s = g.stride[2];
  if (g.kernel[0] != 1 || g.kernel[1] * g.kernel[2] < 2 || (s != 1 && s != 2)) return false;
  const int64_t ext_h = g.dilation[1] * (g.kernel[1] - 1) + 1, ext_w = g.dilation[2] * (g.kernel[2] - 1) + 1;
  if (ext_h > (int64_t(1) << 18) || ext_w > (int64_t(1) << 18) || g.out[2] > (int64_t(1) << 18)) return false;
  plan.s = s;
  plan.vec_out = (g.out[2] + kWidth - 1) / kWidth * kWidth;
  plan.phase_len = (plan.vec_out + (ext_w - 1) / s + kWidth) / kWidth * kWidth;
  plan.row_len = s * plan.phase_len;
  plan.strip_rows = std::min<int64_t>(g.out[1], std::max<int64_t>(1, 16 / g.stride[1]));
  plan.strip_inputs = (plan.strip_rows - 1) * g.stride[1] + ext_h;
  // Per-thread buffers of a strip stay within 1 MB.
  return plan.strip_inputs * (plan.row_len + 3 * plan.vec_out) + 6 * plan.phase_len <= (int64_t(1) << 18);
}

// (a ++ b)[kOff, kOff + kWidth): the lanes kOff positions further along a row of vectors.
template <int kOff>
inline lanes_f lanes_from(lanes_f a, lanes_f b) {
  static_assert(kOff >= 0 && kOff <= kWidth, "an offset within one vector");
  return __builtin_shufflevector(a, b, kOff, kOff + 1, kOff + 2, kOff + 3, kOff + 4, kOff + 5, kOff + 6, kOff + 7);
}

// One vector of each phase of a padded row: its inputs x, e = exp(beta (x - M)) and e x.
struct PhaseLanes {
  lanes_f x[2], e[2], t[2];
};

// x[p]: phase p of positions [kStride j, kStride (j + kWidth)) of a padded row.
template <int kStride>
inline void phase_inputs(const float* row, int64_t j, lanes_f x[2]) {
  if constexpr (kStride == 1) {
    std::memcpy(&x[0], row + j, sizeof(lanes_f));
  } else {
    lanes_f lo, hi;
    load_pair(row + 2 * j, lo, hi);
    x[0] = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
    x[1] = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
  }
}

// The phase vectors of positions [kStride j, kStride (j + kWidth)) of a padded row.
template <int kStride>
inline void phase_lanes(const float* row, int64_t j, lanes_f b, lanes_f m, PhaseLanes& out) {
  phase_inputs<kStride>(row, j, out.x);
  for (int p = 0; p < kStride; ++p) {
    out.e[p] = exp_nonpositive(b * (out.x[p] - m));  // padding (-FLT_MAX): weight 0
    out.t[p] = out.e[p] * out.x[p];                   // an input of -inf: NaN, and the strip is redone
  }
}

// Adds taps kTaps of a window (dilation 1) to the row sums of kWidth outputs: tap k is phase
// k % kStride, k / kStride phase positions along from `cur` (lanes past its end from `next`).
template <int kStride, int... kTaps>
inline void add_taps(const PhaseLanes& cur, const PhaseLanes& next, lanes_f& sv, lanes_f& tv, lanes_f& xm,
                     std::integer_sequence<int, kTaps...>) {
  const auto add = [&](auto tap) {
    constexpr int p = decltype(tap)::value % kStride, off = decltype(tap)::value / kStride;
    sv += lanes_from<off>(cur.e[p], next.e[p]);
    tv += lanes_from<off>(cur.t[p], next.t[p]);
    const lanes_f xv = lanes_from<off>(cur.x[p], next.x[p]);
    xm = xv > xm ? xv : xm;
  };
  (add(std::integral_constant<int, kTaps>{}), ...);
}

// The row sums of one padded input row for every output column: e = exp(beta (x - M))
// and e x by phase, then sum e, sum e x and max x along each window's row into hs, ht
// and hm. kStride 1 or 2; kKernelW the kernel's width (dilation 1), 0 when read from g
// at run time. With kKernelW known the sums are taken in registers, the phase vectors of
// the next kWidth outputs supplying the taps past a vector's end; otherwise through the
// phase arrays in `phase`.
// e_out (kKernelW > 0 only; may be null): the exponentials, phase p of position j at e_out[p * phase_len + j],
// for j < vec_out + kWidth.
template <int kStride, int kKernelW>
inline void strip_row_sums(const float* row, const Geometry& g, const SeparablePlan& plan, lanes_f b, lanes_f m,
                           float* phase, float* hs, float* ht, float* hm, float* e_out = nullptr) {
  const int64_t wl = plan.phase_len, vo = plan.vec_out;
  const lanes_f zero = splat(0.0f), minus_inf = splat(-std::numeric_limits<float>::infinity());
  if constexpr (kKernelW > 0) {
    static_assert(kKernelW - 1 <= kStride * kWidth, "taps within the next vector");
    PhaseLanes cur, next;
    phase_lanes<kStride>(row, 0, b, m, cur);
    for (int64_t j = 0; j < vo; j += kWidth) {
      phase_lanes<kStride>(row, j + kWidth, b, m, next);  // within the row: phase_len >= vo + kWidth
      lanes_f sv = zero, tv = zero, xm = minus_inf;
      add_taps<kStride>(cur, next, sv, tv, xm, std::make_integer_sequence<int, kKernelW>{});
      std::memcpy(hs + j, &sv, sizeof(sv));
      std::memcpy(ht + j, &tv, sizeof(tv));
      std::memcpy(hm + j, &xm, sizeof(xm));
      if (e_out != nullptr)
        for (int p = 0; p < kStride; ++p) std::memcpy(e_out + p * wl + j, &cur.e[p], sizeof(lanes_f));
      cur = next;
    }
    if (e_out != nullptr)
      for (int p = 0; p < kStride; ++p) std::memcpy(e_out + p * wl + vo, &cur.e[p], sizeof(lanes_f));
    return;
  }
  float* const e_of[2] = {phase, phase + wl};
  float* const t_of[2] = {phase + 2 * wl, phase + 3 * wl};
  float* const x_phase[2] = {phase + 4 * wl, phase + 5 * wl};
  const float* const x_of[2] = {kStride == 1 ? row : x_phase[0], x_phase[1]};
  for (int64_t j = 0; j < wl; j += kWidth) {
    PhaseLanes block;
    phase_lanes<kStride>(row, j, b, m, block);
    for (int p = 0; p < kStride; ++p) {
      if (kStride == 2) std::memcpy(x_phase[p] + j, &block.x[p], sizeof(lanes_f));
      std::memcpy(e_of[p] + j, &block.e[p], sizeof(lanes_f));
      std::memcpy(t_of[p] + j, &block.t[p], sizeof(lanes_f));
    }
  }
  for (int64_t j = 0; j < vo; j += kWidth) {
    lanes_f sv = zero, tv = zero, xm = minus_inf;
    for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
      const int64_t tap = kw * g.dilation[2], p = tap % kStride, at = j + tap / kStride;
      lanes_f ev, txv, xv;
      std::memcpy(&ev, e_of[p] + at, sizeof(ev));
      std::memcpy(&txv, t_of[p] + at, sizeof(txv));
      std::memcpy(&xv, x_of[p] + at, sizeof(xv));
      sv += ev, tv += txv;
      xm = xv > xm ? xv : xm;
    }
    std::memcpy(hs + j, &sv, sizeof(sv));
    std::memcpy(ht + j, &tv, sizeof(tv));
    std::memcpy(hm + j, &xm, sizeof(xm));
  }
}

// The input rows [ih_lo, ih_hi) of a strip of output rows [oh0, oh1), and its shift.
struct StripRows {
  int64_t ih_lo, ih_hi, n_rows;
  float shift;
  StripRows(const Geometry& g, int64_t oh0, int64_t oh1)
      : ih_lo(std::max<int64_t>(0, oh0 * g.stride[1] - g.pad[1])),
        ih_hi(std::min<int64_t>(g.in[1], (oh1 - 1) * g.stride[1] - g.pad[1] + g.dilation[1] * (g.kernel[1] - 1) + 1)),
        n_rows(ih_hi - ih_lo),
        shift(0.0f) {}
};

// Steps 1 and 2 of a strip of slice od (below): its rows copied to `rows` in padded coordinates, its shift
// (into sr), and the row sums of every input row into `sums` (hs, ht, hm: sr.n_rows * vec_out each, then
// the phase arrays); e_out, if given, the exponentials (strip_row_sums' layout, plan.row_len per input
// row). False when the strip needs per-window shifts.
template <int kStride, int kKernelW, typename scalar_t>
inline bool strip_stats(const scalar_t* x, const int64_t* x_stride, const Geometry& g, const SeparablePlan& plan,
                        float beta, int64_t od, int64_t oh0, int64_t oh1, float* rows, float* sums, StripRows& sr,
                        float* e_out = nullptr) {
  const int64_t vo = plan.vec_out, pad_w = g.pad[2];
  const WindowRange rd = window_range(g, 0, od);
  const scalar_t* xslice = x + (rd.start + rd.lo * g.dilation[0]) * x_stride[0];
  const int64_t ih_lo = sr.ih_lo, ih_hi = sr.ih_hi, n_rows = sr.n_rows;
  const int64_t copy_w = std::min<int64_t>(g.in[2], plan.row_len - pad_w);
  const lanes_f minus_inf = splat(-std::numeric_limits<float>::infinity());
  // 1. the strip's input rows in padded coordinates, and their max (NaN never wins: the test below catches it).
  // The padding holds -FLT_MAX: its weight underflows to 0 as -inf's would, and it times 0 is 0, where an
  // input of -inf makes e x NaN and sends the strip to per-window shifts. One pass per row: the padding
  // past the row's end first (whole vectors, before the copy overwrites their front: no read of a
  // just-written store), then the row copied and its max taken on the way, in two chains of vector maxes.
  lanes_f mv[2] = {minus_inf, minus_inf};
  const int64_t tail_from = (pad_w + copy_w) / kWidth * kWidth;
  const bool unit_float = std::is_same<scalar_t, float>::value && x_stride[2] == 1;
  const float padding = -std::numeric_limits<float>::max();
  const lanes_f padding_v = splat(padding);
  for (int64_t q = 0; q < n_rows; ++q) {
    float* row = rows + q * plan.row_len;
    const scalar_t* src = xslice + (ih_lo + q) * x_stride[1];
    for (int64_t j = tail_from; j < plan.row_len; j += kWidth) std::memcpy(row + j, &padding_v, sizeof(padding_v));
    std::fill(row, row + pad_w, padding);
    int64_t w = 0;
    if (unit_float) {
      const float* fsrc = reinterpret_cast<const float*>(src);
      for (; w + 2 * kWidth <= copy_w; w += 2 * kWidth) {
        lanes_f a, c;
        load_pair(fsrc + w, a, c);
        std::memcpy(row + pad_w + w, &a, sizeof(a));
        std::memcpy(row + pad_w + w + kWidth, &c, sizeof(c));
        mv[0] = a > mv[0] ? a : mv[0];
        mv[1] = c > mv[1] ? c : mv[1];
      }
    }
    for (; w < copy_w; ++w) {
      const float v = static_cast<float>(src[w * x_stride[2]]);
      row[pad_w + w] = v;
      mv[0][0] = v > mv[0][0] ? v : mv[0][0];
    }
  }
  const float shift = max_lane(mv[0] > mv[1] ? mv[0] : mv[1]);
  if (!(std::fabs(shift) <= std::numeric_limits<float>::max())) return false;
  // The padding must weigh exactly 0 under this shift (not so for a tiny beta, or a shift near -FLT_MAX).
  if (!(beta * (padding - shift) < kExpLowest)) return false;
  // 2. the row sums of every input row of the strip
  float* const hs = sums;
  float* const ht = sums + n_rows * vo;
  float* const hm = sums + 2 * n_rows * vo;
  float* const phase = sums + 3 * plan.strip_inputs * vo;
  const lanes_f b = splat(beta), m = splat(shift);
  // While the exponentials run, the next strip's input rows are fetched from memory (unit-stride rows;
  // the hardware prefetcher alone leaves the strip's first pass waiting on them).
  const int64_t ahead_rows = (oh1 - oh0) * g.stride[1];
  const bool prefetch = x_stride[2] == 1;
  for (int64_t q = 0; q < n_rows; ++q) {
    if (prefetch && ih_hi + q + ahead_rows - n_rows < g.in[1]) {
      const char* ahead = reinterpret_cast<const char*>(xslice + (ih_hi + q + ahead_rows - n_rows) * x_stride[1]);
      for (int64_t at = 0; at < copy_w * static_cast<int64_t>(sizeof(scalar_t)); at += 64) __builtin_prefetch(ahead + at);
    }
    strip_row_sums<kStride, kKernelW>(rows + q * plan.row_len, g, plan, b, m, phase, hs + q * vo, ht + q * vo,
                                      hm + q * vo, e_out == nullptr ? nullptr : e_out + q * plan.row_len);
  }
  sr.shift = shift;
  return true;
}

// Output rows [oh0, oh1) of slice od under one shift; false when the strip needs
// per-window shifts (what it wrote is then overwritten).
template <int kStride, int kKernelW, typename scalar_t>
inline bool forward_strip(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                          const Geometry& g, const SeparablePlan& plan, float beta, int64_t od, int64_t oh0,
                          int64_t oh1, float* rows, float* sums) {
  StripRows sr(g, oh0, oh1);
  if (!strip_stats<kStride, kKernelW>(x, x_stride, g, plan, beta, od, oh0, oh1, rows, sums, sr)) return false;
  const int64_t vo = plan.vec_out, ih_lo = sr.ih_lo, n_rows = sr.n_rows;
  const float* const hs = sums;
  const float* const ht = sums + n_rows * vo;
  const float* const hm = sums + 2 * n_rows * vo;
  const lanes_f minus_inf = splat(-std::numeric_limits<float>::infinity()), zero = splat(0.0f);
  // 3. down each window's rows: y = sum e x / sum e, at most the window's max; lanes past the row's end
  // take 1 and 0 in the trust test
  lanes_i tail;
  for (int j = 0; j < kWidth; ++j) tail[j] = (vo - kWidth + j < g.out[2]) ? -1 : 0;
  ShiftTrust trust;
  const bool vector_store = std::is_same<scalar_t, float>::value && y_stride[2] == 1;
  const int64_t full_end = g.out[2] / kWidth * kWidth;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    const int64_t q0 = rh.start + rh.lo * g.dilation[1] - ih_lo, taps = rh.hi - rh.lo;
    const int64_t dq = g.dilation[1] * vo;
    scalar_t* yrow = y + od * y_stride[0] + oh * y_stride[1];
    for (int64_t j = 0; j < vo; j += kWidth) {
      lanes_f sv = zero, tv = zero, xm = minus_inf;
      const int64_t at = q0 * vo + j;
      for (int64_t k = 0; k < taps; ++k) {
        lanes_f a, c, d;
        std::memcpy(&a, hs + at + k * dq, sizeof(a));
        std::memcpy(&c, ht + at + k * dq, sizeof(c));
        std::memcpy(&d, hm + at + k * dq, sizeof(d));
        sv += a, tv += c;
        xm = d > xm ? d : xm;
      }
      const lanes_f yv = min_keeping_nan(xm, tv / sv);  // rounding never lifts y above the window's max
      if (j < full_end) {
        trust.add(sv, yv);
        if (vector_store) {
          std::memcpy(yrow + j, &yv, sizeof(yv));
          continue;
        }
      } else {
        trust.add(tail ? sv : splat(1.0f), tail ? yv : zero);
      }
#if defined(__AVX__)
      if constexpr (std::is_same<scalar_t, float>::value) {
        if (vector_store) {  // the row's last, partial vector
          __builtin_ia32_maskstoreps256(reinterpret_cast<lanes_f*>(yrow + j), tail, yv);
          continue;
        }
      }
#endif
      for (int64_t i = 0; i < kWidth && j + i < g.out[2]; ++i) yrow[(j + i) * y_stride[2]] = static_cast<scalar_t>(yv[i]);
    }
  }
  return !any_lane(trust.failed());
}

template <typename scalar_t>
void forward_separable(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                       const Geometry& g, const SeparablePlan& plan, float beta) {
  std::vector<float>& row_buffer = scratch(0);
  std::vector<float>& sum_buffer = scratch(1);
  const size_t rows_size = static_cast<size_t>(plan.strip_inputs * plan.row_len);
  const size_t sums_size = static_cast<size_t>(3 * plan.strip_inputs * plan.vec_out + 6 * plan.phase_len);
  if (row_buffer.size() < rows_size) row_buffer.resize(rows_size);
  if (sum_buffer.size() < sums_size) sum_buffer.resize(sums_size);
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh0 = 0; oh0 < g.out[1]; oh0 += plan.strip_rows) {
      const int64_t oh1 = std::min(g.out[1], oh0 + plan.strip_rows);
      bool done;
      const auto strip = [&](auto stride, auto kernel_w) {
        return forward_strip<decltype(stride)::value, decltype(kernel_w)::value>(
            x, x_stride, y, y_stride, g, plan, beta, od, oh0, oh1, row_buffer.data(), sum_buffer.data());
      };
      using one = std::integral_constant<int, 1>;
      using two = std::integral_constant<int, 2>;
      using three = std::integral_constant<int, 3>;
      using any = std::integral_constant<int, 0>;
      const bool plain = g.dilation[2] == 1;
      if (plan.s == 1) {
        done = plain && g.kernel[2] == 3 ? strip(one{}, three{}) : plain && g.kernel[2] == 2 ? strip(one{}, two{}) : strip(one{}, any{});
      } else {
        done = plain && g.kernel[2] == 3 ? strip(two{}, three{}) : plain && g.kernel[2] == 2 ? strip(two{}, two{}) : strip(two{}, any{});
      }
      if (!done) forward_rows<scalar_t, float>(x, x_stride, y, y_stride, g, beta, od, oh0, oh1);
    }
}

// ---- separable backward (dy/dx only) ----------------------------------------
//
// Where beta takes no gradient, dL/dx_i = sum over windows W holding i of
// g_W w_i (1 + beta (x_i - y_W)), w_i = e_i / s_W, is
//   e_i ((1 + beta x'_i) A_i - beta B_i),  A_i = sum_W g_W / s_W,  B_i = sum_W (g_W / s_W) y'_W,
// with x' = x - M and y' = y - M under the strip's shift M: the window sums of the forward
// strip (its e, s, y) and then the same separable sums run backwards, from outputs to the
// inputs their windows hold, down the rows and then along them. One exponential per input,
// no per-window-element work. The terms are shifted by M, so they stay within the strip's
// spread (and a strip's windows all keep weights above 2^-60, so beta times that spread is
// under 42). A strip whose forward fails the trust test, or where g / s is not finite, sends
// the plane to backward_plane.

// The inputs whose dL/dx is 0 in the separable sums' form e ((1 + beta x') A - beta B): those in no window
// (A = B = 0, whatever their e: an input of NaN or -inf there makes it NaN) and those whose weight e flushed
// to 0 (x' may be -inf). Any other NaN or -inf input sits in a window whose y is NaN: the trust test's.
inline lanes_i outside_or_flushed(lanes_f e, lanes_f a, lanes_f b) {
  const lanes_f zero = splat(0.0f);
  return (e == zero) | ((a == zero) & (b == zero));
}

// The shape the separable backward takes: the forward strips' (kernel 1 along D, stride 1 or 2
// along W), a 2- or 3-wide window along W without dilation.
inline bool backward_strips_fit(const Geometry& g, SeparablePlan& plan) {
  return plan_separable(g, plan) && g.dilation[2] == 1 && (g.kernel[2] == 2 || g.kernel[2] == 3);
}

// For tap kTap of every window: phase kTap % kStride of positions j .. j + kWidth gets the A and B of
// outputs j - kTap / kStride onwards (prev: the vector before cur).
template <int kStride, int... kTaps>
inline void gather_taps(lanes_f prev_a, lanes_f cur_a, lanes_f prev_b, lanes_f cur_b, lanes_f sa[2], lanes_f sb[2],
                        std::integer_sequence<int, kTaps...>) {
  const auto gather = [&](auto tap) {
    constexpr int p = decltype(tap)::value % kStride, off = decltype(tap)::value / kStride;
    sa[p] += lanes_from<kWidth - off>(prev_a, cur_a);
    sb[p] += lanes_from<kWidth - off>(prev_b, cur_b);
  };
  (gather(std::integral_constant<int, kTaps>{}), ...);
}

// Adds dL/dx of the outputs [oh0, oh1) of slice od (upstream gradients gy) to the contiguous (D, H, W)
// float buffer grad_x. `work` holds rows (strip_inputs * row_len), sums (forward_separable's), the
// exponentials (strip_inputs * row_len), and 2 (strip_rows + strip_inputs) phase_len + row_len floats.
template <int kStride, int kKernelW, typename scalar_t>
bool backward_strip(const scalar_t* x, const int64_t* x_stride, const scalar_t* gy, const int64_t* gy_stride,
                    float* grad_x, const Geometry& g, const SeparablePlan& plan, float beta, int64_t od, int64_t oh0,
                    int64_t oh1, float* rows, float* sums, float* exps, float* rest) {
  StripRows sr(g, oh0, oh1);
  if (!strip_stats<kStride, kKernelW>(x, x_stride, g, plan, beta, od, oh0, oh1, rows, sums, sr, exps)) return false;
  const int64_t vo = plan.vec_out, wl = plan.phase_len, n_rows = sr.n_rows, out_rows = oh1 - oh0;
  const float* const hs = sums;
  const float* const ht = sums + n_rows * vo;
  const float* const hm = sums + 2 * n_rows * vo;
  const lanes_f zero = splat(0.0f), minus_inf = splat(-std::numeric_limits<float>::infinity());
  const lanes_f b = splat(beta), m = splat(sr.shift);
  // 1. per output: a = g / s and a y' (0 past the row's end), and the forward's trust test
  float* const a_out = rest;                      // out_rows * wl
  float* const b_out = a_out + out_rows * wl;      // out_rows * wl
  float* const va = b_out + out_rows * wl;         // n_rows * wl: A summed down the rows
  float* const vb = va + n_rows * wl;              // n_rows * wl
  float* const dx_row = vb + n_rows * wl;          // row_len
  ShiftTrust trust;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    const int64_t q0 = rh.start + rh.lo * g.dilation[1] - sr.ih_lo, taps = rh.hi - rh.lo;
    const scalar_t* gyrow = gy + od * gy_stride[0] + oh * gy_stride[1];
    float* const arow = a_out + (oh - oh0) * wl;
    float* const brow = b_out + (oh - oh0) * wl;
    for (int64_t j = 0; j < vo; j += kWidth) {
      lanes_f sv = zero, tv = zero, xm = minus_inf;
      for (int64_t k = 0; k < taps; ++k) {
        lanes_f c, d, e;
        const int64_t at = (q0 + k * g.dilation[1]) * vo + j;
        std::memcpy(&c, hs + at, sizeof(c));
        std::memcpy(&d, ht + at, sizeof(d));
        std::memcpy(&e, hm + at, sizeof(e));
        sv += c, tv += d;
        xm = e > xm ? e : xm;
      }
      const lanes_f yv = min_keeping_nan(xm, tv / sv);
      lanes_f go;
      for (int i = 0; i < kWidth; ++i) go[i] = j + i < g.out[2] ? static_cast<float>(gyrow[(j + i) * gy_stride[2]]) : 0.0f;
      const lanes_i real = (lanes_i{0, 1, 2, 3, 4, 5, 6, 7} + static_cast<int32_t>(j)) < static_cast<int32_t>(g.out[2]);
      const lanes_f av = real ? go / sv : zero;
      trust.add(real ? sv : splat(1.0f), real ? yv : zero);
      trust.add_finite(av);
      const lanes_f bv = real ? av * (yv - m) : zero;
      std::memcpy(arow + j, &av, sizeof(av));
      std::memcpy(brow + j, &bv, sizeof(bv));
    }
    std::fill(arow + vo, arow + wl, 0.0f);
    std::fill(brow + vo, brow + wl, 0.0f);
  }
  if (any_lane(trust.failed())) return false;
  // 2. down the rows, backwards: each input row's A and B summed over the output rows whose windows hold it
  std::fill(va, va + 2 * n_rows * wl, 0.0f);
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const int64_t q = rh.start + kh * g.dilation[1] - sr.ih_lo;
      const float* arow = a_out + (oh - oh0) * wl;
      const float* brow = b_out + (oh - oh0) * wl;
      for (int64_t j = 0; j < vo; j += kWidth) {
        lanes_f u, v, su, sv;
        std::memcpy(&u, arow + j, sizeof(u));
        std::memcpy(&v, brow + j, sizeof(v));
        std::memcpy(&su, va + q * wl + j, sizeof(su));
        std::memcpy(&sv, vb + q * wl + j, sizeof(sv));
        su += u, sv += v;
        std::memcpy(va + q * wl + j, &su, sizeof(su));
        std::memcpy(vb + q * wl + j, &sv, sizeof(sv));
      }
    }
  }
  // 3. along each input row, backwards: padded position P = kStride j + p holds tap kw = P - kStride ow of
  // outputs ow = j - kw / kStride with kw % kStride = p; then dx = e ((1 + beta x') A - beta B)
  const int64_t pad_w = g.pad[2], in_w = g.in[2];
  const WindowRange rd = window_range(g, 0, od);
  const int64_t slice = rd.start + rd.lo * g.dilation[0];  // the one input slice of od (kernel 1 along D)
  for (int64_t q = 0; q < n_rows; ++q) {
    const float* row = rows + q * plan.row_len;
    const float* e_row = exps + q * plan.row_len;
    const float* vaq = va + q * wl;
    const float* vbq = vb + q * wl;
    lanes_f prev_a = zero, prev_b = zero;
    for (int64_t j = 0; j < vo + kWidth; j += kWidth) {
      lanes_f cur_a = zero, cur_b = zero;
      if (j < vo) {
        std::memcpy(&cur_a, vaq + j, sizeof(cur_a));
        std::memcpy(&cur_b, vbq + j, sizeof(cur_b));
      }
      lanes_f sa[2] = {zero, zero}, sb[2] = {zero, zero};
      gather_taps<kStride>(prev_a, cur_a, prev_b, cur_b, sa, sb, std::make_integer_sequence<int, kKernelW>{});
      lanes_f xv[2];
      phase_inputs<kStride>(row, j, xv);
      lanes_f dx[2];
      for (int p = 0; p < kStride; ++p) {
        lanes_f ev;
        std::memcpy(&ev, e_row + p * wl + j, sizeof(ev));
        const lanes_f xs = xv[p] - m;
        dx[p] = outside_or_flushed(ev, sa[p], sb[p]) ? zero : ev * ((1.0f + b * xs) * sa[p] - b * sb[p]);
      }
      if constexpr (kStride == 1) {
        std::memcpy(dx_row + j, &dx[0], sizeof(lanes_f));
      } else {
        const lanes_f lo = __builtin_shufflevector(dx[0], dx[1], 0, 8, 1, 9, 2, 10, 3, 11);
        const lanes_f hi = __builtin_shufflevector(dx[0], dx[1], 4, 12, 5, 13, 6, 14, 7, 15);
        std::memcpy(dx_row + 2 * j, &lo, sizeof(lo));
        std::memcpy(dx_row + 2 * j + kWidth, &hi, sizeof(hi));
      }
      prev_a = cur_a, prev_b = cur_b;
    }
    // the input's part of the padded row (padded position pad_w + w is input w) into grad_x
    float* gxrow = grad_x + (slice * g.in[1] + sr.ih_lo + q) * in_w;
    int64_t w = 0;
    for (; w + kWidth <= in_w; w += kWidth) {
      lanes_f acc, d;
      std::memcpy(&acc, gxrow + w, sizeof(acc));
      std::memcpy(&d, dx_row + pad_w + w, sizeof(d));
      acc += d;
      std::memcpy(gxrow + w, &acc, sizeof(acc));
    }
    for (; w < in_w; ++w) gxrow[w] += dx_row[pad_w + w];
  }
  return true;
}

// dL/dx of one plane into grad_x (a zeroed, contiguous (D, H, W) float buffer) by backward strips; false,
// grad_x then zeroed again, where a strip needs the per-window path (the caller runs backward_plane).
template <typename scalar_t>
bool backward_separable(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                        float* grad_x, const Geometry& g, const SeparablePlan& plan, float beta) {
  const size_t rows_size = static_cast<size_t>(plan.strip_inputs * plan.row_len);
  const size_t sums_size = static_cast<size_t>(3 * plan.strip_inputs * plan.vec_out + 6 * plan.phase_len);
  const size_t rest_size =
      static_cast<size_t>(2 * (plan.strip_rows + plan.strip_inputs) * plan.phase_len + plan.row_len);
  std::vector<float>& buffer = scratch(0);
  std::vector<float>& more = scratch(1);
  if (buffer.size() < rows_size + sums_size) buffer.resize(rows_size + sums_size);
  if (more.size() < rows_size + rest_size) more.resize(rows_size + rest_size);
  float* const rows = buffer.data();
  float* const sums = rows + rows_size;
  float* const exps = more.data();
  float* const rest = exps + rows_size;
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh0 = 0; oh0 < g.out[1]; oh0 += plan.strip_rows) {
      const int64_t oh1 = std::min(g.out[1], oh0 + plan.strip_rows);
      const auto strip = [&](auto stride, auto kernel_w) {
        return backward_strip<decltype(stride)::value, decltype(kernel_w)::value>(
            x, x_stride, grad_y, gy_stride, grad_x, g, plan, beta, od, oh0, oh1, rows, sums, exps, rest);
      };
      using two = std::integral_constant<int, 2>;
      using three = std::integral_constant<int, 3>;
      using one = std::integral_constant<int, 1>;
      const bool done = plan.s == 1 ? (g.kernel[2] == 3 ? strip(one{}, three{}) : strip(one{}, two{}))
                                    : (g.kernel[2] == 3 ? strip(two{}, three{}) : strip(two{}, two{}));
      if (!done) {
        std::fill(grad_x, grad_x + g.in[0] * g.in[1] * g.in[2], 0.0f);
        return false;
      }
    }
  return true;
}

// ---- channels-last strips: eight channels per vector -------------------------
//
// A channels-last image holds each position's channels side by side, so a vector
// of kWidth adjacent channels is one load and its lanes are independent planes:
// the separable strips above with lanes across channels instead of positions. A
// strip of output rows takes one shift per channel, the max of its input rows;
// then e = exp(beta (x - M)) and e x once per input, row sums over each window's
// valid columns (no padding is stored: border windows sum fewer taps), column
// sums down its valid rows, y = sum e x / sum e at most the window's max. Every
// input row is read as it lies in memory, all channels of a strip in turn, so
// nothing is transposed. A lane group whose strip fails the trust test of the
// separable strips (a sum of weights under 2^-60, y not finite: -inf inputs make
// e x NaN) is redone by forward_rows, one channel at a time.

// Whether the channels-last strips take this geometry (a 2-d window along H, W).
inline bool channels_last_strips_fit(const Geometry& g) {
  return g.kernel[0] == 1 && g.out[2] <= (int64_t(1) << 16) && g.in[2] <= (int64_t(1) << 16) &&
         g.kernel[1] <= 64 && g.kernel[2] <= 64;
}

template <typename scalar_t>
inline lanes_f load_channels(const scalar_t* at) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    lanes_f v;
    std::memcpy(&v, at, sizeof(v));
    return v;
  } else {
    return load_lanes(at, 1);
  }
}

template <typename scalar_t>
inline void store_channels(scalar_t* at, lanes_f v) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    std::memcpy(at, &v, sizeof(v));
  } else {
    for (int j = 0; j < kWidth; ++j) at[j] = static_cast<scalar_t>(v[j]);
  }
}

// The columns of a channels-last row pass: outputs [inner_lo, inner_hi) have every tap inside the row.
struct ChannelsRow {
  int64_t inner_lo, inner_hi;
  explicit ChannelsRow(const Geometry& g) {
    const int64_t out_w = g.out[2], ext_w = g.dilation[2] * (g.kernel[2] - 1) + 1;
    inner_lo = std::min(out_w, (g.pad[2] + g.stride[2] - 1) / g.stride[2]);
    const int64_t last_start = g.in[2] + g.pad[2] - ext_w;  // the last output inside starts there, stride permitting
    inner_hi = last_start < 0 ? inner_lo : std::max(inner_lo, std::min(out_w, last_start / g.stride[2] + 1));
  }
};

// One input row of kWidth channels (lanes) under shifts m: x, e = exp(beta (x - m)) and e x of every input
// into xr, e and t, then their sums (and the max of x) along each window's row into hs, ht and hm (one per
// output column): border windows over their valid taps, the others over kKernelW taps (0: g's, at run
// time). One cache line of [ahead, ahead_end) prefetched per input.
template <int kKernelW, typename scalar_t>
inline void channels_row_sums(const scalar_t* row, const int64_t* x_stride, const Geometry& g, const ChannelsRow& cols,
                              lanes_f b, lanes_f m, lanes_f* xr, lanes_f* e, lanes_f* t, lanes_f* hs, lanes_f* ht,
                              lanes_f* hm, const char*& ahead, const char* ahead_end) {
  const lanes_f zero = splat(0.0f), minus_inf = splat(-std::numeric_limits<float>::infinity());
  const int64_t in_w = g.in[2], out_w = g.out[2];
  const int64_t taps_w = kKernelW > 0 ? kKernelW : g.kernel[2], dw = kKernelW > 0 ? 1 : g.dilation[2];
  for (int64_t w = 0; w < in_w; ++w) {
    if (ahead < ahead_end) {
      __builtin_prefetch(ahead);
      ahead += 64;
    }
    const lanes_f xv = load_channels(row + w * x_stride[2]);
    xr[w] = xv;
    e[w] = exp_nonpositive(b * (xv - m));
    t[w] = e[w] * xv;
  }
  const auto border = [&](int64_t ow) {
    const WindowRange rw = window_range(g, 2, ow);
    lanes_f sv = zero, tv = zero, xm = minus_inf;
    for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
      const int64_t w = rw.start + kw * g.dilation[2];
      sv += e[w], tv += t[w];
      xm = xr[w] > xm ? xr[w] : xm;
    }
    hs[ow] = sv, ht[ow] = tv, hm[ow] = xm;
  };
  for (int64_t ow = 0; ow < cols.inner_lo; ++ow) border(ow);
  for (int64_t ow = cols.inner_lo; ow < cols.inner_hi; ++ow) {
    const int64_t w0 = ow * g.stride[2] - g.pad[2];
    lanes_f sv = e[w0], tv = t[w0], xm = xr[w0];
    for (int64_t k = 1; k < taps_w; ++k) {
      const int64_t w = w0 + k * dw;
      sv += e[w], tv += t[w];
      xm = xr[w] > xm ? xr[w] : xm;
    }
    hs[ow] = sv, ht[ow] = tv, hm[ow] = xm;
  }
  for (int64_t ow = cols.inner_hi; ow < out_w; ++ow) border(ow);
}

// Window sums down a window's rows from the row sums hs, ht, hm (its first at `at`, `taps` rows dq apart):
// the sum of weights sv and y = sum e x / sum e at most the window's max (rounding never lifts it above).
inline void channels_window(const lanes_f* hs, const lanes_f* ht, const lanes_f* hm, int64_t at, int64_t taps,
                            int64_t dq, lanes_f& sv, lanes_f& yv) {
  lanes_f tv = splat(0.0f), xm = splat(-std::numeric_limits<float>::infinity());
  sv = splat(0.0f);
  for (int64_t k = 0; k < taps; ++k, at += dq) {
    sv += hs[at], tv += ht[at];
    xm = hm[at] > xm ? hm[at] : xm;
  }
  yv = min_keeping_nan(xm, tv / sv);
}

// Output rows [oh0, oh1) of slice od for the kWidth channels at x and y (lanes), betas b, shifts m (the
// max of the strip's inputs, finite); x_stride and y_stride are the (D, H, W) strides. `work` holds
// (ih_hi - ih_lo) * 3 out_w + 3 in_w vectors. kKernelW: the kernel's width with dilation 1, or 0. False when the strip needs per-window shifts (what it
// wrote is then overwritten).
// [ahead, ahead_end): bytes to prefetch on the way, one cache line per input (the next strip's rows,
// which the hardware prefetcher does not fetch in time: the strip's reads jump C floats at a time).
template <int kKernelW, typename scalar_t>
bool forward_channels_strip(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                            const Geometry& g, lanes_f b, lanes_f m, int64_t od, int64_t oh0, int64_t oh1,
                            lanes_f* work, const char*& ahead, const char* ahead_end) {
  const WindowRange rd = window_range(g, 0, od);
  const scalar_t* xslice = x + (rd.start + rd.lo * g.dilation[0]) * x_stride[0];
  const int64_t in_w = g.in[2], out_w = g.out[2];
  const StripRows sr(g, oh0, oh1);
  const int64_t ih_lo = sr.ih_lo, n_rows = sr.n_rows;
  // 1. per input row: x, e and e x of every input, then their sums (and the max of x) along each window's row
  lanes_f* const hs = work;
  lanes_f* const ht = hs + n_rows * out_w;
  lanes_f* const hm = ht + n_rows * out_w;
  lanes_f* const xr = hm + n_rows * out_w;
  lanes_f* const e = xr + in_w;
  lanes_f* const t = e + in_w;
  const ChannelsRow cols(g);
  for (int64_t q = 0; q < n_rows; ++q)
    channels_row_sums<kKernelW>(xslice + (ih_lo + q) * x_stride[1], x_stride, g, cols, b, m, xr, e, t,
                                hs + q * out_w, ht + q * out_w, hm + q * out_w, ahead, ahead_end);
  // 2. down each window's rows; the trust test of forward_strip
  ShiftTrust trust;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    const int64_t q0 = rh.start + rh.lo * g.dilation[1] - ih_lo, taps = rh.hi - rh.lo;
    const int64_t dq = g.dilation[1] * out_w;
    scalar_t* yrow = y + od * y_stride[0] + oh * y_stride[1];
    for (int64_t ow = 0; ow < out_w; ++ow) {
      lanes_f sv, yv;
      channels_window(hs, ht, hm, q0 * out_w + ow, taps, dq, sv, yv);
      trust.add(sv, yv);
      store_channels(yrow + ow * y_stride[2], yv);
    }
  }
  return !any_lane(trust.failed());
}

// Output rows [oh0, oh1) of slice od, every channel, of a channels-last image: x and y point at channel 0
// (channels adjacent), x_stride and y_stride are the (D, H, W) strides, beta_of(c) channel c's temperature.
// Groups of kWidth channels go by strips; the last channels (fewer than kWidth) by forward_rows.
template <typename scalar_t, typename BetaOf>
void forward_channels_last(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                           int64_t channels, const Geometry& g, BetaOf&& beta_of, int64_t od, int64_t oh_begin,
                           int64_t oh_end) {
  const int64_t strip_rows = std::max<int64_t>(1, 16 / g.stride[1]);
  const int64_t max_rows = std::min<int64_t>(g.in[1], (strip_rows - 1) * g.stride[1] + g.dilation[1] * (g.kernel[1] - 1) + 1);
  const int64_t groups = channels / kWidth;  // whole vectors of channels
  std::vector<float>& buffer = scratch(0);
  const size_t floats = static_cast<size_t>((max_rows * 3 * g.out[2] + 3 * g.in[2] + groups + 1) * kWidth);
  if (buffer.size() < floats) buffer.resize(floats);
  // vector moves through lanes_f* may assume its 32-byte alignment
  lanes_f* const work = reinterpret_cast<lanes_f*>(
      (reinterpret_cast<uintptr_t>(buffer.data()) + sizeof(lanes_f) - 1) / sizeof(lanes_f) * sizeof(lanes_f));
  const WindowRange rd = window_range(g, 0, od);
  const scalar_t* xslice = x + (rd.start + rd.lo * g.dilation[0]) * x_stride[0];
  for (int64_t oh0 = oh_begin; oh0 < oh_end; oh0 += strip_rows) {
    const int64_t oh1 = std::min(oh_end, oh0 + strip_rows);
    const StripRows rows(g, oh0, oh1);
    // the rows the next strip (the caller's next call, at the end of this range) adds
    const int64_t this_hi = rows.ih_hi, next_hi = StripRows(g, oh1, std::min(g.out[1], oh1 + strip_rows)).ih_hi;
    const char* ahead = reinterpret_cast<const char*>(xslice + std::max<int64_t>(0, this_hi) * x_stride[1]);
    const char* const ahead_end =
        next_hi > this_hi ? reinterpret_cast<const char*>(xslice + next_hi * x_stride[1]) : ahead;
    // Each channel's shift, the max of the strip's inputs, in one pass over its rows as they lie in memory.
    lanes_f* const shifts = work + max_rows * 3 * g.out[2] + 3 * g.in[2];
    std::fill(shifts, shifts + groups, splat(-std::numeric_limits<float>::infinity()));
    for (int64_t ih = rows.ih_lo; ih < this_hi; ++ih)
      for (int64_t w = 0; w < g.in[2]; ++w) {
        const scalar_t* at = xslice + ih * x_stride[1] + w * x_stride[2];
        for (int64_t k = 0; k < groups; ++k) {
          const lanes_f v = load_channels(at + k * kWidth);
          shifts[k] = v > shifts[k] ? v : shifts[k];
        }
      }
    int64_t c = 0;
    for (; c + kWidth <= channels; c += kWidth) {
      lanes_f b;
      for (int j = 0; j < kWidth; ++j) b[j] = static_cast<float>(beta_of(c + j));
      const lanes_f m = shifts[c / kWidth];
      const bool finite = !any_lane(~finite_lanes(m));  // not NaN, +inf, or -inf (all inputs -inf)
      const auto strip = [&](auto kernel_w) {
        return forward_channels_strip<decltype(kernel_w)::value>(x + c, x_stride, y + c, y_stride, g, b, m, od, oh0,
                                                                 oh1, work, ahead, ahead_end);
      };
      const bool plain = g.dilation[2] == 1;
      if (!finite || !(plain && g.kernel[2] == 3   ? strip(std::integral_constant<int, 3>{})
                       : plain && g.kernel[2] == 2 ? strip(std::integral_constant<int, 2>{})
                                                   : strip(std::integral_constant<int, 0>{})))
        for (int j = 0; j < kWidth; ++j)
          forward_rows<scalar_t, float>(x + c + j, x_stride, y + c + j, y_stride, g, static_cast<float>(beta_of(c + j)),
                                        od, oh0, oh1);
    }
    for (; c < channels; ++c)
      forward_rows<scalar_t, float>(x + c, x_stride, y + c, y_stride, g, static_cast<float>(beta_of(c)), od, oh0, oh1);
  }
}

template <typename scalar_t, typename acc_t>
void backward_plane_dx(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                       acc_t* grad_x, const Geometry& g, acc_t beta);

// ---- channels-last backward strips (dL/dx only): eight channels per vector ----
//
// The separable backward with lanes across channels, reading and writing each float image where it lies,
// strip by strip of output rows and, within a strip, group by group of kWidth channels (each cache line
// of the strip's rows read while hot): one shift per channel, the row sums of channels_row_sums (each
// input's e kept), then per window a = g / s and c = a y', summed back down the rows and along them to
// every input they hold, and dL/dx = e ((1 + beta x') A - beta B) stored into grad_x, or added where an
// earlier strip wrote the row (strips share input rows). A channel group whose strip fails the trust test,
// or whose g / s is not finite, is redone channel by channel (backward_plane_dx), as are the last
// channels (fewer than kWidth).

// dL/dx of the outputs [oh0, oh1) of slice od for the kWidth channels at x, gy and gx (lanes), betas b,
// shifts m: stored into the rows of gx not yet `written`, added to the others. `work`: see
// backward_channels_last. False, having written nothing, where the strip needs per-window shifts.
template <int kKernelW>
bool backward_channels_strip(const float* x, const int64_t* x_stride, const float* gy, const int64_t* gy_stride,
                             float* gx, const int64_t* gx_stride, const Geometry& g, lanes_f b, lanes_f m, int64_t od,
                             int64_t oh0, int64_t oh1, const unsigned char* written, lanes_f* work) {
  const lanes_f zero = splat(0.0f), one = splat(1.0f);
  const WindowRange rd = window_range(g, 0, od);
  const int64_t slice = rd.start + rd.lo * g.dilation[0];  // the one input slice of od (kernel 1 along D)
  const float* xslice = x + slice * x_stride[0];
  const int64_t in_w = g.in[2], out_w = g.out[2], out_rows = oh1 - oh0;
  const StripRows sr(g, oh0, oh1);
  const int64_t ih_lo = sr.ih_lo, n_rows = sr.n_rows;
  lanes_f* const hs = work;                 // n_rows * out_w each: row sums, then a and c down the rows
  lanes_f* const ht = hs + n_rows * out_w;
  lanes_f* const hm = ht + n_rows * out_w;
  lanes_f* const xr = hm + n_rows * out_w;  // n_rows * in_w each
  lanes_f* const e = xr + n_rows * in_w;
  lanes_f* const t = e + n_rows * in_w;     // in_w: one row's e x; then A along a row
  lanes_f* const ta = t + in_w;             // in_w: B along a row
  lanes_f* const wa = ta + in_w;            // out_rows * out_w each: a and c per window
  lanes_f* const wc = wa + out_rows * out_w;
  const ChannelsRow cols(g);
  const char* no_prefetch = nullptr;
  for (int64_t q = 0; q < n_rows; ++q)
    channels_row_sums<kKernelW>(xslice + (ih_lo + q) * x_stride[1], x_stride, g, cols, b, m, xr + q * in_w,
                                e + q * in_w, t, hs + q * out_w, ht + q * out_w, hm + q * out_w, no_prefetch,
                                no_prefetch);
  // per window: y (the forward's), a = g / s, c = a y'; the trust test of forward_strip, and a finite
  ShiftTrust trust;
  const int64_t dq = g.dilation[1] * out_w;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    const int64_t q0 = rh.start + rh.lo * g.dilation[1] - ih_lo, taps = rh.hi - rh.lo;
    const float* gyrow = gy + od * gy_stride[0] + oh * gy_stride[1];
    for (int64_t ow = 0; ow < out_w; ++ow) {
      lanes_f sv, yv;
      channels_window(hs, ht, hm, q0 * out_w + ow, taps, dq, sv, yv);
      trust.add(sv, yv);
      const lanes_f a = load_channels(gyrow + ow * gy_stride[2]) / sv;
      trust.add_finite(a);
      wa[(oh - oh0) * out_w + ow] = a;
      wc[(oh - oh0) * out_w + ow] = a * (yv - m);
    }
  }
  if (any_lane(trust.failed())) return false;
  // down the rows, backwards: each input row's sums of a and c over the windows' rows that hold it
  std::fill(hs, hs + 2 * n_rows * out_w, zero);
  lanes_f* const va = hs;
  lanes_f* const vc = ht;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const WindowRange rh = window_range(g, 1, oh);
    for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
      const int64_t q = rh.start + kh * g.dilation[1] - ih_lo;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        va[q * out_w + ow] += wa[(oh - oh0) * out_w + ow];
        vc[q * out_w + ow] += wc[(oh - oh0) * out_w + ow];
      }
    }
  }
  // along each input row: A and B of every input, then dL/dx into gx
  for (int64_t q = 0; q < n_rows; ++q) {
    std::fill(t, t + 2 * in_w, zero);
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const WindowRange rw = window_range(g, 2, ow);
      const lanes_f av = va[q * out_w + ow], cv = vc[q * out_w + ow];
      for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
        const int64_t w = rw.start + kw * g.dilation[2];
        t[w] += av, ta[w] += cv;
      }
    }
    const lanes_f* xq = xr + q * in_w;
    const lanes_f* eq = e + q * in_w;
    float* gxrow = gx + slice * gx_stride[0] + (ih_lo + q) * gx_stride[1];
    const bool add = written[ih_lo + q] != 0;
    for (int64_t w = 0; w < in_w; ++w) {
      lanes_f dx = outside_or_flushed(eq[w], t[w], ta[w]) ? zero : eq[w] * ((one + b * (xq[w] - m)) * t[w] - b * ta[w]);
      if (add) dx += load_channels(gxrow + w * gx_stride[2]);
      store_channels(gxrow + w * gx_stride[2], dx);
    }
  }
  return true;
}

// dL/dx of channels [c_begin, c_end) of one float channels-last image (x, gy, gx at channel 0, channels
// adjacent, (D, H, W) strides), beta_of(c) channel c's temperature.
template <typename BetaOf>
void backward_channels_last(const float* x, const int64_t* x_stride, const float* gy, const int64_t* gy_stride,
                            float* gx, const int64_t* gx_stride, const Geometry& g, BetaOf&& beta_of, int64_t c_begin,
                            int64_t c_end) {
  const int64_t strip_rows = std::max<int64_t>(1, 16 / g.stride[1]);
  const int64_t max_rows = std::min<int64_t>(g.in[1], (strip_rows - 1) * g.stride[1] + g.dilation[1] * (g.kernel[1] - 1) + 1);
  const int64_t in_w = g.in[2], out_w = g.out[2], in_size = g.in[0] * g.in[1] * in_w;
  const int64_t groups = (c_end - c_begin) / kWidth;  // whole vectors of channels; the rest one by one
  thread_local std::vector<float> buffer, plane;
  thread_local std::vector<unsigned char> written, failed, read;
  const int64_t vectors = 5 * max_rows * std::max(in_w, out_w) + 2 * in_w + 2 * strip_rows * out_w + groups * 2;
  if (buffer.size() < static_cast<size_t>((vectors + 1) * kWidth)) buffer.resize(static_cast<size_t>((vectors + 1) * kWidth));
  // vector moves through lanes_f* may assume its 32-byte alignment (a std::vector<lanes_f> is compiled
  // outside this ISA's target: not used)
  lanes_f* const work = reinterpret_cast<lanes_f*>(
      (reinterpret_cast<uintptr_t>(buffer.data()) + sizeof(lanes_f) - 1) / sizeof(lanes_f) * sizeof(lanes_f));
  lanes_f* const shifts = work + vectors - groups * 2;
  lanes_f* const betas = shifts + groups;
  for (int64_t k = 0; k < groups; ++k)
    for (int j = 0; j < kWidth; ++j) betas[k][j] = static_cast<float>(beta_of(c_begin + k * kWidth + j));
  failed.assign(static_cast<size_t>(groups), 0);
  read.assign(static_cast<size_t>(g.in[0]), 0);
  const auto zero_row = [&](int64_t d, int64_t h) {
    for (int64_t w = 0; w < in_w; ++w)
      std::fill_n(gx + d * gx_stride[0] + h * gx_stride[1] + w * gx_stride[2] + c_begin, c_end - c_begin, 0.0f);
  };
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    const int64_t slice = rd.start + rd.lo * g.dilation[0];
    const float* xslice = x + slice * x_stride[0];
    read[static_cast<size_t>(slice)] = 1;
    written.assign(static_cast<size_t>(g.in[1]), 0);
    for (int64_t oh0 = 0; oh0 < g.out[1]; oh0 += strip_rows) {
      const int64_t oh1 = std::min(g.out[1], oh0 + strip_rows);
      const StripRows rows(g, oh0, oh1);
      // each channel's shift, the max of the strip's inputs, in one pass over its rows as they lie in memory
      std::fill(shifts, shifts + groups, splat(-std::numeric_limits<float>::infinity()));
      for (int64_t ih = rows.ih_lo; ih < rows.ih_hi; ++ih)
        for (int64_t w = 0; w < in_w; ++w) {
          const float* at = xslice + ih * x_stride[1] + w * x_stride[2] + c_begin;
          for (int64_t k = 0; k < groups; ++k) {
            const lanes_f v = load_channels(at + k * kWidth);
            shifts[k] = v > shifts[k] ? v : shifts[k];
          }
        }
      for (int64_t k = 0; k < groups; ++k) {
        if (failed[static_cast<size_t>(k)]) continue;
        const int64_t c = c_begin + k * kWidth;
        const lanes_f m = shifts[k];
        const auto strip = [&](auto kernel_w) {
          return backward_channels_strip<decltype(kernel_w)::value>(x + c, x_stride, gy + c, gy_stride, gx + c,
                                                                    gx_stride, g, betas[k], m, od, oh0, oh1,
                                                                    written.data(), work);
        };
        const bool plain = g.dilation[2] == 1;
        const bool finite = !any_lane(~finite_lanes(m));  // not NaN, +inf, or a lane of -inf only
        if (!finite || !(plain && g.kernel[2] == 3   ? strip(std::integral_constant<int, 3>{})
                         : plain && g.kernel[2] == 2 ? strip(std::integral_constant<int, 2>{})
                                                     : strip(std::integral_constant<int, 0>{})))
          failed[static_cast<size_t>(k)] = 1;  // its channels are redone below, whatever was written
      }
      for (int64_t ih = rows.ih_lo; ih < rows.ih_hi; ++ih) written[static_cast<size_t>(ih)] = 1;
    }
    for (int64_t h = 0; h < g.in[1]; ++h)  // rows no window holds
      if (!written[static_cast<size_t>(h)]) zero_row(slice, h);
  }
  for (int64_t d = 0; d < g.in[0]; ++d)  // slices no window reads
    if (!read[static_cast<size_t>(d)])
      for (int64_t h = 0; h < g.in[1]; ++h) zero_row(d, h);
  // channel by channel: failed groups and the last channels
  const auto one_channel = [&](int64_t c) {
    plane.assign(static_cast<size_t>(in_size), 0.0f);
    backward_plane_dx<float, float>(gy + c, gy_stride, x + c, x_stride, plane.data(), g, static_cast<float>(beta_of(c)));
    store_plane(plane.data(), g.in, gx + c, gx_stride);
  };
  for (int64_t k = 0; k < groups; ++k)
    if (failed[static_cast<size_t>(k)])
      for (int j = 0; j < kWidth; ++j) one_channel(c_begin + k * kWidth + j);
  for (int64_t c = c_begin + groups * kWidth; c < c_end; ++c) one_channel(c);
}

// ---- channel blocks: kChannelBlock channels of a channels-last image <-> contiguous planes ----
//
// The channels-last backward (and the forward where the strips above do not serve) runs the plane
// kernels on blocks of channels transposed into contiguous planes: 8 positions by 8 channels per
// vector transpose, each cache line of the image read once for all the block's channels.
constexpr int64_t kChannelBlock = 16;

// kChannelBlock channels of one channels-last image (src: the first channel, channel stride 1, (D, H, W)
// strides s) into kChannelBlock contiguous planes of `size` at dst.
inline void gather_channel_block(const float* src, const int64_t* s, const int64_t* size, float* dst) {
  const int64_t plane = size[0] * size[1] * size[2];
  int64_t i = 0;
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h, i += size[2]) {
      const float* row = src + d * s[0] + h * s[1];
      int64_t w = 0;
      for (; w + kWidth <= size[2]; w += kWidth)
        for (int64_t half = 0; half < kChannelBlock; half += kWidth) {
          lanes_f r[8];
          for (int k = 0; k < 8; ++k) std::memcpy(&r[k], row + (w + k) * s[2] + half, sizeof(lanes_f));
          transpose8(r);
          for (int j = 0; j < 8; ++j) std::memcpy(dst + (half + j) * plane + i + w, &r[j], sizeof(lanes_f));
        }
      for (; w < size[2]; ++w)
        for (int64_t j = 0; j < kChannelBlock; ++j) dst[j * plane + i + w] = row[w * s[2] + j];
    }
}

// The inverse of gather_channel_block: kChannelBlock contiguous planes at src into a channels-last image.
inline void scatter_channel_block(const float* src, const int64_t* size, float* dst, const int64_t* s) {
  const int64_t plane = size[0] * size[1] * size[2];
  int64_t i = 0;
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h, i += size[2]) {
      float* row = dst + d * s[0] + h * s[1];
      int64_t w = 0;
      for (; w + kWidth <= size[2]; w += kWidth)
        for (int64_t half = 0; half < kChannelBlock; half += kWidth) {
          lanes_f r[8];
          for (int j = 0; j < 8; ++j) std::memcpy(&r[j], src + (half + j) * plane + i + w, sizeof(lanes_f));
          transpose8(r);
          for (int k = 0; k < 8; ++k) std::memcpy(row + (w + k) * s[2] + half, &r[k], sizeof(lanes_f));
        }
      for (; w < size[2]; ++w)
        for (int64_t j = 0; j < kChannelBlock; ++j) row[w * s[2] + j] = src[j * plane + i + w];
    }
}
#endif  // lanes

// Forward of one plane: y[od, oh, ow] for every output.
template <typename scalar_t, typename acc_t>
void forward_plane(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                   const Geometry& g, acc_t beta) {
#if defined(POOLSWAP_HAS_LANES)
  if constexpr (std::is_same<acc_t, float>::value) {
    SeparablePlan separable;
    if (plan_separable(g, separable)) return forward_separable(x, x_stride, y, y_stride, g, separable, beta);
    PaddedPlan padded;
    if (plan_padded(g, padded)) return forward_padded(x, x_stride, y, y_stride, g, padded, beta);
  }
#endif
  for (int64_t od = 0; od < g.out[0]; ++od) forward_rows<scalar_t, acc_t>(x, x_stride, y, y_stride, g, beta, od, 0, g.out[1]);
}

// How many planes forward_planes computes together for this geometry (1: one by one).
inline int64_t plane_group_size(const Geometry& g) {
#if defined(POOLSWAP_HAS_LANES)
  // Short rows: interleaved lanes, a task of whole lane groups with some 4096 inputs or more.
  if (interleave_fits(g)) {
    const int64_t plane = std::max<int64_t>(1, g.in[0] * g.in[1] * g.in[2]);
    return kWidth * std::min<int64_t>(8, std::max<int64_t>(1, 4096 / (kWidth * plane)));
  }
  SeparablePlan separable;
  // Rows of a tile's width and more: separable strips (per plane); shorter ones share padded tiles
  // (callgrind: the demo network's 8- and 4-wide rows take 1.25x to 1.5x the instructions in strips).
  if (plan_separable(g, separable) && g.out[2] >= kLanes) return 1;
  PaddedPlan plan;
  if (plan_padded(g, plan, kLanes)) return plan.planes;
#endif
  (void)g;
  return 1;
}

// Forward of planes 0 .. count - 1, all with the same beta: x_of(k) and y_of(k) are plane k's
// input and output. Short rows share padded buffers (plane_group_size(g) planes at a time).
template <typename scalar_t, typename acc_t, typename XOf, typename YOf>
void forward_planes(int64_t count, XOf&& x_of, const int64_t* x_stride, YOf&& y_of, const int64_t* y_stride,
                    const Geometry& g, acc_t beta) {
#if defined(POOLSWAP_HAS_LANES)
  if constexpr (std::is_same<acc_t, float>::value) {
    if (interleave_fits(g))
      return forward_interleaved<scalar_t>(count, x_of, x_stride, y_of, y_stride, g, [beta](int64_t) { return beta; });
    PaddedPlan plan;
    if (count > 1 && plane_group_size(g) > 1 && plan_padded(g, plan, count) && plan.planes > 1) {
      for (int64_t first = 0; first < count; first += plan.planes) {
        const int64_t n = std::min(plan.planes, count - first);
        const float* buffer =
            pad_planes<scalar_t>(n, [&](int64_t k) { return x_of(first + k); }, x_stride, g, plan);
        forward_tiles<scalar_t>(buffer, n, [&](int64_t k) { return y_of(first + k); }, y_stride, g, plan, beta);
      }
      return;
    }
  }
#endif
  for (int64_t k = 0; k < count; ++k) forward_plane<scalar_t, acc_t>(x_of(k), x_stride, y_of(k), y_stride, g, beta);
}

// Forward of planes 0 .. count - 1, plane k at temperature beta_of(k) (a beta per channel): short rows
// interleave as in forward_planes, with the same arithmetic; other planes go one by one.
template <typename scalar_t, typename acc_t, typename XOf, typename YOf, typename BetaOf>
void forward_planes_each(int64_t count, XOf&& x_of, const int64_t* x_stride, YOf&& y_of, const int64_t* y_stride,
                         const Geometry& g, BetaOf&& beta_of) {
#if defined(POOLSWAP_HAS_LANES)
  if constexpr (std::is_same<acc_t, float>::value) {
    if (interleave_fits(g)) return forward_interleaved<scalar_t>(count, x_of, x_stride, y_of, y_stride, g, beta_of);
  }
#endif
  for (int64_t k = 0; k < count; ++k)
    forward_plane<scalar_t, acc_t>(x_of(k), x_stride, y_of(k), y_stride, g, static_cast<acc_t>(beta_of(k)));
}

// Backward of one plane: grad_x is a zeroed, contiguous (D, H, W) buffer in
// acc_t; windows are visited in a fixed order, so the result is bitwise
// deterministic. Returns this plane's share of dL/dbeta.
template <typename scalar_t, typename acc_t>
double backward_plane(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                      acc_t* grad_x, const Geometry& g, acc_t beta) {
  double grad_beta = 0.0;
#if defined(POOLSWAP_HAS_LANES)
  constexpr bool use_lanes = std::is_same<acc_t, float>::value;
  if constexpr (use_lanes) {
    PaddedPlan padded;
    if (plan_padded(g, padded)) return backward_padded(grad_y, gy_stride, x, x_stride, grad_x, g, padded, beta);
  }
  const RowPlan plan = use_lanes ? plan_rows(g, x_stride) : RowPlan{};
  float grads[kLanes];
#endif
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const WindowRange rd = window_range(g, 0, od);
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      const WindowRange rh = window_range(g, 1, oh);
      const scalar_t* gyrow = grad_y + od * gy_stride[0] + oh * gy_stride[1];
      acc_t row_beta = 0;
      int64_t ow = 0;
      auto scalar_window = [&](int64_t o) {
        backward_window(gyrow + o * gy_stride[2], x, x_stride, grad_x, g, rd, rh, window_range(g, 2, o), beta, row_beta);
      };
#if defined(POOLSWAP_HAS_LANES)
      if constexpr (use_lanes) {
        for (; ow < plan.begin; ++ow) scalar_window(ow);
        lanes_f lane_beta = splat(0.0f);
        // One block of outputs ow0 + [lo, kLanes); windows of -inf are redone one by one.
        auto block = [&](int64_t ow0, int lo) {
          lanes_i active[2];
          lane_masks(lo, kLanes, active);
          for (int j = 0; j < kLanes; ++j) grads[j] = j < lo ? 0.0f : static_cast<float>(gyrow[(ow0 + j) * gy_stride[2]]);
          bool done = false;
          with_block_kind(plan.mode(g, ow0), plan.unit_w, [&](auto mode, auto unit_x) {
            done = backward_lanes<decltype(mode)::value, decltype(unit_x)::value>(x, x_stride, g, rd, rh, ow0, beta,
                                                                                 grads, active, grad_x, lane_beta);
          });
          if (!done)
            for (int j = lo; j < kLanes; ++j) scalar_window(ow0 + j);
        };
        for (; ow + kLanes <= plan.end; ow += kLanes) block(ow, 0);
        if (plan.has_last_block(ow)) {
          block(plan.end - kLanes, static_cast<int>(ow - (plan.end - kLanes)));
          ow = plan.end;
        }
        for (int j = 0; j < kWidth; ++j) row_beta += lane_beta[j];
      }
#endif
      for (; ow < g.out[2]; ++ow) scalar_window(ow);
      grad_beta += static_cast<double>(row_beta);
    }
  }
  return grad_beta;
}

#if defined(POOLSWAP_HAS_LANES)
// The interleaved backward under one shift per plane (backward_interleaved_dx's): dL/dx into weights'
// second half (its first holds e); returns the lanes that need backward_plane.
template <typename scalar_t>
inline lanes_i shared_shift_dx(const scalar_t* const* planes_x, const int64_t* x_stride, const scalar_t* const* planes_gy,
                               const int64_t* gy_stride, const Geometry& g, const int32_t* taps, const int32_t* first_tap,
                               const int32_t* first_window, const int32_t* windows, lanes_f b, float* data,
                               float* weights, float* stats, float* per_g) {
  const int64_t in_size = g.in[0] * g.in[1] * g.in[2], outputs = g.out[0] * g.out[1] * g.out[2];
  const lanes_f zero = splat(0.0f), one = splat(1.0f);
  const lanes_f mv = interleave_planes(planes_x, x_stride, g, data);
  lanes_i redo =
      interleaved_shared_shift(data, in_size, outputs, taps, first_tap, b, mv, weights, stats, stats + outputs * kWidth);
  const lanes_f m = interleaved_shift(mv);
  float* const per_a = stats;
  float* const per_c = stats + outputs * kWidth;
  // per window: a = g / s and c = a y'
  interleave_lanes(planes_gy, gy_stride, g.out, per_g);
  for (int64_t o = 0; o < outputs; ++o) {
    lanes_f gv, y, sv;
    std::memcpy(&gv, per_g + o * kWidth, sizeof(gv));
    std::memcpy(&y, per_a + o * kWidth, sizeof(y));
    std::memcpy(&sv, per_c + o * kWidth, sizeof(sv));
    const lanes_f a = gv / sv, c = a * (y - m);
    redo |= ~finite_lanes(a);
    std::memcpy(per_a + o * kWidth, &a, sizeof(a));
    std::memcpy(per_c + o * kWidth, &c, sizeof(c));
  }
  // per input: A and B over the windows holding it, then dL/dx (into e x's place)
  float* const dx_at = weights + in_size * kWidth;
  for (int64_t i = 0; i < in_size; ++i) {
    lanes_f u = zero, c = zero;
    for (int32_t k = first_window[i]; k < first_window[i + 1]; ++k) {
      const int64_t at = static_cast<int64_t>(windows[k]) * kWidth;
      lanes_f pa, pc;
      std::memcpy(&pa, per_a + at, sizeof(pa));
      std::memcpy(&pc, per_c + at, sizeof(pc));
      u += pa, c += pc;
    }
    lanes_f v, e;
    std::memcpy(&v, data + i * kWidth, sizeof(v));
    std::memcpy(&e, weights + i * kWidth, sizeof(e));
    const lanes_f dx = outside_or_flushed(e, u, c) ? zero : e * ((one + b * (v - m)) * u - b * c);
    std::memcpy(dx_at + i * kWidth, &dx, sizeof(dx));
  }
  return redo;
}

// dL/dx of interleaved planes (rows shorter than a block) where beta takes no gradient, kWidth planes at a
// time under the forward's one shift per plane: dL/dx_i = e_i ((1 + beta x'_i) A_i - beta B_i) as in the
// separable backward, with A and B summed over each window's taps (windows that share no input: each
// under its own shift, disjoint_windows_dx). gy_of(k) and gx_of(k) are plane k's
// upstream gradient and its gradient (written, not added). A plane whose shift fails the trust test, or
// whose g / s is not finite somewhere, takes backward_plane alone.
template <typename scalar_t, typename XOf, typename GyOf, typename GxOf, typename BetaOf>
void backward_interleaved_dx(int64_t count, XOf&& x_of, const int64_t* x_stride, GyOf&& gy_of,
                             const int64_t* gy_stride, GxOf&& gx_of, const int64_t* gx_stride, const Geometry& g,
                             BetaOf&& beta_of) {
  const int64_t in_size = g.in[0] * g.in[1] * g.in[2], outputs = g.out[0] * g.out[1] * g.out[2];
  thread_local TapList list;
  list.build(g);
  const int32_t* taps = list.taps.data();
  const int32_t* first_tap = list.first.data();
  const bool disjoint = windows_disjoint(g);
  thread_local InputWindows held;  // the shared shift's gather (disjoint windows scatter per window)
  if (!disjoint) held.build(list, in_size);
  const int32_t* windows = held.windows.data();
  const int32_t* first_window = held.first.data();
  thread_local std::vector<float> alone;  // one plane's gradient, where a lane is redone
  for (int64_t first = 0; first < count; first += kWidth) {
    const int n = static_cast<int>(std::min<int64_t>(kWidth, count - first));
    const scalar_t* planes_x[kWidth];
    const scalar_t* planes_gy[kWidth];
    scalar_t* planes_gx[kWidth];
    lanes_f b;
    for (int lane = 0; lane < kWidth; ++lane) {
      const int64_t k = lane_plane(first, n, lane);
      planes_x[lane] = x_of(k);
      planes_gy[lane] = gy_of(k);
      planes_gx[lane] = gx_of(k);
      b[lane] = static_cast<float>(beta_of(k));
    }
    // fetched per group: a redone plane's backward_plane may reallocate the scratch buffers
    float* const data = interleaved_buffer(0, in_size * kWidth);
    float* const weights = interleaved_buffer(1, 2 * in_size * kWidth);  // e, e x (then dL/dx)
    float* const stats = interleaved_buffer(2, 2 * outputs * kWidth);    // y then a, sum e then a y'
    float* const per_g = interleaved_buffer(3, outputs * kWidth);
    float* const dx_at = weights + in_size * kWidth;
    lanes_i redo;
    if (disjoint) {  // each exponential once under per-window shifts
      interleave_lanes(planes_x, x_stride, g.in, data);
      interleave_lanes(planes_gy, gy_stride, g.out, per_g);
      redo = disjoint_windows_dx(data, in_size, outputs, taps, first_tap, b, per_g, dx_at);
    } else {
      redo = shared_shift_dx(planes_x, x_stride, planes_gy, gy_stride, g, taps, first_tap, first_window, windows, b,
                             data, weights, stats, per_g);
    }
    deinterleave_lanes(dx_at, g.in, n, planes_gx, gx_stride);
    for (int lane = 0; lane < n; ++lane) {
      if (!redo[lane]) continue;
      alone.assign(static_cast<size_t>(in_size), 0.0f);
      backward_plane<scalar_t, float>(planes_gy[lane], gy_stride, planes_x[lane], x_stride, alone.data(), g, b[lane]);
      store_plane(alone.data(), g.in, planes_gx[lane], gx_stride);
    }
  }
}
#endif  // lanes

// dL/dx of one plane where beta takes no gradient (grad_x as for backward_plane): the separable backward
// where its shape and the strips' trust test allow, else backward_plane.
template <typename scalar_t, typename acc_t>
void backward_plane_dx(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x, const int64_t* x_stride,
                       acc_t* grad_x, const Geometry& g, acc_t beta) {
#if defined(POOLSWAP_HAS_LANES)
  if constexpr (std::is_same<acc_t, float>::value) {
    SeparablePlan plan;
    if (backward_strips_fit(g, plan) && backward_separable(grad_y, gy_stride, x, x_stride, grad_x, g, plan, beta))
      return;
  }
#endif
  backward_plane(grad_y, gy_stride, x, x_stride, grad_x, g, beta);
}

}  // namespace poolswap
