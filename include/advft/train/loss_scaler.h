#pragma once
// Dynamic loss scaling for fp16 training, as torch.cuda.amp.GradScaler does it: fp16 gradients
// of an unscaled loss underflow to zero, so the loss is multiplied by a large scale before
// backward and the gradients divided by it after; a step whose gradients overflowed is skipped
// and the scale halved, and after `growth_interval` good steps in a row the scale doubles.
#include <cstdint>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace advft::train {

class LossScaler {
 public:
  /// A disabled scaler (every precision but fp16) passes losses and gradients through.
  explicit LossScaler(bool enabled, double initial_scale = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }

  /// loss * scale (the loss itself when disabled).
  torch::Tensor scale_loss(const torch::Tensor& loss) const;

  /// Divides the gradients of `params` by the scale and reports whether all are finite; on
  /// false the caller skips the optimizer step. Either way the scale is updated for the next
  /// step. Always true when disabled.
  bool unscale_and_update(const std::vector<torch::Tensor>& params);

  /// Steps skipped since construction (or the state restored).
  int64_t skipped_steps() const { return skipped_; }

  /// {"scale", "good_steps", "skipped_steps"}: what a resumed run needs to continue exactly.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace advft::train
