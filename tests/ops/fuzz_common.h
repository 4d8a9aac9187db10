// Shared by the C++ fuzzers of tests/ops: random pooling geometries and a
// float64 brute force of the SoftPool contract for one dense plane.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "softpool_kernel.h"

namespace fuzz {

using poolswap::Geometry;
using poolswap::WindowRange;

inline int64_t pooled_size(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t numerator = size + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (numerator >= 0 ? numerator / s : -((-numerator + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= size + p) --out;
  return out;
}

inline int draw(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// A random geometry of 1-3 spatial dims (kernel 1-4, stride 1-3, dilation 1-2,
// padding up to half the kernel, ceil_mode or not), rows up to `max_row` long.
// False when the op would reject it (an empty output, or a window of padding only).
inline bool random_geometry(std::mt19937& rng, int max_row, Geometry* g) {
  const int nd = draw(rng, 1, 3);
  const bool ceil_mode = draw(rng, 0, 1);
  for (int i = 0; i < 3; ++i) {
    if (i < 3 - nd) {
      g->in[i] = g->out[i] = g->kernel[i] = g->stride[i] = g->dilation[i] = 1;
      g->pad[i] = 0;
      continue;
    }
    g->kernel[i] = draw(rng, 1, 4);
    g->stride[i] = draw(rng, 1, 3);
    g->dilation[i] = draw(rng, 1, 2);
    g->pad[i] = draw(rng, 0, static_cast<int>(g->kernel[i] / 2));
    g->in[i] = draw(rng, 1, i == 2 ? max_row : 9);
    g->out[i] = pooled_size(g->in[i], g->kernel[i], g->stride[i], g->pad[i], g->dilation[i], ceil_mode);
    if (g->out[i] < 1) return false;
    for (int64_t o = 0; o < g->out[i]; ++o) {
      const WindowRange r = poolswap::window_range(*g, i, o);
      if (r.lo >= r.hi) return false;
    }
  }
  return true;
}

// "in 1,5,9 out 1,3,5 kernel ... " for a mismatch report.
inline std::string describe(const Geometry& g) {
  std::string text;
  const std::pair<const char*, const int64_t*> fields[] = {{"in", g.in},         {"out", g.out},
                                                           {"kernel", g.kernel}, {"stride", g.stride},
                                                           {"pad", g.pad},       {"dilation", g.dilation}};
  for (const auto& field : fields) {
    text += std::string(text.empty() ? "" : " ") + field.first + " ";
    for (int i = 0; i < 3; ++i) text += std::to_string(field.second[i]) + (i < 2 ? "," : "");
  }
  return text;
}

struct Reference {
  std::vector<double> y, grad_x;  // dense plane order
  double grad_beta = 0.0;
};

// The contract, element by element, in float64: x is read with strides xs
// (d, h, w), gy is the dense output gradient of the plane.
template <typename scalar_t>
Reference brute_force(const std::vector<scalar_t>& x, const int64_t* xs, const std::vector<scalar_t>& gy,
                      const Geometry& g, double beta) {
  Reference r;
  r.y.assign(static_cast<size_t>(g.out[0] * g.out[1] * g.out[2]), 0.0);
  r.grad_x.assign(static_cast<size_t>(g.in[0] * g.in[1] * g.in[2]), 0.0);
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh = 0; oh < g.out[1]; ++oh)
      for (int64_t ow = 0; ow < g.out[2]; ++ow) {
        const int64_t o[3] = {od, oh, ow};
        std::vector<std::pair<int64_t, double>> window;  // (dense input index, value)
        double m = -INFINITY;
        for (int64_t a = 0; a < g.kernel[0]; ++a)
          for (int64_t b = 0; b < g.kernel[1]; ++b)
            for (int64_t c = 0; c < g.kernel[2]; ++c) {
              const int64_t k[3] = {a, b, c};
              int64_t pos[3];
              bool inside = true;
              for (int i = 0; i < 3; ++i) {
                pos[i] = o[i] * g.stride[i] - g.pad[i] + k[i] * g.dilation[i];
                inside = inside && pos[i] >= 0 && pos[i] < g.in[i];
              }
              if (!inside) continue;
              const double v = x[static_cast<size_t>(pos[0] * xs[0] + pos[1] * xs[1] + pos[2] * xs[2])];
              window.emplace_back((pos[0] * g.in[1] + pos[1]) * g.in[2] + pos[2], v);
              m = std::max(m, v);
            }
        double s = 0.0, t = 0.0;
        for (const auto& e : window) {
          s += std::exp(beta * (e.second - m));
          t += std::exp(beta * (e.second - m)) * e.second;
        }
        const int64_t oi = (od * g.out[1] + oh) * g.out[2] + ow;
        const double y = t / s;
        r.y[static_cast<size_t>(oi)] = y;
        for (const auto& e : window) {
          const double w = std::exp(beta * (e.second - m)) / s;
          r.grad_x[static_cast<size_t>(e.first)] += gy[static_cast<size_t>(oi)] * w * (1.0 + beta * (e.second - y));
          r.grad_beta += gy[static_cast<size_t>(oi)] * w * (e.second - y) * (e.second - y);
        }
      }
  return r;
}

}  // namespace fuzz
