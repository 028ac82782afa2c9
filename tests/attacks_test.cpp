#include <gtest/gtest.h>

#include "advft/attacks/apgd.h"
#include "advft/attacks/attacks.h"
#include "advft/attacks/fab.h"
#include "advft/attacks/losses.h"
#include "advft/attacks/square.h"
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
  // FGSM with a random start steps 1.25 eps, with or without an eps of its own.
  for (const char* spec : {"fgsm:random_start=true", "fgsm:random_start=true,eps=8/255",
                           "fgsm:eps=4/255,random_start=true"}) {
    const AttackOptions rs = parse_attack_spec(spec, base, "--attack").options;
    EXPECT_TRUE(rs.random_start) << spec;
    EXPECT_DOUBLE_EQ(rs.step_size, 1.25 * rs.eps) << spec;
  }
  EXPECT_DOUBLE_EQ(parse_attack_spec("fgsm:eps=4/255", base, "--attack").options.step_size,
                   4.0 / 255.0);
  EXPECT_DOUBLE_EQ(parse_attack_spec("fgsm:random_start=true,step_size=1/255", base, "--attack")
                       .options.step_size,
                   1.0 / 255.0);
  NamedAttack l2 = parse_attack_spec("pgd_l2:eps=0.5,step_size=0.1,restarts=3", base, "--attack");
  EXPECT_EQ(l2.options.norm, "l2");
  EXPECT_EQ(l2.options.restarts, 3);
  EXPECT_EQ(l2.name, "PGD-10x3 L2 eps=0.5 step=0.1");
  // An L2 radius is a length, not a pixel level: 2, not 510/255.
  EXPECT_EQ(parse_attack_spec("pgd_l2:eps=2,step_size=1", base, "--attack").name,
            "PGD-10 L2 eps=2 step=1");
}

TEST(AttackSpec, FormatPixelsWritesLevelsAsFractionsAndOtherValuesPlainly) {
  EXPECT_EQ(format_pixels(8.0 / 255.0), "8/255");
  EXPECT_EQ(format_pixels(0.1), "0.1");
  EXPECT_EQ(format_pixels(0.0), "0");
  EXPECT_EQ(format_pixels(255e16), "2.55e+18");  // a whole number of levels past int64's range
}

