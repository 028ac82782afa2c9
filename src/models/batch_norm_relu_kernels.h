#pragma once
// advft's own CUDA kernels for relu(batch_norm(x)) in training mode on channels-last 16-bit
// activations (the layout and dtype of a bf16-autocast, channels-last ResNet). PyTorch runs that
// as a statistics pass, a normalizing pass and a separate ReLU, and the backward as a ReLU
// backward, a reduction and an element-wise pass: 13 trips through the activation's memory per
// layer. These fuse the ReLU into both sides, 8 trips: for a WRN-34-10 at batch 128, whose
// BatchNorm layers are memory-bound, that is time a PGD step spends eleven times over.
//
// Raw pointers and a stream only: this header is shared between the CUDA compiler and the C++
// side (src/models/batch_norm_relu.cpp), which owns the tensors and the autograd function.
// Tensors are [rows, channels] row-major (an NHWC tensor with rows = N*H*W), channels a multiple
// of 8, 16-byte aligned; statistics and parameters are fp32. Errors are std::runtime_error.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace advft::models::kernels {

enum class Element { kBFloat16, kHalf };

struct Shape {
  int64_t rows = 0;  ///< N*H*W, at least 2 (a variance needs two values)
  int channels = 0;  ///< a multiple of kChannelMultiple
};

/// Channels must be a multiple of this (one 16-byte vector of 16-bit values).
constexpr int kChannelMultiple = 8;

/// How many partial sums per channel the reductions of `shape` write: the workspace of either
/// pass holds workspace_floats(shape) floats.
int reduction_splits(const Shape& shape);
int64_t workspace_floats(const Shape& shape);

/// y = relu((x - mean) * invstd * weight + bias) with the batch's mean and (biased) variance;
/// updates the running statistics as torch.nn.BatchNorm2d does (unbiased variance, `momentum`);
/// writes mean, invstd and the per-channel scale and shift that the backward pass needs.
struct ForwardArgs {
  Element element = Element::kBFloat16;
  Shape shape;
  const void* x = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;
  float* running_mean = nullptr;
  float* running_var = nullptr;
  float momentum = 0.1f;
  float eps = 1e-5f;
  float* workspace = nullptr;  ///< workspace_floats(shape)
  float* save_mean = nullptr;  ///< [channels] each, written
  float* save_invstd = nullptr;
  float* scale = nullptr;  ///< weight * invstd
  float* shift = nullptr;  ///< bias - mean * scale
  void* y = nullptr;       ///< like x
};
void forward(const ForwardArgs& args, cudaStream_t stream);

/// Gradients of the forward's output `dy` (same layout as x) with respect to x, weight and bias;
/// the ReLU's mask is recomputed from x, scale and shift.
struct BackwardArgs {
  Element element = Element::kBFloat16;
  Shape shape;
  const void* x = nullptr;
  const void* dy = nullptr;
  const float* weight = nullptr;
  const float* save_mean = nullptr;
  const float* save_invstd = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  float* workspace = nullptr;     ///< workspace_floats(shape)
  float* coefficients = nullptr;  ///< [3 * channels], scratch
  float* grad_weight = nullptr;   ///< [channels] each, written
  float* grad_bias = nullptr;
  void* dx = nullptr;  ///< like x
};
void backward(const BackwardArgs& args, cudaStream_t stream);

}  // namespace advft::models::kernels
