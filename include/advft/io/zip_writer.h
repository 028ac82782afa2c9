#pragma once
// Writes the ZIP container of torch.save files: stored (uncompressed) entries whose data start
// on 64-byte boundaries, as PyTorch's own writer aligns them so that readers may map tensors
// straight from the file.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace advft::io {

/// Builds a ZIP archive in memory, entry by entry.
class ZipWriter {
 public:
  /// Appends a stored entry; names must be unique (advft::Error otherwise).
  void add(const std::string& name, std::string_view data);

  /// The finished archive: the entries, the central directory and its end record. Archives of
  /// 4 GiB or more would need zip64 records and throw advft::Error.
  std::string finish();

 private:
  struct Entry {
    std::string name;
    uint32_t crc32 = 0;
    uint64_t size = 0;
    uint64_t header_offset = 0;
  };

  std::string bytes_;
  std::vector<Entry> entries_;
};

}  // namespace advft::io
