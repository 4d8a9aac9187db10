// The per-thread functions of the CUDA kernels (softpool_cuda_thread.h), run
// on the CPU for every thread index the kernels launch, against a float64
// brute force of the contract. Built with AddressSanitizer: no GPU needed to
// test the CUDA kernels' indexing.
//
// Each case draws a geometry, a batch, channels and, for every tensor the
// kernels touch (x, y, grad_y, grad_x), a layout: NCDHW, channels-last, or
// NCDHW with gaps along W. Gaps in inputs hold NaN (a read of one poisons the
// result) and gaps in outputs a sentinel (a write to one is caught). One case
// in four also holds NaN and infinities; its reference is then the CPU plane
// loops of softpool_cpu.h, which the Python contract tests hold to the special
// values of the contract.
//
//   cuda_thread_fuzz SEED CASES   prints "cases=N bad=M" and exits 1 when M > 0
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "softpool_cpu.h"
#include "softpool_cuda_thread.h"

using poolswap::Geometry;
using poolswap::cuda::Problem;
using poolswap::cuda::Strides;

namespace {

enum Layout { kContiguous = 0, kChannelsLast = 1, kGapsAlongW = 2 };
const char* const kLayoutNames[] = {"contiguous", "channels-last", "gaps"};

// Strides of an (N, C, D, H, W) tensor in `layout`, and the elements its buffer needs.
Strides strides_for(Layout layout, int64_t n, int64_t c, const int64_t* size, int64_t* elements) {
  Strides s;
  if (layout == kChannelsLast) {
    s.c = 1;
    s.s[2] = c;
    s.s[1] = c * size[2];
    s.s[0] = c * size[2] * size[1];
    s.n = c * size[2] * size[1] * size[0];
  } else {
    const int64_t step = layout == kGapsAlongW ? 2 : 1;
    s.s[2] = step;
    s.s[1] = step * size[2];
    s.s[0] = step * size[2] * size[1];
    s.c = step * size[2] * size[1] * size[0];
    s.n = s.c * c;
  }
  *elements = s.n * n;
  return s;
}

int64_t offset_of(const Strides& s, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w) {
  const int64_t at[5] = {n, c, d, h, w};
  return poolswap::cuda::offset(s, at);
}

// Whether `offset` is an element of the tensor (not a gap).
std::vector<bool> element_mask(const Strides& s, int64_t n, int64_t c, const int64_t* size, int64_t elements) {
  std::vector<bool> mask(static_cast<size_t>(elements), false);
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t d = 0; d < size[0]; ++d)
        for (int64_t h = 0; h < size[1]; ++h)
          for (int64_t w = 0; w < size[2]; ++w) mask[static_cast<size_t>(offset_of(s, a, b, d, h, w))] = true;
  return mask;
}

// |got - want| / scale, where NaN must meet NaN and an infinity the same infinity.
double mismatch(double got, double want, double scale) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isinf(want)) return got == want ? 0.0 : INFINITY;
  return std::isfinite(got) ? std::fabs(got - want) / scale : INFINITY;
}

// The CPU plane loops on one dense plane, as a reference for inputs with special values.
template <typename scalar_t>
fuzz::Reference cpu_reference(const std::vector<scalar_t>& x, const std::vector<scalar_t>& gy, const Geometry& g,
                              double beta) {
  const int64_t xs[3] = {g.in[1] * g.in[2], g.in[2], 1}, ys[3] = {g.out[1] * g.out[2], g.out[2], 1};
  std::vector<scalar_t> y(gy.size()), grad_x(x.size(), scalar_t(0));
  poolswap::forward_planes<scalar_t, scalar_t>(
      1, [&](int64_t) { return x.data(); }, xs, [&](int64_t) { return y.data(); }, ys, g, static_cast<scalar_t>(beta));
  fuzz::Reference r;
  r.grad_beta = poolswap::backward_plane<scalar_t, scalar_t>(gy.data(), ys, x.data(), xs, grad_x.data(), g,
                                                            static_cast<scalar_t>(beta));
  r.y.assign(y.begin(), y.end());
  r.grad_x.assign(grad_x.begin(), grad_x.end());
  return r;
}

