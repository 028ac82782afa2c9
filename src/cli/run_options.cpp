#include "advft/cli/run_options.h"

#include <filesystem>
#include <iostream>
#include <optional>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "advft/cli/count_check.h"
#include "advft/dist/launch.h"
#include "advft/dist/process_group.h"
#include "advft/error.h"
#include "advft/io/metrics.h"
#include "advft/io/run_dir.h"
#include "advft/runtime/device.h"
#include "advft/runtime/logging.h"
#include "advft/train/trainer.h"

namespace advft::cli {
namespace fs = std::filesystem;

void add_normalization_flags(CLI::App& command, NormalizationFlags& flags) {
  command
      .add_option("--mean", flags.mean,
                  "Per-channel input mean of a PyTorch model that normalized outside the "
                  "network, e.g. 0.4914,0.4822,0.4465 (config key: model.mean)")
      ->delimiter(',')
      ->check(finite_number());
  command
      .add_option("--std", flags.std,
                  "Per-channel input std to go with --mean, e.g. 0.2471,0.2435,0.2616 (config "
                  "key: model.std)")
      ->delimiter(',')
      ->check(finite_number());
}

void append_normalization_overrides(const NormalizationFlags& flags,
                                    std::vector<std::string>& overrides) {
  if (!flags.mean.empty()) overrides.push_back("model.mean=" + nlohmann::json(flags.mean).dump());
  if (!flags.std.empty()) overrides.push_back("model.std=" + nlohmann::json(flags.std).dump());
}

void add_nproc_flag(CLI::App& command, int64_t& nproc) {
  command
      .add_option("--nproc", nproc,
                  "Run as N processes of one data-parallel run on this machine, one per GPU "
                  "(what torchrun --nproc-per-node=N does, without Python)")
      ->check(at_least(1));
}

bool ran_as_local_processes(int64_t nproc) {
  if (nproc <= 1) return false;
  if (dist::world_from_environment(std::getenv).distributed()) {
    throw UsageError("--nproc starts its own processes; under torchrun or srun leave it out");
  }
  const dist::LocalRunResult result = dist::run_local_processes(static_cast<int>(nproc), "--nproc");
  if (result.exit_code != 0) {
    throw Error("--nproc: rank " + std::to_string(result.failed_rank) + " ended with exit code " +
                    std::to_string(result.exit_code) +
                    " (its log above says why); so does this run",
                result.exit_code);
  }
  return true;
}

LaunchedProcesses meet_launched_processes(bool verbose) {
  LaunchedProcesses launched{dist::world_from_environment(std::getenv), nullptr};
  const dist::World& world = launched.world;
  if (world.distributed()) {
    runtime::set_log_rank(world.rank, verbose);
    launched.group =
        dist::ProcessGroup::connect(world, dist::timeout_from_environment(std::getenv));
    spdlog::info("{} processes met at {}:{}", world.size, world.master_addr, world.master_port);
  }
  return launched;
}

void add_run_options(CLI::App& command, RunOptions& o, bool pretrained_checkpoint) {
  auto* config = command.add_option("-c,--config", o.config,
                                    "Config JSON file, or the name of a shipped config "
                                    "(cifar10, cifar100, fashion_mnist, quickstart, ...)");
  if (pretrained_checkpoint) {
    command.add_option("--checkpoint", o.checkpoint,
                       "Pretrained model to fine-tune: an advft checkpoint, or a PyTorch file "
                       "(.pt/.pth/.tar from torch.save, or .safetensors) whose architecture "
                       "the config's model.* gives (sets train.init_checkpoint)");
    command.add_option("--key", o.key,
                       "torch.save checkpoint: the top-level key holding the state_dict "
                       "(default: found automatically; config key: train.init_key)");
    command.add_flag("--non-strict", o.non_strict,
                     "Load the checkpoint tensors that fit and report the rest, instead of "
                     "failing (config key: train.init_strict)");
    command.add_flag("--reset-head", o.reset_head,
                     "Start from a new classifier head when the checkpoint's class count "
                     "differs from model.num_classes (config key: train.init_reset_head)");
    add_normalization_flags(command, o.normalization);
  }
  command.add_option("-o,--out", o.out,
                     "Run directory for config.json, log.txt, metrics.jsonl, checkpoints and "
                     "results.json (default: runs/<config>-<time>)");
  command.add_option("--set", o.sets,
                     "Override a config value: key.path=value (repeatable), e.g. "
                     "--set train.epochs=5 --set attack.eps=8/255");
  auto* resume = command.add_option("--resume", o.resume,
                                    "Continue an interrupted run from its directory, exactly "
                                    "(uses the run's own config.json)");
  command.add_flag("--force", o.force,
                   "Replace the run in an existing --out directory (kept in its previous-run/ "
                   "until this run finishes)");
  command.add_option("--device", o.device, "auto | cpu | cuda | cuda:N (config key: device)");
  command.add_option("--data-dir", o.data_dir, "Data set directory (config key: data.dir)");
  command.add_option("--epochs", o.epochs, "Number of epochs (config key: train.epochs)")
      ->check(at_least(1));
  command.add_option("--batch-size", o.batch_size, "Batch size (config key: train.batch_size)")
      ->check(at_least(1));
  command.add_option("--threads", o.threads, "CPU threads (config key: threads)")
      ->check(between(1, 1024));
  add_nproc_flag(command, o.nproc);
  command.add_flag("-v,--verbose", o.verbose, "Debug logging");
  resume->excludes(config);
  config->excludes(resume);
}

namespace {

// What may differ between machines, and so may change on --resume: the device, the data's
// mount, the CPU threads.
void apply_machine_flags(const RunOptions& o, config::RunConfig& c) {
  if (!o.device.empty()) c.device = o.device;
  if (!o.data_dir.empty()) c.data.dir = o.data_dir;
  if (o.threads > 0) c.threads = o.threads;
}

// Named flags win over the file and --set (the last step of the precedence chain).
void apply_named_flags(const RunOptions& o, config::RunConfig& c) {
  if (!o.checkpoint.empty()) c.train.init_checkpoint = o.checkpoint;
  if (!o.key.empty()) c.train.init_key = o.key;
  if (o.non_strict) c.train.init_strict = false;
  if (o.reset_head) c.train.init_reset_head = true;
  if (!o.normalization.mean.empty()) c.model.mean = o.normalization.mean;
  if (!o.normalization.std.empty()) c.model.std = o.normalization.std;
  if (o.epochs > 0) c.train.epochs = o.epochs;
  if (o.batch_size > 0) c.train.batch_size = o.batch_size;
  apply_machine_flags(o, c);
}

std::string config_stem(const std::string& path_or_name) {
  return fs::path(path_or_name).stem().string();
}

// --force moves the run in `dir` into its previous-run/ and drops the run kept there, both before
// the pretrained model is read: a --checkpoint among those files would be gone by then (and, once
// the run finished, for good).
void refuse_checkpoint_that_force_moves(const std::string& checkpoint, const std::string& dir) {
  if (checkpoint.empty()) return;
  std::error_code error;
  const fs::path wanted = fs::weakly_canonical(checkpoint, error);
  if (error) return;  // loading it says what is wrong
  for (const std::string& run : {dir, io::previous_run_dir(dir)}) {
    for (const std::string& file : io::run_files(io::run_paths(run))) {
      if (fs::weakly_canonical(file, error) != wanted || error) continue;
      throw RunDirError("--checkpoint " + checkpoint + " is a file of the run that --force moves " +
                        "aside in " + dir + "; copy it out of the run directory first (cp " +
                        checkpoint + " pretrained.safetensors) and pass the copy");
    }
  }
}

// Rank 0's (or the only process's) part of starting a run: the config and the run directory,
// as the command line asks. Fills `request`, and `run_dir` as soon as the directory is there.
void prepare_run(const RunOptions& o, config::Command command, train::RunRequest& request,
                 std::optional<io::RunDirGuard>& run_dir) {
  if (!o.resume.empty()) {
    if (!o.sets.empty() || !o.checkpoint.empty() || o.force || !o.out.empty() || !o.key.empty() ||
        o.non_strict || o.reset_head || !o.normalization.mean.empty() ||
        !o.normalization.std.empty() || o.epochs > 0 || o.batch_size > 0) {
      throw ConfigError(
          "--resume continues a run exactly as it was configured; drop --set, --epochs, "
          "--batch-size, --checkpoint, --key, --non-strict, --reset-head, --mean, --std, --out "
          "and --force");
    }
    run_dir.emplace(io::prepare_run_dir(o.resume, io::RunDirMode::kResume));
    request.paths = run_dir->run().paths;
    request.config = config::parse_run_config(config::read_config_json(request.paths.config),
                                              config::default_config(command));
    apply_machine_flags(o, request.config);
    // The run's config.json may have been edited since (or written by an older advft).
    config::validate(request.config);
    request.resume = true;
    return;
  }
  request.config = config::load_run_config(command, o.config, o.sets);
  apply_named_flags(o, request.config);
  request.given_mean = o.normalization.mean;
  request.given_std = o.normalization.std;
  config::validate(request.config);
  if (command == config::Command::kFinetune && request.config.train.init_checkpoint.empty()) {
    throw ConfigError(
        "finetune needs a pretrained model: pass --checkpoint FILE or set "
        "train.init_checkpoint (use `advft train` to train from scratch)");
  }
  const std::string dir = o.out.empty() ? io::default_run_dir(config_stem(o.config)) : o.out;
  if (o.force) refuse_checkpoint_that_force_moves(request.config.train.init_checkpoint, dir);
  run_dir.emplace(
      io::prepare_run_dir(dir, o.force ? io::RunDirMode::kForce : io::RunDirMode::kNew));
  request.paths = run_dir->run().paths;
  io::write_json_atomic(request.paths.config, config::to_json(request.config));
}

// The other ranks' part: the run rank 0 prepared, read from the config it wrote.
void join_run(const RunOptions& o, config::Command command, dist::ProcessGroup& group,
              train::RunRequest& request) {
  const std::string dir = group.share("run directory", "");
  if (!dir.empty() && dir[0] == '!') {
    throw DistError("rank 0 could not start the run: " + dir.substr(1));
  }
  request.paths = io::run_paths(dir);
  request.config = config::parse_run_config(config::read_config_json(request.paths.config),
                                            config::default_config(command));
  apply_machine_flags(o, request.config);
  config::validate(request.config);
  request.resume = !o.resume.empty();
  request.given_mean = o.normalization.mean;
  request.given_std = o.normalization.std;
}

}  // namespace

void run_training_command(const RunOptions& o, config::Command command) {
  const std::string name = command == config::Command::kFinetune ? "finetune" : "train";
  if (o.config.empty() && o.resume.empty()) {
    throw UsageError(name + " needs --config FILE (or --resume RUN_DIR); see advft " + name +
                     " --help");
  }
  runtime::init_logging(o.verbose);
  if (ran_as_local_processes(o.nproc)) return;
  // Under torchrun or srun, first meet the other processes: rank 0 then tells them about the
  // run, or about what stopped it, instead of leaving them waiting.
  const auto [world, group] = meet_launched_processes(o.verbose);
  train::RunRequest request;
  request.command = name;
  request.group = group.get();
  // From the moment the directory is prepared, however the command ends: a run that stops before
  // its first checkpoint leaves nothing worth keeping, so the directory goes back to what it was
  // and the corrected command can use the same --out.
  std::optional<io::RunDirGuard> run_dir;
  if (world.rank == 0) {
    try {
      prepare_run(o, command, request, run_dir);
    } catch (const std::exception& e) {
      if (group) group->share("run directory", std::string("!") + e.what());
      throw;
    }
    if (group) group->share("run directory", request.paths.dir);
    runtime::add_log_file(request.paths.log);
  } else {
    join_run(o, command, *group, request);
  }
  // The machine's cores shared by its processes, not each process on all of them.
  const int64_t threads =
      request.config.threads > 0 ? request.config.threads : dist::cpu_threads_per_process(world);
  runtime::set_cpu_threads(threads);
  if (group) spdlog::info("this process: {}, {} CPU thread(s)", dist::describe(world), threads);
  spdlog::info("run directory {}", request.paths.dir);
  if (run_dir && run_dir->run().replaced) {
    const std::string aside = io::previous_run_dir(request.paths.dir);
    if (request.resume) {
      spdlog::info("{} holds the run a forced run replaced; it is deleted when this run finishes",
                   aside);
    } else {
      spdlog::info(
          "--force: the run this one replaces is kept in {} until this run finishes; it comes "
          "back if this run stops before its first checkpoint",
          aside);
    }
  }
  const nlohmann::json results = train::run_training(request);
  if (world.rank != 0) return;  // rank 0 reports the run
  if (results["best_val_accuracy"].is_number()) {
    spdlog::info("done: best validation accuracy {:.2f}% (epoch {}); results in {}",
                 results["best_val_accuracy"].get<double>(), results.value("best_epoch", 0),
                 request.paths.results);
  } else {
    spdlog::info("done: no validation set, best.safetensors is the last epoch's; results in {}",
                 request.paths.results);
  }
  std::cout << results.dump(2) << std::endl;
}

}  // namespace advft::cli
