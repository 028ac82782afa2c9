#include "advft/cli/count_check.h"

#include <charconv>
#include <string>

namespace advft::cli {

CLI::Validator at_least(int64_t minimum) {
  const std::string rule = "must be a whole number >= " + std::to_string(minimum);
  return CLI::Validator(
      [minimum, rule](std::string& text) -> std::string {
        int64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc() || stop != end || value < minimum) return rule + ", got " + text;
        return "";
      },
      // Shown after the type in --help ("INT:POSITIVE"), as CLI11's own checks are.
      minimum == 1   ? "POSITIVE"
      : minimum == 0 ? "NONNEGATIVE"
                     : ">=" + std::to_string(minimum));
}

}  // namespace advft::cli
