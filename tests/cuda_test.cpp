// GPU paths, run where a CUDA device is present (named *_CUDA; they skip themselves elsewhere):
// mixed precision agrees with fp32, channels-last changes nothing but speed, CUDA graphs train
// and evaluate like eager code, training and evaluation run end to end on the device, and the
// benchmark measures there.
#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/attacks/attacks.h"
#include "advft/eval/evaluator.h"
#include "advft/models/batch_norm_relu.h"
#include "advft/models/factory.h"
#include "advft/runtime/compat.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/device.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/precision.h"
#include "advft/runtime/stream.h"
#include "advft/train/sgd.h"
#include "advft/train/train_step.h"
#include "fixtures.h"
#include "tiny_model.h"

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

// The names of the operators and autograd nodes that run while the log lives, on this thread
// and on the autograd engine's threads (which inherit the callback with the thread's state).
class OperatorLog {
 public:
  OperatorLog()
      : handle_(at::addThreadLocalCallback(at::RecordFunctionCallback(
            [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
              const std::lock_guard<std::mutex> lock(mutex());
              names().emplace_back(fn.name());
              return nullptr;
            }))) {
    const std::lock_guard<std::mutex> lock(mutex());
    names().clear();
  }
  ~OperatorLog() { at::removeCallback(handle_); }
  OperatorLog(const OperatorLog&) = delete;
  OperatorLog& operator=(const OperatorLog&) = delete;

  /// Whether an operator or node whose name contains `fragment` ran.
  bool ran(const std::string& fragment) const {
    const std::lock_guard<std::mutex> lock(mutex());
    return std::any_of(names().begin(), names().end(), [&](const std::string& name) {
      return name.find(fragment) != std::string::npos;
    });
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::string>& names() {
    static std::vector<std::string> log;
    return log;
  }
  at::CallbackHandle handle_;
};

// Six PGD-10 steps of PreActResNet-18 from the same weights and seeds, eager or with the step
// captured after three warm-up steps, with or without advft's fused BatchNorm+ReLU; returns
// (initial, final) parameters, flattened.
std::pair<torch::Tensor, torch::Tensor> train_steps(runtime::GraphMode graphs,
                                                    runtime::Precision precision,
                                                    bool fused = false) {
  const torch::Device gpu(torch::kCUDA, 0);
  const runtime::StreamScope stream(gpu);
  models::set_fused_batch_norm_relu(fused);
  torch::manual_seed(0);
  models::ClassifierPtr model = models::make_model(models::ModelSpec{});
  model->to(gpu);
  runtime::to_channels_last(*model);
  runtime::configure_matmul_precision(precision);
  auto flat = [&] {
    std::vector<torch::Tensor> parts;
    for (const auto& p : model->parameters())
      parts.push_back(p.detach().flatten().to(torch::kFloat));
    return torch::cat(parts);
  };
  const torch::Tensor initial = flat();
  train::Sgd sgd(*model, config::OptimizerConfig{});
  train::LossScaler scaler(false);
  train::StepOptions options;
  options.precision = precision;
  options.device = gpu;
  options.graphs = graphs;
  train::TrainStep step(*model, sgd, scaler, options);
  for (int64_t i = 0; i < 6; ++i) {
    torch::manual_seed(100 + i);
    const torch::Tensor x = torch::rand({64, 3, 32, 32}, gpu);
    const torch::Tensor y =
        torch::randint(0, 10, {64}, torch::TensorOptions(gpu).dtype(torch::kLong));
    const OperatorLog log;
    step.run(x, y, 0.02 * static_cast<double>(i + 1));  // a new lr every step
    // The first step is eager in both modes: there the kernels' backward shows by name.
    if (i == 0) {
      EXPECT_EQ(log.ran("FusedBatchNormRelu"), fused);
    }
  }
  EXPECT_EQ(step.replays(), graphs == runtime::GraphMode::kCuda ? 3 : 0);
  models::set_fused_batch_norm_relu(false);
  return {initial, flat()};
}

// cuDNN's deterministic algorithms and no benchmark for the life of the object: eager steps then
// repeat themselves, and what sets a graphed step apart from an eager one is the graph.
class DeterministicCudnn {
 public:
  DeterministicCudnn()
      : benchmark_(at::globalContext().benchmarkCuDNN()),
        deterministic_(at::globalContext().deterministicCuDNN()) {
    at::globalContext().setBenchmarkCuDNN(false);
    at::globalContext().setDeterministicCuDNN(true);
  }
  ~DeterministicCudnn() {
    at::globalContext().setBenchmarkCuDNN(benchmark_);
    at::globalContext().setDeterministicCuDNN(deterministic_);
  }
  DeterministicCudnn(const DeterministicCudnn&) = delete;
  DeterministicCudnn& operator=(const DeterministicCudnn&) = delete;