template <typename T>
struct Tensor {
  Strides strides;
  std::vector<T> data;
  std::vector<bool> mask;
};

template <typename T>
Tensor<T> make_tensor(Layout layout, int64_t n, int64_t c, const int64_t* size, T gap) {
  Tensor<T> t;
  int64_t elements = 0;
  t.strides = strides_for(layout, n, c, size, &elements);
  t.data.assign(static_cast<size_t>(elements), gap);
  t.mask = element_mask(t.strides, n, c, size, elements);
  return t;
}

// Plane (n, c) of a tensor, copied out in dense (d, h, w) order.
template <typename T>
std::vector<T> dense_plane(const Tensor<T>& t, int64_t n, int64_t c, const int64_t* size) {
  std::vector<T> plane;
  plane.reserve(static_cast<size_t>(size[0] * size[1] * size[2]));
  for (int64_t d = 0; d < size[0]; ++d)
    for (int64_t h = 0; h < size[1]; ++h)
      for (int64_t w = 0; w < size[2]; ++w)
        plane.push_back(t.data[static_cast<size_t>(offset_of(t.strides, n, c, d, h, w))]);
  return plane;
}

// One case in precision scalar_t (accumulating in scalar_t): the largest error, relative to `scale`.
template <typename scalar_t>
double run_case(std::mt19937& rng, const Geometry& g, std::string* what) {
  auto draw = [&](int lo, int hi) { return fuzz::draw(rng, lo, hi); };
  std::normal_distribution<double> normal;
  const scalar_t nan = std::numeric_limits<scalar_t>::quiet_NaN();
  const scalar_t sentinel = scalar_t(12345);
  const int64_t batch = draw(1, 3), channels = draw(1, 4);
  const Layout layouts[4] = {Layout(draw(0, 2)), Layout(draw(0, 2)), Layout(draw(0, 2)), Layout(draw(0, 2))};
  Tensor<scalar_t> x = make_tensor(layouts[0], batch, channels, g.in, nan);
  Tensor<scalar_t> y = make_tensor(layouts[1], batch, channels, g.out, sentinel);
  Tensor<scalar_t> grad_y = make_tensor(layouts[2], batch, channels, g.out, nan);
  Tensor<scalar_t> grad_x = make_tensor(layouts[3], batch, channels, g.in, sentinel);
  // Ties too; a scale of 40 makes most weights vanish.
  const double scale = draw(0, 2) == 0 ? 40.0 : 1.0;
  for (size_t i = 0; i < x.data.size(); ++i)
    if (x.mask[i]) x.data[i] = static_cast<scalar_t>(scale * (draw(0, 1) ? normal(rng) : draw(-2, 2)));
  const bool special = draw(0, 3) == 0;
  const scalar_t specials[3] = {nan, std::numeric_limits<scalar_t>::infinity(),
                                -std::numeric_limits<scalar_t>::infinity()};
  for (size_t i = 0; special && i < x.data.size(); ++i)
    if (x.mask[i] && draw(0, 9) == 0) x.data[i] = specials[draw(0, 2)];
  for (size_t i = 0; i < grad_y.data.size(); ++i)
    if (grad_y.mask[i]) grad_y.data[i] = static_cast<scalar_t>(normal(rng));

  // Temperatures: one per channel, one for all (in memory), or none (the forward's scalar argument).
  const int beta_kind = draw(0, 2);
  const bool per_channel = beta_kind == 0 && channels > 1;
  std::vector<scalar_t> betas(static_cast<size_t>(per_channel ? channels : 1));
  for (scalar_t& b : betas) b = static_cast<scalar_t>(draw(0, 1) ? 1.0 : 0.25 * draw(1, 12));
  const bool has_beta_grad = draw(0, 1);

  Problem p;
  p.g = g;
  p.batch = batch;
  p.channels = channels;
  p.x = x.strides;
  p.y = y.strides;
  p.channels_fastest = p.x.c == 1 && channels > 1;  // as the PyTorch front-end chooses
  const int64_t plane_out = g.out[0] * g.out[1] * g.out[2], plane_in = g.in[0] * g.in[1] * g.in[2];
  const int64_t total_out = batch * channels * plane_out, total_in = batch * channels * plane_in;

  // Every thread of the three kernels, in a shuffled order: no thread may depend on another's.
  std::vector<int64_t> order_out(static_cast<size_t>(total_out)), order_in(static_cast<size_t>(total_in));
  for (int64_t i = 0; i < total_out; ++i) order_out[static_cast<size_t>(i)] = i;
  for (int64_t i = 0; i < total_in; ++i) order_in[static_cast<size_t>(i)] = i;
  std::shuffle(order_out.begin(), order_out.end(), rng);
  std::shuffle(order_in.begin(), order_in.end(), rng);
  const scalar_t* forward_betas = beta_kind == 2 ? nullptr : betas.data();
  for (int64_t i : order_out)
    poolswap::cuda::forward_output<scalar_t, scalar_t>(i, x.data.data(), y.data.data(), p, forward_betas, per_channel,
                                                       betas[0]);
  std::vector<scalar_t> stats(static_cast<size_t>(3 * total_out), nan);
  std::vector<scalar_t> beta_terms(static_cast<size_t>(total_out), nan);
  scalar_t* terms = has_beta_grad ? beta_terms.data() : nullptr;
  for (int64_t i : order_out)
    poolswap::cuda::window_stats_output<scalar_t, scalar_t>(i, grad_y.data.data(), grad_y.strides, x.data.data(), p,
                                                            betas.data(), per_channel, total_out, stats.data(), terms);
  for (int64_t i : order_in)
    poolswap::cuda::input_grad_element<scalar_t, scalar_t>(i, grad_y.data.data(), grad_y.strides, x.data.data(),
                                                           grad_x.data.data(), grad_x.strides, p, betas.data(),
                                                           per_channel, stats.data(), total_out);
  // The beta gradient: each output's term summed into its channel (or into one value).
  std::vector<double> grad_beta(betas.size(), 0.0);
  for (int64_t i = 0; has_beta_grad && i < total_out; ++i) {
    int64_t at[5];
    poolswap::cuda::coordinates(i, p, g.out, at);
    grad_beta[static_cast<size_t>(per_channel ? at[1] : 0)] += beta_terms[static_cast<size_t>(i)];
  }

  double err = 0.0;
  std::vector<double> expected_beta(betas.size(), 0.0);
  const int64_t dense[3] = {g.in[1] * g.in[2], g.in[2], 1};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const std::vector<scalar_t> xk = dense_plane(x, n, c, g.in), gyk = dense_plane(grad_y, n, c, g.out);
      const double beta = betas[static_cast<size_t>(per_channel ? c : 0)];
      const fuzz::Reference r =
          special ? cpu_reference(xk, gyk, g, beta) : fuzz::brute_force(xk, dense, gyk, g, beta);
      expected_beta[static_cast<size_t>(per_channel ? c : 0)] += r.grad_beta;
      const std::vector<scalar_t> yk = dense_plane(y, n, c, g.out), gxk = dense_plane(grad_x, n, c, g.in);
      for (size_t i = 0; i < yk.size(); ++i) err = std::max(err, mismatch(yk[i], r.y[i], scale));
      for (size_t i = 0; i < gxk.size(); ++i) err = std::max(err, mismatch(gxk[i], r.grad_x[i], scale));
    }
  for (size_t k = 0; has_beta_grad && k < betas.size(); ++k) {
    err = std::max(err, mismatch(grad_beta[k], expected_beta[k], scale * scale + std::fabs(expected_beta[k])));
  }
  // Gaps of the outputs stay untouched.
  for (size_t i = 0; i < y.data.size(); ++i)
    if (!y.mask[i] && y.data[i] != sentinel) err = INFINITY;
  for (size_t i = 0; i < grad_x.data.size(); ++i)
    if (!grad_x.mask[i] && grad_x.data[i] != sentinel) err = INFINITY;
  *what = fuzz::describe(g) + " batch " + std::to_string(batch) + " channels " + std::to_string(channels) +
          " layouts x " + kLayoutNames[layouts[0]] + " y " + kLayoutNames[layouts[1]] + " grad_y " +
          kLayoutNames[layouts[2]] + " grad_x " + kLayoutNames[layouts[3]] + " beta kind " +
          std::to_string(beta_kind) + (special ? " with NaN and infinities" : "");
  return err;
}

