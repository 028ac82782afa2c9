#pragma once
#include <string>

namespace advft::runtime {

/// "advft 0.1.0 (LibTorch 1.13.1, CPU)" — what `advft --version` prints.
std::string version_string();

/// The LibTorch version advft was built against ("1.13.1").
std::string torch_version();

}  // namespace advft::runtime
