#include "advft/runtime/device.h"

#include <algorithm>
#include <thread>

#include "advft/error.h"

namespace advft::runtime {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto")
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ConfigError("device = \"" + name +
                        "\": this LibTorch has no CUDA or no GPU is visible; use --device cpu");
    }
    torch::Device device(name == "cuda" ? std::string("cuda:0") : name);
    if (device.index() >= static_cast<int>(torch::cuda::device_count())) {
      throw ConfigError("device = \"" + name + "\": only " +
                        std::to_string(torch::cuda::device_count()) + " GPU(s) visible");
    }
    return device;
  }
  throw ConfigError("device = \"" + name + "\": must be auto, cpu, cuda or cuda:N");
}

void set_cpu_threads(int64_t n) {
  // Debian's LibTorch starts with one intra-op thread, unlike Python's torch, which uses every
  // core: without this, a CPU run is up to twice as slow as the same run in Python.
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(n));
}

}  // namespace advft::runtime
