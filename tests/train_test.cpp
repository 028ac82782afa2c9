#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <filesystem>

#include "advft/attacks/trades.h"
#include "advft/config/load.h"
#include "advft/error.h"
#include "advft/io/run_dir.h"
#include "advft/runtime/signals.h"
#include "advft/train/sgd.h"
#include "advft/train/train_step.h"
#include "advft/train/trainer.h"
#include "fixtures.h"
#include "test_util.h"
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

// Trains a TinyNet for `steps` PGD steps with a changing lr; returns its parameters.
std::vector<torch::Tensor> train_tiny(runtime::GraphMode graphs, int64_t steps,
                                      const std::string& objective = "pgd_at") {
  torch::manual_seed(0);
  testing::TinyNet net(3, 4);
  Sgd sgd(*net, config::OptimizerConfig{});
  LossScaler scaler(false);
  StepOptions options;
  options.attack.steps = 2;
  options.clean_weight = objective == "pgd_at" ? 0.2 : 0.0;
  options.objective = objective;
  options.graphs = graphs;
  TrainStep step(*net, sgd, scaler, options);
  for (int64_t i = 0; i < steps; ++i) {
    torch::manual_seed(step_seed(0, i));
    const torch::Tensor x = torch::rand({8, 3, 6, 6});
    const torch::Tensor y = torch::randint(0, 4, {8}, torch::kLong);
    const StepResult r = step.run(x, y, 0.01 * static_cast<double>(i + 1));
    EXPECT_TRUE(std::isfinite(r.loss.item<double>()));
    EXPECT_GE(r.correct.item<int64_t>(), 0);
    EXPECT_LE(r.correct.item<int64_t>(), 8);
  }
  EXPECT_EQ(step.replays(), graphs == runtime::GraphMode::kOff ? 0 : steps - options.graph_warmup);
  std::vector<torch::Tensor> out;
  for (const auto& p : net->parameters())
    out.push_back(p.detach().clone());
  for (const auto& b : net->buffers())
    out.push_back(b.detach().clone());
  return out;
}

// The graphed step (emulated here: the same bookkeeping as a CUDA capture — static inputs
// refilled in place, the lr read from its tensor, momentum buffers made in the warm-up steps)
// must train exactly like the eager one.
TEST(TrainStep, GraphedStepTrainsLikeTheEagerStep) {
  const auto eager = train_tiny(runtime::GraphMode::kOff, 6);
  const auto graphed = train_tiny(runtime::GraphMode::kEmulated, 6);
  ASSERT_EQ(eager.size(), graphed.size());
  for (std::size_t i = 0; i < eager.size(); ++i)
    EXPECT_TRUE(eager[i].equal(graphed[i])) << "tensor " << i;
}

TEST(TrainStep, GraphedTradesStepTrainsLikeTheEagerStep) {
  const auto eager = train_tiny(runtime::GraphMode::kOff, 6, "trades");
  const auto graphed = train_tiny(runtime::GraphMode::kEmulated, 6, "trades");
  ASSERT_EQ(eager.size(), graphed.size());
  for (std::size_t i = 0; i < eager.size(); ++i)
    EXPECT_TRUE(eager[i].equal(graphed[i])) << "tensor " << i;
  // And TRADES is not PGD-AT under another name.
  EXPECT_FALSE(eager[0].equal(train_tiny(runtime::GraphMode::kOff, 6)[0]));
}

// The TRADES step's loss, recomputed the way the reference code writes it: examples from the
// model in eval mode, then in train mode cross_entropy(f(x), y) + beta / B x
// KLDivLoss(sum)(log_softmax(f(x_adv)), softmax(f(x))).
TEST(TrainStep, TradesLossIsCleanCrossEntropyPlusBetaTimesKl) {
  for (double eps : {8.0 / 255.0, 0.0}) {
    torch::manual_seed(0);
    testing::TinyNet net(3, 4);
    testing::TinyNet copy(3, 4);
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < net->parameters().size(); ++i)
        copy->parameters()[i].copy_(net->parameters()[i]);
    }
    const torch::Tensor x = torch::rand({8, 3, 6, 6});
    const torch::Tensor y = torch::randint(0, 4, {8}, torch::kLong);
    Sgd sgd(*net, config::OptimizerConfig{});
    LossScaler scaler(false);
    StepOptions options;
    options.objective = "trades";
    options.trades_beta = 6.0;
    options.attack.eps = eps;
    options.attack.step_size = 2.0 / 255.0;
    options.attack.steps = 3;
    TrainStep step(*net, sgd, scaler, options);
    torch::manual_seed(7);
    const double loss = step.run(x, y, 0.01).loss.item<double>();
    EXPECT_TRUE(net->is_training());

    copy->eval();
    torch::manual_seed(7);
    const torch::Tensor x_adv = attacks::trades_examples(*copy, x, options.attack);
    copy->train();
    torch::NoGradGuard no_grad;
    const torch::Tensor clean = copy->forward(x);
    const torch::Tensor kl = torch::nn::functional::kl_div(
        torch::log_softmax(copy->forward(x_adv), 1), torch::softmax(clean, 1),
        torch::nn::functional::KLDivFuncOptions().reduction(torch::kSum));
    const torch::Tensor ce = torch::nn::functional::cross_entropy(clean, y);
    EXPECT_NEAR(loss, (ce + 6.0 * kl / 8.0).item<double>(), 1e-5) << "eps " << eps;
    if (eps == 0.0) {
      EXPECT_NEAR(loss, ce.item<double>(), 1e-6);  // no room to move: the KL term is zero
    } else {
      EXPECT_GT(kl.item<double>(), 1e-6);
    }
  }
}

