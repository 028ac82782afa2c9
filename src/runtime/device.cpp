#include "advft/runtime/device.h"

#include <algorithm>
#include <cctype>
#include <thread>

#include <spdlog/spdlog.h>

#include "advft/error.h"

#ifdef ADVFT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace advft::runtime {

namespace {

torch::Device use_gpu(const torch::Device& device) {
  at::globalContext().setBenchmarkCuDNN(true);
  return device;
}

}  // namespace

void check_device_name(const std::string& name) {
  const std::string prefix = "cuda:";
  const bool cuda_n =
      name.rfind(prefix, 0) == 0 && name.size() > prefix.size() &&
      name.size() <= prefix.size() + 4 &&  // no card has 10,000 GPUs; keeps the index in an int
      std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                  [](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "auto" || name == "cpu" || name == "cuda" || cuda_n) return;
  throw ConfigError("device = \"" + name +
                    "\": must be auto, cpu, cuda or cuda:N (N: the GPU's index, 0 to 9999)");
}

torch::Device resolve_device(const std::string& name) {
  check_device_name(name);
  if (name == "auto") {
    if (!torch::cuda::is_available()) {
      spdlog::info("device auto: no GPU visible, running on the CPU");
      return torch::kCPU;
    }
    const torch::Device gpu(torch::kCUDA, 0);
    spdlog::info("device auto: {} ({})", gpu.str(), device_name(gpu));
    return use_gpu(gpu);
  }
  if (name == "cpu") return torch::kCPU;
  if (!torch::cuda::is_available()) {
    throw ConfigError("device = \"" + name +
                      "\": this LibTorch has no CUDA or no GPU is visible; use --device cpu");
  }
  const int index = name == "cuda" ? 0 : std::stoi(name.substr(name.find(':') + 1));
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    throw ConfigError("device = \"" + name + "\": only " +
                      std::to_string(torch::cuda::device_count()) + " GPU(s) visible");
  }
  return use_gpu(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)));
}

void check_cudnn_benchmark_limit(int64_t limit) {
  if (limit < 0 || limit > kMaxCudnnBenchmarkLimit) {
    throw ConfigError("cudnn_benchmark_limit = " + std::to_string(limit) + ": must be in [0, " +
                      std::to_string(kMaxCudnnBenchmarkLimit) +
                      "] (0: time every algorithm; PyTorch's default " +
                      std::to_string(kDefaultCudnnBenchmarkLimit) + ")");
  }
}

void set_cudnn_benchmark_limit(int64_t limit, const torch::Device& device) {
  check_cudnn_benchmark_limit(limit);
  at::globalContext().setBenchmarkLimitCuDNN(static_cast<int>(limit));
  if (device.is_cuda() && limit != kDefaultCudnnBenchmarkLimit) {
    spdlog::info("cuDNN autotuning times {} per convolution (cudnn_benchmark_limit {})",
                 limit == 0 ? std::string("every candidate algorithm")
                            : "up to " + std::to_string(limit) + " algorithms",
                 limit);
  }
}

std::string device_name(const torch::Device& device) {
#ifdef ADVFT_HAVE_CUDA
  if (device.is_cuda()) {
    return at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0)->name;
  }
#endif
  if (device.is_cuda()) return device.str();
  return "CPU, " + std::to_string(torch::get_num_threads()) + " threads";
}

int64_t device_total_memory(const torch::Device& device) {
#ifdef ADVFT_HAVE_CUDA
  if (device.is_cuda()) {
    const auto* properties = at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0);
    return static_cast<int64_t>(properties->totalGlobalMem);
  }
#endif
  (void)device;
  return 0;
}

BackgroundJob warm_up_device(const torch::Device& device) {
  if (!device.is_cuda()) return {};
  return BackgroundJob("making the CUDA context of " + device.str(), [device] {
    // The first allocation creates the context and the caching allocator's state for the device.
    torch::empty({1}, torch::TensorOptions().device(device));
  });
}

void set_cpu_threads(int64_t n) {
  // Debian's LibTorch starts with one intra-op thread, unlike Python's torch, which uses every
  // core: without this, a CPU run is up to twice as slow as the same run in Python.
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(n));
}

}  // namespace advft::runtime