TEST(AttackSpec, BadSpecsNameTheProblem) {
  AttackOptions base;
  for (const char* bad :
       {"cw", "pgd:steps=x", "pgd:stepz=3", "pgd:eps=8", "pgd:steps=0", "pgd:norm=l1", "pgd:eps",
        "pgd:loss=hinge", "apgd:step_size=2/255", "apgd:random_start=false", "apgd_t:loss=ce",
        "apgd_t:targets=0", "apgd:targets=3", "apgd_x", "square:step_size=0.1",
        "square:random_start=false", "square:targets=3", "square:loss=kl", "square:steps=0",
        "fab_t:step_size=0.1", "fab_t:rs=false", "fab_t:loss=ce", "fab_t:targets=0", "fab:loss=ce",
        "fab:targets=3", "fab:step_size=0.1", "fab_x", "pgd:eot=5", "square:eot=5", "apgd:eot=0",
        "autoattack:version=fast", "autoattack:version", "autoattack:version=plus,restarts=2",
        "autoattack:steps=10", "autoattack:eps=8", "autoattack:norm=l1",
        // Ranges: a typo must not run for days, nor a zero step pass as an attack.
        "pgd:steps=100000000000", "pgd:restarts=1001", "apgd:eot=1001", "square:steps=100001",
        "pgd:step_size=0", "pgd:step_size=2", "pgd_l2:eps=1e18",
        // Each key once; FGSM takes neither steps nor restarts.
        "pgd:steps=2,steps=3", "pgd:alpha=1/255,step_size=2/255", "fgsm:steps=5",
        "fgsm:restarts=3"}) {
    // parse_attack_specs: one spec's attacks, all of AutoAttack's for "autoattack".
    try {
      parse_attack_specs(bad, base, "--attack");
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("--attack \"") + bad + "\""),
                std::string::npos)
          << e.what();
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

// AutoAttack's attacks (and PGD on DLR) keep the contract every attack keeps. FAB-T gets radii
// that reach the two images the untrained net classifies right (it leaves alone what it cannot
// fool within eps; the net gets 14 of the 16 wrong already).
TEST_F(AttackFixture, AutoAttacksAttacksStayInTheBallAndLeaveTheModelAlone) {
  for (const char* spec :
       {"apgd:steps=12,restarts=2", "apgd-dlr:steps=12", "apgd_t:steps=6,targets=3",
        "apgd:steps=12,norm=l2,eps=0.5", "pgd:steps=4,loss=dlr", "square:steps=60",
        "square:steps=40,restarts=2,loss=ce", "square:steps=60,norm=l2,eps=0.5",
        "square:steps=30,loss=dlr", "fab_t:steps=10,targets=3,eps=0.3",
        "fab_t:steps=10,norm=l2,eps=3,restarts=2", "fab:steps=10,eps=0.3",
        "fab:steps=10,norm=l2,eps=3,restarts=2", "apgd:steps=6,eot=3"}) {
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
      // It did move (FAB, a minimum-norm attack, by less than the radius allows).
      const bool minimum_norm = o.kind == "fab" || o.kind == "fab_t";
      EXPECT_GT(size, minimum_norm ? 0.0 : o.eps / 4.0) << spec;
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

Foolability foolability(LinearNet model, const std::string& norm, double eps, int64_t side = 4) {
  torch::manual_seed(4);
  Foolability f;
  // Inside [0.3, 0.7], so the ball (radius at most 0.3 in any pixel) never meets the box.
  f.x = 0.3 + 0.4 * torch::rand({300, 1, side, side});
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
  // Square too, in Linf: the ball's corners, which its windows set, are where a linear model's
  // margins are lowest (L2: Square.FoolsALinearModelInL2WhatHalfTheRadiusFools).
  const Foolability f = foolability(model, "linf", 0.05);
  EXPECT_LE(missed(model, f, "square:steps=1000", "linf", 0.05),
            f.surely.sum().item<int64_t>() / 20);
}

TEST(Apgd, DlrAndSquareSeeThroughSaturatedLogitsThatStopCrossEntropy) {
  // Logits a thousand times too large: the softmax is exactly one-hot in fp32, the
  // cross-entropy gradient exactly zero, and PGD on it does not move; the DLR loss does not
  // change with the scale (the gradient masking the APGD paper shows in published defences),
  // and Square takes no gradient at all.
  torch::manual_seed(3);
  LinearNet model(16, 10, 1000.0);
  model->eval();
  const Foolability f = foolability(model, "linf", 0.05);
  const int64_t foolable = f.surely.sum().item<int64_t>();
  ASSERT_GT(foolable, 100);
  EXPECT_GT(missed(model, f, "pgd:steps=50,step_size=0.0125", "linf", 0.05), foolable / 2);
  EXPECT_EQ(missed(model, f, "apgd-dlr", "linf", 0.05), 0);
  EXPECT_EQ(missed(model, f, "apgd_t", "linf", 0.05), 0);
  EXPECT_LE(missed(model, f, "square:steps=1000", "linf", 0.05), foolable / 20);
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

// One pixel; the wrong class wins only on a narrow ridge around 0.6. From 0.5, a PGD step of
// 0.15 lands on the ridge's far side at 0.65 (fooled), whose gradient sends it back to 0.5 (not
// fooled), and so on: the last iterate of an even number of steps does not fool.
class RidgeImpl : public models::ClassifierImpl {
 public:
  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor pixel = x.flatten(1).select(1, 0);
    const torch::Tensor wrong_logit = 0.9 - 100.0 * (pixel - 0.6).square();
    return torch::stack({torch::zeros_like(wrong_logit), wrong_logit}, 1);
  }
};
TORCH_MODULE(Ridge);

TEST(Pgd, AnEvaluationKeepsTheIterateThatFooledTrainingTakesTheLast) {
  torch::manual_seed(0);
  Ridge model;
  const torch::Tensor x = torch::full({4, 1, 1, 1}, 0.5);
  const torch::Tensor y = torch::zeros({4}, torch::kLong);
  const auto fooled = [&](const torch::Tensor& x_adv) {
    torch::NoGradGuard no_grad;
    return model->forward(x_adv).argmax(1).ne(y).all().item<bool>();
  };
  for (const char* spec : {"pgd:eps=0.2,step_size=0.15,steps=4,random_start=false",
                           "pgd:eps=0.2,step_size=0.15,steps=2,restarts=2,random_start=false"}) {
    const AttackOptions o = apgd_options(spec);
    const torch::Tensor last = run_attack(*model, x, y, o, AttackPurpose::kTraining);
    EXPECT_TRUE(torch::allclose(last, x)) << spec;
    EXPECT_FALSE(fooled(last)) << spec;
    const torch::Tensor kept = run_attack(*model, x, y, o, AttackPurpose::kEvaluation);
    EXPECT_TRUE(torch::allclose(kept, torch::full_like(x, 0.65))) << spec;
    EXPECT_TRUE(fooled(kept)) << spec;
  }
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

// ---------------------------------------------------------------- Square

// Linf Square only ever sets pixels to the ball's edge: stripes, then windows of +-eps.
TEST_F(AttackFixture, SquareLinfPutsEveryPixelOnTheBallsEdge) {
  const AttackOptions o = apgd_options("square:steps=60");
  const torch::Tensor x_adv = run_attack(*model, x, y, o);
  const torch::Tensor on_edge = ((x_adv - x).abs() - o.eps).abs().lt(1e-6);
  const torch::Tensor clamped = x_adv.eq(0.0) | x_adv.eq(1.0);
  EXPECT_TRUE((on_edge | clamped).all().item<bool>());
}

// The L2 optimum against a linear model is a dense direction, which structured windows only
// approach (measured at eps 0.2 on 4x4 images: 57 of 159 foolable ones missed, PGD 2); every
// image foolable at half the radius falls.
TEST(Square, FoolsALinearModelInL2WhatHalfTheRadiusFools) {
  for (const int64_t side : {4, 16}) {
    const double eps = side == 4 ? 0.4 : 0.2;  // the dual norms grow with the pixel count
    torch::manual_seed(5);
    LinearNet net(side * side, 10, 1.0);
    net->eval();
    Foolability at_half = foolability(net, "l2", eps / 2.0, side);
    at_half.never = foolability(net, "l2", eps, side).never;  // the same images, seeded
    ASSERT_GT(at_half.surely.sum().item<int64_t>(), 90) << side;
    ASSERT_GT(at_half.never.sum().item<int64_t>(), 10) << side;
    // AutoAttack's schedule reaches its smallest L2 windows (side 3) near query 1,000.
    EXPECT_EQ(missed(net, at_half, "square:steps=2000", "l2", eps), 0) << side;
  }
}

TEST(Square, L2OnImagesTooSmallForItsWindowsIsOneLine) {
  torch::manual_seed(0);
  LinearNet model(4, 10, 1.0);
  const torch::Tensor x = torch::rand({2, 1, 2, 2});
  const torch::Tensor y = torch::zeros({2}, torch::kLong);
  try {
    run_attack(*model, x, y, apgd_options("square:norm=l2,eps=0.5,steps=5"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("needs images of at least 3x3 pixels, got 2x2"),
              std::string::npos)
        << e.what();
  }
  // Linf windows shrink to single pixels: it runs.
  EXPECT_NO_THROW(run_attack(*model, x, y, apgd_options("square:eps=0.1,steps=5")));
}

TEST(Square, ShrinksItsWindowOnAutoAttacksSchedule) {
  // AutoAttack's: counted in queries as they come, not stretched to 10,000 (the Square paper's
  // code, which halves twice as early in a 5,000-query run and ends at 1/512).
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 0), 0.8);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 10), 0.8);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 11), 0.4);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 50), 0.4);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 51), 0.2);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 2500), 0.8 / 64);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 4000), 0.8 / 64);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 4999), 0.8 / 128);
  EXPECT_DOUBLE_EQ(square_window_fraction(0.8, 9000), 0.8 / 512);
}

