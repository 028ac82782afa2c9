#include <gtest/gtest.h>

#include "advft/attacks/attacks.h"
#include "advft/eval/evaluator.h"
#include "tiny_model.h"

namespace advft::eval {
namespace {

data::Dataset random_data(int64_t n) {
  data::Dataset d;
  d.images = torch::randint(0, 256, {n, 3, 8, 8}, torch::kLong).to(torch::kUInt8);
  d.labels = torch::randint(0, 10, {n}, torch::kLong);
  d.num_classes = 10;
  d.name = "random";
  return d;
}

TEST(Evaluator, CountsCleanAttacksAndWorstCaseAndRestoresTheMode) {
  torch::manual_seed(0);
  testing::TinyNet model(3, 10);
  model->train();
  data::Dataset d = random_data(50);
  attacks::AttackOptions base;
  auto zero = attacks::parse_attack_spec("pgd:eps=0,steps=2", base, "test");
  auto strong = attacks::parse_attack_spec("pgd:eps=16/255,steps=5", base, "test");
  EvalOptions options;
  options.batch_size = 16;  // a partial last batch too
  EvalReport r = evaluate(*model, d, {zero, strong}, options, torch::kCPU);
  EXPECT_TRUE(model->is_training());
  EXPECT_EQ(r.total, 50);
  EXPECT_EQ(r.attacks[0].correct, r.clean_correct);  // eps = 0 is the clean accuracy
  EXPECT_LE(r.attacks[1].correct, r.clean_correct);
  EXPECT_LE(r.worst_case_correct, std::min(r.attacks[0].correct, r.attacks[1].correct));
  EXPECT_NEAR(r.clean_accuracy, 100.0 * r.clean_correct / 50.0, 1e-9);

  // Same seed, same numbers; the limit is honoured.
  EvalReport again = evaluate(*model, d, {zero, strong}, options, torch::kCPU);
  EXPECT_EQ(again.attacks[1].correct, r.attacks[1].correct);
  options.limit = 20;
  EXPECT_EQ(evaluate(*model, d, {strong}, options, torch::kCPU).total, 20);

  nlohmann::json j = to_json(r);
  EXPECT_EQ(j["total"], 50);
  EXPECT_EQ(j["attacks"].size(), 2u);
  std::string table = format_table(r);
  EXPECT_NE(table.find("clean"), std::string::npos);
  EXPECT_NE(table.find("worst case"), std::string::npos);
  EXPECT_NE(table.find(strong.name), std::string::npos);
}

// A cascade attacks only what is still robust, and ends where attacking everything ends: with
// attacks that are deterministic per image (no random start, eval-mode BatchNorm), exactly.
TEST(Evaluator, ACascadeCountsWhatSurvivesEachAttackAndTheOnesBefore) {
  torch::manual_seed(0);
  testing::TinyNet model(3, 10);
  data::Dataset d = random_data(60);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = d.images.to(torch::kFloat) / 255.0;
    for (int i = 0; i < 30; ++i)
      model->forward(x);  // BatchNorm's running statistics of these images
    model->eval();
    d.labels = model->forward(x).argmax(1);  // labels it gets right, so there is work to do
  }
  attacks::AttackOptions base;
  const auto fgsm = attacks::parse_attack_spec("fgsm:eps=8/255", base, "test");
  const auto pgd = attacks::parse_attack_spec("pgd:eps=14/255,steps=3,rs=false", base, "test");
  EvalOptions options;
  options.batch_size = 16;
  const EvalReport each = evaluate(*model, d, {fgsm, pgd}, options, torch::kCPU);
  const EvalReport fgsm_only = evaluate(*model, d, {fgsm}, options, torch::kCPU);
  options.cascade = true;
  const EvalReport cascade = evaluate(*model, d, {fgsm, pgd}, options, torch::kCPU);
  EXPECT_TRUE(cascade.cascade);
  EXPECT_EQ(cascade.clean_correct, 60);
  EXPECT_EQ(cascade.attacks[0].correct, fgsm_only.worst_case_correct);
  EXPECT_EQ(cascade.attacks[1].correct, each.worst_case_correct);
  EXPECT_EQ(cascade.worst_case_correct, each.worst_case_correct);
  ASSERT_LT(each.worst_case_correct, fgsm_only.worst_case_correct);  // the second one mattered
  ASSERT_GT(each.worst_case_correct, 0);
  ASSERT_LT(fgsm_only.worst_case_correct, 60);
  EXPECT_NE(format_table(cascade).find("then PGD-3 Linf eps=14/255"), std::string::npos)
      << format_table(cascade);
  EXPECT_EQ(to_json(cascade)["cascade"], true);
}

// One pixel; class 0's logit is a bowl around 0.44 that dips below class 1's zero only near its
// bottom: the clean image at 0.451 is classified wrong, and FGSM's step of 0.1 down its slope
// (where the cross-entropy rises) jumps over the dip to 0.351, which the model gets right.
class JumpOverImpl : public models::ClassifierImpl {
 public:
  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor pixel = x.flatten(1).select(1, 0);
    const torch::Tensor class0 = 100.0 * (pixel - 0.44).square() - 0.02;
    return torch::stack({class0, torch::zeros_like(class0)}, 1);
  }
};
TORCH_MODULE(JumpOver);

// A wrongly classified image is not robust, wherever the attack takes it: each attack's row
// counts only images the model also gets right clean, as AutoAttack's, so no row exceeds clean.
TEST(Evaluator, AnAttackThatLandsAWrongImageOnItsClassDoesNotCountIt) {
  JumpOver model;
  data::Dataset d;
  d.images = torch::full({4, 1, 1, 1}, 115, torch::kUInt8);  // 0.451
  d.labels = torch::zeros({4}, torch::kLong);
  d.num_classes = 2;
  d.name = "one pixel";
  const auto fgsm = attacks::parse_attack_spec("fgsm:eps=0.1", attacks::AttackOptions{}, "test");
  const torch::Tensor landed =
      attacks::run_attack(*model, d.images.to(torch::kFloat) / 255.0, d.labels, fgsm.options);
  ASSERT_TRUE((model->forward(landed).argmax(1) == 0).all().item<bool>());  // right there
  for (const bool cascade : {false, true}) {
    EvalOptions options;
    options.cascade = cascade;
    const EvalReport r = evaluate(*model, d, {fgsm}, options, torch::kCPU);
    EXPECT_EQ(r.clean_correct, 0);
    EXPECT_EQ(r.attacks[0].correct, 0) << cascade;
    EXPECT_EQ(r.worst_case_correct, 0);
  }
}

}  // namespace
}  // namespace advft::eval
