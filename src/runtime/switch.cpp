#include "advft/runtime/switch.h"

#include "advft/error.h"

namespace advft::runtime {

Switch parse_switch(const std::string& setting, const std::string& where) {
  if (setting == "auto") return Switch::kAuto;
  if (setting == "on") return Switch::kOn;
  if (setting == "off") return Switch::kOff;
  throw ConfigError(where + " = \"" + setting + "\": must be auto, on or off");
}

bool resolve_switch(const std::string& setting, bool available, const std::string& where,
                    const std::string& needs) {
  const Switch value = parse_switch(setting, where);
  if (value == Switch::kOff) return false;
  if (value == Switch::kOn && !available)
    throw ConfigError(where + " = \"on\" needs " + needs + "; use auto or off");
  return available;
}

}  // namespace advft::runtime
