#include "advft/bench/bench.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>

#include "advft/attacks/attacks.h"
#include "advft/bench/flops.h"
#include "advft/config/config.h"
#include "advft/data/image_folder.h"
#include "advft/data/loader.h"
#include "advft/error.h"
#include "advft/eval/evaluator.h"
#include "advft/models/batch_norm_relu.h"
#include "advft/models/factory.h"
#include "advft/runtime/device.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/signals.h"
#include "advft/runtime/stream.h"
#include "advft/train/loss_scaler.h"
#include "advft/train/sgd.h"
#include "advft/train/train_step.h"

namespace advft::bench {
namespace {

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

struct Timing {
  double warmup_seconds = 0;  ///< the untimed calls together
  double seconds_per_call = 0;
};

// Seconds per call of `body` over `iterations` calls, after the untimed ones: with graphs, the
// loop's eager warm-up calls and the capture come before the bench's own warm-up. The untimed
// calls' time is what a short run pays once: cuDNN's autotuning, the eager calls, the capture.
Timing time_calls(const std::function<void()>& body, const BenchOptions& o, int64_t graph_warmup) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const int64_t untimed = o.warmup + (o.graphs == runtime::GraphMode::kOff ? 0 : graph_warmup + 1);
  // Ctrl-C is looked for between calls: an atomic read on the host, which does not wait for the
  // GPU, so the timed calls still queue back to back.
  const auto call = [&body] {
    runtime::throw_if_stopped("benchmark");
    body();
  };
  Timing timing;
  synchronize(o.device);
  const auto warmup_start = Clock::now();
  for (int64_t i = 0; i < untimed; ++i)
    call();
  synchronize(o.device);
  timing.warmup_seconds = seconds_since(warmup_start);
  const auto start = Clock::now();
  for (int64_t i = 0; i < o.iterations; ++i)
    call();
  synchronize(o.device);
  timing.seconds_per_call = seconds_since(start) / static_cast<double>(o.iterations);
  return timing;
}

// The device line's note on cuDNN's autotuning; PyTorch's default goes unsaid.
std::string cudnn_limit_note(int64_t limit) {
  if (limit == runtime::kDefaultCudnnBenchmarkLimit) return "";
  if (limit == 0) return ", every cuDNN algorithm timed";
  return ", " + std::to_string(limit) + " cuDNN algorithm(s) timed";
}

// An image folder's training input at the model's size: decoded, cropped, flipped and copied
// to the device batch after batch through the prefetcher, as training reads it.
void time_input(const BenchOptions& o, BenchResult& r) {
  r.input_dir = data::has_split(o.input_dir, "train") ? o.input_dir + "/train" : o.input_dir;
  data::ImageTransform transform;
  transform.image_size = o.spec.input_size;
  transform.random = true;
  const data::Dataset images = data::read_image_folder(
      r.input_dir, data::image_folder_classes(r.input_dir), transform, "image_folder");
  r.input_images = images.size();
  r.input_threads = at::get_num_threads();
  data::BatchLoader loader(images, o.batch, /*shuffle=*/true, /*drop_last=*/true, o.seed, o.device,
                           data::Placement::kHost);
  const int64_t per_epoch = loader.batches_per_epoch();
  if (per_epoch == 0) {
    throw DataError(r.input_dir + ": " + std::to_string(r.input_images) +
                    " images, fewer than one batch of " + std::to_string(o.batch));
  }
  int64_t next = 0;
  torch::Tensor sink;  // keeps the last copy alive until the timing synchronizes
  const auto read_batch = [&] {
    sink = loader.batch(next / per_epoch, next % per_epoch).images;
    ++next;
  };
  BenchOptions eager = o;  // input is never captured
  eager.graphs = runtime::GraphMode::kOff;
  const Timing timing = time_calls(read_batch, eager, 0);
  r.input_timed = true;
  r.input_images_per_s = static_cast<double>(o.batch) / timing.seconds_per_call;
  r.input_warmup_seconds = timing.warmup_seconds;
}

}  // namespace

