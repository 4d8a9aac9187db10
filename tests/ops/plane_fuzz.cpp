// Random geometries through the CPU plane loops of softpool_cpu.h, against a
// float64 brute force of the contract, for a build with AddressSanitizer:
// every vector path (shared-exponent tiles and their fallback, planes packed
// side by side, padded planes, row blocks and their last block) must stay
// inside its buffers and agree with the contract.
//
//   plane_fuzz SEED CASES   prints "cases=N bad=M" and exits 1 when M > 0
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "softpool_cpu.h"

using poolswap::Geometry;
using poolswap::WindowRange;

namespace {

int64_t pooled_size(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t numerator = size + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (numerator >= 0 ? numerator / s : -((-numerator + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= size + p) --out;
  return out;
}

struct Reference {
  std::vector<double> y, grad_x;
  double grad_beta = 0.0;
};

Reference brute_force(const std::vector<float>& x, const int64_t* xs, const std::vector<float>& gy,
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

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 rng(argc > 1 ? std::atoi(argv[1]) : 1);
  const int cases = argc > 2 ? std::atoi(argv[2]) : 5000;
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::normal_distribution<float> normal;
  int tried = 0, bad = 0;
  while (tried < cases) {
    Geometry g;
    const int nd = draw(1, 3);
    const bool ceil_mode = draw(0, 1);
    bool valid = true;
    for (int i = 0; i < 3; ++i) {
      if (i < 3 - nd) {
        g.in[i] = g.out[i] = g.kernel[i] = g.stride[i] = g.dilation[i] = 1;
        g.pad[i] = 0;
        continue;
      }
      g.kernel[i] = draw(1, 4);
      g.stride[i] = draw(1, 3);
      g.dilation[i] = draw(1, 2);
      g.pad[i] = draw(0, static_cast<int>(g.kernel[i] / 2));
      g.in[i] = draw(1, i == 2 ? 80 : 9);  // long rows reach the row blocks
      g.out[i] = pooled_size(g.in[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i], ceil_mode);
      valid = valid && g.out[i] >= 1;
      for (int64_t o = 0; valid && o < g.out[i]; ++o) {
        const WindowRange r = poolswap::window_range(g, i, o);
        valid = r.lo < r.hi;  // the op rejects windows made of padding only
      }
    }
    if (!valid) continue;
    ++tried;
    const int64_t step = draw(1, 2);  // contiguous, or every other element along W
    const int64_t xs[3] = {g.in[1] * g.in[2] * step, g.in[2] * step, step};
    // Several planes of one temperature: short rows share the forward's padded buffers.
    const int64_t planes = draw(1, 5), x_plane = g.in[0] * xs[0];
    std::vector<float> x(static_cast<size_t>(planes * x_plane));
    // Ties too; a scale of 40 spreads a tile's values past what one shared shift can hold.
    const float scale = draw(0, 2) == 0 ? 40.0f : 1.0f;
    for (float& v : x) v = scale * (draw(0, 1) ? normal(rng) : static_cast<float>(draw(-2, 2)));
    const int64_t outputs = g.out[0] * g.out[1] * g.out[2];
    const int64_t ys[3] = {g.out[1] * g.out[2], g.out[2], 1};
    std::vector<float> y(static_cast<size_t>(planes * outputs));
    const float beta = draw(0, 1) ? 1.0f : 2.5f;
    poolswap::forward_planes<float, float>(
        planes, [&](int64_t k) { return x.data() + k * x_plane; }, xs,
        [&](int64_t k) { return y.data() + k * outputs; }, ys, g, beta);
    double err = 0.0;
    for (int64_t k = 0; k < planes; ++k) {
      const std::vector<float> xk(x.begin() + k * x_plane, x.begin() + (k + 1) * x_plane);
      std::vector<float> gy(static_cast<size_t>(outputs));
      for (float& v : gy) v = normal(rng);
      std::vector<float> grad_x(static_cast<size_t>(g.in[0] * g.in[1] * g.in[2]), 0.0f);
      const double grad_beta =
          poolswap::backward_plane<float, float>(gy.data(), ys, xk.data(), xs, grad_x.data(), g, beta);
      const Reference r = brute_force(xk, xs, gy, g, beta);
      err = std::max(err, std::fabs(grad_beta - r.grad_beta) / (scale * scale + std::fabs(r.grad_beta)));
      for (int64_t i = 0; i < outputs; ++i)
        err = std::max(err, std::fabs(y[static_cast<size_t>(k * outputs + i)] - r.y[static_cast<size_t>(i)]) / scale);
      for (size_t i = 0; i < grad_x.size(); ++i) err = std::max(err, std::fabs(grad_x[i] - r.grad_x[i]) / scale);
    }
    if (err > 1e-4 && ++bad <= 5) {
      std::printf("mismatch %.3g: in %ld,%ld,%ld kernel %ld,%ld,%ld stride %ld,%ld,%ld pad %ld,%ld,%ld "
                  "dilation %ld,%ld,%ld ceil_mode %d step %ld planes %ld\n",
                  err, (long)g.in[0], (long)g.in[1], (long)g.in[2], (long)g.kernel[0], (long)g.kernel[1],
                  (long)g.kernel[2], (long)g.stride[0], (long)g.stride[1], (long)g.stride[2], (long)g.pad[0],
                  (long)g.pad[1], (long)g.pad[2], (long)g.dilation[0], (long)g.dilation[1], (long)g.dilation[2],
                  ceil_mode, (long)step, (long)planes);
    }
  }
  std::printf("cases=%d bad=%d\n", tried, bad);
  return bad == 0 ? 0 : 1;
}
