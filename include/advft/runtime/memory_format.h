#pragma once
// channels-last (NHWC) weights: what cuDNN's fastest convolution kernels read on tensor-core
// GPUs. LibTorch's Module::to has no memory-format overload, so parameters are converted here.
#include <torch/torch.h>

namespace advft::runtime {

/// Re-lays every 4-D parameter and buffer of `module` out as channels-last, in place (the
/// tensors keep their identity, so optimizers and mirrored TorchScript tensors see the change).
void to_channels_last(torch::nn::Module& module);

}  // namespace advft::runtime
