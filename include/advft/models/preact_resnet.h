#pragma once
// Pre-activation ResNet in the layout of the fast adversarial training / robust overfitting code
// (Wong et al. 2020, Rice et al. 2020), so their checkpoints load by name: conv1, layerK.J.{bn1,
// conv1, bn2, conv2, shortcut.0}, bn, linear.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "advft/models/classifier.h"
#include "advft/models/normalize.h"

namespace advft::models {

/// Options for one PreActBlock.
struct PreActBlockOptions {
  PreActBlockOptions(int64_t in_planes, int64_t planes) : in_planes_(in_planes), planes_(planes) {}
  TORCH_ARG(int64_t, in_planes);
  TORCH_ARG(int64_t, planes);
  TORCH_ARG(int64_t, stride) = 1;
};

/// BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1-conv shortcut taken after the first
/// BN-ReLU.
class PreActBlockImpl : public torch::nn::Module {
 public:
  /// Registers bn1, conv1, bn2, conv2 and, when stride != 1 or channels change, shortcut.
  explicit PreActBlockImpl(const PreActBlockOptions& options);
  /// Residual output of the block.
  torch::Tensor forward(torch::Tensor x);

  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  /// Empty (nullptr) for an identity shortcut; that is how the reference omits the key.
  torch::nn::Sequential shortcut{nullptr};
};

TORCH_MODULE(PreActBlock);

/// Options for PreActResNet; the defaults are PreActResNet-18 for CIFAR-10.
struct PreActResNetOptions {
  /// Blocks per stage; stage k has width * 2^k channels and stride 2 except stage 0.
  TORCH_ARG(std::vector<int64_t>, blocks) = {2, 2, 2, 2};
  /// Channels of conv1 and the first stage.
  TORCH_ARG(int64_t, width) = 64;
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Input normalization (size 1 or in_channels).
  TORCH_ARG(std::vector<double>, mean) = {0.0};
  TORCH_ARG(std::vector<double>, std) = {1.0};
};

/// Pre-activation ResNet; global average pooling makes it accept any input size (28x28, 32x32).
class PreActResNetImpl : public ClassifierImpl {
 public:
  /// Builds normalize, conv1, layer1..layerN, bn and linear (PyTorch default initialization,
  /// as in the reference code).
  explicit PreActResNetImpl(const PreActResNetOptions& options = {});
  /// Logits for a batch of [0,1] pixels.
  torch::Tensor forward(torch::Tensor x) override;

  PreActResNetOptions options;
  Normalize normalize{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  std::vector<torch::nn::Sequential> layers;
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear linear{nullptr};
};

TORCH_MODULE(PreActResNet);

}  // namespace advft::models
