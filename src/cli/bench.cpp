#include "advft/cli/bench.h"

#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include <spdlog/spdlog.h>

#include "advft/bench/bench.h"
#include "advft/cli/count_check.h"
#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/metrics.h"
#include "advft/models/batch_norm_relu.h"
#include "advft/models/factory.h"
#include "advft/runtime/device.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/signals.h"
#include "advft/train/train_step.h"

namespace advft::cli {

struct BenchCliOptions {
  std::string model = "preact18";
  int64_t batch = 128;
  std::string attack = "pgd:steps=10";
  int64_t eval_steps = 20;
  std::string precision = "auto";
  std::string channels_last = "auto";
  std::string fused_bn_relu = "auto";
  int64_t cudnn_benchmark_limit = runtime::kDefaultCudnnBenchmarkLimit;
  std::string graphs = "auto";
  std::string device = "auto";
  int64_t input_size = 0;
  int64_t in_channels = 0;
  int64_t classes = 0;
  int64_t warmup = 3;
  int64_t iterations = 10;
  int64_t threads = 0;
  std::string loops;  // empty: at,eval, and input with --data
  std::string data;
  std::string json;
};

namespace {

// The peers' names for the benchmark models, and the data each is measured on.
models::ModelSpec bench_spec(const BenchCliOptions& o) {
  static const std::map<std::string, std::string> kAliases = {
      {"preact18", "preact_resnet18"}, {"wrn34_10", "wrn34_10"}, {"wrn28_10", "wrn28_10"}};
  models::ModelSpec spec;
  const auto alias = kAliases.find(o.model);
  spec.arch = alias != kAliases.end() ? alias->second : o.model;
  if (!models::is_known_architecture(spec.arch)) {
    throw UsageError("--model " + o.model + ": unknown; known: preact18 or a model.arch (" +
                     models::known_architectures_text() + ")");
  }
  // torchvision's ImageNet networks at ImageNet's shape; everything else at CIFAR's.
  const bool imagenet = spec.arch.rfind("resnet", 0) == 0 || spec.arch == "wide_resnet50_2";
  spec.input_size = o.input_size > 0 ? o.input_size : (imagenet ? 224 : 32);
  spec.in_channels = o.in_channels > 0 ? o.in_channels : 3;
  spec.num_classes = o.classes > 0 ? o.classes : (imagenet ? 1000 : 10);
  models::validate(spec);
  return spec;
}

// --loops: a comma-separated subset of at, eval, input (input times the --data folder).
void parse_loops(const BenchCliOptions& o, bench::BenchOptions& options) {
  const std::string text =
      o.loops.empty() ? (o.data.empty() ? "at,eval" : "at,eval,input") : o.loops;
  options.time_at_step = options.time_eval = false;
  bool input = false;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item == "at") {
      options.time_at_step = true;
    } else if (item == "eval") {
      options.time_eval = true;
    } else if (item == "input") {
      input = true;
    } else {
      throw UsageError("--loops " + text + ": \"" + item +
                       "\" is not a loop (at, eval, input, or a list of them)");
    }
  }
  if (!options.time_at_step && !options.time_eval && !input)
    throw UsageError("--loops \"" + text + "\": name at least one loop (at, eval, input)");
  if (input && o.data.empty())
    throw UsageError("--loops " + text + ": input times an image folder: pass --data DIR");
  if (!input && !o.data.empty())
    throw UsageError("--data " + o.data + " is timed by the input loop, which --loops " + text +
                     " leaves out");
  options.input_dir = input ? o.data : "";
}

