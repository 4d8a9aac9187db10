// PyTorch CUDA front-end of SoftPool: registers the kernels of
// softpool_cuda.cuh for the CUDA dispatch key of poolswap::soft_pool and
// poolswap::soft_pool_backward. Device guard, current stream, 64-bit
// indexing, launch checks, no host synchronisation.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "softpool_cuda.cuh"
#include "torch_problem.h"

namespace poolswap {
namespace {

cuda::Strides strides_of(const at::Tensor& t, const TorchProblem& tp) {
  int64_t s[5];
  plane_strides(t, tp, s);
  return cuda::Strides{s[0], s[1], {s[2], s[3], s[4]}};
}

cuda::Problem cuda_problem(const at::Tensor& x, const at::Tensor& y, const TorchProblem& tp) {
  cuda::Problem p;
  p.g = tp.g;
  p.batch = tp.batch;
  p.channels = tp.channels;
  p.x = strides_of(x, tp);
  p.y = strides_of(y, tp);
  // Channels-last inputs: neighbouring threads take neighbouring channels (coalesced reads).
  p.channels_fastest = p.x.c == 1 && tp.channels > 1;
  return p;
}

at::Tensor soft_pool_cuda(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, double beta,
                          const c10::optional<at::Tensor>& beta_tensor) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  const TorchProblem tp = make_problem(x, kernel, stride, padding, dilation, ceil_mode);
  at::Tensor y = at::empty(tp.out_shape, x.options().memory_format(output_memory_format(x)));
  if (y.numel() == 0) return y;
  const cuda::Problem p = cuda_problem(x, y, tp);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // A fixed beta travels as a kernel argument: no device tensor to allocate and fill.
    const bool has_beta = is_given(beta_tensor);
    const at::Tensor betas =
        has_beta ? beta_values(beta_tensor, beta, tp.channels, c10::CppTypeToScalarType<acc_t>::value, x.device())
                 : at::Tensor();
    cuda::launch_forward<scalar_t, acc_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), p,
                                          has_beta ? betas.const_data_ptr<acc_t>() : nullptr,
                                          has_beta && betas.numel() > 1, acc_t(beta), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> soft_pool_backward_cuda(const at::Tensor& grad_output, const at::Tensor& x,
                                                           at::IntArrayRef kernel, at::IntArrayRef stride,
                                                           at::IntArrayRef padding, at::IntArrayRef dilation,
                                                           bool ceil_mode, double beta,
                                                           const c10::optional<at::Tensor>& beta_tensor) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  const TorchProblem tp = make_problem(x, kernel, stride, padding, dilation, ceil_mode);
  TORCH_CHECK_VALUE(grad_output.sizes().vec() == tp.out_shape, "SoftPool backward: grad_output has shape ",
                    grad_output.sizes(), ", expected ", at::IntArrayRef(tp.out_shape));
  TORCH_CHECK_TYPE(grad_output.scalar_type() == x.scalar_type(), "SoftPool backward: grad_output dtype ",
                   grad_output.scalar_type(), " differs from the input's ", x.scalar_type());
  const bool has_beta = is_given(beta_tensor);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_beta = has_beta ? at::zeros(beta_tensor->sizes(), beta_tensor->options()) : x.new_empty({0});
  if (x.numel() == 0) return {grad_x, grad_beta};
  const cuda::Problem p = cuda_problem(x, grad_output, tp);
  const cuda::Strides gy = strides_of(grad_output, tp);
  const cuda::Strides gx = strides_of(grad_x, tp);
  const int64_t total_out = grad_output.numel();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const at::Tensor betas = beta_values(beta_tensor, beta, tp.channels, acc_type, x.device());
    // Freed when backward returns: only the input is kept between forward and backward.
    at::Tensor stats = at::empty({3 * total_out}, x.options().dtype(acc_type));
    at::Tensor beta_terms = has_beta ? at::empty({total_out}, x.options().dtype(acc_type)) : at::Tensor();
    cuda::launch_backward<scalar_t, acc_t>(grad_output.const_data_ptr<scalar_t>(), gy, x.const_data_ptr<scalar_t>(),
                                           grad_x.mutable_data_ptr<scalar_t>(), gx, p, betas.const_data_ptr<acc_t>(),
                                           betas.numel() > 1, stats.mutable_data_ptr<acc_t>(),
                                           has_beta ? beta_terms.mutable_data_ptr<acc_t>() : nullptr, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (has_beta) {
      // Deterministic tree reductions (no atomics): per channel, or over everything.
      const int64_t planes_spatial = total_out / (tp.batch * tp.channels);
      at::Tensor terms = p.channels_fastest ? beta_terms.view({tp.batch * planes_spatial, tp.channels})
                                            : beta_terms.view({tp.batch, tp.channels, planes_spatial})
                                                  .transpose(1, 2)
                                                  .reshape({tp.batch * planes_spatial, tp.channels});
      at::Tensor reduced = grad_beta.numel() == 1 ? terms.sum() : terms.sum(0);
      grad_beta.copy_(reduced.reshape(grad_beta.sizes()));
    }
  });
  return {grad_x, grad_beta};
}

}  // namespace

TORCH_LIBRARY_IMPL(poolswap, CUDA, m) {
  m.impl("soft_pool", &soft_pool_cuda);
  m.impl("soft_pool_backward", &soft_pool_backward_cuda);
}

}  // namespace poolswap
