#include "advft/dist/device.h"

#include <torch/torch.h>

#include "advft/error.h"

namespace advft::dist {

std::string process_device(const std::string& setting, const World& world) {
  if (!world.distributed() || (setting != "auto" && setting != "cuda")) return setting;
  if (!torch::cuda::is_available()) return setting == "auto" ? "cpu" : setting;
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  if (world.local_rank >= gpus) {
    throw DistError("this is local rank " + std::to_string(world.local_rank) + " but the machine " +
                    "has " + std::to_string(gpus) + " GPU(s); start at most one process per GPU " +
                    "(torchrun --nproc-per-node=" + std::to_string(gpus) + ")");
  }
  return "cuda:" + std::to_string(world.local_rank);
}

}  // namespace advft::dist
