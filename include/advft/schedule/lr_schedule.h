#pragma once
// Learning-rate schedules as pure functions of the iteration: lr(step) over a known number of
// steps, so a resumed run lands on exactly the same learning rate.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "advft/config/config.h"

namespace advft::schedule {

/// A learning rate per training iteration (0-based) of a run of total_steps iterations.
class LrSchedule {
 public:
  explicit LrSchedule(int64_t total_steps);
  virtual ~LrSchedule() = default;
  /// The learning rate of iteration `step` (steps past the end keep the last value).
  virtual double lr(int64_t step) const = 0;
  int64_t total_steps() const { return total_steps_; }

 protected:
  /// Position of a step in the run, in [0, 1).
  double progress(int64_t step) const;

 private:
  int64_t total_steps_;
};

/// The method's schedule: linear warm-up from start_lr to peak_lr over `warmup` (a fraction of
/// all iterations), then a fast decay from peak_lr to end_lr (exponential, linear or cosine).
class SlowStartFastDecay : public LrSchedule {
 public:
  SlowStartFastDecay(int64_t total_steps, double start_lr, double peak_lr, double end_lr,
                     double warmup, std::string decay);
  double lr(int64_t step) const override;

 private:
  double start_lr_, peak_lr_, end_lr_;
  int64_t warmup_steps_;
  std::string decay_;
};

/// Step decay: base_lr multiplied by gamma at each milestone (fractions of all iterations).
class Piecewise : public LrSchedule {
 public:
  Piecewise(int64_t total_steps, double base_lr, std::vector<double> milestones, double gamma);
  double lr(int64_t step) const override;

 private:
  double base_lr_;
  std::vector<double> milestones_;
  double gamma_;
};

/// Cosine annealing from base_lr to end_lr over the whole run.
class Cosine : public LrSchedule {
 public:
  Cosine(int64_t total_steps, double base_lr, double end_lr);
  double lr(int64_t step) const override;

 private:
  double base_lr_, end_lr_;
};

/// The same learning rate throughout.
class Constant : public LrSchedule {
 public:
  Constant(int64_t total_steps, double lr);
  double lr(int64_t step) const override;

 private:
  double lr_;
};

/// Builds the schedule a config describes (schedule.peak_lr is the base lr of every kind).
std::unique_ptr<LrSchedule> make_schedule(const config::ScheduleConfig& config,
                                          int64_t total_steps);

}  // namespace advft::schedule
