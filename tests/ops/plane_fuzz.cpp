// Random geometries through the CPU plane loops of softpool_cpu.h, against a
// float64 brute force of the contract, for a build with AddressSanitizer:
// every vector path (shared-exponent tiles and their fallback, planes packed
// side by side, padded planes, row blocks and their last block, separable
// strips forward and backward, channels-last strips forward and backward, the
// interleaved planes' dL/dx) must stay inside its buffers and agree with the
// contract.
//
//   plane_fuzz SEED CASES   prints "cases=N bad=M" and exits 1 when M > 0
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "fuzz_common.h"
#include "softpool_cpu.h"

using poolswap::Geometry;

// The larger of two errors, a NaN error (a NaN or unwritten output; the inputs here are finite) the worst.
static double worst(double err, double e) { return std::isnan(e) ? INFINITY : std::max(err, e); }

int main(int argc, char** argv) {
  std::mt19937 rng(argc > 1 ? std::atoi(argv[1]) : 1);
  const int cases = argc > 2 ? std::atoi(argv[2]) : 5000;
  auto draw = [&](int lo, int hi) { return fuzz::draw(rng, lo, hi); };
  std::normal_distribution<float> normal;
  int tried = 0, bad = 0, interleaved = 0, channels_last_backward = 0;
  while (tried < cases) {
    Geometry g;
    if (!fuzz::random_geometry(rng, 80, &g)) continue;  // long rows reach the row blocks
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
    std::vector<std::vector<float>> gys;
    std::vector<fuzz::Reference> refs;
    for (int64_t k = 0; k < planes; ++k) {
      const std::vector<float> xk(x.begin() + k * x_plane, x.begin() + (k + 1) * x_plane);
      std::vector<float> gy(static_cast<size_t>(outputs));
      for (float& v : gy) v = normal(rng);
      gys.push_back(gy);
      std::vector<float> grad_x(static_cast<size_t>(g.in[0] * g.in[1] * g.in[2]), 0.0f);
      const double grad_beta =
          poolswap::backward_plane<float, float>(gy.data(), ys, xk.data(), xs, grad_x.data(), g, beta);
      const fuzz::Reference r = fuzz::brute_force(xk, xs, gy, g, beta);
      err = worst(err, std::fabs(grad_beta - r.grad_beta) / (scale * scale + std::fabs(r.grad_beta)));
      for (int64_t i = 0; i < outputs; ++i)
        err = worst(err, std::fabs(y[static_cast<size_t>(k * outputs + i)] - r.y[static_cast<size_t>(i)]) / scale);
      for (size_t i = 0; i < grad_x.size(); ++i) err = worst(err, std::fabs(grad_x[i] - r.grad_x[i]) / scale);
      // dL/dx alone (a beta without gradient): the separable backward where it serves
      std::fill(grad_x.begin(), grad_x.end(), 0.0f);
      poolswap::backward_plane_dx<float, float>(gy.data(), ys, xk.data(), xs, grad_x.data(), g, beta);
      for (size_t i = 0; i < grad_x.size(); ++i) err = worst(err, std::fabs(grad_x[i] - r.grad_x[i]) / scale);
      refs.push_back(r);
    }
    // dL/dx of the planes together where rows are short: eight per vector, a partial group at the end.
    if (poolswap::interleave_fits(g)) {
      ++interleaved;
      const int64_t in_size = g.in[0] * g.in[1] * g.in[2], dense[3] = {g.in[1] * g.in[2], g.in[2], 1};
      std::vector<float> gx_all(static_cast<size_t>(planes * in_size), std::nanf(""));
      poolswap::backward_interleaved_dx<float>(
          planes, [&](int64_t k) { return x.data() + k * x_plane; }, xs,
          [&](int64_t k) { return gys[static_cast<size_t>(k)].data(); }, ys,
          [&](int64_t k) { return gx_all.data() + k * in_size; }, dense, g, [&](int64_t) { return beta; });
      for (int64_t k = 0; k < planes; ++k)
        for (int64_t i = 0; i < in_size; ++i)
          err = worst(err, std::fabs(gx_all[static_cast<size_t>(k * in_size + i)] -
                                        refs[static_cast<size_t>(k)].grad_x[static_cast<size_t>(i)]) / scale);
    }
    // A channels-last image of the same geometry: channel groups of eight by strips, the rest one by one.
    if (poolswap::channels_last_strips_fit(g)) {
      const int64_t channels = draw(1, 19), cs[3] = {g.in[1] * g.in[2] * channels, g.in[2] * channels, channels};
      const int64_t cys[3] = {g.out[1] * g.out[2] * channels, g.out[2] * channels, channels};
      std::vector<float> xc(static_cast<size_t>(g.in[0] * cs[0])), yc(static_cast<size_t>(g.out[0] * cys[0]));
      for (float& v : xc) v = scale * (draw(0, 1) ? normal(rng) : static_cast<float>(draw(-2, 2)));
      std::vector<float> betas(static_cast<size_t>(channels));
      for (float& v : betas) v = draw(0, 1) ? 1.0f : 2.5f;
      for (int64_t od = 0; od < g.out[0]; ++od)
        poolswap::forward_channels_last<float>(xc.data(), cs, yc.data(), cys, channels, g,
                                               [&](int64_t c) { return betas[static_cast<size_t>(c)]; }, od, 0,
                                               g.out[1]);
      // and its dL/dx in place (grad_x starts as NaN: every element must be written)
      std::vector<float> gyc(yc.size()), gxc(xc.size(), std::nanf(""));
      for (float& v : gyc) v = normal(rng);
      const bool backward = poolswap::channels_last_strips_fit(g);
      if (backward) {
        ++channels_last_backward;
        poolswap::backward_channels_last(xc.data(), cs, gyc.data(), cys, gxc.data(), cs, g,
                                         [&](int64_t c) { return betas[static_cast<size_t>(c)]; }, 0, channels);
      }
      const int64_t dense[3] = {g.in[1] * g.in[2], g.in[2], 1};
      for (int64_t c = 0; c < channels; ++c) {
        std::vector<float> plane(static_cast<size_t>(g.in[0] * dense[0])), grad(static_cast<size_t>(outputs));
        for (size_t i = 0; i < plane.size(); ++i) plane[i] = xc[i * static_cast<size_t>(channels) + static_cast<size_t>(c)];
        for (size_t i = 0; i < grad.size(); ++i) grad[i] = gyc[i * static_cast<size_t>(channels) + static_cast<size_t>(c)];
        const fuzz::Reference r = fuzz::brute_force(plane, dense, grad, g, betas[static_cast<size_t>(c)]);
        for (int64_t i = 0; i < outputs; ++i)
          err = worst(err, std::fabs(yc[static_cast<size_t>(i * channels + c)] - r.y[static_cast<size_t>(i)]) / scale);
        if (backward)
          for (size_t i = 0; i < plane.size(); ++i)
            err = worst(err, std::fabs(gxc[i * static_cast<size_t>(channels) + static_cast<size_t>(c)] - r.grad_x[i]) / scale);
      }
    }
    if (err > 1e-4 && ++bad <= 5) {
      std::printf("mismatch %.3g: %s step %ld planes %ld\n", err, fuzz::describe(g).c_str(), (long)step,
                  (long)planes);
    }
  }
  std::printf("cases=%d bad=%d interleaved_backward=%d channels_last_backward=%d\n", tried, bad, interleaved,
              channels_last_backward);
  return bad == 0 ? 0 : 1;
}
