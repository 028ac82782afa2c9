#include "advft/runtime/version.h"

#include <torch/torch.h>
#include <torch/version.h>

namespace advft::runtime {

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

std::string version_string() {
  std::string accel = torch::cuda::is_available()
                          ? "CUDA, " + std::to_string(torch::cuda::device_count()) + " GPU(s)"
                          : std::string("CPU");
  return std::string("advft ") + ADVFT_VERSION + " (LibTorch " + torch_version() + ", " + accel +
         ")";
}

}  // namespace advft::runtime
