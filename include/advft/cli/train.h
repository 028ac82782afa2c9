#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft train`: training from scratch, clean or PGD-AT (piecewise lr by default).
void setup_train(CLI::App& app);

}  // namespace advft::cli