TEST(Square, L2PatternIsTwoOppositeBumpsOfUnitNorm) {
  // Side 3: a 1 x 3 bump over a 2 x 3 one. Nested rectangles weighted 1, 1/4: the centre of
  // each (row // 2, col 1) is in both rings, the rest in the outer one only.
  const torch::Tensor top = torch::tensor({{0.25, 1.25, 0.25}}, torch::kDouble);
  const torch::Tensor bottom =
      torch::tensor({{0.25, 0.25, 0.25}, {0.25, 1.25, 0.25}}, torch::kDouble);
  torch::Tensor expected = torch::cat({top / top.norm(), -bottom / bottom.norm()}, 0);
  expected = expected / expected.norm();
  const torch::Tensor three = square_l2_pattern(3, torch::TensorOptions(torch::kDouble));
  EXPECT_TRUE(torch::allclose(three, expected)) << three << expected;

  const torch::Tensor nine = square_l2_pattern(9, torch::TensorOptions(torch::kFloat));
  EXPECT_NEAR(nine.pow(2).sum().item<double>(), 1.0, 1e-6);
  EXPECT_TRUE(nine.slice(0, 0, 4).gt(0).all().item<bool>());
  EXPECT_TRUE(nine.slice(0, 4).lt(0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(nine, nine.flip(1)));  // symmetric left to right
  // The peak of each bump is at its centre.
  EXPECT_EQ(nine.slice(0, 0, 4).argmax().item<int64_t>(), 2 * 9 + 4);
}

TEST(AttackSpec, SquareTakesAutoAttacksSettings) {
  AttackOptions base;  // PGD-10, eps 8/255, step 2/255
  NamedAttack sq = parse_attack_spec("square", base, "--attack");
  EXPECT_EQ(sq.options.kind, "square");
  EXPECT_EQ(sq.options.loss, "cw");
  EXPECT_EQ(sq.options.steps, 5000);
  EXPECT_EQ(sq.options.restarts, 1);
  EXPECT_EQ(sq.name, "Square-5000 Linf eps=8/255");
  EXPECT_EQ(parse_attack_spec("square:steps=100,restarts=2,loss=ce", base, "--attack").name,
            "Square-100x2 CE Linf eps=8/255");
  EXPECT_EQ(parse_attack_spec("square:norm=l2,eps=0.5", base, "--attack").name,
            "Square-5000 L2 eps=0.5");
  EXPECT_EQ(gradient_passes(sq.options, 10), 0);
}

// ---------------------------------------------------------------- FAB-T

// The projection against what defines it: the smallest move in the norm onto the hyperplane
// within the box. Here solved independently, by bisection on the move's size t (Linf: each
// coordinate moves min(t, room); L2: min(t |w_i|, room), the KKT form of the L2 problem).
torch::Tensor bisected_projection(const torch::Tensor& p, const torch::Tensor& w,
                                  const torch::Tensor& b, const std::string& norm) {
  const torch::Tensor gap = (b - (w * p).sum(1)).unsqueeze(1);
  const torch::Tensor dir = (w * gap.sign()).sign();
  const torch::Tensor room = torch::where(dir.gt(0), 1.0 - p, torch::where(dir.lt(0), p, 0 * p));
  const auto move = [&](const torch::Tensor& t) {
    return dir * (norm == "l2" ? torch::min(t * w.abs(), room) : torch::min(t, room));
  };
  torch::Tensor lo = torch::zeros_like(gap), hi = torch::full_like(gap, 1e6);
  for (int i = 0; i < 200; ++i) {
    const torch::Tensor mid = (lo + hi) / 2;
    const torch::Tensor short_of = ((w * move(mid)).sum(1, true)).abs().lt(gap.abs());
    lo = torch::where(short_of, mid, lo);
    hi = torch::where(short_of, hi, mid);
  }
  return move(hi);
}

TEST(Fab, ProjectsOntoTheHyperplaneWithTheSmallestMoveInsideTheBox) {
  torch::manual_seed(11);
  for (const std::string norm : {"linf", "l2"}) {
    // Points near the box's faces, so that the box binds for many coordinates.
    const torch::Tensor p = torch::rand({64, 20}, torch::kDouble).pow(3);
    const torch::Tensor w = torch::randn({64, 20}, torch::kDouble);
    // Gaps of growing size: the last rows lie beyond what the box lets them reach.
    torch::Tensor b = (w * p).sum(1) + torch::randn({64}, torch::kDouble) *
                                           torch::arange(64, torch::kDouble).div(8).exp();
    b[0] = (w[0] * p[0]).sum();  // already on the hyperplane: no move
    const torch::Tensor d = project_onto_hyperplane_in_box(p, w, b, norm);
    EXPECT_EQ(d[0].abs().max().item<double>(), 0.0) << norm;
    EXPECT_GE((p + d).min().item<double>(), -1e-12) << norm;
    EXPECT_LE((p + d).max().item<double>(), 1.0 + 1e-12) << norm;
    const torch::Tensor want = bisected_projection(p, w, b, norm);
    EXPECT_TRUE(torch::allclose(d, want, 1e-6, 1e-6)) << norm << (d - want).abs().max();
    // Rows the box lets reach the hyperplane reach it; the others use all their room.
    const torch::Tensor reached = ((w * (p + d)).sum(1) - b).abs().lt(1e-9);
    EXPECT_GT(reached.sum().item<int64_t>(), 10) << norm;
    EXPECT_LT(reached.sum().item<int64_t>(), 64) << norm;
  }
  // Without the box in the way, the closed forms: Linf moves every coordinate by gap / ||w||_1
  // along sign(w), L2 by gap w / ||w||^2.
  const torch::Tensor p = torch::full({8, 10}, 0.5, torch::kDouble);
  const torch::Tensor w = torch::randn({8, 10}, torch::kDouble);
  const torch::Tensor gap = 0.01 * torch::randn({8, 1}, torch::kDouble);
  const torch::Tensor b = (w * p).sum(1) + gap.squeeze(1);
  EXPECT_TRUE(torch::allclose(project_onto_hyperplane_in_box(p, w, b, "linf"),
                              w.sign() * gap / w.abs().sum(1, true)));
  EXPECT_TRUE(torch::allclose(project_onto_hyperplane_in_box(p, w, b, "l2"),
                              w * gap / w.pow(2).sum(1, true)));
}

TEST(Fab, FindsTheSmallestPerturbationThatFoolsALinearModel) {
  // The boundary of a linear model is its linearization, so FAB lands on it: FAB-T against every
  // other class (9 targets of 10), FAB by choosing the nearest of the boundaries; either way the
  // closest point is the smallest perturbation there is.
  torch::manual_seed(3);
  LinearNet model(16, 10, 1.0);
  model->eval();
  for (const std::string kind : {"fab_t", "fab"}) {
    for (const std::string norm : {"linf", "l2"}) {
      const std::string spec = kind + ":steps=20";
      const Foolability f = foolability(model, norm, norm == "linf" ? 0.05 : 0.2);
      EXPECT_EQ(missed(model, f, spec, norm, norm == "linf" ? 0.05 : 0.2), 0) << kind << norm;

      // With a ball too large to matter, the distances found against the closed form: margin to
      // the nearest class over the dual norm of the weights' difference.
      const AttackOptions o =
          apgd_options(spec + ",norm=" + norm + (norm == "linf" ? ",eps=1" : ",eps=10"));
      const torch::Tensor x_adv = run_attack(*model, f.x, f.y, o);
      torch::NoGradGuard no_grad;
      const torch::Tensor w = model->fc()->weight;
      const torch::Tensor b = model->fc()->bias;
      const torch::Tensor dw = w.index_select(0, f.y).unsqueeze(1) - w.unsqueeze(0);
      const torch::Tensor dual = norm == "linf" ? dw.abs().sum(2) : dw.norm(2, {2});
      const torch::Tensor margin = (dw * f.x.flatten(1).unsqueeze(1)).sum(2) +
                                   b.index_select(0, f.y).unsqueeze(1) - b.unsqueeze(0);
      const torch::Tensor smallest = (margin / dual).scatter(1, f.y.view({-1, 1}), 1e9).amin(1);
      const torch::Tensor delta = (x_adv - f.x).flatten(1);
      const torch::Tensor found = norm == "linf" ? delta.abs().amax(1) : delta.norm(2, {1});
      // Where the box cannot interfere (inputs in [0.3, 0.7]); FAB overshoots by 5% and then
      // closes in again.
      const torch::Tensor near = smallest.lt(0.25);
      ASSERT_GT(near.sum().item<int64_t>(), 100) << norm;
      EXPECT_TRUE(model->forward(x_adv).argmax(1).ne(f.y).masked_select(near).all().item<bool>())
          << kind << norm;
      const torch::Tensor ratio = (found / smallest).masked_select(near);
      EXPECT_GE(ratio.min().item<double>(), 1.0 - 1e-4) << kind << norm;
      EXPECT_LE(ratio.max().item<double>(), 1.02) << kind << norm;
    }
  }
}

// Before an evaluation: targets cut to the classes there are, and attacks that cannot run on so
// few classes refused by name.
TEST(AttackSpec, FitToTheModelCutsTargetsAndRefusesTooFewClasses) {
  const NamedAttack apgd_t =
      fit_attack_to_model(parse_attack_spec("apgd_t", AttackOptions{}, "--attack"), 5);
  EXPECT_EQ(apgd_t.options.targets, 4);
  EXPECT_EQ(apgd_t.name, "APGD-T-100 Linf eps=8/255 targets=4");
  EXPECT_EQ(
      fit_attack_to_model(parse_attack_spec("fab_t", AttackOptions{}, "t"), 2).options.targets, 1);
  EXPECT_EQ(fit_attack_to_model(parse_attack_spec("apgd_t", AttackOptions{}, "t"), 10).name,
            "APGD-T-100 Linf eps=8/255 targets=9");
  const NamedAttack pgd = parse_attack_spec("pgd:steps=20", AttackOptions{}, "t");
  EXPECT_EQ(fit_attack_to_model(pgd, 2).name, pgd.name);
  EXPECT_THROW(fit_attack_to_model(parse_attack_spec("apgd_t", AttackOptions{}, "t"), 3),
               ConfigError);
  EXPECT_THROW(fit_attack_to_model(parse_attack_spec("apgd_dlr", AttackOptions{}, "t"), 2),
               ConfigError);
}

TEST(AttackSpec, FabTakesAutoAttacksSettings) {
  NamedAttack fab = parse_attack_spec("fab_t", AttackOptions{}, "--attack");
  EXPECT_EQ(fab.options.kind, "fab_t");
  EXPECT_EQ(fab.options.steps, 100);
  EXPECT_EQ(fab.options.targets, 9);
  EXPECT_EQ(fab.options.restarts, 1);
  EXPECT_EQ(fab.name, "FAB-T-100 Linf eps=8/255 targets=9");
  EXPECT_EQ(parse_attack_spec("fab-t:norm=l2,eps=0.5,targets=3,restarts=2", {}, "t").name,
            "FAB-T-100x2 L2 eps=0.5 targets=3");
  EXPECT_EQ(gradient_passes(fab.options, 10), 900);
  // Untargeted FAB: the gradient of every logit at each step, no targets.
  NamedAttack untargeted = parse_attack_spec("fab:restarts=5", AttackOptions{}, "--attack");
  EXPECT_EQ(untargeted.options.kind, "fab");
  EXPECT_EQ(untargeted.options.steps, 100);
  EXPECT_EQ(untargeted.name, "FAB-100x5 Linf eps=8/255");
  EXPECT_EQ(gradient_passes(untargeted.options, 10), 5000);
  EXPECT_EQ(gradient_passes(untargeted.options, 100), 50000);
}

TEST(AttackSpec, AutoattackIsTheFourOfAutoAttacksStandardVersion) {
  AttackOptions base;  // the training attack: eps 8/255, Linf
  std::vector<std::string> names;
  for (const auto& a : parse_attack_specs("autoattack", base, "--attack"))
    names.push_back(a.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "APGD-CE-100 Linf eps=8/255", "APGD-T-100 Linf eps=8/255 targets=9",
                       "FAB-T-100 Linf eps=8/255 targets=9", "Square-5000 Linf eps=8/255"}));
  const auto l2 = parse_attack_specs("autoattack:eps=0.5,norm=l2", base, "--attack");
  ASSERT_EQ(l2.size(), 4u);
  for (const auto& a : l2) {
    EXPECT_EQ(a.options.norm, "l2") << a.name;
    EXPECT_DOUBLE_EQ(a.options.eps, 0.5) << a.name;
  }
  EXPECT_EQ(parse_attack_specs("pgd:steps=7", base, "--attack").at(0).name,
            "PGD-7 Linf eps=8/255 step=2/255");
  names.clear();
  for (const auto& a : parse_attack_specs("autoattack:version=standard", base, "--attack"))
    names.push_back(a.name);
  EXPECT_EQ(names.size(), 4u);
  // Bad autoattack specs: AttackSpec.BadSpecsNameTheProblem.
}

