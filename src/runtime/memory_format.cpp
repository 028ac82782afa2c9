#include "advft/runtime/memory_format.h"

namespace advft::runtime {

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
