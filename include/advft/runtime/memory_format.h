#pragma once
// channels-last (NHWC) weights: what cuDNN's fastest convolution kernels read on tensor-core
// GPUs. LibTorch's Module::to has no memory-format overload, so parameters are converted here.
#include <string>

#include <torch/torch.h>

namespace advft::runtime {

/// The `channels_last` setting ("auto" | "on" | "off") for `device`: auto is on for CUDA, where
/// cuDNN's tensor-core kernels read NHWC, and off for the CPU, whose convolutions prefer NCHW.
/// ConfigError naming `where` for other values.
bool resolve_channels_last(const std::string& setting, const torch::Device& device,
                           const std::string& where);

/// Re-lays every 4-D parameter and buffer of `module` out as channels-last, in place (the
/// tensors keep their identity, so optimizers and mirrored TorchScript tensors see the change).
void to_channels_last(torch::nn::Module& module);

}  // namespace advft::runtime