// 64-bit indexing: thread indices past 2^32 of problems too large to allocate map to
// coordinates inside the tensor and back (coordinates and output_index are inverses),
// and every covering window found for an input holds it. Returns the number of failures.
int check_large_indices(std::mt19937& rng, int cases) {
  std::uniform_int_distribution<int64_t> any;
  int failures = 0;
  for (int c = 0; c < cases; ++c) {
    Problem p{};
    for (int i = 0; i < 3; ++i) {
      p.g.kernel[i] = fuzz::draw(rng, 1, 4);
      p.g.stride[i] = fuzz::draw(rng, 1, 3);
      p.g.dilation[i] = fuzz::draw(rng, 1, 2);
      p.g.pad[i] = 0;
      p.g.out[i] = fuzz::draw(rng, 1, 3000);
      p.g.in[i] = (p.g.out[i] - 1) * p.g.stride[i] + p.g.dilation[i] * (p.g.kernel[i] - 1) + 1;
    }
    p.batch = fuzz::draw(rng, 1, 64);
    p.channels = fuzz::draw(rng, 1, 4096);
    p.channels_fastest = fuzz::draw(rng, 0, 1);
    const int64_t total = p.batch * p.channels * p.g.out[0] * p.g.out[1] * p.g.out[2];
    if (total <= (int64_t(1) << 32)) continue;
    const int64_t i = (int64_t(1) << 32) + any(rng) % (total - (int64_t(1) << 32));
    int64_t at[5];
    poolswap::cuda::coordinates(i, p, p.g.out, at);
    bool ok = at[0] < p.batch && at[1] < p.channels && poolswap::cuda::output_index(p, at) == i;
    for (int d = 0; d < 3; ++d) ok = ok && at[2 + d] >= 0 && at[2 + d] < p.g.out[d];
    // The input at the window's first tap is covered by this window at tap 0.
    for (int d = 0; d < 3; ++d) {
      int64_t o = -1;
      const int64_t first = at[2 + d] * p.g.stride[d];
      ok = ok && poolswap::cuda::covering_window(p.g, d, first, 0, o) && o == at[2 + d];
    }
    if (!ok && ++failures <= 5)
      std::printf("64-bit index %lld maps wrong: %s\n", static_cast<long long>(i), fuzz::describe(p.g).c_str());
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 rng(argc > 1 ? std::atoi(argv[1]) : 1);
  const int cases = argc > 2 ? std::atoi(argv[2]) : 2000;
  int tried = 0, bad = 0;
  while (tried < cases) {
    Geometry g;
    if (!fuzz::random_geometry(rng, 12, &g)) continue;
    ++tried;
    const bool in_double = tried % 2 == 0;
    std::string what;
    const double err = in_double ? run_case<double>(rng, g, &what) : run_case<float>(rng, g, &what);
    if (err > (in_double ? 1e-10 : 1e-4) && ++bad <= 5)
      std::printf("mismatch %.3g (%s): %s\n", err, in_double ? "float64" : "float32", what.c_str());
  }
  bad += check_large_indices(rng, cases);
  std::printf("cases=%d bad=%d\n", tried, bad);
  return bad == 0 ? 0 : 1;
}
