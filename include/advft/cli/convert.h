#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft convert IN OUT`: any checkpoint advft reads (advft, safetensors, torch.save,
/// TorchScript) to a self-describing advft checkpoint, or an advft checkpoint back to a
/// torch.save state_dict with the reference key names (or, for a TorchScript model, to a
/// TorchScript archive carrying the new weights).
void setup_convert(CLI::App& app);

}  // namespace advft::cli
