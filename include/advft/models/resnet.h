#pragma once
// ResNet-18/34/50/101/152 and Wide-ResNet-50-2 in torchvision's layout (v1.5: the stride of a
// bottleneck sits on its 3x3 conv), so torchvision checkpoints load by name: conv1, bn1,
// layerK.J.{conv1, bn1, conv2, bn2[, conv3, bn3], downsample.{0,1}}, fc.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "advft/models/classifier.h"
#include "advft/models/normalize.h"

namespace advft::models {

/// Options for one residual block (basic or bottleneck).
struct ResNetBlockOptions {
  ResNetBlockOptions(int64_t in_planes, int64_t planes) : in_planes_(in_planes), planes_(planes) {}
  TORCH_ARG(int64_t, in_planes);
  /// Output channels of a basic block; a bottleneck outputs 4 * planes.
  TORCH_ARG(int64_t, planes);
  TORCH_ARG(int64_t, stride) = 1;
  /// Bottleneck only: inner width = planes * base_width / 64 (128 for Wide-ResNet-50-2).
  TORCH_ARG(int64_t, base_width) = 64;
};

/// torchvision BasicBlock: conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU.
class ResNetBasicBlockImpl : public torch::nn::Module {
 public:
  /// Output channels per input channel of the last conv.
  static constexpr int64_t kExpansion = 1;
  /// Registers conv1, bn1, conv2, bn2 and, when the shape changes, downsample.
  explicit ResNetBasicBlockImpl(const ResNetBlockOptions& options);
  /// Residual output of the block.
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  /// conv1x1 + BN, or nullptr for an identity shortcut.
  torch::nn::Sequential downsample{nullptr};
};

TORCH_MODULE(ResNetBasicBlock);

/// torchvision Bottleneck: conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN + shortcut, ReLU.
class ResNetBottleneckImpl : public torch::nn::Module {
 public:
  /// Output channels per `planes`.
  static constexpr int64_t kExpansion = 4;
  /// Registers conv1..3, bn1..3 and, when the shape changes, downsample.
  explicit ResNetBottleneckImpl(const ResNetBlockOptions& options);
  /// Residual output of the block.
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::Conv2d conv3{nullptr};
  torch::nn::BatchNorm2d bn3{nullptr};
  /// conv1x1 + BN, or nullptr for an identity shortcut.
  torch::nn::Sequential downsample{nullptr};
};

TORCH_MODULE(ResNetBottleneck);

/// Options for ResNet; the defaults are torchvision's resnet18 for ImageNet.
struct ResNetOptions {
  /// Blocks in layer1..layer4 ({2,2,2,2} ResNet-18, {3,4,6,3} ResNet-34/50, {3,4,23,3} ResNet-101).
  TORCH_ARG(std::vector<int64_t>, blocks) = {2, 2, 2, 2};
  /// Bottleneck blocks (ResNet-50 and up) instead of basic blocks.
  TORCH_ARG(bool, bottleneck) = false;
  /// Bottleneck inner width per 64 planes (64 standard, 128 for Wide-ResNet-50-2).
  TORCH_ARG(int64_t, width_per_group) = 64;
  TORCH_ARG(int64_t, num_classes) = 1000;
  TORCH_ARG(int64_t, in_channels) = 3;
  /// 3x3 stride-1 conv1 and no max-pool, for 32x32 inputs; key names are unchanged.
  TORCH_ARG(bool, cifar_stem) = false;
  /// Input normalization (size 1 or in_channels).
  TORCH_ARG(std::vector<double>, mean) = {0.0};
  TORCH_ARG(std::vector<double>, std) = {1.0};
};

/// torchvision ResNet with an input Normalize; adaptive average pooling accepts any input size.
class ResNetImpl : public ClassifierImpl {
 public:
  /// Builds the network with torchvision's initialization (kaiming-normal fan_out convs,
  /// BN weight 1 bias 0).
  explicit ResNetImpl(const ResNetOptions& options = {});
  /// Logits for a batch of [0,1] pixels.
  torch::Tensor forward(torch::Tensor x) override;

  ResNetOptions options;
  Normalize normalize{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};

TORCH_MODULE(ResNet);

}  // namespace advft::models
