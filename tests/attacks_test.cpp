#include <gtest/gtest.h>

#include "advft/attacks/apgd.h"
#include "advft/attacks/attacks.h"
#include "advft/attacks/losses.h"
#include "advft/attacks/trades.h"
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

TEST_F(AttackFixture, TradesExamplesMoveTheOutputAwayFromTheCleanOneInsideTheBall) {
  for (const char* norm : {"linf", "l2"}) {
    AttackOptions o = linf(8.0 / 255.0, 5);
    o.norm = norm;
    if (o.norm == "l2") {
      o.eps = 0.5;
      o.step_size = 0.1;
    }
    for (bool train_mode : {true, false}) {
      model->train(train_mode);
      for (auto& p : model->parameters())
        p.mutable_grad() = torch::ones_like(p);
      const torch::Tensor x_adv = trades_examples(*model, x, o);
      const torch::Tensor delta = x_adv - x;
      const double size = o.norm == "l2" ? delta.flatten(1).norm(2, {1}).max().item<double>()
                                         : delta.abs().max().item<double>();
      EXPECT_LE(size, o.eps + 1e-5) << norm;
      EXPECT_GE(x_adv.min().item<double>(), 0.0);
      EXPECT_LE(x_adv.max().item<double>(), 1.0);
      EXPECT_EQ(model->is_training(), train_mode);
      for (auto& p : model->parameters())
        EXPECT_TRUE(p.grad().equal(torch::ones_like(p)));
    }
    model->eval();
    torch::manual_seed(2);
    const torch::Tensor x_adv = trades_examples(*model, x, o);
    torch::NoGradGuard no_grad;
    const torch::Tensor clean_probs = torch::softmax(model->forward(x), 1);
    const torch::Tensor kl_start =
        kl_from(clean_probs, model->forward((x + 0.001 * torch::randn_like(x)).clamp(0.0, 1.0)));
    EXPECT_GT(kl_from(clean_probs, model->forward(x_adv)).sum().item<double>(),
              100.0 * kl_start.sum().item<double>())
        << norm;
  }
  AttackOptions zero = linf(0.0, 3);
  EXPECT_TRUE(trades_examples(*model, x, zero).equal(x));
}

