// ONNX Runtime front-end of SoftPool: a custom-op library registering the
// operator poolswap::SoftPool (domain "poolswap", version 1) for ORT sessions.
//
// The plane loops are softpool_cpu.h, the same header the PyTorch CPU op
// compiles: one kernel source, two front-ends, both reached through the
// instruction-set dispatch of softpool_cpu_dispatch.h. This file only reads the node's
// attributes, checks shapes and walks the (n, c) planes on ORT's thread pool.
//
// Attributes (as ONNX's MaxPool names them, see docs/softpool.md):
//   kernel_shape (ints, required), strides, pads (begins then ends), dilations,
//   ceil_mode (int), beta (float, default 1.0), betas (floats, optional: one
//   temperature per channel; when present it overrides beta).
//
// Built against ORT's C/C++ headers (API 21, ORT >= 1.21) with
// ORT_API_MANUAL_INIT: the library does not link libonnxruntime; the API table
// comes from the OrtApiBase that ORT hands to RegisterCustomOps.
//
// CUDA: the kernel of softpool_ort_cuda.cu (from the shared .cuh) is
// registered in RegisterCustomOps next to the CPU kernels (see
// register_cuda_kernels below): a library registering a CUDA kernel alone would
// hide the model's function body from CPU sessions.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../softpool_attributes.h"
#include "../softpool_cpu_dispatch.h"
#if defined(POOLSWAP_ORT_WITH_CUDA)
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "../softpool_ort_cuda.h"
#endif

#ifndef POOLSWAP_ORT_LIBRARY_VERSION
#define POOLSWAP_ORT_LIBRARY_VERSION "unknown"
#endif

