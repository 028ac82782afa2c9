#pragma once
// Names and strings read from a hostile file go into one-line error messages: no control
// characters, bounded length.
#include <string>
#include <string_view>

namespace advft::io::detail {

inline std::string printable(std::string_view s, std::size_t max_len = 120) {
  std::string out;
  for (char c : s.substr(0, max_len)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > max_len) out += "...";
  return out;
}

}  // namespace advft::io::detail
