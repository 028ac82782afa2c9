#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft inspect`: format, names, shapes, dtypes, parameter count and detected layout of any
/// checkpoint file (advft, safetensors, torch.save), as text or JSON.
void setup_inspect(CLI::App& app);

}  // namespace advft::cli
