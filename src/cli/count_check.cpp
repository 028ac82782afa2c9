#include "advft/cli/count_check.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "advft/config/load.h"

namespace advft::cli {

namespace {

CLI::Validator whole_number(int64_t minimum, int64_t maximum, const std::string& rule,
                            const std::string& shown) {
  return CLI::Validator(
      [minimum, maximum, rule](std::string& text) -> std::string {
        int64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc() || stop != end || value < minimum || value > maximum)
          return rule + ", got " + text;
        return "";
      },
      shown);
}

}  // namespace

CLI::Validator at_least(int64_t minimum) {
  // Shown after the type in --help ("INT:POSITIVE"), as CLI11's own checks are.
  return whole_number(minimum, std::numeric_limits<int64_t>::max(),
                      "must be a whole number >= " + std::to_string(minimum),
                      minimum == 1   ? "POSITIVE"
                      : minimum == 0 ? "NONNEGATIVE"
                                     : ">=" + std::to_string(minimum));
}

CLI::Validator between(int64_t minimum, int64_t maximum) {
  const std::string range = "[" + std::to_string(minimum) + ", " + std::to_string(maximum) + "]";
  return whole_number(minimum, maximum, "must be a whole number in " + range, range);
}

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::optional<double> value = config::parse_whole_number(text);
        if (!value || !std::isfinite(*value)) return "must be a finite number, got " + text;
        return "";
      },
      "FINITE");
}

}  // namespace advft::cli
