#include "advft/cli/app.h"

#include <iostream>

#include "advft/cli/bench.h"
#include "advft/cli/convert.h"
#include "advft/cli/eval.h"
#include "advft/cli/finetune.h"
#include "advft/cli/inspect.h"
#include "advft/cli/schedule.h"
#include "advft/cli/train.h"
#include "advft/runtime/version.h"

namespace advft::cli {

void setup_app(CLI::App& app) {
  app.description(
      "advft: adversarial fine-tuning of pretrained image classifiers (PGD-AT or TRADES with a "
      "slow-start, fast-decay learning rate) and their evaluation: clean, FGSM, PGD, APGD, FAB, "
      "Square, AutoAttack");
  app.require_subcommand(0, 1);
  app.footer(
      "Exit codes: 0 ok, 1 internal error, 2 usage, 3 config (or out of memory), 4 data, "
      "5 checkpoint, 6 run directory, 7 diverged (NaN), 8 distributed run (a process lost or not "
      "started), 130/143 stopped by SIGINT/SIGTERM (training saves a resumable checkpoint unless "
      "no step had run; the other commands write nothing). Run `advft <command> --help` for each "
      "command's options.");

  app.add_flag_callback(
      "--version",
      []() {
        std::cout << runtime::version_string() << std::endl;
        throw CLI::Success();
      },
      "Print the version and the LibTorch it runs on");
  setup_finetune(app);
  setup_train(app);
  setup_eval(app);
  setup_schedule(app);
  setup_inspect(app);
  setup_convert(app);
  setup_bench(app);
}

}  // namespace advft::cli