// Autocast keeps one cast copy of each weight for its region. A copy made under no_grad (TRADES'
// clean pass, APGD-T's ranking of the targets) has no autograd history: a training forward that
// reused it would give no conv or linear weight a gradient, silently (the cache ignores grad mode
// up to LibTorch 2.10; PyTorch 2.11 fixed it). Each weight must get its gradient in bf16.
TEST(TrainStep, Bf16WeightsGetTheirGradientsAfterAnAttackThatTookNone) {
  for (const std::string kind : {"trades", "apgd_t", "pgd"}) {
    torch::manual_seed(0);
    testing::TinyNet net(3, 4);
    Sgd sgd(*net, config::OptimizerConfig{});
    LossScaler scaler(false);
    StepOptions options;
    options.precision = runtime::Precision::kBf16;
    options.objective = kind == "trades" ? "trades" : "pgd_at";
    options.attack.kind = kind == "trades" ? "pgd" : kind;
    options.attack.loss = kind == "apgd_t" ? "dlr" : "ce";
    options.attack.steps = 2;
    options.attack.targets = 2;
    TrainStep step(*net, sgd, scaler, options);
    const torch::Tensor x = torch::rand({8, 3, 6, 6});
    const torch::Tensor y = torch::randint(0, 4, {8}, torch::kLong);
    step.run(x, y, 0.01);
    for (const auto& p : net->named_parameters()) {
      const torch::Tensor grad = p.value().grad();
      EXPECT_TRUE(grad.defined() && grad.abs().sum().item<double>() > 0.0)
          << kind << ": " << p.key() << " got no gradient";
    }
  }
}

TEST(Sgd, ReadsTheLrSetBeforeEachStep) {
  torch::manual_seed(0);
  testing::TinyNet net(3, 4);
  config::OptimizerConfig plain;
  plain.momentum = 0.0;
  plain.weight_decay = 0.0;
  Sgd sgd(*net, plain);
  const torch::Tensor before = net->parameters()[0].detach().clone();
  torch::nn::functional::cross_entropy(net->forward(torch::rand({2, 3, 4, 4})),
                                       torch::tensor({0, 1}))
      .backward();
  const torch::Tensor grad = net->parameters()[0].grad().clone();
  apply_lr(sgd, 0.5);
  apply_lr(sgd, 0.25);  // the last value set is the one used
  sgd.step();
  EXPECT_TRUE(torch::allclose(net->parameters()[0].detach(), before - 0.25 * grad, 1e-6, 1e-7));
}

// Ctrl-C while the run is still starting (loading data, building the model) stops it before its
// first step with nothing saved: a forced run then gives back the run it replaced.
TEST(Trainer, AStopAskedForBeforeTheFirstStepSavesNothing) {
  testing::TempDir dir;
  testing::write_cifar10(dir.file("cifar"), 20, 20);
  nlohmann::json settings = nlohmann::json::parse(R"({
    "model": {"arch": "preact_resnet", "blocks": [1], "width": 8, "num_classes": 10},
    "data": {"dataset": "cifar10", "val_size": 0},
    "train": {"epochs": 1, "batch_size": 50},
    "threads": 1
  })");
  settings["data"]["dir"] = dir.file("cifar");
  RunRequest request;
  request.command = "train";
  request.config =
      config::parse_run_config(settings, config::default_config(config::Command::kTrain));
  request.paths = io::prepare_run_dir(dir.file("run"), io::RunDirMode::kNew).paths;
  runtime::request_stop(SIGINT);
  struct Forget {
    ~Forget() { runtime::clear_stop_signal(); }
  } forget;
  try {
    run_training(request);
    FAIL() << "expected an InterruptedError";
  } catch (const InterruptedError& e) {
    EXPECT_EQ(e.exit_code(), 128 + SIGINT);
    EXPECT_NE(std::string(e.what()).find("at step 0 of"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(request.paths.last));
}

TEST(StepSeed, IsAPureFunctionThatDiffersAcrossStepsAndSeeds) {
  EXPECT_EQ(step_seed(0, 5), step_seed(0, 5));
  EXPECT_NE(step_seed(0, 5), step_seed(0, 6));
  EXPECT_NE(step_seed(0, 5), step_seed(1, 5));
  EXPECT_LE(step_seed(123, 456), static_cast<uint64_t>(INT64_MAX));
}

}  // namespace
}  // namespace advft::train