namespace poolswap_ort {

constexpr const char* kDomain = "poolswap";
constexpr const char* kOpName = "SoftPool";

// ---------------------------------------------------------------------------
// Attributes and geometry
// ---------------------------------------------------------------------------

struct SoftPoolAttributes {
  std::string node;  // the node's name, for messages
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;  // begins then ends
  std::vector<int64_t> dilations;
  bool ceil_mode = false;
  float beta = 1.0f;
  std::vector<float> betas;  // per channel; empty when one beta serves all
  size_t betas_count = 0;    // how many values the node's betas held (0: none)
};

template <typename T>
bool try_attribute(const Ort::ConstKernelInfo& info, const char* name, T& out) {
  try {
    out = info.GetAttribute<T>(name);
    return true;
  } catch (const Ort::Exception&) {
    return false;
  }
}

template <typename T>
bool try_attributes(const Ort::ConstKernelInfo& info, const char* name, std::vector<T>& out) {
  try {
    out = info.GetAttributes<T>(name);
    return true;
  } catch (const Ort::Exception&) {
    return false;
  }
}

// Whether the node has `name` as a scalar (INT, FLOAT or STRING) or as a non-empty list of the
// other kind than `T`. ORT's scalar reads check the type, but its list reads do not: a list read of
// an attribute of another type gives an empty list. Without this, a wrongly typed attribute read
// as left out (or empty), and the default ran (beta 1, stride 1).
template <typename T>
bool has_other_type(const Ort::ConstKernelInfo& info, const char* name) {
  int64_t i = 0;
  float f = 0.0f;
  std::string s;
  if (try_attribute(info, name, i) || try_attribute(info, name, f) || try_attribute(info, name, s)) return true;
  if (std::is_same<T, int64_t>::value) {
    std::vector<float> other;
    return try_attributes(info, name, other) && !other.empty();
  }
  if (std::is_same<T, float>::value) {
    std::vector<int64_t> other;
    return try_attributes(info, name, other) && !other.empty();
  }
  return false;
}

// The attribute if the node has it with the right type; false if it is left out; a refusal
// naming the type it needs if it has another (as poolswap's Python loader refuses it).
template <typename T>
bool optional_attribute(const Ort::ConstKernelInfo& info, const char* name, T& out, const char* type) {
  if (try_attribute(info, name, out)) return true;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  if (try_attributes(info, name, ints) || try_attributes(info, name, floats)) {
    poolswap::refuse(std::string(name) + ": must be " + type);
  }
  return false;
}

template <typename T>
bool optional_attributes(const Ort::ConstKernelInfo& info, const char* name, std::vector<T>& out, const char* type) {
  const bool present = try_attributes(info, name, out);
  if ((present && out.empty() && has_other_type<T>(info, name)) || (!present && has_other_type<T>(info, name))) {
    poolswap::refuse(std::string(name) + ": must be " + type);
  }
  return present;
}

// "poolswap::SoftPool node 'pool1': " (or without a name, for unnamed nodes).
// The name comes from the file: control bytes are written as \\xHH (a newline would cut a one-line
// message before its reason) and a name past 200 bytes is cut, as node_prefix in _attribute_rules.py.
std::string node_prefix(const std::string& node) {
  static const char* hex = "0123456789abcdef";
  std::string shown;
  for (size_t i = 0; i < node.size() && i < 200; ++i) {
    const unsigned char c = static_cast<unsigned char>(node[i]);
    if (c < 0x20 || c == 0x7f) {
      shown += "\\x";
      shown += hex[c >> 4];
      shown += hex[c & 0xF];
    } else {
      shown += static_cast<char>(c);
    }
  }
  if (node.size() > 200) shown += "...";
  return std::string("poolswap::SoftPool node") + (node.empty() ? "" : " '" + shown + "'") + ": ";
}

std::string node_name(const Ort::ConstKernelInfo& info) {
  try {
    return info.GetNodeName();
  } catch (...) {
    return std::string();
  }
}

// The node's attributes, checked by the rules of softpool_attributes.h (shared with the
// PyTorch op) before anything is sized from them.
SoftPoolAttributes read_attributes(const OrtKernelInfo* raw_info) {
  Ort::ConstKernelInfo info(raw_info);
  SoftPoolAttributes a;
  a.node = node_name(info);
  try {
    if (!optional_attributes(info, "kernel_shape", a.kernel, "a list of ints (ONNX type INTS)")) {
      poolswap::refuse("kernel_shape: the attribute is required (1, 2 or 3 values)");
    }
    const size_t nd = a.kernel.size();
    // Defaults as ONNX's MaxPool: stride 1, no padding, dilation 1.
    if (!optional_attributes(info, "strides", a.strides, "a list of ints (ONNX type INTS)")) a.strides.assign(nd, 1);
    if (!optional_attributes(info, "pads", a.pads, "a list of ints (ONNX type INTS)")) a.pads.assign(2 * nd, 0);
    if (!optional_attributes(info, "dilations", a.dilations, "a list of ints (ONNX type INTS)")) a.dilations.assign(nd, 1);
    int64_t ceil_mode = 0;
    optional_attribute(info, "ceil_mode", ceil_mode, "an int (ONNX type INT)");
    poolswap::check_geometry_attributes(a.kernel, a.strides, a.pads, a.dilations, ceil_mode);
    a.ceil_mode = ceil_mode != 0;
    optional_attribute(info, "beta", a.beta, "a float (ONNX type FLOAT)");
    poolswap::check_beta(a.beta);
    optional_attributes(info, "betas", a.betas, "a list of floats (ONNX type FLOATS)");
    poolswap::check_betas(a.betas);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(node_prefix(a.node) + e.what());
  }
  a.betas_count = a.betas.size();
  // The exporter writes a shared temperature out per channel (so no consumer needs a default):
  // equal betas take the one-temperature path, which groups small planes. Their count is kept
  // (betas_count) and checked against the input's channels all the same.
  if (!a.betas.empty() && std::all_of(a.betas.begin(), a.betas.end(), [&](float b) { return b == a.betas[0]; })) {
    a.beta = a.betas[0];
    a.betas.clear();
  }
  return a;
}

// The problem as the shared kernel sees it: (planes, D, H, W) with 1-d and 2-d
// problems padded to 3 dims by leading dims of size 1.
struct Problem {
  poolswap::Geometry g;
  int64_t batch = 0;
  int64_t channels = 0;
  std::vector<int64_t> out_shape;
};

Problem make_problem(const SoftPoolAttributes& a, const std::vector<int64_t>& shape) {
  const size_t nd = a.kernel.size();
  Problem p;
  try {
    if (shape.size() != nd + 2) {
      poolswap::refuse("kernel_shape " + poolswap::join_values(a.kernel) + ": a " + std::to_string(nd) +
                       "-d kernel needs an (N, C, spatial...) input of rank " + std::to_string(nd + 2) +
                       ", got rank " + std::to_string(shape.size()));
    }
    p.batch = shape[0];
    p.channels = shape[1];
    poolswap::check_betas_count(a.betas_count, p.channels);
    const std::vector<int64_t> spatial(shape.begin() + 2, shape.end());
    p.g = poolswap::make_geometry(spatial, a.kernel, a.strides, a.pads, a.dilations, a.ceil_mode);
    p.out_shape = {p.batch, p.channels};
    for (size_t i = 3 - nd; i < 3; ++i) p.out_shape.push_back(p.g.out[i]);
    poolswap::checked_elements(p.out_shape);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(node_prefix(a.node) + e.what() + " (input shape " + poolswap::join_values(shape) +
                                ")");
  }
  return p;
}

// A kernel's Compute with its exceptions turned into ORT statuses that name the
// node: bad shapes and attributes are the caller's (INVALID_ARGUMENT), anything
// else (an allocation that failed, a CUDA error) a failure. Nothing escapes.
template <typename Kernel>
OrtStatusPtr compute_with_status(const Kernel& kernel, OrtKernelContext* context) {
  const std::string prefix = node_prefix(kernel.attributes.node);
  try {
    kernel.Compute(context);
    return nullptr;
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), (prefix + e.what()).c_str());
  } catch (const std::invalid_argument& e) {
    // make_problem's messages carry the node already.
    const std::string what = e.what();
    return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, (what.rfind(prefix, 0) == 0 ? what : prefix + what).c_str());
  } catch (const std::bad_alloc&) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (prefix + "out of memory (std::bad_alloc)").c_str());
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (prefix + e.what()).c_str());
  } catch (...) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (prefix + "unknown C++ exception").c_str());
  }
}

