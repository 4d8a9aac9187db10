// SoftPool's attributes checked and turned into a Geometry: the one C++ home
// of these rules, shared by the PyTorch op (torch_problem.h) and the ONNX
// Runtime library (ort/softpool_ort.cpp). poolswap/kernels/_attribute_rules.py
// holds the same rules for Python (the ONNX loader and the function body's
// path); tests/export/test_attribute_rules.py holds both to one table.
//
// Rules (every attribute is checked before any size arithmetic):
//   kernel_shape  1, 2 or 3 values, each in [1, kMaxAttribute]
//   strides       one per kernel dim, each in [1, kMaxAttribute]
//   dilations     one per kernel dim, each in [1, kMaxAttribute]
//   pads          two per kernel dim (begins then ends), each in [0, kMaxAttribute]
//   ceil_mode     0 or 1
//   beta          finite and > 0
//   betas         when given: one finite value > 0 per channel of the input
// and, once the input is known, every spatial dim has at least one window and
// no window covers padding only. With every value below 2^31 and inputs below
// 2^62, no product or sum here overflows 64 bits.
//
// Errors are std::invalid_argument whose message starts with the attribute's
// name; the front-ends add the node (ORT) or the op's name (PyTorch).
// Plain C++: no PyTorch, no ONNX Runtime.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "softpool_kernel.h"

namespace poolswap {

// The largest kernel, stride, dilation or pad value: 2^31 - 1, as an int32 holds.
constexpr int64_t kMaxAttribute = 2147483647;
// The largest spatial input dim the geometry accepts (sums of it and of two
// pads stay far below 2^63).
constexpr int64_t kMaxSpatial = int64_t(1) << 40;

template <typename T>
inline std::string join_values(const std::vector<T>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

[[noreturn]] inline void refuse(const std::string& message) { throw std::invalid_argument(message); }

inline void check_range(const char* name, const std::vector<int64_t>& values, int64_t low) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < low || values[i] > kMaxAttribute) {
      refuse(std::string(name) + " " + join_values(values) + ": value " + std::to_string(values[i]) + " at index " +
             std::to_string(i) + " is out of range; each must be in [" + std::to_string(low) + ", " +
             std::to_string(kMaxAttribute) + "]");
    }
  }
}

// The geometry attributes of one node or call: counts first, then ranges.
// `pads` holds begins then ends (2 * kernel.size() values).
inline void check_geometry_attributes(const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                                      const std::vector<int64_t>& pads, const std::vector<int64_t>& dilations,
                                      int64_t ceil_mode) {
  if (kernel.empty() || kernel.size() > 3) {
    refuse("kernel_shape " + join_values(kernel) + ": needs 1, 2 or 3 values (one per spatial dim)");
  }
  const size_t nd = kernel.size();
  if (strides.size() != nd) {
    refuse("strides " + join_values(strides) + ": needs " + std::to_string(nd) + " values, as kernel_shape " +
           join_values(kernel));
  }
  if (dilations.size() != nd) {
    refuse("dilations " + join_values(dilations) + ": needs " + std::to_string(nd) + " values, as kernel_shape " +
           join_values(kernel));
  }
  if (pads.size() != 2 * nd) {
    refuse("pads " + join_values(pads) + ": needs " + std::to_string(2 * nd) +
           " values (begins then ends) for kernel_shape " + join_values(kernel));
  }
  check_range("kernel_shape", kernel, 1);
  check_range("strides", strides, 1);
  check_range("dilations", dilations, 1);
  check_range("pads", pads, 0);
  if (ceil_mode != 0 && ceil_mode != 1) refuse("ceil_mode " + std::to_string(ceil_mode) + ": must be 0 or 1");
}

inline bool valid_beta(double beta) { return beta > 0 && std::isfinite(beta); }

inline void check_beta(double beta) {
  if (!valid_beta(beta)) {
    std::ostringstream s;
    s << "beta " << beta << ": must be finite and > 0";
    refuse(s.str());
  }
}

// Per-channel temperatures: every value finite and > 0 (their count is checked
// against the input's channels by check_betas_count).
inline void check_betas(const std::vector<float>& betas) {
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!valid_beta(betas[i])) {
      std::ostringstream s;
      s << "betas: value " << betas[i] << " at index " << i << " must be finite and > 0";
      refuse(s.str());
    }
  }
}

inline void check_betas_count(size_t count, int64_t channels) {
  if (count != 0 && static_cast<int64_t>(count) != channels) {
    refuse("betas holds " + std::to_string(count) + " values but the input has " + std::to_string(channels) +
           " channels; betas needs one value per channel");
  }
}

