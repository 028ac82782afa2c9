#pragma once
// The check of the count flags (--batch, --epochs, --threads, ...).
#include <cstdint>

#include <CLI/CLI.hpp>

namespace advft::cli {

/// A CLI11 check that the option's value is a whole number >= minimum: a usage error (exit 2)
/// "--batch: must be a whole number >= 1, got 0". CLI11's PositiveNumber, used before, printed
/// its range as "0.000000 to 179769313486231570814527...", which names neither rule nor fix.
CLI::Validator at_least(int64_t minimum);

}  // namespace advft::cli