// The first exception of the plane tasks run on ORT's thread pool: a task must not
// throw into ORT's C thread pool, so it records the error and Compute rethrows it.
class TaskError {
 public:
  template <typename F>
  void run(F&& f) {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true);
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

// ---------------------------------------------------------------------------
// CPU kernel
// ---------------------------------------------------------------------------

// How many distinct threads of ORT's intra-op pool ran the planes of the last CPU
// call (poolswap_ort_threads_last_call): the tests check that the pool is used.
std::atomic<int64_t> g_threads_last_call{0};

class ThreadSet {
 public:
  void record() {
    const std::thread::id me = std::this_thread::get_id();
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::find(ids_.begin(), ids_.end(), me) == ids_.end()) ids_.push_back(me);
  }
  ~ThreadSet() { g_threads_last_call.store(static_cast<int64_t>(ids_.size())); }

 private:
  std::mutex mutex_;
  std::vector<std::thread::id> ids_;
};

template <typename scalar_t>
struct PlaneJob {
  const scalar_t* x;
  scalar_t* y;
  const Problem* problem;
  const SoftPoolAttributes* attributes;
  int64_t x_plane;
  int64_t y_plane;
  int64_t x_stride[3];
  int64_t y_stride[3];
  int64_t group;   // planes per task: planes with short rows share the kernel's padded buffers
  int64_t planes;
  ThreadSet* threads;
  TaskError* error;
};

