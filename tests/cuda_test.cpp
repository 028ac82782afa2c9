// GPU paths, run where a CUDA device is present (named *_CUDA; they skip themselves elsewhere):
// mixed precision agrees with fp32, channels-last changes nothing but speed, training and
// evaluation run end to end on the device, and the benchmark measures there.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "advft/attacks/attacks.h"
#include "advft/models/factory.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/precision.h"
#include "fixtures.h"

namespace advft::testing {
namespace {

#define REQUIRE_CUDA()                                                \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"; \
  static_assert(true, "")

torch::Tensor logits(models::ClassifierImpl& model, const torch::Tensor& x,
                     runtime::Precision precision) {
  const runtime::AutocastGuard autocast(precision, x.device());
  torch::NoGradGuard no_grad;
  return model.forward(x).to(torch::kFloat);
}

TEST(Precision, Bf16AndFp16AgreeWithFp32_CUDA) {
  REQUIRE_CUDA();
  torch::manual_seed(0);
  models::ClassifierPtr model = models::make_model(models::ModelSpec{});
  model->to(torch::kCUDA);
  model->eval();
  const torch::Tensor x = torch::rand({256, 3, 32, 32}, torch::kCUDA);
  const torch::Tensor reference = logits(*model, x, runtime::Precision::kFp32);
  for (auto precision :
       {runtime::Precision::kBf16, runtime::Precision::kFp16, runtime::Precision::kTf32}) {
    runtime::configure_matmul_precision(precision);
    const torch::Tensor got = logits(*model, x, precision);
    const double agreement =
        got.argmax(1).eq(reference.argmax(1)).to(torch::kFloat).mean().item<double>();
    EXPECT_GE(agreement, 0.95) << runtime::precision_name(precision);
    const double scale = reference.abs().max().item<double>();
    EXPECT_LE((got - reference).abs().max().item<double>(), 0.05 * scale + 1e-3)
        << runtime::precision_name(precision);
  }
  runtime::configure_matmul_precision(runtime::Precision::kFp32);
}

TEST(MemoryFormat, ChannelsLastGivesTheSameLogits_CUDA) {
  REQUIRE_CUDA();
  torch::manual_seed(0);
  models::ClassifierPtr model = models::make_model(models::ModelSpec{});
  model->to(torch::kCUDA);
  model->eval();
  const torch::Tensor x = torch::rand({64, 3, 32, 32}, torch::kCUDA);
  const torch::Tensor before = logits(*model, x, runtime::Precision::kFp32);
  runtime::to_channels_last(*model);
  const torch::Tensor after = logits(*model, x, runtime::Precision::kFp32);
  EXPECT_LE((after - before).abs().max().item<double>(), 1e-3);
}

TEST(Training, TrainsAndEvaluatesOnTheGpuInBf16_CUDA) {
  REQUIRE_CUDA();
  TempDir dir;
  write_cifar10(dir.file("cifar"), 64, 128);
  const std::string common = " --data-dir " + dir.file("cifar") + " --device cuda";
  RunResult r = run_advft(
      "train --config cifar10 --set model.arch=preact_resnet --set model.blocks=[1,1] "
      "--set model.width=16 --set data.val_size=64 --set train.val_batch_size=64 "
      "--set precision=bf16 --epochs 1 --batch-size 32 --out " +
      dir.file("run") + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_advft("eval --checkpoint " + dir.file("run/best.safetensors") + common +
                " --precision bf16 --json " + dir.file("eval.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(read_bytes(dir.file("eval.json")));
  EXPECT_EQ(j["total"], 128);
}

TEST(BenchCli, MeasuresOnTheGpu_CUDA) {
  REQUIRE_CUDA();
  TempDir dir;
  const RunResult r =
      run_advft("bench --device cuda --batch 32 --iterations 2 --json " + dir.file("bench.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(read_bytes(dir.file("bench.json")));
  EXPECT_EQ(j["precision"], "bf16");
  EXPECT_TRUE(j["channels_last"].get<bool>());
  EXPECT_GT(j["at_step"]["tflops"].get<double>(), 0.0);
}

}  // namespace
}  // namespace advft::testing
