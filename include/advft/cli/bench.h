#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft bench`: images/s and TFLOP/s of the PGD-k adversarial-training step and of PGD
/// evaluation for a model, batch size and precision, as a table and JSON.
void setup_bench(CLI::App& app);

}  // namespace advft::cli
