#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// Adds every subcommand and the global flags (--version) to the app.
void setup_app(CLI::App& app);

}  // namespace advft::cli