// Geometry of spatial dim `i` (0..2 of the padded-to-3 view) from checked
// attributes and an input size: the output size, and the checks that need the
// input. Attribute values are < 2^31 and in < 2^40, so nothing overflows.
inline void fill_geometry_dim(Geometry& g, int i, int src, int64_t in, const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
                              const std::vector<int64_t>& dilations, bool ceil_mode) {
  const size_t nd = kernel.size();
  const int64_t k = kernel[src], s = strides[src], d = dilations[src];
  const int64_t pad_begin = pads[src], pad_end = pads[nd + src];
  if (in < 1 || in > kMaxSpatial) {
    refuse("input size " + std::to_string(in) + " in spatial dim " + std::to_string(src) + ": must be in [1, " +
           std::to_string(kMaxSpatial) + "]");
  }
  g.in[i] = in;
  g.kernel[i] = k;
  g.stride[i] = s;
  g.pad[i] = pad_begin;
  g.dilation[i] = d;
  const int64_t extent = d * (k - 1) + 1;  // < 2^62
  const int64_t out = pooled_size(in, k, s, pad_begin, pad_end, d, ceil_mode);
  if (out < 1) {
    refuse("kernel_shape " + join_values(kernel) + " (with dilations " + join_values(dilations) + ": extent " +
           std::to_string(extent) + ") is larger than the padded input " + std::to_string(in) + " + " +
           std::to_string(pad_begin) + " + " + std::to_string(pad_end) + " in spatial dim " + std::to_string(src));
  }
  g.out[i] = out;
  // Every window must hold an input position (padding is absent, not zero). Of the
  // windows that start in the begin padding, window o's first tap at or after 0 is
  // p(o) = (o s - pad_begin) mod d, tap number k_lo(o) (non-increasing in o). With
  // d <= in, p < in always: window 0 is the worst. With d > in, p(o + 1) follows
  // from p(o) alone, so once in + 1 windows kept p < in a value repeated and the
  // cycle holds for every later window: at most in + 1 windows need a look.
  const int64_t starting_in_pad = pad_begin / s + 1;
  const int64_t last = std::min(out, std::min(starting_in_pad, d <= in ? int64_t(1) : in + 1));
  for (int64_t o = 0; o < last; ++o) {
    const WindowRange r = window_range(g, i, o);
    if (r.start >= 0) break;
    if (r.lo >= r.hi) {
      refuse("pads " + join_values(pads) + ": output window " + std::to_string(o) + " of spatial dim " +
             std::to_string(src) + " covers only padding (input " + std::to_string(in) + ", kernel " +
             std::to_string(k) + ", stride " + std::to_string(s) + ", dilation " + std::to_string(d) + ")");
    }
  }
  // A window that starts inside the input holds its start; past the input's end it holds nothing
  // (only the last window can start there: ceil_mode's rule already drops such windows).
  const int64_t last_start = (out - 1) * s - pad_begin;
  if (last_start >= in) {
    refuse("pads " + join_values(pads) + ": output window " + std::to_string(out - 1) + " of spatial dim " +
           std::to_string(src) + " covers only padding (input " + std::to_string(in) + ", kernel " +
           std::to_string(k) + ", stride " + std::to_string(s) + ", dilation " + std::to_string(d) + ")");
  }
  // One window: the stride moves nothing, so it is bounded by the padded input (the
  // kernels size their buffers by it).
  if (out == 1) g.stride[i] = std::min(s, std::max<int64_t>(1, in + pad_begin));
}

// The full geometry of an N-d problem (N = kernel.size()) seen as 3 dims, for
// the spatial sizes `spatial` (N values). Attributes must have passed
// check_geometry_attributes.
inline Geometry make_geometry(const std::vector<int64_t>& spatial, const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
                              const std::vector<int64_t>& dilations, bool ceil_mode) {
  const int nd = static_cast<int>(kernel.size());
  Geometry g;
  for (int i = 0; i < 3; ++i) {
    const int src = i - (3 - nd);
    if (src < 0) {
      g.in[i] = g.out[i] = g.kernel[i] = g.stride[i] = g.dilation[i] = 1;
      g.pad[i] = 0;
      continue;
    }
    fill_geometry_dim(g, i, src, spatial[src], kernel, strides, pads, dilations, ceil_mode);
  }
  return g;
}

// Elements of `shape` (batch, channels, outputs...), or a refusal when they overflow 63 bits.
inline int64_t checked_elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t v : shape) {
    if (v < 0 || (v > 0 && n > std::numeric_limits<int64_t>::max() / v)) {
      refuse("output shape " + join_values(shape) + ": too many elements");
    }
    n *= v;
  }
  return n;
}

}  // namespace poolswap
