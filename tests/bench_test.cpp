// advft bench and the precision machinery it shares with training: FLOP counting, autocast,
// fp16 loss scaling, and the command itself on the CPU (GPU figures come from the GPU machine).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/bench/flops.h"
#include "advft/error.h"
#include "advft/models/factory.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/precision.h"
#include "advft/train/loss_scaler.h"
#include "fixtures.h"
#include "tiny_model.h"

namespace advft::testing {
namespace {

TEST(Flops, CountsConvolutionsAndMatrixProductsOfOneForward) {
  TinyNet net(3, 10);
  // conv 3->8, 3x3, padding 1 on 32x32: 2 * 8*32*32 outputs * 27 multiply-adds; fc 8->10.
  EXPECT_EQ(bench::forward_flops(*net, 3, 32), 2 * 8 * 32 * 32 * 27 + 2 * 8 * 10);
  EXPECT_TRUE(net->is_training());  // the model's mode is restored
}

// The per-image FLOPs of a PGD-10 AT step that the Python peers report (peer_compile.py).
TEST(Flops, MatchThePeersFiguresForPreActResNet18AndWrn34_10) {
  models::ModelSpec preact;
  EXPECT_NEAR(bench::at_step_flops(bench::forward_flops(*models::make_model(preact), 3, 32), 10),
              25.5e9, 0.1e9);
  models::ModelSpec wrn;
  wrn.arch = "wrn34_10";
  EXPECT_NEAR(bench::at_step_flops(bench::forward_flops(*models::make_model(wrn), 3, 32), 10),
              306e9, 1e9);
  EXPECT_EQ(bench::eval_flops(100, 20), 4100);
}

TEST(Precision, ResolvesPerDeviceAndRefusesWhatTheCpuCannotDo) {
  using runtime::Precision;
  EXPECT_EQ(runtime::resolve_precision("auto", torch::kCPU, "precision"), Precision::kFp32);
  EXPECT_EQ(runtime::resolve_precision("bf16", torch::kCPU, "precision"), Precision::kBf16);
  EXPECT_THROW(runtime::resolve_precision("fp16", torch::kCPU, "precision"), ConfigError);
  EXPECT_THROW(runtime::resolve_precision("tf32", torch::kCPU, "precision"), ConfigError);
  EXPECT_THROW(runtime::resolve_precision("half", torch::kCPU, "precision"), ConfigError);
  EXPECT_STREQ(runtime::precision_name(Precision::kBf16), "bf16");
}

TEST(Precision, AutocastGuardScopesBf16AndRestores) {
  torch::nn::Linear layer(4, 3);
  const torch::Tensor x = torch::rand({2, 4});
  {
    const runtime::AutocastGuard bf16(runtime::Precision::kBf16, torch::kCPU);
    EXPECT_EQ(layer(x).scalar_type(), torch::kBFloat16);
    {
      const runtime::AutocastGuard fp32(runtime::Precision::kFp32, torch::kCPU);  // no-op
      EXPECT_EQ(layer(x).scalar_type(), torch::kBFloat16);
    }
  }
  EXPECT_EQ(layer(x).scalar_type(), torch::kFloat32);
  EXPECT_EQ(layer->weight.scalar_type(), torch::kFloat32);  // weights stay fp32
}

TEST(MemoryFormat, ChannelsLastKeepsTensorIdentityAndValues) {
  TinyNet net(3, 10);
  torch::Tensor weight = net->named_parameters()["conv.weight"];
  const torch::Tensor before = weight.clone();
  runtime::to_channels_last(*net);
  EXPECT_TRUE(weight.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(weight, before));
}

TEST(LossScaler, SkipsOverflowingStepsHalvesAndGrowsTheScale) {
  train::LossScaler scaler(/*enabled=*/true, /*initial_scale=*/1024.0, /*growth_interval=*/2);
  torch::Tensor p = torch::zeros({3}, torch::requires_grad());
  EXPECT_EQ(scaler.scale_loss(torch::tensor(2.0)).item<double>(), 2048.0);

  p.mutable_grad() = torch::full({3}, 1024.0);
  EXPECT_TRUE(scaler.unscale_and_update({p}));
  EXPECT_TRUE(torch::allclose(p.grad(), torch::ones({3})));  // unscaled
  p.mutable_grad() = torch::tensor({1.0, std::numeric_limits<double>::infinity(), 0.0});
  EXPECT_FALSE(scaler.unscale_and_update({p}));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  for (int i = 0; i < 2; ++i) {
    p.mutable_grad() = torch::ones({3});
    EXPECT_TRUE(scaler.unscale_and_update({p}));
  }
  EXPECT_EQ(scaler.scale(), 1024.0);  // two good steps in a row: doubled

  train::LossScaler resumed(true);
  resumed.load_state(scaler.state());
  EXPECT_EQ(resumed.scale(), 1024.0);
  EXPECT_EQ(resumed.skipped_steps(), 1);

  train::LossScaler off(/*enabled=*/false);
  p.mutable_grad() = torch::full({3}, std::numeric_limits<double>::quiet_NaN());
  EXPECT_TRUE(off.unscale_and_update({p}));  // fp32/bf16: the trainer's finite checks apply
  EXPECT_EQ(off.scale_loss(torch::tensor(2.0)).item<double>(), 2.0);
}

TEST(BenchCli, PrintsThroughputAndWritesJson) {
  const BenchRun b = run_bench(
      "--model preact18 --batch 4 --attack pgd:steps=1 --eval-steps 2 --warmup 1 --iterations 1 "
      "--device cpu");
  ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
  EXPECT_NE(b.run.output.find("images/s"), std::string::npos) << b.run.output;
  const nlohmann::json& j = b.json;
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_FALSE(j["fused_bn_relu"].get<bool>());
  EXPECT_EQ(j["cudnn_benchmark_limit"], 10);
  EXPECT_EQ(j["batch"], 4);
  EXPECT_GT(j["at_step"]["images_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["eval"]["images_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["at_step"]["warmup_seconds"].get<double>(), 0.0);  // the --warmup 1 call
  EXPECT_GT(j["eval"]["warmup_seconds"].get<double>(), 0.0);
  EXPECT_NE(b.run.output.find("warm-up s"), std::string::npos) << b.run.output;
  EXPECT_EQ(j["at_step"]["flops_per_image"].get<int64_t>(),
            5 * j["forward_flops_per_image"].get<int64_t>());  // PGD-1: (2*1 + 3) forwards
  // Usage errors (exit 2), each one line naming the flag.
  const std::vector<std::pair<std::string, std::string>> usage_errors = {
      // One prefix, the flag's: not "--model resnet9000: config: model.arch = ...".
      {"bench --model resnet9000",
       "error: --model resnet9000: unknown; known: preact18 or a model.arch (preact_resnet18, "},
      {"bench --loops at,train --device cpu", "--loops at,train: \"train\" is not a loop"},
      {"bench --attack square --device cpu",
       "--attack square: bench times a training step; square is an evaluation attack"}};
  for (const auto& [command, message] : usage_errors) {
    const RunResult bad = run_advft(command);
    EXPECT_EQ(bad.exit_code, 2) << command;
    EXPECT_NE(bad.output.find(message), std::string::npos) << command << "\n" << bad.output;
  }
  EXPECT_EQ(run_advft("bench --precision fp16 --device cpu").exit_code, 3);
  EXPECT_EQ(run_advft("bench --cudnn-benchmark-limit -1 --device cpu").exit_code, 2);
  // A --json that cannot be written is found before the benchmark, not after it.
  const RunResult bad_json = run_advft("bench --device cpu --json /nonexistent-advft/b.json");
  EXPECT_EQ(bad_json.exit_code, 6) << bad_json.output;
  EXPECT_NE(bad_json.output.find("--json /nonexistent-advft/b.json: cannot create a file in"),
            std::string::npos)
      << bad_json.output;
  EXPECT_EQ(bad_json.output.find("images/s"), std::string::npos) << bad_json.output;
}

// Ctrl-C stops a benchmark between calls, as it stops training and evaluation, instead of being
// recorded and ignored until the last iteration.
TEST(BenchCli, StopsOnCtrlCBetweenCallsAndWritesNothing) {
  TempDir dir;
  const std::string log = dir.file("bench.log");
  BackgroundAdvft bench(
      "bench --model preact18 --batch 2 --attack pgd:steps=1 --loops at "
      "--warmup 0 --iterations 1000000 --device cpu --threads 1 --json " +
          dir.file("bench.json"),
      log);
  ASSERT_TRUE(bench.started());
  // The handlers are in place before the first log line.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline &&
         read_bytes(log).find("benchmarking") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bench.signal(SIGINT);
  EXPECT_EQ(bench.wait(std::chrono::seconds(60)), 130) << read_bytes(log);
  EXPECT_NE(read_bytes(log).find("benchmark interrupted by signal 2; nothing was written"),
            std::string::npos)
      << read_bytes(log);
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"bench.log"});
}

// The Fashion-MNIST recipe's shape, to time its step apart from the whole fine-tune.
TEST(BenchCli, MeasuresAnyImageShape) {
  const BenchRun b = run_bench(
      "--model preact18 --in-channels 1 --input-size 28 --batch 2 --loops at "
      "--attack pgd:steps=1,eps=0.1,step_size=0.025 --warmup 0 --iterations 1 --device cpu "
      "--cudnn-benchmark-limit 0");
  ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
  EXPECT_NE(b.run.output.find("1x28x28"), std::string::npos) << b.run.output;
  const nlohmann::json& j = b.json;
  EXPECT_EQ(j["cudnn_benchmark_limit"], 0);
  // Recorded as asked, but not claimed for the CPU, where no cuDNN runs.
  EXPECT_EQ(b.run.output.find("cuDNN"), std::string::npos) << b.run.output;
  // --warmup 0 on the CPU: no untimed calls, so next to no time (the timed call takes ~0.1 s).
  EXPECT_LT(j["at_step"]["warmup_seconds"].get<double>(), 0.01);
  // 28x28 of one channel: fewer FLOPs than CIFAR's 3x32x32, the first convolution a ninth.
  EXPECT_LT(j["forward_flops_per_image"].get<int64_t>(), 1'000'000'000);
  EXPECT_GT(j["forward_flops_per_image"].get<int64_t>(), 500'000'000);
  EXPECT_EQ(run_advft("bench --in-channels 0 --device cpu").exit_code, 2);
}

// bench_vs_peers.sh times only what it compares: GPU time is the scarce resource.
TEST(BenchCli, TimesOnlyTheLoopsAskedFor) {
  const BenchRun b = run_bench(
      "--model preact18 --batch 2 --attack pgd:steps=1 --eval-steps 1 --warmup 0 --iterations 1 "
      "--device cpu --loops eval");
  ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
  EXPECT_NE(b.run.output.find("PGD-1 evaluation"), std::string::npos) << b.run.output;
  EXPECT_EQ(b.run.output.find("AT step"), std::string::npos) << b.run.output;
  const nlohmann::json& j = b.json;
  EXPECT_FALSE(j.contains("at_step"));
  EXPECT_GT(j["eval"]["images_per_s"].get<double>(), 0.0);
}

}  // namespace
}  // namespace advft::testing