template <typename scalar_t>
void planes_of_task(const PlaneJob<scalar_t>* job, size_t index) {
  job->threads->record();
  const int64_t first = static_cast<int64_t>(index) * job->group;
  const int64_t count = std::min(job->group, job->planes - first);
  const auto& betas = job->attributes->betas;
  const auto& kernels = poolswap::cpu::kernels<scalar_t>();
  if (betas.empty()) {  // one temperature for every plane
    const poolswap::cpu::PlaneLayout layout{1, job->x_plane, 0, job->y_plane, 0};
    kernels.forward_planes(job->x, job->x_stride, job->y, job->y_stride, layout, first, count, job->problem->g,
                           job->attributes->beta);
    return;
  }
  // a beta per channel: plane i is channel i % C, at i * plane size
  const int64_t channels = job->problem->channels;
  const poolswap::cpu::PlaneLayout layout{channels, channels * job->x_plane, job->x_plane, channels * job->y_plane,
                                          job->y_plane};
  kernels.forward_planes_betas(job->x, job->x_stride, job->y, job->y_stride, layout, first, count, job->problem->g,
                               betas.data());
}

template <typename scalar_t>
void run_planes(void* data, size_t index) {
  const auto* job = static_cast<const PlaneJob<scalar_t>*>(data);
  job->error->run([&] { planes_of_task(job, index); });
}

template <typename scalar_t>
struct SoftPoolCpuKernel {
  explicit SoftPoolCpuKernel(const OrtKernelInfo* info) : attributes(read_attributes(info)) {}

  void Compute(OrtKernelContext* raw_context) const {
    Ort::KernelContext context(raw_context);
    Ort::ConstValue input = context.GetInput(0);
    const std::vector<int64_t> shape = input.GetTensorTypeAndShapeInfo().GetShape();
    const Problem p = make_problem(attributes, shape);
    Ort::UnownedValue output = context.GetOutput(0, p.out_shape);
    const int64_t planes = p.batch * p.channels;
    const poolswap::Geometry& g = p.g;
    if (planes == 0) return;
    PlaneJob<scalar_t> job;
    job.x = input.GetTensorData<scalar_t>();
    job.y = output.GetTensorMutableData<scalar_t>();
    job.problem = &p;
    job.attributes = &attributes;
    job.x_plane = g.in[0] * g.in[1] * g.in[2];
    job.y_plane = g.out[0] * g.out[1] * g.out[2];
    job.x_stride[0] = g.in[1] * g.in[2];
    job.x_stride[1] = g.in[2];
    job.x_stride[2] = 1;
    job.y_stride[0] = g.out[1] * g.out[2];
    job.y_stride[1] = g.out[2];
    job.y_stride[2] = 1;
    job.planes = planes;
    job.group = poolswap::cpu::isa().plane_group_size(g);
    ThreadSet threads;
    job.threads = &threads;
    TaskError error;
    job.error = &error;
    // ORT's intra-op thread pool, a task per group of planes; num_batch 0 lets ORT choose the split.
    const int64_t tasks = (planes + job.group - 1) / job.group;
    context.ParallelFor(&run_planes<scalar_t>, static_cast<size_t>(tasks), 0, &job);
    error.rethrow();
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const { return compute_with_status(*this, context); }

  static constexpr const char* kProvider = "CPUExecutionProvider";
  SoftPoolAttributes attributes;
};

template <typename scalar_t>
constexpr ONNXTensorElementDataType element_type();
template <>
constexpr ONNXTensorElementDataType element_type<float>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
template <>
constexpr ONNXTensorElementDataType element_type<Ort::Float16_t>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16; }

