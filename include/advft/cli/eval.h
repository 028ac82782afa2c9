#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft eval`: clean and adversarial accuracy of a checkpoint, as a table and JSON.
void setup_eval(CLI::App& app);

}  // namespace advft::cli
