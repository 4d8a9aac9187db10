// Runtime instruction-set dispatch of the CPU kernels (softpool_cpu.h).
//
// softpool_cpu.h is compiled three times, into softpool_cpu_baseline.cpp,
// softpool_cpu_avx2.cpp and softpool_cpu_avx512.cpp (each a namespace of its
// own, so no inline function is shared between ISAs), and each exposes a table
// of plain function pointers. cpu_isa() picks one table per process from what
// the CPU reports, or from POOLSWAP_CPU_ISA (baseline | avx2 | avx512) for
// tests. Nothing shipped is compiled with -march=native: the binary runs on any
// x86-64 (and on any other machine through the baseline table).
//
// The front-end decides the element types: compile every file of one library
// with POOLSWAP_CPU_FRONTEND_TORCH (float, double, c10::Half, c10::BFloat16)
// or POOLSWAP_CPU_FRONTEND_ORT (float, Ort::Float16_t).
#pragma once

#include <cstdint>

#include "softpool_kernel.h"

#if defined(POOLSWAP_CPU_FRONTEND_TORCH)
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#define POOLSWAP_CPU_SCALARS(X) X(float, float, f32) X(double, double, f64) X(c10::Half, float, f16) X(c10::BFloat16, float, bf16)
#elif defined(POOLSWAP_CPU_FRONTEND_ORT)
#ifndef ORT_API_MANUAL_INIT
#define ORT_API_MANUAL_INIT
#endif
#include <onnxruntime_cxx_api.h>
#define POOLSWAP_CPU_SCALARS(X) X(float, float, f32) X(Ort::Float16_t, float, f16)
#else
#error "define POOLSWAP_CPU_FRONTEND_TORCH or POOLSWAP_CPU_FRONTEND_ORT"
#endif

namespace poolswap {
namespace cpu {

// Where plane i (= n * channels + c) of x and y starts, relative to x and y.
struct PlaneLayout {
  int64_t channels;
  int64_t x_n, x_c;  // x's strides of n and c (elements)
  int64_t y_n, y_c;
  int64_t x_offset(int64_t i) const { return (i / channels) * x_n + (i % channels) * x_c; }
  int64_t y_offset(int64_t i) const { return (i / channels) * y_n + (i % channels) * y_c; }
};

// The plane loops of softpool_cpu.h for one element type (acc_t: its accumulator).
template <typename scalar_t, typename acc_t>
struct Kernels {
  // Planes first .. first + count - 1, one beta for all (short rows share padded buffers).
  void (*forward_planes)(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                         const PlaneLayout& layout, int64_t first, int64_t count, const Geometry& g, acc_t beta);
  // The same, plane i at betas[i % layout.channels] (a beta per channel).
  void (*forward_planes_betas)(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                               const PlaneLayout& layout, int64_t first, int64_t count, const Geometry& g,
                               const acc_t* betas);
  double (*backward_plane)(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x,
                           const int64_t* x_stride, acc_t* grad_x, const Geometry& g, acc_t beta);
  // The same where beta takes no gradient: dL/dx only (the separable backward where it serves).
  void (*backward_plane_dx)(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x,
                            const int64_t* x_stride, acc_t* grad_x, const Geometry& g, acc_t beta);
  // dL/dx of planes first .. first + count - 1 where beta takes no gradient, written into grad_x: layout
  // places x (its x) and grad_y (its y), grad_layout places grad_x (its x); betas[i % layout.channels] with
  // per_channel, else betas[0]. False, having done nothing, where this ISA, type and geometry have no such
  // kernel (the caller runs backward_plane_dx plane by plane).
  bool (*backward_planes_dx)(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x,
                             const int64_t* x_stride, scalar_t* grad_x, const int64_t* gx_stride,
                             const PlaneLayout& layout, const PlaneLayout& grad_layout, int64_t first, int64_t count,
                             const Geometry& g, const acc_t* betas, bool per_channel);
  // dL/dx of channels [c_begin, c_end) of one channels-last image where beta takes no gradient: x, grad_y and
  // grad_x at channel 0 (channels adjacent), (D, H, W) strides, betas[c] or betas[0] for all; grad_x written.
  // False, having done nothing, where this ISA, type (float only) and geometry have no such kernel.
  bool (*backward_channels_last_dx)(const scalar_t* grad_y, const int64_t* gy_stride, const scalar_t* x,
                                    const int64_t* x_stride, scalar_t* grad_x, const int64_t* gx_stride,
                                    const Geometry& g, const acc_t* betas, bool per_channel, int64_t c_begin,
                                    int64_t c_end);
  // Output rows [oh_begin, oh_end) of slice od of one channels-last image, every channel: x and y at
  // channel 0 (channels adjacent), (D, H, W) strides, betas[c] or betas[0] for all. False, having done
  // nothing, where this ISA and type have no such kernel (the caller transposes to planes instead).
  bool (*forward_channels_last)(const scalar_t* x, const int64_t* x_stride, scalar_t* y, const int64_t* y_stride,
                                int64_t channels, const Geometry& g, const acc_t* betas, bool per_channel,
                                int64_t od, int64_t oh_begin, int64_t oh_end);
};

// Channels per block of gather_channels / scatter_channels.
constexpr int64_t kChannelBlock = 16;

struct IsaTable {
  const char* name;  // "baseline", "avx2", "avx512"
  int64_t (*plane_group_size)(const Geometry& g);
  // kChannelBlock float channels of a channels-last image (channel stride 1, (D, H, W) strides s) into
  // as many contiguous planes of `size`, and back; nullptr where this ISA has no vector transposes.
  void (*gather_channels)(const float* src, const int64_t* s, const int64_t* size, float* dst);
  void (*scatter_channels)(const float* src, const int64_t* size, float* dst, const int64_t* s);
#define POOLSWAP_CPU_MEMBER(scalar, acc, slot) Kernels<scalar, acc> slot;
  POOLSWAP_CPU_SCALARS(POOLSWAP_CPU_MEMBER)
#undef POOLSWAP_CPU_MEMBER
};

// Each ISA's table; nullptr where that ISA was not compiled (not x86-64, or a compiler
// without per-function targets).
const IsaTable* isa_table_baseline();
const IsaTable* isa_table_avx2();
const IsaTable* isa_table_avx512();

// The table this process runs: chosen once. Throws std::runtime_error (one line) when
// POOLSWAP_CPU_ISA names an unknown ISA or one this CPU or build lacks.
const IsaTable& isa();

template <typename scalar_t>
struct Slot;
#define POOLSWAP_CPU_SLOT(scalar, acc, slot)                                               \
  template <>                                                                             \
  struct Slot<scalar> {                                                                   \
    using acc_t = acc;                                                                    \
    static const Kernels<scalar, acc>& of(const IsaTable& t) { return t.slot; } \
  };
POOLSWAP_CPU_SCALARS(POOLSWAP_CPU_SLOT)
#undef POOLSWAP_CPU_SLOT

// The chosen ISA's kernels for scalar_t.
template <typename scalar_t>
const Kernels<scalar_t, typename Slot<scalar_t>::acc_t>& kernels() {
  return Slot<scalar_t>::of(isa());
}

}  // namespace cpu
}  // namespace poolswap
