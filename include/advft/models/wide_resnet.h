#pragma once
// WideResNet in the TRADES / RobustBench layout (the usual robust WRN-28-10, WRN-34-10,
// WRN-70-16 checkpoints): conv1, blockK.layer.J.{bn1, conv1, bn2, conv2[, convShortcut]}, bn1, fc.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "advft/models/classifier.h"
#include "advft/models/normalize.h"

namespace advft::models {

/// Options for one WideBasicBlock.
struct WideBasicBlockOptions {
  WideBasicBlockOptions(int64_t in_planes, int64_t out_planes)
      : in_planes_(in_planes), out_planes_(out_planes) {}
  TORCH_ARG(int64_t, in_planes);
  TORCH_ARG(int64_t, out_planes);
  TORCH_ARG(int64_t, stride) = 1;
};

/// TRADES BasicBlock (dropout rate 0): BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus an identity or
/// 1x1 `convShortcut` that, when channels change, takes the activated input.
class WideBasicBlockImpl : public torch::nn::Module {
 public:
  /// Registers bn1, conv1, bn2, conv2 and, when in_planes != out_planes, convShortcut.
  explicit WideBasicBlockImpl(const WideBasicBlockOptions& options);
  /// Residual output of the block.
  torch::Tensor forward(torch::Tensor x);

  /// The reference decides the shortcut on channel count alone (not stride).
  bool equal_in_out;
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::Conv2d conv_shortcut{nullptr};
};

TORCH_MODULE(WideBasicBlock);

/// One group of blocks, held in a Sequential named `layer` as in the reference.
class NetworkBlockImpl : public torch::nn::Module {
 public:
  /// `count` blocks; the first maps in_planes -> out_planes with `stride`.
  NetworkBlockImpl(int64_t count, int64_t in_planes, int64_t out_planes, int64_t stride);
  /// Runs the blocks in order.
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Sequential layer{nullptr};
};

TORCH_MODULE(NetworkBlock);

/// Options for WideResNet; the defaults are WRN-34-10 for CIFAR-10.
struct WideResNetOptions {
  /// 6n + 4 (n blocks per group).
  TORCH_ARG(int64_t, depth) = 34;
  TORCH_ARG(int64_t, widen_factor) = 10;
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Input normalization (size 1 or in_channels).
  TORCH_ARG(std::vector<double>, mean) = {0.0};
  TORCH_ARG(std::vector<double>, std) = {1.0};
};

/// WideResNet-depth-k; global average pooling makes it accept any input size (28x28, 32x32).
class WideResNetImpl : public ClassifierImpl {
 public:
  /// Builds the network with TRADES' initialization (convs N(0, 2/(k*k*out)), BN weight 1 bias
  /// 0, linear bias 0).
  explicit WideResNetImpl(const WideResNetOptions& options = {});
  /// Logits for a batch of [0,1] pixels.
  torch::Tensor forward(torch::Tensor x) override;

  WideResNetOptions options;
  Normalize normalize{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  NetworkBlock block1{nullptr};
  NetworkBlock block2{nullptr};
  NetworkBlock block3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Linear fc{nullptr};
};

TORCH_MODULE(WideResNet);

}  // namespace advft::models
