#pragma once
// Names and strings read from a hostile file go into one-line error messages: no control
// characters, bounded length.
#include <string>
#include <string_view>
#include <vector>

namespace advft::io {

inline std::string printable(std::string_view s, std::size_t max_len = 120) {
  std::string out;
  for (char c : s.substr(0, max_len)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > max_len) out += "...";
  return out;
}

/// "a, b, c and 7 more": a list of names (a wrong architecture misses hundreds) as one line.
inline std::string printable_list(const std::vector<std::string>& items,
                                  std::size_t max_listed = 5) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < max_listed; ++i)
    out += (i ? ", " : "") + printable(items[i]);
  if (items.size() > max_listed)
    out += " and " + std::to_string(items.size() - max_listed) + " more";
  return out;
}

}  // namespace advft::io