 private:
  bool benchmark_;
  bool deterministic_;
};

TEST(CudaGraphs, CapturedTrainingStepTrainsLikeTheEagerStep_CUDA) {
  REQUIRE_CUDA();
  const DeterministicCudnn deterministic;
  for (auto precision : {runtime::Precision::kFp32, runtime::Precision::kBf16}) {
    const auto [initial, eager] = train_steps(runtime::GraphMode::kOff, precision);
    const auto [initial_again, eager_again] = train_steps(runtime::GraphMode::kOff, precision);
    const auto [initial_graphed, graphed] = train_steps(runtime::GraphMode::kCuda, precision);
    ASSERT_TRUE(initial.equal(initial_again));
    ASSERT_TRUE(initial.equal(initial_graphed));
    // The graph reads each step's lr and random start like the eager step does. What may still
    // differ is the GPU's own rounding noise (atomics outside cuDNN), which PGD's sign() can
    // amplify over six steps: eager against eager measures it, and the graph may differ by that
    // much on top of a small share of the update.
    const double update = (eager - initial).norm().item<double>();
    const double noise = (eager_again - eager).norm().item<double>();
    const double apart = (graphed - eager).norm().item<double>();
    std::printf("%s: update %.4g, eager vs eager %.4g, graphed vs eager %.4g\n",
                runtime::precision_name(precision), update, noise, apart);
    EXPECT_GT(update, 0.0);
    EXPECT_LE(apart, (precision == runtime::Precision::kBf16 ? 0.05 : 0.01) * update + 2 * noise)
        << runtime::precision_name(precision) << ": update " << update << ", eager vs eager "
        << noise << ", graphed vs eager " << apart;
  }
  runtime::configure_matmul_precision(runtime::Precision::kFp32);
}

// On CUDA every update after the first (which creates the momentum buffers) is PyTorch's fused
// multi-tensor SGD kernel: it must step like torch::optim::SGD with gradients from a real
// backward through channels-last weights, and keep doing so with momentum restored from a
// checkpoint's state.
TEST(Sgd, FusedUpdateStepsLikeTorchSgd_CUDA) {
  REQUIRE_CUDA();
  const torch::Device gpu(torch::kCUDA, 0);
  for (const bool nesterov : {false, true}) {
    torch::manual_seed(0);
    testing::TinyNet ours_net(3, 4);
    testing::TinyNet reference_net(3, 4);
    ours_net->to(gpu);
    reference_net->to(gpu);
    runtime::to_channels_last(*ours_net);
    runtime::to_channels_last(*reference_net);
    std::vector<torch::Tensor> ours_params = ours_net->parameters();
    std::vector<torch::Tensor> reference_params = reference_net->parameters();
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < ours_params.size(); ++i)
        reference_params[i].copy_(ours_params[i]);
    }
    config::OptimizerConfig options;
    options.momentum = 0.9;
    options.nesterov = nesterov;
    options.weight_decay = 5e-4;
    auto ours = std::make_unique<train::Sgd>(*ours_net, options);
    torch::optim::SGD reference(
        reference_params,
        torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(nesterov).weight_decay(5e-4));
    for (int step = 0; step < 5; ++step) {
      if (step == 3) {  // as a resumed run does: a new optimizer given the saved buffers
        auto restored = std::make_unique<train::Sgd>(*ours_net, options);
        restored->load_state(ours->state(), "test");
        ours = std::move(restored);
      }
      const torch::Tensor x = torch::rand({6, 3, 5, 5}, gpu);
      const torch::Tensor y =
          torch::randint(0, 4, {6}, torch::TensorOptions(gpu).dtype(torch::kLong));
      ours->zero_grad();
      torch::nn::functional::cross_entropy(ours_net->forward(x), y).backward();
      reference.zero_grad();
      for (std::size_t i = 0; i < ours_params.size(); ++i)
        reference_params[i].mutable_grad() = ours_params[i].grad().clone();
      train::apply_lr(*ours, 0.05);
      const OperatorLog log;
      ours->step();
#ifdef ADVFT_HAVE_FUSED_SGD
      EXPECT_EQ(log.ran("aten::_fused_sgd_"), step > 0) << "step " << step;
#endif
      reference.step();
    }
    for (std::size_t i = 0; i < ours_params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours_params[i], reference_params[i], 1e-5, 1e-7))
          << "nesterov " << nesterov << ", parameter " << i;
    }
  }
}

