#include "advft/runtime/memory_format.h"

#include "advft/runtime/switch.h"

namespace advft::runtime {

bool resolve_channels_last(const std::string& setting, const torch::Device& device,
                           const std::string& where) {
  const Switch value = parse_switch(setting, where);
  return value == Switch::kAuto ? device.is_cuda() : value == Switch::kOn;
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
