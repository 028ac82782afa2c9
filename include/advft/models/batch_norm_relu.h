#pragma once
// relu(batch_norm(x)): the pair that opens every pre-activation block. In training on a GPU, with
// bf16 or fp16 channels-last activations, advft's own CUDA kernels do it in fewer passes over the
// activation than BatchNorm2d followed by relu (src/models/batch_norm_relu_kernels.h says how
// many); everywhere else it is exactly BatchNorm2d's forward and torch::relu.
#include <string>

#include <torch/torch.h>

namespace advft::models {

/// relu(bn(x)). Through the fused kernels when they are switched on and apply: a training-mode
/// call on a CUDA tensor of bf16 or fp16, channels-last, channels a multiple of 8, and an affine
/// BatchNorm with fp32 parameters that tracks running statistics at a fixed momentum. Either way
/// bn's running statistics and num_batches_tracked advance as BatchNorm2d's own forward does.
/// The fused path is differentiable once (no gradients of gradients).
torch::Tensor batch_norm_relu(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);

/// Whether this build has the fused kernels (a CUDA LibTorch and a CUDA compiler at build time).
bool fused_batch_norm_relu_built();

/// Switches the fused kernels on or off for the whole process (off at start).
void set_fused_batch_norm_relu(bool on);

/// The `fused_bn_relu` setting ("auto" | "on" | "off") for `device`: auto is on where the kernels
/// are built and the device is a GPU; "on" anywhere else is a ConfigError naming `where`.
bool resolve_fused_batch_norm_relu(const std::string& setting, const torch::Device& device,
                                   const std::string& where);

}  // namespace advft::models