BenchResult run_bench(const BenchOptions& o) {
  torch::manual_seed(o.seed);
  const models::ModelSpec& spec = o.spec;
  models::ClassifierPtr model = models::make_model(spec);

  BenchResult r;
  r.model = models::describe(spec);
  r.device = runtime::device_name(o.device);
  r.precision = runtime::precision_name(o.precision);
  r.channels_last = o.channels_last;
  r.fused_bn_relu = o.fused_bn_relu;
  r.cudnn_benchmark_limit = o.cudnn_benchmark_limit;
  r.cuda = o.device.is_cuda();
  r.graphs = o.graphs != runtime::GraphMode::kOff;
  r.batch = o.batch;
  r.train_attack = attacks::describe_attack(o.train_attack);
  r.eval_steps = o.eval_steps;
  r.forward_flops = forward_flops(*model, spec.in_channels, spec.input_size);
  r.at_step_flops =
      at_step_flops(r.forward_flops, attacks::gradient_passes(o.train_attack, spec.num_classes));
  r.eval_flops = eval_flops(r.forward_flops, o.eval_steps);

  const runtime::StreamScope stream(o.device);
  // First: a wrong folder fails before minutes of model timing, not after.
  if (!o.input_dir.empty()) time_input(o, r);
  model->to(o.device);
  if (o.channels_last) runtime::to_channels_last(*model);
  runtime::configure_matmul_precision(o.precision);
  models::set_fused_batch_norm_relu(o.fused_bn_relu);
  runtime::set_cudnn_benchmark_limit(o.cudnn_benchmark_limit, o.device);
  auto images = torch::rand({o.batch, spec.in_channels, spec.input_size, spec.input_size},
                            torch::TensorOptions().device(o.device));
  if (o.channels_last) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
  const auto labels = torch::randint(spec.num_classes, {o.batch},
                                     torch::TensorOptions().device(o.device).dtype(torch::kLong));

  train::Sgd sgd(*model, config::OptimizerConfig{});
  train::LossScaler scaler(o.precision == runtime::Precision::kFp16);
  train::StepOptions step_options;
  step_options.attack = o.train_attack;
  step_options.precision = o.precision;
  step_options.device = o.device;
  step_options.graphs = o.graphs;
  train::TrainStep step(*model, sgd, scaler, step_options);
  // A small lr: many steps on random labels must not drive the weights to inf.
  const auto at_step = [&] { step.run(images, labels, 1e-4); };

  attacks::AttackOptions eval_attack = o.train_attack;
  eval_attack.kind = "pgd";
  eval_attack.loss = "ce";
  eval_attack.steps = o.eval_steps;
  eval_attack.restarts = 1;
  eval::EvalOptions eval_options;  // the evaluator's warm-up
  eval_options.precision = o.precision;
  eval_options.graphs = o.graphs;
  const std::unique_ptr<runtime::GraphedCall> eval_call =
      eval::graphed_correct_mask(*model, &eval_attack, eval_options, "the PGD evaluation");
  const auto eval_batch = [&] {
    model->eval();
    (*eval_call)({images, labels});
  };

  const double batch = static_cast<double>(o.batch);
  r.at_timed = o.time_at_step;
  r.eval_timed = o.time_eval;
  if (r.at_timed) {
    const Timing timing = time_calls(at_step, o, step_options.graph_warmup);
    r.at_images_per_s = batch / timing.seconds_per_call;
    r.at_warmup_seconds = timing.warmup_seconds;
  }
  if (r.eval_timed) {
    const Timing timing = time_calls(eval_batch, o, eval_options.graph_warmup);
    r.eval_images_per_s = batch / timing.seconds_per_call;
    r.eval_warmup_seconds = timing.warmup_seconds;
  }
  r.at_tflops = r.at_images_per_s * static_cast<double>(r.at_step_flops) / 1e12;
  r.eval_tflops = r.eval_images_per_s * static_cast<double>(r.eval_flops) / 1e12;
  return r;
}

