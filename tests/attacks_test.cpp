#include <gtest/gtest.h>

#include "advft/attacks/attacks.h"
#include "advft/error.h"
#include "tiny_model.h"

namespace advft::attacks {
namespace {

struct AttackFixture : ::testing::Test {
  void SetUp() override {
    torch::manual_seed(0);
    model = testing::TinyNet(3, 10);
    x = torch::rand({16, 3, 8, 8});
    y = torch::randint(0, 10, {16}, torch::kLong);
  }
  testing::TinyNet model{nullptr};
  torch::Tensor x, y;
};

AttackOptions linf(double eps, int64_t steps) {
  AttackOptions o;
  o.eps = eps;
  o.step_size = eps / 4.0;
  o.steps = steps;
  return o;
}

TEST_F(AttackFixture, PgdLinfStaysInTheBallAndInRange) {
  for (bool train_mode : {true, false}) {
    model->train(train_mode);
    AttackOptions o = linf(8.0 / 255.0, 5);
    o.restarts = 2;
    torch::Tensor x_adv = pgd(*model, x, y, o);
    EXPECT_LE((x_adv - x).abs().max().item<double>(), o.eps + 1e-6);
    EXPECT_GE(x_adv.min().item<double>(), 0.0);
    EXPECT_LE(x_adv.max().item<double>(), 1.0);
    EXPECT_FALSE(x_adv.requires_grad());
    EXPECT_EQ(model->is_training(), train_mode);  // mode untouched
  }
}

TEST_F(AttackFixture, PgdL2StaysInTheBall) {
  AttackOptions o = linf(0.5, 5);
  o.norm = "l2";
  o.step_size = 0.1;
  torch::Tensor x_adv = pgd(*model, x, y, o);
  torch::Tensor norms = (x_adv - x).flatten(1).norm(2, {1});
  EXPECT_LE(norms.max().item<double>(), 0.5 + 1e-5);
  EXPECT_GT(norms.max().item<double>(), 0.1);  // it did move
  EXPECT_GE(x_adv.min().item<double>(), 0.0);
  EXPECT_LE(x_adv.max().item<double>(), 1.0);
}

TEST_F(AttackFixture, FgsmMovesEveryPixelByEpsUnlessClamped) {
  model->eval();
  AttackOptions o = linf(0.03, 1);
  o.kind = "fgsm";
  o.step_size = 0.03;
  o.random_start = false;
  torch::Tensor xc = x.clamp(0.1, 0.9);  // away from the box, so no clamping
  torch::Tensor x_adv = fgsm(*model, xc, y, o);
  torch::Tensor moved = (x_adv - xc).abs();
  EXPECT_NEAR(moved.max().item<double>(), 0.03, 1e-6);
  EXPECT_GT(moved.gt(0.029).to(torch::kFloat).mean().item<double>(), 0.9);
}

TEST_F(AttackFixture, ParameterGradientsAreUntouched) {
  for (auto& p : model->parameters())
    p.mutable_grad() = torch::ones_like(p);
  pgd(*model, x, y, linf(0.03, 3));
  AttackOptions f = linf(0.03, 1);
  f.kind = "fgsm";
  run_attack(*model, x, y, f);
  for (auto& p : model->parameters())
    EXPECT_TRUE(p.grad().equal(torch::ones_like(p)));
  model->zero_grad();
  pgd(*model, x, y, linf(0.03, 3));
  for (auto& p : model->parameters()) {
    EXPECT_TRUE(!p.grad().defined() || p.grad().abs().sum().item<double>() == 0.0);
  }
}

TEST_F(AttackFixture, PgdAtEpsZeroGivesCleanAccuracy) {
  model->eval();
  torch::Tensor x_adv = pgd(*model, x, y, linf(0.0, 5));
  EXPECT_TRUE(x_adv.equal(x));
  AttackOptions l2 = linf(0.0, 5);
  l2.norm = "l2";
  EXPECT_TRUE(pgd(*model, x, y, l2).equal(x));
}

TEST_F(AttackFixture, PgdLowersAccuracyAndRaisesLoss) {
  // Make the model fit this batch first, so there is accuracy to lose.
  torch::optim::SGD opt(model->parameters(), 0.1);
  for (int i = 0; i < 200; ++i) {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    opt.step();
  }
  model->eval();
  torch::NoGradGuard guard_outside;  // attacks must enable gradients themselves
  auto loss = [&](const torch::Tensor& in) {
    return torch::nn::functional::cross_entropy(model->forward(in), y).item<double>();
  };
  torch::Tensor x_adv;
  {
    torch::AutoGradMode enable(true);
    x_adv = pgd(*model, x, y, linf(16.0 / 255.0, 10));
  }
  EXPECT_GT(loss(x_adv), loss(x));
}

TEST_F(AttackFixture, RestartsKeepThePerExampleWorstCase) {
  model->eval();
  AttackOptions one = linf(8.0 / 255.0, 2);
  AttackOptions many = one;
  many.restarts = 4;
  torch::manual_seed(1);
  torch::Tensor a = pgd(*model, x, y, one);
  torch::manual_seed(1);
  torch::Tensor b = pgd(*model, x, y, many);
  torch::NoGradGuard no_grad;
  auto per_example_loss = [&](const torch::Tensor& in) {
    return torch::nn::functional::cross_entropy(
        model->forward(in), y,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  };
  // b starts from the same first restart and only replaces examples by worse ones.
  torch::Tensor fooled_a = model->forward(a).argmax(1).ne(y);
  torch::Tensor fooled_b = model->forward(b).argmax(1).ne(y);
  EXPECT_TRUE((fooled_b | ~fooled_a).all().item<bool>());
  torch::Tensor same_fooling = fooled_a.eq(fooled_b);
  EXPECT_TRUE(
      (per_example_loss(b).ge(per_example_loss(a) - 1e-5) | ~same_fooling).all().item<bool>());
}

TEST(AttackSpec, ParsesKindsOptionsAndDefaults) {
  AttackOptions base;
  base.eps = 8.0 / 255.0;
  base.step_size = 2.0 / 255.0;
  base.steps = 10;
  NamedAttack p = parse_attack_spec("pgd:steps=20,eps=8/255", base, "--attack");
  EXPECT_EQ(p.options.kind, "pgd");
  EXPECT_EQ(p.options.steps, 20);
  EXPECT_DOUBLE_EQ(p.options.step_size, 2.0 / 255.0);
  EXPECT_EQ(p.name, "PGD-20 Linf eps=8/255 step=2/255");
  NamedAttack half = parse_attack_spec("pgd:eps=4/255", base, "--attack");
  EXPECT_DOUBLE_EQ(half.options.step_size, 1.0 / 255.0);  // step scales with eps
  NamedAttack f = parse_attack_spec("fgsm", base, "--attack");
  EXPECT_EQ(f.options.kind, "fgsm");
  EXPECT_DOUBLE_EQ(f.options.step_size, base.eps);
  EXPECT_FALSE(f.options.random_start);
  NamedAttack l2 = parse_attack_spec("pgd_l2:eps=0.5,step_size=0.1,restarts=3", base, "--attack");
  EXPECT_EQ(l2.options.norm, "l2");
  EXPECT_EQ(l2.options.restarts, 3);
  EXPECT_EQ(l2.name, "PGD-10x3 L2 eps=0.5 step=0.1");
}

TEST(AttackSpec, BadSpecsNameTheProblem) {
  AttackOptions base;
  for (const char* bad :
       {"cw", "pgd:steps=x", "pgd:stepz=3", "pgd:eps=8", "pgd:steps=0", "pgd:norm=l1", "pgd:eps"}) {
    try {
      parse_attack_spec(bad, base, "--attack");
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace advft::attacks
