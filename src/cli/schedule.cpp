#include "advft/cli/schedule.h"

#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "advft/cli/count_check.h"
#include "advft/config/load.h"
#include "advft/data/source.h"
#include "advft/error.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/signals.h"
#include "advft/schedule/lr_schedule.h"

namespace advft::cli {

struct ScheduleCliOptions {
  std::string config;
  std::vector<std::string> sets;
  std::string command = "finetune";
  int64_t train_size = 0;
  int64_t every = 1;
};

namespace {

// The standard training-set sizes, for when the data is not on this machine.
int64_t known_train_size(const std::string& dataset) {
  if (dataset == "cifar10" || dataset == "cifar100") return 50000;
  if (dataset == "mnist" || dataset == "fashion_mnist") return 60000;
  if (dataset == "imagenet") return 1281167;  // ILSVRC-2012
  return 0;
}

int64_t training_images(const config::RunConfig& c) {
  try {
    return data::load_splits(c.data).train.size();
  } catch (const DataError& e) {
    if (known_train_size(c.data.dataset) <= c.data.val_size) {
      throw DataError(std::string(e.what()).substr(std::string("data: ").size()) +
                      "; or pass --train-size N, the training images per epoch");
    }
    int64_t size = known_train_size(c.data.dataset) - c.data.val_size;
    if (c.data.train_limit > 0) size = std::min(size, c.data.train_limit);
    spdlog::warn("{}; assuming the standard {} training images of {}", e.what(), size,
                 c.data.dataset);
    return size;
  }
}

void run_schedule(const ScheduleCliOptions& o) {
  runtime::init_logging(false);
  const auto command = o.command == "train" ? config::Command::kTrain : config::Command::kFinetune;
  config::RunConfig c = config::load_run_config(command, o.config, o.sets);
  const int64_t images = o.train_size > 0 ? o.train_size : training_images(c);
  const int64_t steps_per_epoch = images / c.train.batch_size;
  if (steps_per_epoch < 1) {
    throw ConfigError("train.batch_size = " + std::to_string(c.train.batch_size) +
                      " is larger than the training set (" + std::to_string(images) + " images)");
  }
  const int64_t total = steps_per_epoch * c.train.epochs;
  auto schedule = schedule::make_schedule(c.schedule, total);
  runtime::throw_if_stopped("schedule");  // a Ctrl-C while a large data set was counted
  std::cout << "step,epoch,lr\n";
  for (int64_t step = 0; step < total; ++step) {
    // A schedule of billions of steps prints for minutes: a Ctrl-C or SIGTERM ends it.
    if (const int signal = step % 65536 == 0 ? runtime::stop_signal() : 0) {
      std::cout << std::flush;
      throw InterruptedError("schedule interrupted by signal " + std::to_string(signal) +
                                 " after step " + std::to_string(step) + " of " +
                                 std::to_string(total),
                             128 + signal);
    }
    if (step % o.every != 0 && step != total - 1) continue;
    const double epoch = static_cast<double>(step) / static_cast<double>(steps_per_epoch);
    // The shortest text that reads back as the same double: the lr metrics.jsonl records.
    std::cout << fmt::format("{},{:g},{}\n", step, epoch, schedule->lr(step));
  }
}

}  // namespace

void setup_schedule(CLI::App& app) {
  auto o = std::make_shared<ScheduleCliOptions>();
  auto* command = app.add_subcommand(
      "schedule", "Print the learning rate of every step of the run a config describes (CSV)");
  command->add_option("-c,--config", o->config, "Config file or shipped config name")->required();
  command->add_option("--set", o->sets, "Override a config value: key.path=value (repeatable)");
  command
      ->add_option("--command", o->command,
                   "Whose defaults apply where the config is silent: finetune or train")
      ->check(CLI::IsMember({"finetune", "train"}));
  command
      ->add_option("--train-size", o->train_size,
                   "Training images per epoch (default: counted from the data, else the "
                   "data set's standard size minus data.val_size)")
      ->check(at_least(1));
  command->add_option("--every", o->every, "Print every Nth step (and the last)")
      ->check(at_least(1));
  command->callback([o]() { run_schedule(*o); });
}

}  // namespace advft::cli
