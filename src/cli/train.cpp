#include "advft/cli/train.h"

#include <memory>

#include "advft/cli/run_options.h"

namespace advft::cli {

void setup_train(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  auto* command = app.add_subcommand(
      "train",
      "Train from scratch, clean (train.adversarial=false: how to make a \"pretrained\" model) "
      "or with PGD adversarial training and the piecewise schedule (the baseline)");
  add_run_options(*command, *options, /*pretrained_checkpoint=*/false);
  command->callback([options]() { run_training_command(*options, config::Command::kTrain); });
}

}  // namespace advft::cli
