#include <gtest/gtest.h>

#include "advft/config/load.h"
#include "advft/error.h"
#include "advft/schedule/lr_schedule.h"

namespace advft::schedule {
namespace {

TEST(SlowStartFastDecay, MatchesHandComputedTable) {
  // 10 steps, warm-up half of them from 0 to 0.05, then exponential decay to 5e-5:
  // lr(s) = 0.05 * s / 5 for s < 5; 0.05 * (1e-3)^((s - 5) / 5) after.
  SlowStartFastDecay s(10, 0.0, 0.05, 5e-5, 0.5, "exponential");
  const double expected[10] = {0.0,
                               0.01,
                               0.02,
                               0.03,
                               0.04,
                               0.05,
                               0.05 * 0.25118864315095796,
                               0.05 * 0.063095734448019331,
                               0.05 * 0.015848931924611134,
                               0.05 * 0.0039810717055349725};
  for (int step = 0; step < 10; ++step)
    EXPECT_NEAR(s.lr(step), expected[step], 1e-12) << step;
}

TEST(SlowStartFastDecay, LinearAndCosineDecays) {
  SlowStartFastDecay linear(8, 0.01, 0.1, 0.0, 0.25, "linear");
  EXPECT_NEAR(linear.lr(0), 0.01, 1e-12);
  EXPECT_NEAR(linear.lr(1), 0.055, 1e-12);
  EXPECT_NEAR(linear.lr(2), 0.1, 1e-12);
  EXPECT_NEAR(linear.lr(5), 0.1 * (1.0 - 3.0 / 6.0), 1e-12);
  SlowStartFastDecay cosine(8, 0.0, 0.1, 0.0, 0.25, "cosine");
  EXPECT_NEAR(cosine.lr(2), 0.1, 1e-12);
  EXPECT_NEAR(cosine.lr(5), 0.05, 1e-12);  // u = 1/2: halfway down the cosine
  EXPECT_LT(cosine.lr(7), 0.01);
}

TEST(SlowStartFastDecay, NoWarmupStartsAtPeakAndOutOfRangeStepsClamp) {
  SlowStartFastDecay s(4, 0.0, 0.2, 2e-4, 0.0, "exponential");
  EXPECT_NEAR(s.lr(0), 0.2, 1e-12);
  EXPECT_NEAR(s.lr(-5), 0.2, 1e-12);
  EXPECT_NEAR(s.lr(100), s.lr(3), 1e-15);
}

TEST(Piecewise, DropsAtMilestones) {
  Piecewise p(100, 0.1, {0.5, 0.75}, 0.1);
  EXPECT_NEAR(p.lr(0), 0.1, 1e-12);
  EXPECT_NEAR(p.lr(49), 0.1, 1e-12);
  EXPECT_NEAR(p.lr(50), 0.01, 1e-12);
  EXPECT_NEAR(p.lr(74), 0.01, 1e-12);
  EXPECT_NEAR(p.lr(75), 0.001, 1e-12);
  EXPECT_NEAR(p.lr(99), 0.001, 1e-12);
}

TEST(Cosine, AnnealsFromBaseToEnd) {
  Cosine c(4, 0.1, 0.0);
  EXPECT_NEAR(c.lr(0), 0.1, 1e-12);
  EXPECT_NEAR(c.lr(2), 0.05, 1e-12);
  EXPECT_NEAR(c.lr(3), 0.1 * 0.5 * (1.0 + std::cos(M_PI * 0.75)), 1e-12);
}

TEST(Constant, IsConstant) {
  Constant c(3, 0.01);
  for (int step = 0; step < 3; ++step)
    EXPECT_EQ(c.lr(step), 0.01);
}

TEST(MakeSchedule, BuildsEachKindAndResumeLandsOnTheSameLr) {
  config::ScheduleConfig cfg;
  for (const char* kind : {"slow_start_fast_decay", "piecewise", "cosine", "constant"}) {
    cfg.kind = kind;
    auto a = make_schedule(cfg, 1000);
    auto b = make_schedule(cfg, 1000);  // a "resumed" run rebuilds the schedule from the config
    for (int64_t step : {0, 1, 499, 500, 777, 999})
      EXPECT_EQ(a->lr(step), b->lr(step)) << kind;
  }
  cfg.kind = "bogus";
  EXPECT_THROW(make_schedule(cfg, 10), ConfigError);
  cfg.kind = "constant";
  EXPECT_THROW(make_schedule(cfg, 0), ConfigError);
}

}  // namespace
}  // namespace advft::schedule