// advft's kernels against BatchNorm2d then relu on the shapes of PreActResNet-18 and WRN-34-10
// layers (and odd ones): output, running statistics, batch count and all three gradients.
TEST(FusedBatchNormRelu, MatchesBatchNormThenRelu_CUDA) {
  REQUIRE_CUDA();
  if (!models::fused_batch_norm_relu_built()) GTEST_SKIP() << "built without advft's CUDA kernels";
  const torch::Device gpu(torch::kCUDA, 0);
  // ||got - want|| / ||want||, or / `floor` where want is smaller: with two values per channel
  // (the 2x8x1x1 case) BatchNorm's input gradient is zero, and both sides give rounding noise.
  const auto relative = [](const torch::Tensor& got, const torch::Tensor& want,
                           double floor = 1e-12) {
    const double difference =
        (got.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>();
    return difference / std::max(want.to(torch::kDouble).norm().item<double>(), floor);
  };
  const std::vector<std::vector<int64_t>> shapes = {
      {128, 64, 32, 32}, {128, 512, 4, 4}, {32, 160, 32, 32}, {4, 320, 8, 8},
      {2, 640, 4, 4},    {7, 24, 5, 3},    {2, 8, 1, 1}};
  for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
    for (const auto& shape : shapes) {
      const int64_t channels = shape[1];
      torch::manual_seed(channels);
      torch::nn::BatchNorm2d reference(channels);
      {
        torch::NoGradGuard no_grad;
        // Not uniform_/normal_: under the sanitizer build's -O1, GCC warns inside LibTorch
        // 1.13's optional<Generator> argument of those (a false "maybe uninitialized").
        reference->weight.copy_(torch::rand({channels}) + 0.5);
        reference->bias.copy_(torch::randn({channels}));
        reference->running_mean.copy_(torch::randn({channels}) * 0.1);
        reference->running_var.copy_(torch::rand({channels}) + 0.5);
      }
      auto fused = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(reference->clone());
      reference->to(gpu);
      fused->to(gpu);
      // A channel mean far from zero against its spread: the statistics must not cancel.
      const torch::Tensor data = (torch::randn(shape) * 0.5 + 4.0)
                                     .to(gpu, dtype)
                                     .contiguous(torch::MemoryFormat::ChannelsLast);
      const torch::Tensor grad =
          torch::randn(shape).to(gpu, dtype).contiguous(torch::MemoryFormat::ChannelsLast);
      const torch::Tensor x_reference = data.clone().requires_grad_(true);
      const torch::Tensor x_fused = data.clone().requires_grad_(true);
      models::set_fused_batch_norm_relu(false);
      const torch::Tensor want = models::batch_norm_relu(*reference, x_reference);
      want.backward(grad);
      models::set_fused_batch_norm_relu(true);
      const torch::Tensor got = models::batch_norm_relu(*fused, x_fused);
      got.backward(grad);
      models::set_fused_batch_norm_relu(false);
      const std::string where =
          std::string(c10::toString(dtype)) + " " + c10::str(torch::IntArrayRef(shape));
      ASSERT_NE(got.grad_fn(), nullptr) << where;
      EXPECT_NE(got.grad_fn()->name().find("FusedBatchNormRelu"), std::string::npos)
          << where << ": " << got.grad_fn()->name();
      EXPECT_EQ(got.scalar_type(), dtype) << where;
      EXPECT_TRUE(got.is_contiguous(torch::MemoryFormat::ChannelsLast)) << where;
      EXPECT_LE(relative(got, want), 1e-2) << where << " output";
      EXPECT_LE(relative(fused->running_mean, reference->running_mean), 1e-4) << where;
      EXPECT_LE(relative(fused->running_var, reference->running_var), 1e-4) << where;
      EXPECT_EQ(fused->num_batches_tracked.item<int64_t>(), 1) << where;
      const double grad_norm = grad.to(torch::kDouble).norm().item<double>();
      EXPECT_LE(relative(x_fused.grad(), x_reference.grad(), grad_norm), 2e-2)
          << where << " input grad";
      EXPECT_LE(relative(fused->weight.grad(), reference->weight.grad()), 1e-2) << where;
      EXPECT_LE(relative(fused->bias.grad(), reference->bias.grad()), 1e-2) << where;
    }
  }
}

