#include <gtest/gtest.h>

#include "advft/error.h"
#include "advft/train/sgd.h"
#include "advft/train/trainer.h"
#include "tiny_model.h"

namespace advft::train {
namespace {

// Our SGD must follow torch.optim.SGD exactly, or fine-tuning recipes would not transfer.
void expect_same_as_torch_sgd(double momentum, bool nesterov, double weight_decay) {
  torch::manual_seed(0);
  testing::TinyNet a(3, 4);
  testing::TinyNet b(3, 4);
  torch::NoGradGuard copy_guard;
  auto pa = a->parameters();
  auto pb = b->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i)
    pb[i].copy_(pa[i]);
  config::OptimizerConfig options;
  options.momentum = momentum;
  options.nesterov = nesterov;
  options.weight_decay = weight_decay;
  Sgd ours(*a, options);
  torch::optim::SGD reference(
      b->parameters(),
      torch::optim::SGDOptions(0.05).momentum(momentum).nesterov(nesterov).weight_decay(
          weight_decay));
  torch::AutoGradMode enable(true);
  for (int step = 0; step < 5; ++step) {
    torch::Tensor x = torch::rand({6, 3, 5, 5});
    torch::Tensor y = torch::randint(0, 4, {6}, torch::kLong);
    apply_lr(ours, 0.05);
    ours.zero_grad();
    torch::nn::functional::cross_entropy(a->forward(x), y).backward();
    ours.step();
    reference.zero_grad();
    torch::nn::functional::cross_entropy(b->forward(x), y).backward();
    reference.step();
  }
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::allclose(pa[i], pb[i], 1e-6, 1e-7)) << "parameter " << i;
  }
}

TEST(Sgd, MatchesTorchSgdPlainMomentumNesterovAndWeightDecay) {
  expect_same_as_torch_sgd(0.0, false, 0.0);
  expect_same_as_torch_sgd(0.9, false, 5e-4);
  expect_same_as_torch_sgd(0.9, true, 5e-4);
}

TEST(Sgd, StateRoundTripsByParameterName) {
  torch::manual_seed(0);
  testing::TinyNet net(3, 4);
  Sgd sgd(*net, config::OptimizerConfig{});
  EXPECT_TRUE(sgd.state().empty());  // no buffers before the first step
  apply_lr(sgd, 0.1);
  torch::nn::functional::cross_entropy(net->forward(torch::rand({2, 3, 4, 4})),
                                       torch::tensor({0, 1}))
      .backward();
  sgd.step();
  auto state = sgd.state();
  ASSERT_EQ(state.size(), net->parameters().size());
  EXPECT_EQ(state[0].name, "conv.weight");
  Sgd restored(*net, config::OptimizerConfig{});
  restored.load_state(state, "test");
  auto again = restored.state();
  for (std::size_t i = 0; i < state.size(); ++i)
    EXPECT_TRUE(again[i].tensor.equal(state[i].tensor));
  EXPECT_THROW(restored.load_state({{"nope.weight", torch::zeros({1})}}, "test"), CheckpointError);
  EXPECT_THROW(restored.load_state({{"conv.weight", torch::zeros({1})}}, "test"), CheckpointError);
}

TEST(StepSeed, IsAPureFunctionThatDiffersAcrossStepsAndSeeds) {
  EXPECT_EQ(step_seed(0, 5), step_seed(0, 5));
  EXPECT_NE(step_seed(0, 5), step_seed(0, 6));
  EXPECT_NE(step_seed(0, 5), step_seed(1, 5));
  EXPECT_LE(step_seed(123, 456), static_cast<uint64_t>(INT64_MAX));
}

}  // namespace
}  // namespace advft::train
