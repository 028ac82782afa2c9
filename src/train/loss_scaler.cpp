#include "advft/train/loss_scaler.h"

#include <algorithm>

namespace advft::train {
namespace {

// Growing past this would make the scaled loss itself overflow fp32.
constexpr double kMaxScale = 16777216.0 * 16777216.0;  // 2^48
constexpr double kMinScale = 1.0 / 16777216.0;         // 2^-24

}  // namespace

LossScaler::LossScaler(bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(enabled ? initial_scale : 1.0), growth_interval_(growth_interval) {}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const {
  return enabled_ ? loss * scale_ : loss;
}

bool LossScaler::unscale_and_update(const std::vector<torch::Tensor>& params) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  // One reduction over all gradients: a single host sync per step, not one per tensor.
  std::vector<torch::Tensor> finite_flags;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.mutable_grad().mul_(1.0 / scale_);
    finite_flags.push_back(torch::isfinite(p.grad()).all());
  }
  const bool finite = finite_flags.empty() || torch::stack(finite_flags).all().item<bool>();
  if (finite) {
    if (++good_steps_ >= growth_interval_) {
      scale_ = std::min(scale_ * 2.0, kMaxScale);
      good_steps_ = 0;
    }
  } else {
    scale_ = std::max(scale_ * 0.5, kMinScale);
    good_steps_ = 0;
    ++skipped_;
  }
  return finite;
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale_}, {"good_steps", good_steps_}, {"skipped_steps", skipped_}};
}

void LossScaler::load_state(const nlohmann::json& state) {
  if (!enabled_ || !state.is_object()) return;
  scale_ = state.value("scale", scale_);
  good_steps_ = state.value("good_steps", good_steps_);
  skipped_ = state.value("skipped_steps", skipped_);
}

}  // namespace advft::train
