#include "advft/cli/finetune.h"

#include <memory>

#include "advft/cli/run_options.h"

namespace advft::cli {

void setup_finetune(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  auto* command = app.add_subcommand(
      "finetune",
      "Adversarially fine-tune a pretrained model: PGD adversarial training for a few epochs "
      "from --checkpoint, with the slow-start, fast-decay learning-rate schedule by default");
  add_run_options(*command, *options, /*pretrained_checkpoint=*/true);
  command->callback([options]() { run_training_command(*options, config::Command::kFinetune); });
}

}  // namespace advft::cli
