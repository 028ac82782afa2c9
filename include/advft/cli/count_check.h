#pragma once
// The checks of numeric flags: counts (--batch, --epochs, --threads, ...) and finite numbers.
#include <cstdint>

#include <CLI/CLI.hpp>

namespace advft::cli {

/// A CLI11 check that the option's value is a whole number >= minimum: a usage error (exit 2)
/// "--batch: must be a whole number >= 1, got 0". CLI11's PositiveNumber, used before, printed
/// its range as "0.000000 to 179769313486231570814527...", which names neither rule nor fix.
CLI::Validator at_least(int64_t minimum);

/// The same for a count with an upper bound: "--threads: must be a whole number in [1, 1024]".
CLI::Validator between(int64_t minimum, int64_t maximum);

/// A number that is not NaN or infinite ("--mean: must be a finite number, got nan"), checked
/// on each value of a list flag.
CLI::Validator finite_number();

}  // namespace advft::cli
