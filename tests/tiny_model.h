#pragma once
// A small classifier for tests that need a model but not a real architecture.
#include <torch/torch.h>

#include "advft/models/classifier.h"

namespace advft::testing {

class TinyNetImpl : public models::ClassifierImpl {
 public:
  explicit TinyNetImpl(int64_t channels = 3, int64_t classes = 10) {
    conv_ = register_module("conv",
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 8, 3).padding(1)));
    bn_ = register_module("bn", torch::nn::BatchNorm2d(8));
    fc_ = register_module("fc", torch::nn::Linear(8, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(bn_(conv_(x)));
    return fc_(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(TinyNet);

}  // namespace advft::testing