std::string format_bench(const BenchResult& r) {
  std::ostringstream out;
  char line[256];
  out << "model      " << r.model << "\n";
  out << "device     " << r.device << ", " << r.precision
      << (r.channels_last ? ", channels-last" : "")
      << (r.fused_bn_relu ? ", fused BatchNorm+ReLU" : "") << (r.graphs ? ", CUDA graphs" : "")
      << (r.cuda ? cudnn_limit_note(r.cudnn_benchmark_limit) : "") << ", batch " << r.batch << "\n";
  std::snprintf(line, sizeof line, "forward    %.3f GFLOP per image\n", r.forward_flops / 1e9);
  out << line << "\n";
  std::snprintf(line, sizeof line, "%-44s %12s %14s %10s %11s\n", "loop", "images/s", "GFLOP/image",
                "TFLOP/s", "warm-up s");
  out << line;
  const auto row = [&](const std::string& loop, double images_per_s, int64_t flops, double tflops,
                       double warmup_seconds) {
    std::snprintf(line, sizeof line, "%-44s %12.1f %14.2f %10.3f %11.2f\n", loop.c_str(),
                  images_per_s, flops / 1e9, tflops, warmup_seconds);
    out << line;
  };
  if (r.at_timed) {
    row("AT step, " + r.train_attack, r.at_images_per_s, r.at_step_flops, r.at_tflops,
        r.at_warmup_seconds);
  }
  if (r.eval_timed) {
    row("PGD-" + std::to_string(r.eval_steps) + " evaluation", r.eval_images_per_s, r.eval_flops,
        r.eval_tflops, r.eval_warmup_seconds);
  }
  if (r.input_timed) {
    const std::string loop = "input: decode + crop, " + std::to_string(r.input_threads) +
                             " thread" + (r.input_threads == 1 ? "" : "s");
    std::snprintf(line, sizeof line, "%-44s %12.1f %14s %10s %11.2f\n", loop.c_str(),
                  r.input_images_per_s, "-", "-", r.input_warmup_seconds);
    out << line;
    if (r.at_timed) {
      const double ratio = r.input_images_per_s / r.at_images_per_s;
      std::snprintf(line, sizeof line,
                    ratio >= 1.0 ? "\ninput keeps up with the AT step (%.2fx its rate)\n"
                                 : "\ninput reaches %.2fx the AT step's rate: training would wait "
                                   "for data (more threads, faster storage)\n",
                    ratio);
      out << line;
    }
  }
  return out.str();
}

nlohmann::json to_json(const BenchResult& r) {
  nlohmann::json j = {{"model", r.model},
                      {"device", r.device},
                      {"precision", r.precision},
                      {"channels_last", r.channels_last},
                      {"fused_bn_relu", r.fused_bn_relu},
                      {"cudnn_benchmark_limit", r.cudnn_benchmark_limit},
                      {"graphs", r.graphs},
                      {"batch", r.batch},
                      {"train_attack", r.train_attack},
                      {"eval_steps", r.eval_steps},
                      {"forward_flops_per_image", r.forward_flops}};
  if (r.at_timed) {
    j["at_step"] = {{"images_per_s", r.at_images_per_s},
                    {"flops_per_image", r.at_step_flops},
                    {"tflops", r.at_tflops},
                    {"warmup_seconds", r.at_warmup_seconds}};
  }
  if (r.input_timed) {
    j["input"] = {{"images_per_s", r.input_images_per_s},
                  {"dir", r.input_dir},
                  {"images", r.input_images},
                  {"threads", r.input_threads},
                  {"warmup_seconds", r.input_warmup_seconds}};
  }
  if (r.eval_timed) {
    j["eval"] = {{"images_per_s", r.eval_images_per_s},
                 {"flops_per_image", r.eval_flops},
                 {"tflops", r.eval_tflops},
                 {"warmup_seconds", r.eval_warmup_seconds}};
  }
  return j;
}

}  // namespace advft::bench
