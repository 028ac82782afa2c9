#pragma once
// A read-only ZIP reader for the archives torch.save (PyTorch >= 1.6) writes: stored entries,
// a zip64 end of central directory, no compression. It works on the whole file in memory and
// checks every offset and size against it, because checkpoints come from strangers.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace advft::io {

/// The entries of one ZIP archive held in memory; every error is an advft::CheckpointError
/// naming `source`.
class ZipReader {
 public:
  /// Indexes `bytes` (a whole ZIP file) through its central directory; throws on a missing,
  /// truncated or inconsistent directory, on duplicate names and on multi-disk archives.
  ZipReader(std::string bytes, std::string source);

  /// Entry names in central-directory order.
  const std::vector<std::string>& names() const { return names_; }

  /// Whether an entry of that exact name exists.
  bool has(const std::string& name) const { return index_.count(name) != 0; }

  /// The bytes of a stored entry, viewing the archive's own buffer (valid while this reader
  /// lives); the CRC-32 is verified unless the archive recorded 0. Compressed or encrypted
  /// entries and missing names throw.
  std::string_view view(const std::string& name) const;

  /// A copy of view(name).
  std::string read(const std::string& name) const { return std::string(view(name)); }

  /// The name errors use for this archive (usually its path).
  const std::string& source() const { return source_; }

 private:
  struct Entry {
    uint64_t data_offset = 0;
    uint64_t compressed_size = 0;
    uint64_t size = 0;
    uint32_t crc32 = 0;
    uint16_t method = 0;
    uint16_t flags = 0;
  };

  std::string bytes_;
  std::string source_;
  std::vector<std::string> names_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace advft::io