TEST(AttackLosses, KlIsZeroForTheSameOutputAndMatchesTorchKlDiv) {
  torch::manual_seed(0);
  const torch::Tensor logits = torch::randn({5, 7});
  const torch::Tensor p = torch::softmax(torch::randn({5, 7}), 1);
  EXPECT_LT(kl_from(torch::softmax(logits, 1), logits).abs().max().item<double>(), 1e-6);
  const torch::Tensor reference = torch::nn::functional::kl_div(
      torch::log_softmax(logits, 1), p,
      torch::nn::functional::KLDivFuncOptions().reduction(torch::kNone));
  EXPECT_TRUE(kl_from(p, logits).allclose(reference.sum(1), 1e-5, 1e-6));
  // A zero target probability contributes nothing (0 log 0 = 0), not NaN.
  const torch::Tensor one_hot = torch::zeros({1, 7}).index_fill_(1, torch::tensor({2}), 1.0);
  EXPECT_TRUE(std::isfinite(kl_from(one_hot, logits.slice(0, 0, 1)).item<double>()));
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
       {"cw", "pgd:steps=x", "pgd:stepz=3", "pgd:eps=8", "pgd:steps=0", "pgd:norm=l1", "pgd:eps",
        "pgd:loss=hinge", "apgd:step_size=2/255", "apgd:random_start=false", "apgd_t:loss=ce",
        "apgd_t:targets=0", "apgd:targets=3", "apgd_x"}) {
    try {
      parse_attack_spec(bad, base, "--attack");
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(AttackSpec, ApgdTakesAutoAttacksSettingsAndItsOwnStep) {
  AttackOptions base;  // PGD-10, eps 8/255, step 2/255
  NamedAttack ce = parse_attack_spec("apgd", base, "--attack");
  EXPECT_EQ(ce.options.kind, "apgd");
  EXPECT_EQ(ce.options.loss, "ce");
  EXPECT_EQ(ce.options.steps, 100);
  EXPECT_EQ(ce.options.restarts, 1);
  EXPECT_DOUBLE_EQ(ce.options.step_size, 16.0 / 255.0);  // 2 eps: where APGD starts
  EXPECT_EQ(ce.name, "APGD-CE-100 Linf eps=8/255");
  NamedAttack dlr = parse_attack_spec("apgd-dlr:eps=4/255,restarts=5", base, "--attack");
  EXPECT_EQ(dlr.options.loss, "dlr");
  EXPECT_EQ(dlr.name, "APGD-DLR-100x5 Linf eps=4/255");
  NamedAttack t = parse_attack_spec("apgd_t:steps=50,targets=3,norm=l2,eps=0.5", base, "--attack");
  EXPECT_EQ(t.options.kind, "apgd_t");
  EXPECT_EQ(t.options.targets, 3);
  EXPECT_EQ(t.name, "APGD-T-50 L2 eps=0.5 targets=3");
  NamedAttack cw = parse_attack_spec("pgd:steps=30,loss=cw", base, "--attack");
  EXPECT_EQ(cw.name, "PGD-30 CW Linf eps=8/255 step=2/255");
  // PGD over an APGD training attack takes eps / 4, not APGD's first step of 2 eps.
  EXPECT_DOUBLE_EQ(parse_attack_spec("pgd:steps=20", ce.options, "--attack").options.step_size,
                   2.0 / 255.0);
  EXPECT_DOUBLE_EQ(parse_attack_spec("pgd:eps=4/255", ce.options, "--attack").options.step_size,
                   1.0 / 255.0);
  // The loss is not taken from the training attack: evaluations use the standard one.
  EXPECT_EQ(parse_attack_spec("pgd", cw.options, "--attack").options.loss, "ce");
}

TEST(AttackLosses, MatchHandComputedValues) {
  // Sorted logits of the first row: 3 (true class), 2, 1, 0.
  const torch::Tensor logits = torch::tensor({{3.0F, 1.0F, 2.0F, 0.0F}, {1.0F, 3.0F, 2.0F, 0.0F}});
  const torch::Tensor y = torch::tensor({0, 0}, torch::kLong);
  const double log_sum = std::log(std::exp(3.0) + std::exp(1.0) + std::exp(2.0) + 1.0);
  const torch::Tensor ce = ce_loss(logits, y);
  EXPECT_NEAR(ce[0].item<double>(), log_sum - 3.0, 1e-5);
  EXPECT_NEAR(ce[1].item<double>(), log_sum - 1.0, 1e-5);
  const torch::Tensor cw = cw_loss(logits, y);
  EXPECT_NEAR(cw[0].item<double>(), -1.0, 1e-6);  // 2 - 3
  EXPECT_NEAR(cw[1].item<double>(), 2.0, 1e-6);   // 3 - 1
  const torch::Tensor dlr = dlr_loss(logits, y);
  EXPECT_NEAR(dlr[0].item<double>(), -0.5, 1e-6);  // -(3 - 2) / (3 - 1)
  EXPECT_NEAR(dlr[1].item<double>(), 1.0, 1e-6);   // -(1 - 3) / (3 - 1)
  // DLR does not change when the logits are scaled: saturated logits hide nothing.
  EXPECT_TRUE(dlr_loss(logits * 100.0, y).allclose(dlr, 1e-5));
  const torch::Tensor target = torch::tensor({3, 2}, torch::kLong);
  const torch::Tensor t = targeted_dlr_loss(logits, y, target);
  EXPECT_NEAR(t[0].item<double>(), -3.0 / 2.5, 1e-6);  // -(3 - 0) / (3 - (1 + 0) / 2)
  EXPECT_NEAR(t[1].item<double>(), 1.0 / 2.5, 1e-6);   // -(1 - 2) / (3 - (1 + 0) / 2)
  EXPECT_TRUE(attack_loss("dlr", logits, y).equal(dlr));
  EXPECT_TRUE(attack_loss("cw", logits.to(torch::kBFloat16), y).allclose(cw));
}

TEST(Apgd, ChecksProgressAtThePapersCheckpoints) {
  // p_0 = 0, p_1 = 0.22, p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06), times 100 iterations.
  EXPECT_EQ(apgd_checkpoints(100), (std::vector<int64_t>{22, 41, 57, 70, 80, 87, 93, 99}));
  EXPECT_EQ(apgd_checkpoints(10), (std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(apgd_checkpoints(1), std::vector<int64_t>{});
}

AttackOptions apgd_options(const std::string& spec) {
  return parse_attack_spec(spec, AttackOptions{}, "test").options;
}

TEST_F(AttackFixture, ApgdStaysInTheBallAndLeavesTheModelAlone) {
  for (const char* spec :
       {"apgd:steps=12,restarts=2", "apgd-dlr:steps=12", "apgd_t:steps=6,targets=3",
        "apgd:steps=12,norm=l2,eps=0.5", "pgd:steps=4,loss=dlr"}) {
    const AttackOptions o = apgd_options(spec);
    for (bool train_mode : {true, false}) {
      model->train(train_mode);
      for (auto& p : model->parameters())
        p.mutable_grad() = torch::ones_like(p);
      const torch::Tensor x_adv = run_attack(*model, x, y, o);
      const torch::Tensor delta = x_adv - x;
      const double size = o.norm == "l2" ? delta.flatten(1).norm(2, {1}).max().item<double>()
                                         : delta.abs().max().item<double>();
      EXPECT_LE(size, o.eps + 1e-5) << spec;
      EXPECT_GT(size, o.eps / 4.0) << spec;  // it did move
      EXPECT_GE(x_adv.min().item<double>(), 0.0) << spec;
      EXPECT_LE(x_adv.max().item<double>(), 1.0) << spec;
      EXPECT_FALSE(x_adv.requires_grad()) << spec;
      EXPECT_EQ(model->is_training(), train_mode) << spec;
      for (auto& p : model->parameters())
        EXPECT_TRUE(p.grad().equal(torch::ones_like(p))) << spec;
    }
    AttackOptions zero = o;
    zero.eps = 0.0;
    EXPECT_TRUE(run_attack(*model, x, y, zero).equal(x)) << spec;
  }
}

// A linear classifier with unit-scale weights, its logits multiplied by `scale`: how far its
// margins can fall inside a ball has a closed form.
class LinearNetImpl : public models::ClassifierImpl {
 public:
  LinearNetImpl(int64_t features, int64_t classes, double scale) : scale_(scale) {
    fc_ = register_module("fc", torch::nn::Linear(features, classes));
    torch::NoGradGuard no_grad;
    fc_->weight.normal_();
    fc_->bias.normal_();
  }
  torch::Tensor forward(torch::Tensor x) override { return scale_ * fc_(x.flatten(1)); }
  const torch::nn::Linear& fc() const { return fc_; }

 private:
  double scale_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(LinearNet);

// Which examples of a linear model's own predictions can be fooled within the ball, and which
// surely can (their lowest reachable margin below -0.02, unscaled), and which cannot.
struct Foolability {
  torch::Tensor x, y, surely, never;
};

Foolability foolability(LinearNet model, const std::string& norm, double eps) {
  torch::manual_seed(4);
  Foolability f;
  // Inside [0.3, 0.7], so the ball (radius at most 0.3 in any pixel) never meets the box.
  f.x = 0.3 + 0.4 * torch::rand({300, 1, 4, 4});
  torch::NoGradGuard no_grad;
  f.y = model->forward(f.x).argmax(1);
  const torch::Tensor w = model->fc()->weight;  // [classes, 16]
  const torch::Tensor b = model->fc()->bias;
  // Lowest margin z_y - z_o reachable in the ball: the clean margin less eps times the dual
  // norm of w_y - w_o (L1 for Linf, L2 for L2); over o != y, the smallest.
  const torch::Tensor dw = w.index_select(0, f.y).unsqueeze(1) - w.unsqueeze(0);
  const torch::Tensor dual = norm == "linf" ? dw.abs().sum(2) : dw.norm(2, {2});
  const torch::Tensor clean_margin = (dw * f.x.flatten(1).unsqueeze(1)).sum(2) +
                                     b.index_select(0, f.y).unsqueeze(1) - b.unsqueeze(0);
  const torch::Tensor lowest =
      (clean_margin - eps * dual).scatter(1, f.y.view({-1, 1}), 1e9).amin(1);
  f.surely = lowest.lt(-0.02);
  f.never = lowest.gt(0.0);
  return f;
}

// How many of the examples that surely can be fooled the attack missed; fails the test if it
// fooled one that cannot be (a point outside the ball).
int64_t missed(LinearNet& model, const Foolability& f, const std::string& spec,
               const std::string& norm, double eps) {
  const std::string options = "norm=" + norm + ",eps=" + std::to_string(eps);
  const AttackOptions o =
      apgd_options(spec + (spec.find(':') == std::string::npos ? ":" : ",") + options);
  const torch::Tensor x_adv = run_attack(*model, f.x, f.y, o);
  torch::NoGradGuard no_grad;
  const torch::Tensor fooled = model->forward(x_adv).argmax(1).ne(f.y);
  EXPECT_EQ((fooled & f.never).sum().item<int64_t>(), 0) << spec << " " << norm;
  return (f.surely & ~fooled).sum().item<int64_t>();
}

TEST(Apgd, FoolsWhatALinearModelCanBeFooledOnAndNothingElse) {
  torch::manual_seed(3);
  LinearNet model(16, 10, 1.0);
  model->eval();
  for (const std::string norm : {"linf", "l2"}) {
    const double eps = norm == "linf" ? 0.05 : 0.2;
    const Foolability f = foolability(model, norm, eps);
    const int64_t foolable = f.surely.sum().item<int64_t>();
    ASSERT_GT(foolable, 100) << norm;
    ASSERT_GT(f.never.sum().item<int64_t>(), 60) << norm;
    // The targeted attack tries every wrong class, so it finds each one; the untargeted ones
    // may settle in a local maximum of their loss that does not fool, but rarely.
    EXPECT_EQ(missed(model, f, "apgd_t", norm, eps), 0) << norm;
    EXPECT_LE(missed(model, f, "apgd", norm, eps), foolable / 20) << norm;
    EXPECT_LE(missed(model, f, "apgd-dlr", norm, eps), foolable / 20) << norm;
  }
}

TEST(Apgd, DlrSeesThroughSaturatedLogitsThatStopCrossEntropy) {
  // Logits a thousand times too large: the softmax is exactly one-hot in fp32, the
  // cross-entropy gradient exactly zero, and PGD on it does not move; the DLR loss does not
  // change with the scale (the gradient masking the APGD paper shows in published defences).
  torch::manual_seed(3);
  LinearNet model(16, 10, 1000.0);
  model->eval();
  const Foolability f = foolability(model, "linf", 0.05);
  const int64_t foolable = f.surely.sum().item<int64_t>();
  ASSERT_GT(foolable, 100);
  EXPECT_GT(missed(model, f, "pgd:steps=50,eps=0.05,step_size=0.0125", "linf", 0.05), foolable / 2);
  EXPECT_EQ(missed(model, f, "apgd-dlr", "linf", 0.05), 0);
  EXPECT_EQ(missed(model, f, "apgd_t", "linf", 0.05), 0);
}

// One pixel; the true class's logit is a bowl whose bottom (the highest cross-entropy) lies
// inside the ball around 0.5, at 0.53: a step of 2 eps, APGD's first, jumps over it.
class BowlImpl : public models::ClassifierImpl {
 public:
  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor pixel = x.flatten(1).select(1, 0);
    const torch::Tensor true_logit = 100.0 * (pixel - 0.53).square() + 0.01;
    return torch::cat({true_logit.unsqueeze(1), torch::zeros({x.size(0), 9}, x.options())}, 1);
  }
};
TORCH_MODULE(Bowl);

TEST(Apgd, HalvesItsStepToReachAMaximumInsideTheBall) {
  torch::manual_seed(0);
  Bowl model;
  const torch::Tensor x = torch::full({8, 1, 1, 1}, 0.5);
  const torch::Tensor y = torch::zeros({8}, torch::kLong);
  const auto distance = [&](const std::string& spec) {
    const torch::Tensor x_adv = run_attack(*model, x, y, apgd_options(spec));
    return (x_adv - 0.53).abs().max().item<double>();
  };
  // PGD with the same first step only bounces between the ball's two ends, 0.4 and 0.6.
  EXPECT_GT(distance("pgd:eps=0.1,step_size=0.2,steps=100"), 0.05);
  EXPECT_LT(distance("apgd:eps=0.1"), 0.001);  // without the halving: 0.0075
}

TEST(Apgd, RefusesTooFewClassesForDlrWithOneLine) {
  torch::manual_seed(0);
  testing::TinyNet two_classes(3, 2);
  const torch::Tensor x = torch::rand({4, 3, 8, 8});
  const torch::Tensor y = torch::zeros({4}, torch::kLong);
  for (const char* spec : {"apgd-dlr", "apgd_t", "pgd:loss=dlr"}) {
    try {
      run_attack(*two_classes, x, y, apgd_options(spec));
      FAIL() << spec;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("the model has 2"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(run_attack(*two_classes, x, y, apgd_options("apgd:steps=3")));
}

}  // namespace
}  // namespace advft::attacks
