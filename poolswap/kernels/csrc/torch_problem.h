// Shape handling shared by the PyTorch front-ends (CPU and CUDA) of SoftPool:
// checks the arguments, views the input as (N, C, D, H, W) with strides, sizes
// and allocates the output with the layout rule of the Python fake kernel.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <vector>

#include "softpool_attributes.h"
#include "softpool_kernel.h"

namespace poolswap {

struct TorchProblem {
  Geometry g;
  int64_t batch = 1;
  int64_t channels = 1;
  bool unbatched = false;
  int64_t x_stride[5];  // n, c, d, h, w (elements)
  std::vector<int64_t> out_shape;  // of the (possibly unbatched) output
};

// The same rule as poolswap.ops.reference.output_memory_format.
inline at::MemoryFormat output_memory_format(const at::Tensor& x) {
  if (x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous())
    return at::MemoryFormat::ChannelsLast;
  if (x.dim() == 5 && x.is_contiguous(at::MemoryFormat::ChannelsLast3d) && !x.is_contiguous())
    return at::MemoryFormat::ChannelsLast3d;
  return at::MemoryFormat::Contiguous;
}

inline TorchProblem make_problem(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const int64_t nd = static_cast<int64_t>(kernel.size());
  TORCH_CHECK_VALUE(nd >= 1 && nd <= 3, "SoftPool: kernel_size must have 1, 2 or 3 values, got ", nd);
  TORCH_CHECK_VALUE(stride.size() == kernel.size() && padding.size() == kernel.size() &&
                        dilation.size() == kernel.size(),
                    "SoftPool: kernel_size, stride, padding and dilation must have the same length");
  TORCH_CHECK_VALUE(x.dim() == nd + 1 || x.dim() == nd + 2, "SoftPool", nd, "d: expected a ", nd + 1, "D or ",
                    nd + 2, "D input, got ", x.dim(), "D");
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()), "SoftPool: needs a floating-point input, got ",
                   x.scalar_type());
  TorchProblem p;
  p.unbatched = x.dim() == nd + 1;
  const int64_t lead = p.unbatched ? 0 : 1;
  p.batch = p.unbatched ? 1 : x.size(0);
  p.channels = x.size(lead);
  p.x_stride[0] = p.unbatched ? 0 : x.stride(0);
  p.x_stride[1] = x.stride(lead);
  // The attribute rules and the geometry of softpool_attributes.h, shared with the ONNX Runtime library.
  const std::vector<int64_t> kernel_v(kernel.begin(), kernel.end()), stride_v(stride.begin(), stride.end()),
      dilation_v(dilation.begin(), dilation.end());
  std::vector<int64_t> pads(padding.begin(), padding.end());
  pads.insert(pads.end(), padding.begin(), padding.end());
  std::vector<int64_t> spatial;
  for (int64_t i = 0; i < nd; ++i) spatial.push_back(x.size(lead + 1 + i));
  try {
    check_geometry_attributes(kernel_v, stride_v, pads, dilation_v, ceil_mode ? 1 : 0);
    for (int64_t i = 0; i < nd; ++i) {
      TORCH_CHECK_VALUE(2 * padding[i] <= kernel[i], "SoftPool: padding must be at most half the kernel");
    }
    p.g = make_geometry(spatial, kernel_v, stride_v, pads, dilation_v, ceil_mode);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK_VALUE(false, "SoftPool: ", e.what());
  }
  for (int i = 0; i < 3; ++i) {
    const int64_t src = i - (3 - nd);  // index into the nd spatial dims, < 0 for padding dims
    p.x_stride[2 + i] = src < 0 ? 0 : x.stride(lead + 1 + src);
  }
  if (!p.unbatched) p.out_shape.push_back(p.batch);
  p.out_shape.push_back(p.channels);
  for (int64_t i = 3 - nd; i < 3; ++i) p.out_shape.push_back(p.g.out[i]);
  return p;
}

// Strides (n, c, d, h, w) of a tensor shaped like the problem's input or output.
inline void plane_strides(const at::Tensor& t, const TorchProblem& p, int64_t out[5]) {
  const int64_t nd = t.dim() - (p.unbatched ? 1 : 2);
  const int64_t lead = p.unbatched ? 0 : 1;
  out[0] = p.unbatched ? 0 : t.stride(0);
  out[1] = t.stride(lead);
  for (int i = 0; i < 3; ++i) {
    const int64_t src = i - (3 - nd);
    out[2 + i] = src < 0 ? 0 : t.stride(lead + 1 + src);
  }
}

// Whether an optional tensor argument was passed (and is not an undefined tensor).
inline bool is_given(const c10::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// Per-plane temperatures: `beta` alone, or the values of beta_tensor (one, or one per channel).
inline at::Tensor beta_values(const c10::optional<at::Tensor>& beta_tensor, double beta, int64_t channels,
                              at::ScalarType acc_type, const at::Device& device) {
  if (!is_given(beta_tensor)) {
    return at::full({1}, beta, at::TensorOptions().dtype(acc_type).device(device));
  }
  const int64_t n = beta_tensor->numel();
  TORCH_CHECK_VALUE(n == 1 || n == channels, "SoftPool: beta must hold one value or one per channel (", channels,
                    "), got ", n);
  return beta_tensor->detach().reshape({n}).to(device, acc_type).contiguous();
}

}  // namespace poolswap