// The op ORT sees, for one kernel type (CPU or CUDA) and element type: the
// kernel's constructor errors become statuses, the provider is the kernel's.
template <typename Kernel, typename scalar_t>
struct SoftPoolOp : Ort::CustomOpBase<SoftPoolOp<Kernel, scalar_t>, Kernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    try {
      *kernel = new Kernel(info);
      return nullptr;
    } catch (const Ort::Exception& e) {
      return api.CreateStatus(e.GetOrtErrorCode(), e.what());
    } catch (const std::invalid_argument& e) {
      return api.CreateStatus(ORT_INVALID_ARGUMENT, e.what());
    } catch (const std::bad_alloc&) {
      return api.CreateStatus(ORT_FAIL, "poolswap::SoftPool: out of memory (std::bad_alloc) creating the kernel");
    } catch (const std::exception& e) {
      return api.CreateStatus(ORT_FAIL, (std::string("poolswap::SoftPool: ") + e.what()).c_str());
    } catch (...) {
      return api.CreateStatus(ORT_FAIL, "poolswap::SoftPool: unknown C++ exception creating the kernel");
    }
  }
  const char* GetName() const { return kOpName; }
  const char* GetExecutionProviderType() const { return Kernel::kProvider; }
  size_t GetInputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetInputType(size_t) const { return element_type<scalar_t>(); }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return element_type<scalar_t>(); }
};

// ---------------------------------------------------------------------------
// CUDA kernel (where the library was built with nvcc): the PyTorch CUDA op's
// forward kernel (softpool_cuda.cuh) on the stream ORT hands the kernel. It
// joins the same domain as the CPU ones: a CUDA session runs it, a CPU session
// the CPU kernels.
// ---------------------------------------------------------------------------
#if defined(POOLSWAP_ORT_WITH_CUDA)

template <typename scalar_t>
struct SoftPoolCudaKernel {
  explicit SoftPoolCudaKernel(const OrtKernelInfo* info) : attributes(read_attributes(info)) {}

  ~SoftPoolCudaKernel() {
    for (auto& entry : device_betas) poolswap_ort::cuda_release(entry.second);
  }

  // The per-channel temperatures on the input's device, uploaded at first use.
  const float* betas_on_device(const void* input, void* stream) const {
    if (attributes.betas.empty()) return nullptr;
    int device = 0;
    check(poolswap_ort::cuda_device_of(input, &device));
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& entry : device_betas) {
      if (entry.first == device) return entry.second;
    }
    float* copy = nullptr;
    check(poolswap_ort::cuda_upload(attributes.betas.data(), attributes.betas.size(), input, stream, &copy, &device));
    device_betas.emplace_back(device, copy);
    return copy;
  }

  static void check(int status) {
    if (status != 0) {
      throw std::runtime_error(std::string("poolswap::SoftPool CUDA kernel: ") + poolswap_ort::cuda_error_string(status));
    }
  }

  void Compute(OrtKernelContext* raw_context) const {
    Ort::KernelContext context(raw_context);
    Ort::ConstValue input = context.GetInput(0);
    const std::vector<int64_t> shape = input.GetTensorTypeAndShapeInfo().GetShape();
    const Problem p = make_problem(attributes, shape);
    Ort::UnownedValue output = context.GetOutput(0, p.out_shape);
    if (p.batch * p.channels == 0) return;
    void* stream = context.GetGPUComputeStream();
    const void* x = input.GetTensorRawData();
    const float* betas = betas_on_device(x, stream);
    const bool per_channel = betas != nullptr;
    int status;
    if constexpr (std::is_same<scalar_t, float>::value) {
      status = poolswap_ort::cuda_forward_float(static_cast<const float*>(x), output.GetTensorMutableData<float>(), p.g,
                                                p.batch, p.channels, betas, per_channel, attributes.beta, stream);
    } else {
      status = poolswap_ort::cuda_forward_half(x, output.GetTensorMutableRawData(), p.g, p.batch, p.channels, betas,
                                               per_channel, attributes.beta, stream);
    }
    check(status);
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const { return compute_with_status(*this, context); }

  static constexpr const char* kProvider = "CUDAExecutionProvider";
  SoftPoolAttributes attributes;
  mutable std::mutex mutex;
  mutable std::vector<std::pair<int, float*>> device_betas;
};

