#pragma once
// The one interface the rest of advft sees of a network: pixels in [0,1] -> logits.
#include <torch/torch.h>

namespace advft::models {

/// An image classifier that normalizes its own input: forward() takes float NCHW pixels in
/// [0,1] and returns logits [N, classes]. Concrete architectures derive from it so that attacks,
/// training and evaluation work on any of them.
class ClassifierImpl : public torch::nn::Module {
 public:
  /// Logits for a batch of [0,1] pixels.
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// Shared handle to any classifier (the models' holders convert to it via .ptr()).
using ClassifierPtr = std::shared_ptr<ClassifierImpl>;

}  // namespace advft::models
