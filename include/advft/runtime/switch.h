#pragma once
// The auto | on | off settings (channels_last, cuda_graphs, fused_bn_relu and their
// command-line twins): one parser with one message for a bad value, and one rule for "on" where
// the feature cannot run.
#include <string>

namespace advft::runtime {

enum class Switch { kAuto, kOn, kOff };

/// "auto" | "on" | "off"; ConfigError `<where> = "<setting>": must be auto, on or off` otherwise.
Switch parse_switch(const std::string& setting, const std::string& where);

/// Whether a feature set to `setting` runs: off never, auto where it is `available`, on where it
/// is available; on where it is not is ConfigError `<where> = "on" needs <needs>; use auto or
/// off`.
bool resolve_switch(const std::string& setting, bool available, const std::string& where,
                    const std::string& needs);

}  // namespace advft::runtime
