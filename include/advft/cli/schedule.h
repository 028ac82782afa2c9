#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft schedule`: prints the learning-rate curve a config gives (CSV: step, epoch, lr).
void setup_schedule(CLI::App& app);

}  // namespace advft::cli
