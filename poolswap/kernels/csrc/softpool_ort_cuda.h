// The CUDA entry points of the ONNX Runtime library (softpool_ort_cuda.cu),
// callable from plain C++: no CUDA header needed to include this.
#pragma once

#include <cstddef>
#include <cstdint>

#include "softpool_kernel.h"

namespace poolswap_ort {

// Forward of an NCHW (contiguous) input on `stream` (a cudaStream_t). betas is
// device memory holding one value per channel, or null to use `beta` for all.
// Returns a cudaError_t.
int cuda_forward_float(const float* x, float* y, const poolswap::Geometry& g, int64_t batch, int64_t channels,
                       const float* betas, bool per_channel, float beta, void* stream);
int cuda_forward_half(const void* x, void* y, const poolswap::Geometry& g, int64_t batch, int64_t channels,
                      const float* betas, bool per_channel, float beta, void* stream);

// Per-channel temperatures on the device that holds `beside`: allocated and
// copied once per kernel and device (the only synchronisation, at first use).
int cuda_upload(const float* host, size_t count, const void* beside, void* stream, float** device, int* device_id);
int cuda_device_of(const void* pointer, int* device_id);
void cuda_release(float* device);
const char* cuda_error_string(int status);

}  // namespace poolswap_ort
