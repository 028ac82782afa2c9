#include "advft/schedule/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "advft/error.h"

namespace advft::schedule {

LrSchedule::LrSchedule(int64_t total_steps) : total_steps_(total_steps) {
  if (total_steps_ < 1) throw ConfigError("a schedule needs at least one training step");
}

double LrSchedule::progress(int64_t step) const {
  step = std::clamp<int64_t>(step, 0, total_steps_ - 1);
  return static_cast<double>(step) / static_cast<double>(total_steps_);
}

SlowStartFastDecay::SlowStartFastDecay(int64_t total_steps, double start_lr, double peak_lr,
                                       double end_lr, double warmup, std::string decay)
    : LrSchedule(total_steps),
      start_lr_(start_lr),
      peak_lr_(peak_lr),
      end_lr_(end_lr),
      warmup_steps_(static_cast<int64_t>(std::llround(warmup * static_cast<double>(total_steps)))),
      decay_(std::move(decay)) {
  warmup_steps_ = std::min(warmup_steps_, total_steps - 1);
}

double SlowStartFastDecay::lr(int64_t step) const {
  step = std::clamp<int64_t>(step, 0, total_steps() - 1);
  if (step < warmup_steps_) {
    return start_lr_ +
           (peak_lr_ - start_lr_) * static_cast<double>(step) / static_cast<double>(warmup_steps_);
  }
  // u runs from 0 at the peak towards 1 at the end of the run.
  double u = static_cast<double>(step - warmup_steps_) /
             static_cast<double>(total_steps() - warmup_steps_);
  if (decay_ == "linear") return peak_lr_ + (end_lr_ - peak_lr_) * u;
  if (decay_ == "cosine") return end_lr_ + (peak_lr_ - end_lr_) * 0.5 * (1.0 + std::cos(M_PI * u));
  return peak_lr_ * std::pow(end_lr_ / peak_lr_, u);
}

Piecewise::Piecewise(int64_t total_steps, double base_lr, std::vector<double> milestones,
                     double gamma)
    : LrSchedule(total_steps),
      base_lr_(base_lr),
      milestones_(std::move(milestones)),
      gamma_(gamma) {}

double Piecewise::lr(int64_t step) const {
  double t = progress(step);
  double lr = base_lr_;
  for (double milestone : milestones_) {
    if (t >= milestone) lr *= gamma_;
  }
  return lr;
}

Cosine::Cosine(int64_t total_steps, double base_lr, double end_lr)
    : LrSchedule(total_steps), base_lr_(base_lr), end_lr_(end_lr) {}

double Cosine::lr(int64_t step) const {
  return end_lr_ + (base_lr_ - end_lr_) * 0.5 * (1.0 + std::cos(M_PI * progress(step)));
}

Constant::Constant(int64_t total_steps, double lr) : LrSchedule(total_steps), lr_(lr) {}

double Constant::lr(int64_t) const {
  return lr_;
}

std::unique_ptr<LrSchedule> make_schedule(const config::ScheduleConfig& c, int64_t total_steps) {
  if (c.kind == "slow_start_fast_decay") {
    return std::make_unique<SlowStartFastDecay>(total_steps, c.start_lr, c.peak_lr, c.end_lr,
                                                c.warmup, c.decay);
  }
  if (c.kind == "piecewise")
    return std::make_unique<Piecewise>(total_steps, c.peak_lr, c.milestones, c.gamma);
  if (c.kind == "cosine") return std::make_unique<Cosine>(total_steps, c.peak_lr, c.end_lr);
  if (c.kind == "constant") return std::make_unique<Constant>(total_steps, c.peak_lr);
  throw ConfigError("schedule.kind = \"" + c.kind +
                    "\": must be one of slow_start_fast_decay, piecewise, cosine, constant");
}

}  // namespace advft::schedule