TEST(AttackSpec, AutoattackPlusAndRandAreAutoAttacksOtherVersions) {
  AttackOptions base;
  std::vector<std::string> names;
  for (const auto& a : parse_attack_specs("autoattack:version=plus", base, "--attack"))
    names.push_back(a.name);
  // autoattack.py's order for version='plus': apgd-ce, apgd-dlr, fab, square, apgd-t, fab-t,
  // the untargeted ones with 5 restarts.
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "APGD-CE-100x5 Linf eps=8/255", "APGD-DLR-100x5 Linf eps=8/255",
                "FAB-100x5 Linf eps=8/255", "Square-5000 Linf eps=8/255",
                "APGD-T-100 Linf eps=8/255 targets=9", "FAB-T-100 Linf eps=8/255 targets=9"}));
  for (const auto& a : parse_attack_specs("autoattack:version=plus,eps=0.5,norm=l2", base, "a")) {
    EXPECT_EQ(a.options.norm, "l2") << a.name;
    EXPECT_DOUBLE_EQ(a.options.eps, 0.5) << a.name;
  }
  names.clear();
  const auto rand = parse_attack_specs("autoattack:eps=4/255,version=rand", base, "--attack");
  for (const auto& a : rand)
    names.push_back(a.name);
  EXPECT_EQ(names, (std::vector<std::string>{"APGD-CE-100 EOT-20 Linf eps=4/255",
                                             "APGD-DLR-100 EOT-20 Linf eps=4/255"}));
  EXPECT_EQ(gradient_passes(rand.at(0).options, 10), 101 * 20);
  // A training attack's averaging is not an evaluation's.
  base.kind = "apgd";
  base.eot = 4;
  EXPECT_EQ(parse_attack_spec("apgd", base, "--attack").options.eot, 1);
}

