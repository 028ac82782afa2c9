#pragma once
// The convolution every ResNet family here is built from, as torchvision and the robustness
// codes define it: square kernel, "same" padding, no bias (a BatchNorm follows or precedes it).
#include <torch/torch.h>

namespace advft::models::detail {

inline torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

}  // namespace advft::models::detail