// The fused kernels inside a captured training step: what the graph replays is what eager steps
// with the same kernels compute.
TEST(CudaGraphs, CapturedStepWithFusedBatchNormReluTrainsLikeEager_CUDA) {
  REQUIRE_CUDA();
  if (!models::fused_batch_norm_relu_built()) GTEST_SKIP() << "built without advft's CUDA kernels";
  const DeterministicCudnn deterministic;
  const auto precision = runtime::Precision::kBf16;
  const auto [initial, eager] = train_steps(runtime::GraphMode::kOff, precision, true);
  const auto [initial_again, eager_again] = train_steps(runtime::GraphMode::kOff, precision, true);
  const auto [initial_graphed, graphed] = train_steps(runtime::GraphMode::kCuda, precision, true);
  ASSERT_TRUE(initial.equal(initial_graphed));
  const double update = (eager - initial).norm().item<double>();
  const double noise = (eager_again - eager).norm().item<double>();
  const double apart = (graphed - eager).norm().item<double>();
  std::printf("fused bf16: update %.4g, eager vs eager %.4g, graphed vs eager %.4g\n", update,
              noise, apart);
  EXPECT_GT(update, 0.0);
  EXPECT_LE(apart, 0.05 * update + 2 * noise);
  runtime::configure_matmul_precision(runtime::Precision::kFp32);
}

TEST(CudaGraphs, CapturedEvaluationCountsLikeTheEagerOne_CUDA) {
  REQUIRE_CUDA();
  const torch::Device gpu(torch::kCUDA, 0);
  torch::manual_seed(0);
  models::ClassifierPtr model = models::make_model(models::ModelSpec{});
  model->to(gpu);
  runtime::to_channels_last(*model);
  data::Dataset data;
  data.images = torch::randint(0, 256, {1000, 3, 32, 32}, torch::kLong).to(torch::kUInt8);
  data.labels = torch::randint(0, 10, {1000}, torch::kLong);
  data.num_classes = 10;
  const std::vector<attacks::NamedAttack> attacks = {
      attacks::parse_attack_spec("fgsm", {}, "test"),
      attacks::parse_attack_spec("pgd:steps=5", {}, "test"),
      attacks::parse_attack_spec("apgd:steps=10", {}, "test"),
      attacks::parse_attack_spec("apgd_t:steps=5,targets=3", {}, "test"),
      attacks::parse_attack_spec("fab_t:steps=10,targets=3", {}, "test"),
      attacks::parse_attack_spec("fab:steps=10", {}, "test"),
      attacks::parse_attack_spec("square:steps=50", {}, "test")};  // eager in both: no graph
  eval::EvalOptions options;
  options.batch_size = 128;  // 8 batches: 2 eager, 5 replays, the partial last one eager
  options.precision = runtime::Precision::kBf16;
  const eval::EvalReport eager = eval::evaluate(*model, data, attacks, options, gpu);
  options.graphs = runtime::GraphMode::kCuda;
  options.placement = data::Placement::kHost;  // and the pinned-memory prefetcher on the way
  const eval::EvalReport graphed = eval::evaluate(*model, data, attacks, options, gpu);
  EXPECT_NEAR(graphed.clean_correct, eager.clean_correct, 10);
  for (std::size_t a = 0; a < attacks.size(); ++a)
    EXPECT_NEAR(graphed.attacks[a].correct, eager.attacks[a].correct, 10) << attacks[a].name;
}