void run_bench_command(const BenchCliOptions& o) {
  runtime::init_logging(false);
  runtime::set_cpu_threads(o.threads);
  bench::BenchOptions options;
  options.spec = bench_spec(o);
  options.batch = o.batch;
  options.device = runtime::resolve_device(o.device);
  options.train_attack =
      attacks::parse_attack_spec(o.attack, attacks::AttackOptions{}, "--attack").options;
  const std::string& kind = options.train_attack.kind;
  if (kind == "square" || kind == "fab" || kind == "fab_t") {
    // Trainings do not take them either (attack.kind): their cost is thousands of queries.
    throw UsageError("--attack " + o.attack + ": bench times a training step; " + kind +
                     " is an evaluation attack (advft eval --attack " + kind + ")");
  }
  options.eval_steps = o.eval_steps;
  options.precision = runtime::resolve_precision(o.precision, options.device, "--precision");
  options.channels_last =
      runtime::resolve_channels_last(o.channels_last, options.device, "--channels-last");
  options.fused_bn_relu =
      models::resolve_fused_batch_norm_relu(o.fused_bn_relu, options.device, "--fused-bn-relu");
  options.cudnn_benchmark_limit = o.cudnn_benchmark_limit;
  options.graphs = runtime::resolve_graph_mode(
      o.graphs, options.device, "--graphs", train::step_not_capturable(options.precision, "zoo"));
  options.warmup = o.warmup;
  options.iterations = o.iterations;
  parse_loops(o, options);
  if (!o.json.empty()) io::check_file_writable(o.json, "--json");
  spdlog::info("benchmarking {} at batch {} on {}", models::describe(options.spec), o.batch,
               options.device.str());

  const bench::BenchResult result = bench::run_bench(options);
  runtime::throw_if_stopped("benchmark");  // during the last timed call: nothing is reported
  std::cout << bench::format_bench(result) << std::flush;
  if (!o.json.empty()) io::write_json_atomic(o.json, bench::to_json(result));
}

}  // namespace

void setup_bench(CLI::App& app) {
  auto o = std::make_shared<BenchCliOptions>();
  auto* command = app.add_subcommand(
      "bench",
      "Images/s and TFLOP/s of the PGD adversarial-training step and of PGD evaluation on "
      "synthetic data (FLOPs counted from the operators that run)");
  command->add_option("--model", o->model,
                      "preact18 | wrn34_10 | wrn28_10 | resnet50 | any model.arch (default "
                      "preact18; resnet* and wide_resnet50_2 at 224x224, 1000 classes)");
  command->add_option("--batch", o->batch, "Images per step (default 128)")->check(at_least(1));
  command->add_option("--attack", o->attack,
                      "Training attack (default pgd:steps=10, eps 8/255, step 2/255)");
  command->add_option("--eval-steps", o->eval_steps, "PGD steps of the evaluation (default 20)")
      ->check(between(1, 100000));
  command->add_option("--precision", o->precision,
                      "auto | fp32 | tf32 | bf16 | fp16 (auto: bf16 on CUDA, fp32 on the CPU)");
  command->add_option("--channels-last", o->channels_last, "auto | on | off (auto: on for CUDA)");
  command->add_option("--fused-bn-relu", o->fused_bn_relu,
                      "auto | on | off: advft's fused BatchNorm+ReLU kernels in the AT step (auto: "
                      "on for CUDA where built; the default, as in training)");
  command
      ->add_option("--cudnn-benchmark-limit", o->cudnn_benchmark_limit,
                   "cuDNN algorithms timed per convolution shape, 0 = all (default 10, "
                   "PyTorch's; as the config's cudnn_benchmark_limit)")
      ->check(CLI::Range(int64_t{0}, runtime::kMaxCudnnBenchmarkLimit));
  command->add_option("--graphs", o->graphs,
                      "auto | on | off: capture the AT step and the evaluation as CUDA graphs, as "
                      "the trainer does (auto: on for CUDA, off for fp16)");
  command->add_option("--device", o->device, "auto | cpu | cuda | cuda:N");
  command->add_option("--input-size", o->input_size, "Image height = width (default per model)")
      ->check(at_least(1));
  command
      ->add_option("--in-channels", o->in_channels,
                   "Image channels (default 3; Fashion-MNIST's shape: --in-channels 1 "
                   "--input-size 28)")
      ->check(at_least(1));
  command->add_option("--classes", o->classes, "Classes (default per model)")->check(at_least(2));
  command->add_option("--warmup", o->warmup, "Untimed iterations first (default 3)")
      ->check(at_least(0));
  command->add_option("--iterations", o->iterations, "Timed iterations per loop (default 10)")
      ->check(at_least(1));
  command->add_option("--threads", o->threads, "CPU threads")->check(between(1, 1024));
  command->add_option("--loops", o->loops,
                      "Which loops to time, comma-separated: at (the AT step), eval (PGD "
                      "evaluation), input (the --data folder's decoding); default at,eval, and "
                      "input with --data");
  command->add_option("--data", o->data,
                      "Also time this image folder's training input (DIR/train/<class>/*.jpg or "
                      "DIR/<class>/*.jpg): decoding and cropping on --threads cores");
  command->add_option("--json", o->json, "Also write the results as JSON to this file");
  command->callback([o]() { run_bench_command(*o); });
}

}  // namespace advft::cli