SoftPoolOp<SoftPoolCudaKernel<float>, float> g_cuda_float;
SoftPoolOp<SoftPoolCudaKernel<Ort::Float16_t>, Ort::Float16_t> g_cuda_half;

void register_cuda_kernels(Ort::CustomOpDomain& domain) {
  domain.Add(&g_cuda_float);
  domain.Add(&g_cuda_half);
}
constexpr const char* kKernels = "cpu,cuda";

#else

void register_cuda_kernels(Ort::CustomOpDomain& /*domain*/) {}
constexpr const char* kKernels = "cpu";

#endif  // POOLSWAP_ORT_WITH_CUDA

// The ops and the domain must outlive every session that uses them.
SoftPoolOp<SoftPoolCpuKernel<float>, float> g_cpu_float;
SoftPoolOp<SoftPoolCpuKernel<Ort::Float16_t>, Ort::Float16_t> g_cpu_half;
std::mutex g_mutex;
std::vector<Ort::CustomOpDomain> g_domains;

}  // namespace poolswap_ort

extern "C" {

// What the Python side checks before registering: library version and ORT API version.
__attribute__((visibility("default"))) const char* poolswap_ort_library_info() {
  static const std::string info = std::string("poolswap-ort ") + POOLSWAP_ORT_LIBRARY_VERSION +
                                  " ort_api=" + std::to_string(ORT_API_VERSION) + " ops=SoftPool(float,float16)" +
                                  " kernels=" + poolswap_ort::kKernels;
  return info.c_str();
}

// The instruction set the CPU kernels run (baseline, avx2, avx512), or "error: <why>"
// where POOLSWAP_CPU_ISA asks for one this CPU or build lacks.
__attribute__((visibility("default"))) const char* poolswap_ort_cpu_isa() {
  static thread_local std::string answer;
  try {
    answer = poolswap::cpu::isa().name;
  } catch (const std::exception& e) {
    answer = std::string("error: ") + e.what();
  }
  return answer.c_str();
}

// Runs the chosen ISA's CPU kernels (forward of every plane path, float and float16,
// and the backward) over fixed inputs and returns a checksum of the results: lets a
// test run the shipped library's kernels with no ORT at hand, e.g. under an emulated
// older CPU, and compare the ISAs. NaN where POOLSWAP_CPU_ISA cannot be honoured.
__attribute__((visibility("default"))) double poolswap_ort_cpu_selftest() {
  try {
    const auto& kernels = poolswap::cpu::kernels<float>();
    const auto& half_kernels = poolswap::cpu::kernels<Ort::Float16_t>();
    struct Case {
      int64_t in[3], kernel[3], stride[3], pad[3], dilation[3];
      bool ceil;
    };
    const Case cases[] = {
        {{1, 33, 37}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, false},   // strips / row blocks
        {{1, 20, 23}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 1, 1}, false},   // padded tiles, stride 1
        {{1, 8, 8}, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}, {1, 1, 1}, false},     // short rows: shared buffers
        {{1, 1, 70}, {1, 1, 5}, {1, 1, 3}, {0, 0, 2}, {1, 1, 2}, true},     // 1-d, dilation, ceil_mode
        {{6, 7, 9}, {2, 3, 2}, {2, 2, 1}, {1, 0, 1}, {1, 1, 1}, true},      // 3-d
        {{1, 40, 70}, {1, 5, 4}, {1, 3, 3}, {0, 2, 1}, {1, 1, 1}, false},   // long rows, stride 3
    };
    double checksum = 0.0;
    int64_t seed = 12345;
    auto next = [&seed]() {
      seed = (seed * 1103515245 + 12345) % 2147483648LL;
      return static_cast<float>(seed % 20001 - 10000) / 1000.0f;
    };
    for (const Case& c : cases) {
      poolswap::Geometry g;
      for (int i = 0; i < 3; ++i) {
        g.in[i] = c.in[i];
        g.kernel[i] = c.kernel[i];
        g.stride[i] = c.stride[i];
        g.pad[i] = c.pad[i];
        g.dilation[i] = c.dilation[i];
        g.out[i] = poolswap::pooled_size(c.in[i], c.kernel[i], c.stride[i], c.pad[i], c.pad[i], c.dilation[i], c.ceil);
      }
      const int64_t planes = 3, in_size = g.in[0] * g.in[1] * g.in[2], out_size = g.out[0] * g.out[1] * g.out[2];
      std::vector<float> x(static_cast<size_t>(planes * in_size)), y(static_cast<size_t>(planes * out_size));
      for (float& v : x) v = next();
      const int64_t xs[3] = {g.in[1] * g.in[2], g.in[2], 1}, ys[3] = {g.out[1] * g.out[2], g.out[2], 1};
      const poolswap::cpu::PlaneLayout layout{1, in_size, 0, out_size, 0};
      kernels.forward_planes(x.data(), xs, y.data(), ys, layout, 0, planes, g, 1.5f);
      for (float v : y) checksum += v;
      const float beta = 0.75f;  // the per-channel entry, one plane
      kernels.forward_planes_betas(x.data(), xs, y.data(), ys, layout, 0, 1, g, &beta);
      for (int64_t i = 0; i < out_size; ++i) checksum += 0.5 * y[static_cast<size_t>(i)];
      std::vector<float> grad_x(static_cast<size_t>(in_size), 0.0f), grad_y(static_cast<size_t>(out_size));
      for (float& v : grad_y) v = next();
      checksum += kernels.backward_plane(grad_y.data(), ys, x.data(), xs, grad_x.data(), g, 1.25f);
      for (float v : grad_x) checksum += 0.25 * v;
      std::vector<Ort::Float16_t> xh(x.size()), yh(y.size());
      for (size_t i = 0; i < x.size(); ++i) xh[i] = Ort::Float16_t(x[i]);
      half_kernels.forward_planes(xh.data(), xs, yh.data(), ys, layout, 0, planes, g, 1.0f);
      for (const Ort::Float16_t& v : yh) checksum += 0.125 * static_cast<float>(v);
    }
    return checksum;
  } catch (const std::exception&) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

