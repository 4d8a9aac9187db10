// CUDA launchers for the ONNX Runtime custom-op library: the forward kernel of
// softpool_cuda.cuh (the PyTorch CUDA op's own kernel) on the stream ORT hands
// the kernel. Compiled by nvcc into the library where nvcc exists; the library
// links cudart statically, so it still loads on machines without CUDA.
#include <cuda_fp16.h>

#include "softpool_cuda.cuh"
#include "softpool_ort_cuda.h"

namespace poolswap_ort {

namespace {

template <typename scalar_t>
int launch(const scalar_t* x, scalar_t* y, const poolswap::Geometry& g, int64_t batch, int64_t channels,
           const float* betas, bool per_channel, float beta, void* stream) {
  poolswap::cuda::Problem p;
  p.g = g;
  p.batch = batch;
  p.channels = channels;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  p.x = poolswap::cuda::Strides{channels * in_plane, in_plane, {g.in[1] * g.in[2], g.in[2], 1}};
  p.y = poolswap::cuda::Strides{channels * out_plane, out_plane, {g.out[1] * g.out[2], g.out[2], 1}};
  p.channels_fastest = false;  // ONNX tensors are NCHW
  poolswap::cuda::launch_forward<scalar_t, float>(x, y, p, betas, per_channel, beta,
                                                  static_cast<cudaStream_t>(stream));
  return static_cast<int>(cudaPeekAtLastError());
}

}  // namespace

int cuda_forward_float(const float* x, float* y, const poolswap::Geometry& g, int64_t batch, int64_t channels,
                       const float* betas, bool per_channel, float beta, void* stream) {
  return launch<float>(x, y, g, batch, channels, betas, per_channel, beta, stream);
}

int cuda_forward_half(const void* x, void* y, const poolswap::Geometry& g, int64_t batch, int64_t channels,
                      const float* betas, bool per_channel, float beta, void* stream) {
  return launch<__half>(static_cast<const __half*>(x), static_cast<__half*>(y), g, batch, channels, betas,
                        per_channel, beta, stream);
}

int cuda_upload(const float* host, size_t count, const void* beside, void* stream, float** device, int* device_id) {
  cudaPointerAttributes attributes;
  cudaError_t status = cudaPointerGetAttributes(&attributes, beside);
  if (status != cudaSuccess) return static_cast<int>(status);
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(attributes.device);
  status = cudaMalloc(reinterpret_cast<void**>(device), count * sizeof(float));
  if (status == cudaSuccess) {
    status = cudaMemcpyAsync(*device, host, count * sizeof(float), cudaMemcpyHostToDevice,
                             static_cast<cudaStream_t>(stream));
  }
  if (status == cudaSuccess) status = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
  cudaSetDevice(previous);
  *device_id = attributes.device;
  return static_cast<int>(status);
}

int cuda_device_of(const void* pointer, int* device_id) {
  cudaPointerAttributes attributes;
  const cudaError_t status = cudaPointerGetAttributes(&attributes, pointer);
  *device_id = attributes.device;
  return static_cast<int>(status);
}

void cuda_release(float* device) { cudaFree(device); }

const char* cuda_error_string(int status) { return cudaGetErrorString(static_cast<cudaError_t>(status)); }

}  // namespace poolswap_ort
