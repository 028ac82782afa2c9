#pragma once
// Checkpoint files built byte by byte in the tests: small pickles, torch.save-style zip archives
// and safetensors framing. Hostile files are easiest to make by hand, and doing so needs no
// Python on the machine.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace advft::testing {

/// `value` as `width` little-endian bytes.
inline std::string le_bytes(uint64_t value, int width) {
  std::string out;
  for (int i = 0; i < width; ++i)
    out += static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

/// A protocol-2 pickle: the header, the opcodes of `body`, STOP.
inline std::string pickle_p2(const std::string& body) {
  return std::string("\x80\x02", 2) + body + ".";
}

/// BINUNICODE: pushes the string `s`.
inline std::string pickle_text(const std::string& s) {
  return "X" + le_bytes(s.size(), 4) + s;
}

/// BININT: pushes a signed 32-bit integer.
inline std::string pickle_int(int32_t v) {
  return "J" + le_bytes(static_cast<uint32_t>(v), 4);
}

/// The opcodes of torch._utils._rebuild_tensor_v2 over storage "0" (torch.<storage_type>,
/// `numel` elements), as torch.save writes them: they push one tensor.
inline std::string pickle_tensor(int offset, const std::vector<int>& size,
                                 const std::vector<int>& stride, int numel,
                                 const std::string& storage_type = "FloatStorage") {
  std::string s = "ctorch._utils\n_rebuild_tensor_v2\n((" + pickle_text("storage") + "ctorch\n" +
                  storage_type + "\n" + pickle_text("0") + pickle_text("cpu") + pickle_int(numel) +
                  "tQ" + pickle_int(offset) + "(";
  for (int v : size)
    s += pickle_int(v);
  s += "t(";
  for (int v : stride)
    s += pickle_int(v);
  return s + "t\x89" + "ccollections\nOrderedDict\n)RtR";
}

/// A whole pickle of pickle_tensor(...) alone.
inline std::string tensor_pickle(int offset, const std::vector<int>& size,
                                 const std::vector<int>& stride, int numel,
                                 const std::string& storage_type = "FloatStorage") {
  return pickle_p2(pickle_tensor(offset, size, stride, numel, storage_type));
}

/// A zip archive of stored (uncompressed) entries with CRC-32s, as Python's zipfile writes it.
inline std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string local;
  std::string central;
  for (const auto& [name, data] : entries) {
    const auto crc = static_cast<uint32_t>(
        ::crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    // version, flags, method 0, time, date, CRC, sizes, name length, extra length
    const std::string common = le_bytes(20, 2) + le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(0, 4) +
                               le_bytes(crc, 4) + le_bytes(data.size(), 4) +
                               le_bytes(data.size(), 4) + le_bytes(name.size(), 2) + le_bytes(0, 2);
    central += "PK\x01\x02" + le_bytes(20, 2) + common + le_bytes(0, 2) + le_bytes(0, 2) +
               le_bytes(0, 2) + le_bytes(0, 4) + le_bytes(local.size(), 4) + name;
    local += "PK\x03\x04" + common + name + data;
  }
  return local + central + "PK\x05\x06" + le_bytes(0, 4) + le_bytes(entries.size(), 2) +
         le_bytes(entries.size(), 2) + le_bytes(central.size(), 4) + le_bytes(local.size(), 4) +
         le_bytes(0, 2);
}

/// A torch.save archive: archive/data.pkl holding `pickle` and archive/data/0 holding `storage`.
inline std::string torch_save_zip(const std::string& pickle, const std::string& storage) {
  return stored_zip({{"archive/data.pkl", pickle},
                     {"archive/byteorder", "little"},
                     {"archive/data/0", storage},
                     {"archive/version", "3\n"}});
}

/// safetensors framing: the header's length as 8 little-endian bytes, the header, the data.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le_bytes(header.size(), 8) + header + data;
}

}  // namespace advft::testing
