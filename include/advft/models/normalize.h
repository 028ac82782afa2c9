#pragma once
// Per-channel mean/std normalization as the first layer of every model, so that everything
// outside the model (data, attacks, epsilons) stays in [0,1] pixel space and a checkpoint carries
// the statistics its weights were trained with.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace advft::models {

/// Options for NormalizeImpl: statistics of size 1 (shared by all channels) or `channels`.
struct NormalizeOptions {
  NormalizeOptions(int64_t channels, std::vector<double> mean, std::vector<double> std)
      : channels_(channels), mean_(std::move(mean)), std_(std::move(std)) {}
  /// Number of input channels C; the buffers have shape [1, C, 1, 1].
  TORCH_ARG(int64_t, channels);
  /// Per-channel mean, subtracted first.
  TORCH_ARG(std::vector<double>, mean);
  /// Per-channel standard deviation (> 0), divided by second.
  TORCH_ARG(std::vector<double>, std);
};

/// y = (x - mean) / std per channel; buffers "mean" and "std" of shape [1, C, 1, 1].
class NormalizeImpl : public torch::nn::Cloneable<NormalizeImpl> {
 public:
  /// Builds the buffers from the options (TORCH_CHECKs sizes and std > 0).
  explicit NormalizeImpl(NormalizeOptions options);
  /// (Re)creates the buffers from options; called by the constructor and clone().
  void reset() override;
  /// Normalizes an NCHW batch with C == options.channels().
  torch::Tensor forward(torch::Tensor x);
  /// Prints e.g. "advft::models::Normalize(channels=3)".
  void pretty_print(std::ostream& stream) const override;

  NormalizeOptions options;
  torch::Tensor mean;
  torch::Tensor std;
};

TORCH_MODULE(Normalize);

}  // namespace advft::models