// Distinct threads that ran the last CPU call's planes (a diagnostic for the tests).
__attribute__((visibility("default"))) int64_t poolswap_ort_threads_last_call() {
  return poolswap_ort::g_threads_last_call.load();
}

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // An ORT older than the headers: report through API 1, whose CreateStatus every ORT has.
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = std::string("poolswap's ONNX Runtime library needs ORT API ") +
                                std::to_string(ORT_API_VERSION) + " (onnxruntime >= 1." +
                                std::to_string(ORT_API_VERSION) + "), this onnxruntime is " +
                                api_base->GetVersionString();
    return oldest == nullptr ? nullptr : oldest->CreateStatus(ORT_FAIL, message.c_str());
  }
  Ort::InitApi(api);
  try {
    poolswap::cpu::isa();  // a POOLSWAP_CPU_ISA this CPU cannot run fails the registration, in one line
    std::lock_guard<std::mutex> lock(poolswap_ort::g_mutex);
    Ort::CustomOpDomain domain(poolswap_ort::kDomain);
    domain.Add(&poolswap_ort::g_cpu_float);
    domain.Add(&poolswap_ort::g_cpu_half);
    poolswap_ort::register_cuda_kernels(domain);
    Ort::UnownedSessionOptions session_options(options);
    session_options.Add(domain);
    poolswap_ort::g_domains.push_back(std::move(domain));
    return nullptr;
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
}

}  // extern "C"