// Counts its forwards: how many samples an attack draws.
class CountingNetImpl : public LinearNetImpl {
 public:
  CountingNetImpl() : LinearNetImpl(16, 10, 1.0) {}
  torch::Tensor forward(torch::Tensor x) override {
    ++forwards;
    return LinearNetImpl::forward(x);
  }
  int64_t forwards = 0;
};
TORCH_MODULE(CountingNet);

TEST(Apgd, EotAveragesOverThatManyForwardsPerStep) {
  torch::manual_seed(5);
  CountingNet model;
  model->eval();
  const torch::Tensor x = 0.3 + 0.4 * torch::rand({50, 1, 4, 4});
  const torch::Tensor y = torch::randint(0, 10, {50}, torch::kLong);
  torch::manual_seed(6);
  const torch::Tensor once = run_attack(*model, x, y, apgd_options("apgd:steps=10,eps=0.05"));
  EXPECT_EQ(model->forwards, 11);  // the start and each step
  // The same model each time: the average of two draws is the one gradient (exactly, in
  // binary), so the steps are the same.
  model->forwards = 0;
  torch::manual_seed(6);
  const torch::Tensor averaged =
      run_attack(*model, x, y, apgd_options("apgd:steps=10,eps=0.05,eot=2"));
  EXPECT_EQ(model->forwards, 11 * 2);
  EXPECT_TRUE(averaged.equal(once));
  model->forwards = 0;
  run_attack(*model, x, y, apgd_options("apgd_t:steps=10,eps=0.05,eot=3,restarts=2,targets=2"));
  EXPECT_EQ(model->forwards, 1 + 11 * 3 * 2 * 2);  // and APGD-T's ranking of the targets
}

