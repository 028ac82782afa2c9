#include "advft/runtime/memory_format.h"

#include "advft/error.h"

namespace advft::runtime {

bool resolve_channels_last(const std::string& setting, const torch::Device& device,
                           const std::string& where) {
  if (setting == "on") return true;
  if (setting == "off") return false;
  if (setting == "auto") return device.is_cuda();
  throw ConfigError(where + " = \"" + setting + "\": must be auto, on or off");
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& tensor : module.parameters(/*recurse=*/true)) {
    if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(torch::MemoryFormat::ChannelsLast));
  }
  for (auto& tensor : module.buffers(/*recurse=*/true)) {
    if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

}  // namespace advft::runtime