// A GPU that cannot be used says so at wait(), where the caller is ready for errors.
TEST(Device, WarmupMakesTheContextAndRethrowsAtWait_CUDA) {
  REQUIRE_CUDA();
  runtime::BackgroundJob gpu = runtime::warm_up_device(torch::Device(torch::kCUDA, 0));
  EXPECT_TRUE(gpu.pending());
  EXPECT_NO_THROW(gpu.wait());
  runtime::BackgroundJob missing = runtime::warm_up_device(
      torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(torch::cuda::device_count())));
  EXPECT_ANY_THROW(missing.wait());
}

TEST(Training, TrainsWithGraphsAndHostPlacementOnTheGpu_CUDA) {
  REQUIRE_CUDA();
  TempDir dir;
  write_cifar10(dir.file("cifar"), 80, 64);  // 400 training images: 144 for validation
  // 256 / 32 = 8 steps per epoch, 3 validation batches: both loops get past their warm-up.
  const RunResult r = run_advft(
      "train --config cifar10 --set model.arch=preact_resnet --set model.blocks=[1,1] "
      "--set model.width=16 --set data.val_size=144 --set train.val_batch_size=48 "
      "--set cuda_graphs=on --set data.placement=host --epochs 2 --batch-size 32 --out " +
      dir.file("run") + " --data-dir " + dir.file("cifar") + " --device cuda");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("CUDA graphs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stay in host memory"), std::string::npos) << r.output;
  const nlohmann::json results = nlohmann::json::parse(read_bytes(dir.file("run/results.json")));
  EXPECT_EQ(results["steps"], 16);
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
  // Without --precision, evaluation takes TF32, not the run's bf16.
  r = run_advft("eval --checkpoint " + dir.file("run/best.safetensors") + common +
                " --attack fgsm --limit 64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(", tf32"), std::string::npos) << r.output;
  // TRADES (eval-mode attack, train-mode loss) through the captured step, and APGD evaluation
  // through the captured attack.
  r = run_advft(
      "finetune --config cifar10 --set model.arch=preact_resnet --set model.blocks=[1,1] "
      "--set model.width=16 --set data.val_size=64 --set train.val_batch_size=64 "
      "--set precision=bf16 --set train.objective=trades --epochs 1 --batch-size 32 "
      "--checkpoint " +
      dir.file("run/best.safetensors") + " --out " + dir.file("trades") + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_advft("eval --checkpoint " + dir.file("trades/best.safetensors") + common +
                " --precision bf16 --attack apgd:steps=10 --attack apgd_t:steps=5,targets=3 "
                "--attack square:steps=50 --attack square:steps=50,norm=l2,eps=0.5 "
                "--attack fab_t:steps=10,targets=3 --attack fab_t:steps=10,norm=l2,eps=0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

TEST(BenchCli, MeasuresOnTheGpu_CUDA) {
  REQUIRE_CUDA();
  const BenchRun b = run_bench("--device cuda --batch 32 --iterations 2");
  ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
  const nlohmann::json& j = b.json;
  EXPECT_EQ(j["precision"], "bf16");
  EXPECT_TRUE(j["channels_last"].get<bool>());
  EXPECT_GT(j["at_step"]["tflops"].get<double>(), 0.0);
  EXPECT_TRUE(j["graphs"].get<bool>());
  const BenchRun eager =
      run_bench("--device cuda --batch 32 --iterations 2 --graphs off --cudnn-benchmark-limit 1");
  ASSERT_EQ(eager.run.exit_code, 0) << eager.run.output;
  EXPECT_FALSE(eager.json["graphs"].get<bool>());
  EXPECT_EQ(eager.json["cudnn_benchmark_limit"], 1);
  EXPECT_NE(eager.run.output.find("1 cuDNN algorithm(s) timed"), std::string::npos)
      << eager.run.output;
  if (models::fused_batch_norm_relu_built()) {
    const BenchRun fused = run_bench("--device cuda --batch 32 --iterations 2 --fused-bn-relu on");
    ASSERT_EQ(fused.run.exit_code, 0) << fused.run.output;
    EXPECT_TRUE(fused.json["fused_bn_relu"].get<bool>());
    EXPECT_GT(fused.json["at_step"]["images_per_s"].get<double>(), 0.0);
  }
}

}  // namespace
}  // namespace advft::testing