// A randomized defense of the kind EOT is for (Athalye et al., 2018): its outputs are the linear
// model's, but each forward's input gradient is scaled per pixel by 4 or -2 at random (mean 1),
// so one gradient's sign is a coin toss and only an average over draws points uphill.
class NoisyGradientNetImpl : public LinearNetImpl {
 public:
  NoisyGradientNetImpl() : LinearNetImpl(16, 10, 1.0) {}
  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor r = 3.0 * torch::sign(torch::rand_like(x) - 0.5);
    return LinearNetImpl::forward(x + (r * x - (r * x).detach()));
  }
};
TORCH_MODULE(NoisyGradientNet);

TEST(Apgd, EotSeesThroughRandomizedGradients) {
  torch::manual_seed(3);
  NoisyGradientNet noisy;
  noisy->eval();
  // Seen as the linear model it is in value, for the closed form of what can be fooled.
  LinearNet linear(std::shared_ptr<LinearNetImpl>(noisy.ptr()));
  const double eps = 0.05;
  const Foolability f = foolability(linear, "linf", eps);
  const int64_t foolable = f.surely.sum().item<int64_t>();
  ASSERT_GT(foolable, 100);
  const int64_t without = missed(linear, f, "apgd:steps=20", "linf", eps);
  const int64_t with = missed(linear, f, "apgd:steps=20,eot=20", "linf", eps);
  // Measured: 130 foolable, 93 missed without EOT, 6 with it.
  EXPECT_GT(without, foolable / 2);
  EXPECT_LE(with, foolable / 10);
}

}  // namespace
}  // namespace advft::attacks
