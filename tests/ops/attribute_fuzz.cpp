// Node attributes drawn from edge values (0, -1, 1, 2^31 - 1, 2^31, 2^62,
// 2^63 - 1, huge pads, lists of the wrong length, ceil_mode outside 0/1) through
// the attribute rules and geometry of softpool_attributes.h (what the ONNX Runtime
// library and the PyTorch op run before any size arithmetic), for a build with
// AddressSanitizer and UndefinedBehaviorSanitizer: no overflow, no exception other
// than std::invalid_argument, and
//   * an accepted geometry with a small output runs through the CPU plane loops
//     (forward and backward), against a float64 brute force that walks the input
//     positions of each window from the raw attributes;
//   * a refused geometry of small, well-formed values must really be unusable:
//     no window, or a window that covers padding only (brute force).
//
//   attribute_fuzz SEED CASES   prints "cases=N accepted=A ran=R edge_values_ran=E bad=M",
//                               exits 1 when M > 0
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "softpool_attributes.h"
#include "softpool_cpu.h"

namespace {

std::mt19937_64 rng;

int64_t draw(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// A value for an attribute whose smallest valid value is `low`: mostly small, often an edge.
int64_t value(int64_t low) {
  static const int64_t edges[] = {0, -1, 1, 2, int64_t(2147483647), int64_t(2147483648), int64_t(1) << 40,
                                  int64_t(1) << 62, std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(), int64_t(2147483646), 17, 100};
  if (draw(0, 9) < 7) return draw(low, low + 3);
  return edges[draw(0, sizeof(edges) / sizeof(edges[0]) - 1)];
}

std::vector<int64_t> values(size_t n, int64_t low) {
  if (draw(0, 19) == 0) n = static_cast<size_t>(draw(0, 4));  // a list of the wrong length
  std::vector<int64_t> v(n);
  for (auto& x : v) x = value(low);
  return v;
}

// y and grad_x of one dense plane by brute force: window o of dim i holds the input
// positions p with p = o s - pad_begin + k d for some k in [0, K).
struct Brute {
  std::vector<double> y, gx;
  bool empty_window = false;
};

bool in_window(int64_t p, int64_t o, int64_t k, int64_t s, int64_t pb, int64_t d) {
  const int64_t off = p - (o * s - pb);  // small values only (checked by the caller)
  return off >= 0 && off % d == 0 && off / d < k;
}

Brute brute(const std::vector<float>& x, const std::vector<float>& gy, const int64_t in[3], const int64_t out[3],
            const int64_t k[3], const int64_t s[3], const int64_t pb[3], const int64_t d[3], double beta) {
  Brute r;
  r.y.assign(static_cast<size_t>(out[0] * out[1] * out[2]), 0.0);
  r.gx.assign(x.size(), 0.0);
  for (int64_t a = 0; a < out[0]; ++a)
    for (int64_t b = 0; b < out[1]; ++b)
      for (int64_t c = 0; c < out[2]; ++c) {
        std::vector<std::pair<int64_t, double>> w;
        double m = -INFINITY;
        for (int64_t p0 = 0; p0 < in[0]; ++p0) {
          if (!in_window(p0, a, k[0], s[0], pb[0], d[0])) continue;
          for (int64_t p1 = 0; p1 < in[1]; ++p1) {
            if (!in_window(p1, b, k[1], s[1], pb[1], d[1])) continue;
            for (int64_t p2 = 0; p2 < in[2]; ++p2) {
              if (!in_window(p2, c, k[2], s[2], pb[2], d[2])) continue;
              const int64_t idx = (p0 * in[1] + p1) * in[2] + p2;
              w.emplace_back(idx, x[static_cast<size_t>(idx)]);
              m = std::max(m, static_cast<double>(x[static_cast<size_t>(idx)]));
            }
          }
        }
        if (w.empty()) {
          r.empty_window = true;
          continue;
        }
        double sum = 0, t = 0;
        for (auto& e : w) sum += std::exp(beta * (e.second - m)), t += std::exp(beta * (e.second - m)) * e.second;
        const int64_t oi = (a * out[1] + b) * out[2] + c;
        const double y = t / sum;
        r.y[static_cast<size_t>(oi)] = y;
        for (auto& e : w)
          r.gx[static_cast<size_t>(e.first)] +=
              gy[static_cast<size_t>(oi)] * std::exp(beta * (e.second - m)) / sum * (1 + beta * (e.second - y));
      }
  return r;
}

bool small(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x < 0 || x > 64) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  rng.seed(argc > 1 ? std::atoi(argv[1]) : 1);
  const int cases = argc > 2 ? std::atoi(argv[2]) : 20000;
  std::normal_distribution<float> normal;
  int accepted = 0, ran = 0, edgy = 0, bad = 0;
  auto fail = [&](const std::string& what) {
    if (++bad <= 5) std::printf("bad: %s\n", what.c_str());
  };
  for (int n = 0; n < cases; ++n) {
    const size_t nd = static_cast<size_t>(draw(1, 3));
    std::vector<int64_t> kernel = values(nd, 1), strides = values(nd, 1), dilations = values(nd, 1);
    std::vector<int64_t> pads = values(2 * nd, 0);
    const int64_t ceil_mode = draw(0, 9) == 0 ? value(0) : draw(0, 1);
    std::vector<int64_t> spatial(kernel.size());
    for (auto& v : spatial) v = draw(1, 12);
    const std::string text = "kernel " + poolswap::join_values(kernel) + " strides " + poolswap::join_values(strides) +
                             " pads " + poolswap::join_values(pads) + " dilations " +
                             poolswap::join_values(dilations) + " ceil " + std::to_string(ceil_mode) + " input " +
                             poolswap::join_values(spatial);
    poolswap::Geometry g;
    bool ok = true;
    try {
      poolswap::check_geometry_attributes(kernel, strides, pads, dilations, ceil_mode);
      g = poolswap::make_geometry(spatial, kernel, strides, pads, dilations, ceil_mode == 1);
    } catch (const std::invalid_argument&) {
      ok = false;
    } catch (const std::exception& e) {
      fail(text + ": threw " + e.what());
      continue;
    }
    // Independent judgement where the values are small enough to enumerate.
    const bool well_formed = kernel.size() == nd && strides.size() == nd && dilations.size() == nd &&
                             pads.size() == 2 * nd && (ceil_mode == 0 || ceil_mode == 1) && small(kernel) &&
                             small(strides) && small(dilations) && small(pads);
    if (!ok && !well_formed) continue;
    int64_t in[3], out[3], k[3], s[3], pb[3], d[3];
    bool brute_ok = true;
    for (int i = 0; i < 3; ++i) {
      const int src = i - (3 - static_cast<int>(nd));
      if (src < 0) {
        in[i] = out[i] = k[i] = s[i] = d[i] = 1, pb[i] = 0;
        continue;
      }
      in[i] = spatial[src], k[i] = kernel[src], s[i] = strides[src], pb[i] = pads[src], d[i] = dilations[src];
      if (k[i] < 1 || s[i] < 1 || d[i] < 1) {
        brute_ok = false;
        out[i] = 1;
        continue;
      }
      out[i] = ok ? g.out[i]
                  : poolswap::pooled_size(in[i], k[i], s[i], pb[i], pads[nd + src], d[i], ceil_mode == 1);
      if (out[i] < 1) brute_ok = false;
    }
    if (ok) ++accepted;
    const int64_t outputs = out[0] * out[1] * out[2];
    if (!ok) {  // refused a well-formed, small geometry: it must have no window or an empty one
      if (brute_ok) {
        std::vector<float> x(static_cast<size_t>(in[0] * in[1] * in[2]), 0.0f), gy(static_cast<size_t>(outputs), 0.0f);
        if (!brute(x, gy, in, out, k, s, pb, d, 1.0).empty_window) fail(text + ": refused but every window holds input");
      }
      continue;
    }
    if (outputs > 4096) continue;  // accepted, but too large to run here (huge pads)
    ++ran;
    if (!well_formed) ++edgy;  // the kernels ran with edge values (huge kernel, stride, dilation or pads)
    const int64_t planes = draw(1, 3), plane = in[0] * in[1] * in[2];
    std::vector<float> x(static_cast<size_t>(planes * plane)), y(static_cast<size_t>(planes * outputs));
    for (float& v : x) v = normal(rng);
    const int64_t xs[3] = {in[1] * in[2], in[2], 1}, ys[3] = {out[1] * out[2], out[2], 1};
    const float beta = draw(0, 1) ? 1.0f : 2.5f;
    poolswap::forward_planes<float, float>(
        planes, [&](int64_t p) { return x.data() + p * plane; }, xs, [&](int64_t p) { return y.data() + p * outputs; },
        ys, g, beta);
    double err = 0;
    for (int64_t p = 0; p < planes; ++p) {
      const std::vector<float> xp(x.begin() + p * plane, x.begin() + (p + 1) * plane);
      std::vector<float> gy(static_cast<size_t>(outputs));
      for (float& v : gy) v = normal(rng);
      std::vector<float> gx(static_cast<size_t>(plane), 0.0f);
      poolswap::backward_plane<float, float>(gy.data(), ys, xp.data(), xs, gx.data(), g, beta);
      const Brute r = brute(xp, gy, in, out, k, s, pb, d, beta);
      if (r.empty_window) fail(text + ": accepted with a window of padding only");
      for (int64_t i = 0; i < outputs; ++i)
        err = std::max(err, std::fabs(y[static_cast<size_t>(p * outputs + i)] - r.y[static_cast<size_t>(i)]));
      for (int64_t i = 0; i < plane; ++i) err = std::max(err, std::fabs(gx[static_cast<size_t>(i)] - r.gx[static_cast<size_t>(i)]));
    }
    if (err > 1e-4) fail(text + ": mismatch " + std::to_string(err));
  }
  std::printf("cases=%d accepted=%d ran=%d edge_values_ran=%d bad=%d\n", cases, accepted, ran, edgy, bad);
  return bad == 0 ? 0 : 1;
}
