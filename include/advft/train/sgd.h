#pragma once
// SGD with momentum / Nesterov and weight decay (PyTorch's torch.optim.SGD semantics), written
// out so that its state is a set of momentum buffers keyed by *parameter name*: checkpoints then
// resume exactly, across processes and LibTorch versions. The learning rate lives in a one-element
// tensor on the parameters' device that the schedule refills before every step: a captured CUDA
// graph reads it at replay, where a plain number would be frozen at its capture-time value.
// On CUDA (LibTorch 2.6 and later) an update is one multi-tensor kernel for all parameters, as
// PyTorch's SGD(fused=True), instead of four small kernels per parameter.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "advft/config/config.h"
#include "advft/io/safetensors.h"

namespace advft::train {

class Sgd {
 public:
  /// Optimizes every parameter of `module` that requires a gradient.
  Sgd(torch::nn::Module& module, const config::OptimizerConfig& options);

  /// One update with the current gradients and learning rate.
  void step();
  /// Sets every parameter gradient to None (cheaper than zero-filling).
  void zero_grad();

  /// Sets the learning rate of the next step() (queued on the device like any other work).
  void set_lr(double lr);
  double lr() const { return lr_; }

  /// Momentum buffers by parameter name (those not yet created are absent).
  std::vector<io::NamedTensor> state() const;
  /// Restores buffers saved by state(); unknown names or wrong shapes throw CheckpointError.
  void load_state(const std::vector<io::NamedTensor>& state, const std::string& source);

 private:
  /// The update as at::_fused_sgd_ where every parameter qualifies; false (nothing done) if not.
  bool fused_step();

  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> momentum_;  // undefined until a parameter's first update
  config::OptimizerConfig options_;
  double lr_ = 0.0;
  torch::Tensor lr_tensor_;  // fp32 scalar on the parameters' device, read by step()
};

/// Sets the learning rate the next step uses (the one place a schedule touches the optimizer).
inline void apply_lr(Sgd& optimizer, double lr) {
  optimizer.set_lr(lr);
}

}  // namespace advft::train
