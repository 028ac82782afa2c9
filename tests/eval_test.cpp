#include <gtest/gtest.h>

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
  EXPECT_LE(r.attacks[1].correct, r.clean_correct + 2);
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

}  // namespace
}  // namespace advft::eval
