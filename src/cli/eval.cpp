#include "advft/cli/eval.h"

#include <algorithm>
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "advft/attacks/attack_spec.h"
#include "advft/cli/count_check.h"
#include "advft/cli/run_options.h"
#include "advft/config/load.h"
#include "advft/data/loader.h"
#include "advft/data/source.h"
#include "advft/dist/device.h"
#include "advft/dist/process_group.h"
#include "advft/error.h"
#include "advft/eval/evaluator.h"
#include "advft/io/atomic_file.h"
#include "advft/io/checkpoint.h"
#include "advft/io/foreign.h"
#include "advft/io/metrics.h"
#include "advft/models/factory.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/device.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/precision.h"
#include "advft/runtime/signals.h"

namespace advft::cli {

struct EvalCliOptions {
  std::string checkpoint;
  std::string config;
  std::vector<std::string> sets;
  NormalizationFlags normalization;
  std::string key;
  bool non_strict = false;
  std::string data_dir;
  std::string dataset;
  std::vector<std::string> attacks;
  std::string json;
  std::string device = "auto";
  std::string precision;
  std::string channels_last;
  std::string graphs;
  int64_t batch_size = 0;
  int64_t limit = 0;
  bool cascade = false;
  uint64_t seed = 0;
  int64_t threads = 0;
  int64_t nproc = 0;
  bool verbose = false;
};

namespace {

// What an advft checkpoint recorded of the run that made it, as config JSON: the data set (and an
// image folder's input sizes), and the training attack's norm, eps and step size, so that a model
// fine-tuned at eps = 0.1 on Fashion-MNIST is evaluated there, at 0.1, unless asked otherwise.
// Empty for other files.
nlohmann::json recorded_settings(const io::LoadedCheckpoint& ckpt) {
  nlohmann::json recorded = nlohmann::json::object();
  const auto copy = [&](const char* section, std::initializer_list<const char*> keys) {
    const auto it = ckpt.train_state.find(section);
    if (it == ckpt.train_state.end() || !it->is_object()) return;
    for (const char* key : keys)
      if (it->contains(key)) recorded[section][key] = (*it)[key];
  };
  copy("data", {"dataset", "dir", "coarse_labels", "image_size", "resize_size"});
  copy("attack", {"norm", "eps", "step_size"});
  return recorded;
}

void run_eval(const EvalCliOptions& o) {
  runtime::init_logging(o.verbose);
  if (ran_as_local_processes(o.nproc)) return;
  // Under torchrun or srun each process evaluates every Nth test image; rank 0 reports them all.
  const auto [world, group] = meet_launched_processes(o.verbose);
  runtime::set_cpu_threads(o.threads > 0 ? o.threads : dist::cpu_threads_per_process(world));
  if (!o.json.empty() && world.rank == 0) {
    io::check_file_writable(o.json, "--json");  // before a long evaluation
  }
  std::vector<std::string> overrides = o.sets;
  append_normalization_overrides(o.normalization, overrides);
  // --attack replaces eval.attacks: the replaced list is neither used nor checked (its default
  // "pgd:steps=20" is Linf, out of range at an L2 model's eps of 1.5).
  std::vector<std::string> run_overrides = overrides;
  if (!o.attacks.empty()) run_overrides.push_back("eval.attacks=[]");
  std::unique_ptr<config::RunConfig> run;
  if (!o.config.empty()) {
    run = std::make_unique<config::RunConfig>(
        config::load_run_config(config::Command::kEval, o.config, run_overrides));
  }
  io::ForeignOptions foreign;
  foreign.key = o.key;
  foreign.strict = !o.non_strict;
  foreign.mean = o.normalization.mean;
  foreign.std = o.normalization.std;
  // What a PyTorch file holds (advft files know it): the config's model, else the model.* --set
  // overrides over the defaults, parsed but not yet validated: the rest is checked once the
  // checkpoint's record is known (an override valid over that record, such as an L2 eps of 2.5,
  // is out of range over the defaults).
  if (run) {
    foreign.spec = run->model;
  } else if (!overrides.empty()) {
    foreign.spec =
        config::parse_run_config_over(config::Command::kEval, nlohmann::json::object(), overrides)
            .model;
  }
  io::LoadedCheckpoint ckpt = io::load_any_checkpoint(o.checkpoint, foreign);
  // Without a config file, the checkpoint's record of its run takes the file's place under the
  // --set overrides: `--set eval.batch_size=100` must not send a Fashion-MNIST model to CIFAR-10.
  if (o.config.empty()) {
    run = std::make_unique<config::RunConfig>(config::load_run_config_over(
        config::Command::kEval, recorded_settings(ckpt), run_overrides));
  }

  config::DataConfig data = run->data;
  if (!o.dataset.empty()) data.dataset = o.dataset;
  if (!o.data_dir.empty()) data.dir = o.data_dir;
  data.val_size = 0;

  const attacks::AttackOptions& base = run->attack;
  std::vector<std::string> specs = o.attacks;
  if (specs.empty()) specs = run->eval.attacks;
  std::vector<attacks::NamedAttack> attacks;
  for (const auto& spec : specs) {
    for (auto& attack : attacks::parse_attack_specs(spec, base, "--attack"))
      attacks.push_back(std::move(attack));
  }
  for (auto& attack : attacks)
    attack = attacks::fit_attack_to_model(std::move(attack), ckpt.spec.num_classes);

  eval::EvalOptions options;
  options.batch_size = o.batch_size > 0 ? o.batch_size : run->eval.batch_size;
  options.limit = o.limit > 0 ? o.limit : run->eval.limit;
  options.cascade = o.cascade || run->eval.cascade;
  options.seed = dist::process_seed(o.seed, world);

  const torch::Device device = runtime::resolve_device(dist::process_device(o.device, world));
  runtime::BackgroundJob device_warmup =
      runtime::warm_up_device(device);  // while the model and the data are read
  // Device settings: the flag, else the run config's value (auto by default).
  auto setting = [&](const std::string& flag, std::string config::RunConfig::*key) {
    return !flag.empty() ? flag : (*run).*key;
  };
  // The numbers this command reports are computed at its own precision, not at the config's
  // (training's: bf16 on CUDA by default, for speed). Its auto is TF32 on CUDA, the numerics
  // PyTorch's defaults give AutoAttack and RobustBench: bf16's coarse logits would decide APGD's
  // step-size halving and Square's acceptances, and borderline predictions.
  options.precision = runtime::resolve_precision(o.precision.empty() ? "auto" : o.precision, device,
                                                 "--precision", runtime::Precision::kTf32);
  runtime::configure_matmul_precision(options.precision);
  runtime::set_cudnn_benchmark_limit(run->cudnn_benchmark_limit, device);
  options.graphs =
      runtime::resolve_graph_mode(setting(o.graphs, &config::RunConfig::cuda_graphs), device,
                                  "--graphs", eval::eval_not_capturable(ckpt.spec.kind));
  const bool channels_last = runtime::resolve_channels_last(
      setting(o.channels_last, &config::RunConfig::channels_last), device, "--channels-last");
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  io::load_checkpoint_weights(*model, ckpt, !o.non_strict, models::describe(ckpt.spec));

  data::DataSplits splits = data::load_splits(data, /*need_train=*/false);
  // One batch holds the whole set at most: the batches are the same, and an image folder's batch
  // buffer is allocated at this size.
  options.batch_size = std::min(options.batch_size, std::max<int64_t>(1, splits.test.size()));
  const std::vector<int64_t> shape = splits.test.image_shape();  // [C, H, W]
  if (shape[0] != ckpt.spec.in_channels || shape[1] != ckpt.spec.input_size) {
    throw DataError(
        data.dir + ": " + data.dataset + " images are " + std::to_string(shape[0]) + "x" +
        std::to_string(shape[1]) + "x" + std::to_string(shape[2]) + " but the model in " +
        ckpt.path + " expects " + std::to_string(ckpt.spec.in_channels) + "x" +
        std::to_string(ckpt.spec.input_size) + "x" + std::to_string(ckpt.spec.input_size) +
        (splits.test.in_memory() ? "; pass the right --dataset / --data-dir"
                                 : "; set data.image_size with --set"));
  }
  // A model with fewer outputs than the data has classes cannot be scored on it (a label past
  // its last logit); say so before any attack runs instead of failing inside the loss.
  if (splits.test.num_classes > ckpt.spec.num_classes) {
    throw DataError(data.dir + ": " + data.dataset + " has " +
                    std::to_string(splits.test.num_classes) + " classes but the model in " +
                    ckpt.path + " has " + std::to_string(ckpt.spec.num_classes) +
                    " outputs; pass the data set it was trained on (--dataset / --data-dir)");
  }
  // More outputs than classes scores, but rarely what was meant: a CIFAR-100 model on CIFAR-10,
  // or an ImageNet model on a folder of some of its classes (labelled 0..k-1 in sorted order).
  if (splits.test.num_classes < ckpt.spec.num_classes) {
    spdlog::warn(
        "the model in {} has {} outputs but {} has {} classes: an image of class i counts as "
        "right when output i wins; if the model learned other classes, pass its data set "
        "(--dataset / --data-dir)",
        ckpt.path, ckpt.spec.num_classes, data.dataset, splits.test.num_classes);
  }
  device_warmup.wait();
  model->to(device);
  if (channels_last) runtime::to_channels_last(*model);
  // All processes' images together: the log and the report speak of the whole test set.
  const int64_t images =
      options.limit > 0 ? std::min(options.limit, splits.test.size()) : splits.test.size();
  if (group) {
    // --limit's sample first, then this process's share of it: the run evaluates what one
    // process would have.
    if (options.limit > 0) splits.test = data::sample(splits.test, options.limit);
    options.limit = 0;
    splits.test = data::shard_of(splits.test, {world.rank, world.size});
    spdlog::info("{}: {} of the test images", dist::describe(world), splits.test.size());
  }
  options.placement = data::resolve_placement(data.placement, splits.test, device);
  spdlog::info("evaluating {} ({}) on {} test images of {} on {}, {}{}", ckpt.path,
               models::describe(ckpt.spec), images, data.dataset, device.str(),
               runtime::precision_name(options.precision),
               options.graphs == runtime::GraphMode::kCuda ? ", CUDA graphs" : "");
  eval::EvalReport report = eval::evaluate(
      *model, splits.test, attacks, options, device,
      [](int64_t done, int64_t total) { spdlog::debug("evaluated {}/{}", done, total); });
  // The evaluator looks between batches; a stop during the last one is seen here, before the
  // table and the JSON, so that a scheduler's SIGTERM is not reported as a success.
  if (options.stop_on_signal) runtime::throw_if_stopped("evaluation");
  if (group) {
    report = eval::combine_over(report, *group);
    if (world.rank != 0) return;  // rank 0 reports the whole test set
  }
  std::cout << eval::format_table(report) << std::flush;
  spdlog::info("evaluation took {:.1f} s", report.seconds);
  if (!o.json.empty()) {
    nlohmann::json out = eval::to_json(report);
    out["checkpoint"] = ckpt.path;
    out["model"] = models::describe(ckpt.spec);
    out["dataset"] = data.dataset;
    io::write_json_atomic(o.json, out);
  }
}

}  // namespace

void setup_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  auto* command = app.add_subcommand(
      "eval", "Clean accuracy and accuracy under each attack of a checkpoint, on a test set");
  command
      ->add_option("--checkpoint", o->checkpoint,
                   "advft checkpoint (.safetensors), or a PyTorch file (.pt/.pth/.tar from "
                   "torch.save, or .safetensors) with --config giving its model.*")
      ->required();
  command->add_option("--key", o->key,
                      "torch.save checkpoint: the top-level key holding the state_dict");
  command->add_flag("--non-strict", o->non_strict,
                    "Load the checkpoint tensors that fit and report the rest");
  command->add_option("--data-dir", o->data_dir,
                      "Data set directory (default: the one the checkpoint was trained on)");
  command->add_option("--dataset", o->dataset,
                      "cifar10 | cifar100 | mnist | fashion_mnist | imagenet | image_folder "
                      "(default: the checkpoint's)");
  command->add_option("-a,--attack", o->attacks,
                      "Attack spec, repeatable: fgsm, pgd:steps=20,eps=8/255,step_size=2/255, "
                      "pgd:restarts=5, pgd_l2:eps=0.5, pgd:loss=cw, apgd (APGD-CE-100), apgd_dlr, "
                      "apgd_t (AutoAttack's targeted APGD), fab_t (targeted FAB, minimum "
                      "norm), fab (untargeted), square (Square Attack, 5000 queries, no "
                      "gradients), apgd:eot=20 (for randomized models), autoattack (the four of "
                      "AutoAttack's standard version; autoattack:eps=8/255,norm=linf; "
                      "autoattack:version=plus or rand) "
                      "(default: fgsm and PGD-20 at the "
                      "checkpoint's training eps)");
  command->add_option("-c,--config", o->config,
                      "Take data and eval settings from this config instead of the checkpoint (and "
                      "the model.* of a PyTorch checkpoint, which does not record it)");
  command->add_option("--set", o->sets,
                      "Config override key.path=value, repeatable: over --config, else over "
                      "what the checkpoint recorded of its run, e.g. --set model.kind=torchscript");
  add_normalization_flags(*command, o->normalization);
  command->add_option("--json", o->json, "Also write the results as JSON to this file");
  command->add_option("--device", o->device, "auto | cpu | cuda | cuda:N");
  command->add_option("--precision", o->precision,
                      "auto | fp32 | tf32 | bf16 | fp16 (default auto: tf32 on CUDA, the "
                      "numerics of PyTorch's defaults, fp32 on the CPU; not the config's "
                      "precision, which is training's; bf16 is faster)");
  command->add_option("--channels-last", o->channels_last,
                      "auto | on | off (default: the config's, else auto: on for CUDA)");
  command->add_option("--graphs", o->graphs,
                      "auto | on | off: capture the clean pass and each attack as CUDA graphs "
                      "(default: the config's cuda_graphs, else auto: on for CUDA)");
  command->add_option("--batch-size", o->batch_size, "Images per batch (default 500)")
      ->check(at_least(1));
  command
      ->add_option("--limit", o->limit,
                   "Evaluate only the first N test images (of an image folder, sorted by class: N "
                   "spread evenly over it)")
      ->check(at_least(1));
  command->add_flag("--cascade", o->cascade,
                    "Each attack only on the images the earlier ones left robust, as AutoAttack "
                    "does (rows then count what survives each attack and those before it)");
  command->add_option("--seed", o->seed, "Seed of the attacks' random starts")->check(at_least(0));
  command->add_option("--threads", o->threads, "CPU threads")->check(between(1, 1024));
  add_nproc_flag(*command, o->nproc);
  command->add_flag("-v,--verbose", o->verbose, "Debug logging");
  command->callback([o]() { run_eval(*o); });
}

}  // namespace advft::cli
