#pragma once
#include <CLI/CLI.hpp>

namespace advft::cli {

/// `advft finetune`: adversarial fine-tuning of a pretrained model (slow-start, fast-decay lr).
void setup_finetune(CLI::App& app);

}  // namespace advft::cli
