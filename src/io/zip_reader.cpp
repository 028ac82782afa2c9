#include "advft/io/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "advft/error.h"
#include "advft/io/printable.h"

namespace advft::io {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint64_t kLocalHeaderBytes = 30;
constexpr uint64_t kCentralHeaderBytes = 46;
constexpr uint64_t kEndBytes = 22;
constexpr uint64_t kZip64EndBytes = 56;
constexpr uint64_t kZip64LocatorBytes = 20;
constexpr uint64_t kMaxCommentBytes = 0xffff;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Bounds-checked little-endian field access over the whole file.
class Bytes {
 public:
  Bytes(const std::string& bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  uint64_t size() const { return bytes_.size(); }

  // Whether [offset, offset + length) lies inside the file, without overflowing.
  bool fits(uint64_t offset, uint64_t length) const {
    return offset <= size() && length <= size() - offset;
  }

  void require(uint64_t offset, uint64_t length, const std::string& what) const {
    if (!fits(offset, length)) {
      throw CheckpointError(source_ + ": truncated or corrupt zip archive: " + what +
                            " lies outside the file (" + std::to_string(size()) + " bytes)");
    }
  }

  uint64_t le(uint64_t offset, int width) const {
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) {
      v = (v << 8) | static_cast<unsigned char>(bytes_[offset + static_cast<uint64_t>(i)]);
    }
    return v;
  }
  uint16_t u16(uint64_t offset) const { return static_cast<uint16_t>(le(offset, 2)); }
  uint32_t u32(uint64_t offset) const { return static_cast<uint32_t>(le(offset, 4)); }
  uint64_t u64(uint64_t offset) const { return le(offset, 8); }

  std::string_view text(uint64_t offset, uint64_t length) const {
    return std::string_view(bytes_).substr(offset, length);
  }

 private:
  const std::string& bytes_;
  const std::string& source_;
};

struct Directory {
  uint64_t entries = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// The last end-of-central-directory record; the archive comment (up to 64 KiB) may follow it.
uint64_t find_end_record(const Bytes& b, const std::string& source) {
  if (b.size() < kEndBytes) {
    throw CheckpointError(source + ": not a zip archive or truncated: " + std::to_string(b.size()) +
                          " bytes is too short");
  }
  const uint64_t last = b.size() - kEndBytes;
  const uint64_t first = last > kMaxCommentBytes ? last - kMaxCommentBytes : 0;
  for (uint64_t pos = last + 1; pos-- > first;) {
    if (b.u32(pos) == kEndSignature && pos + kEndBytes + b.u16(pos + 20) <= b.size()) {
      return pos;
    }
  }
  throw CheckpointError(source +
                        ": truncated or not a zip archive: no end of central directory record");
}

Directory read_directory(const Bytes& b, const std::string& source) {
  const uint64_t end = find_end_record(b, source);
  const uint16_t disk = b.u16(end + 4);
  const uint16_t directory_disk = b.u16(end + 6);
  Directory dir{b.u16(end + 10), b.u32(end + 16), b.u32(end + 12)};
  const bool zip64 = dir.entries == 0xffff || dir.offset == 0xffffffff || dir.size == 0xffffffff;
  if (zip64 ||
      (end >= kZip64LocatorBytes && b.u32(end - kZip64LocatorBytes) == kZip64LocatorSignature)) {
    if (end < kZip64LocatorBytes || b.u32(end - kZip64LocatorBytes) != kZip64LocatorSignature) {
      throw CheckpointError(source +
                            ": corrupt zip archive: zip64 end of central directory "
                            "locator missing");
    }
    const uint64_t record = b.u64(end - kZip64LocatorBytes + 8);
    b.require(record, kZip64EndBytes, "the zip64 end of central directory");
    if (b.u32(record) != kZip64EndSignature) {
      throw CheckpointError(source + ": corrupt zip archive: bad zip64 end of central directory");
    }
    if (b.u32(record + 16) != 0 || b.u32(record + 20) != 0) {
      throw CheckpointError(source + ": multi-disk zip archives are not supported");
    }
    dir.entries = b.u64(record + 32);
    dir.size = b.u64(record + 40);
    dir.offset = b.u64(record + 48);
  } else if (disk != 0 || directory_disk != 0) {
    throw CheckpointError(source + ": multi-disk zip archives are not supported");
  }
  b.require(dir.offset, dir.size, "the central directory");
  // Each entry takes at least a fixed-size header: bounds the count before anything is reserved.
  if (dir.entries > dir.size / kCentralHeaderBytes) {
    throw CheckpointError(source + ": corrupt zip archive: " + std::to_string(dir.entries) +
                          " entries cannot fit a " + std::to_string(dir.size) +
                          "-byte central directory");
  }
  return dir;
}

}  // namespace

ZipReader::ZipReader(std::string bytes, std::string source)
    : bytes_(std::move(bytes)), source_(std::move(source)) {
  const Bytes b(bytes_, source_);
  const Directory dir = read_directory(b, source_);
  names_.reserve(dir.entries);
  entries_.reserve(dir.entries);
  uint64_t pos = dir.offset;
  const uint64_t directory_end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (pos > directory_end || directory_end - pos < kCentralHeaderBytes ||
        b.u32(pos) != kCentralHeaderSignature) {
      throw CheckpointError(source_ + ": corrupt zip archive: central directory entry " +
                            std::to_string(i) + " is malformed");
    }
    Entry entry;
    entry.flags = b.u16(pos + 8);
    entry.method = b.u16(pos + 10);
    entry.crc32 = b.u32(pos + 16);
    entry.compressed_size = b.u32(pos + 20);
    entry.size = b.u32(pos + 24);
    const uint64_t name_len = b.u16(pos + 28);
    const uint64_t extra_len = b.u16(pos + 30);
    const uint64_t comment_len = b.u16(pos + 32);
    const uint16_t disk = b.u16(pos + 34);
    uint64_t local = b.u32(pos + 42);
    const uint64_t variable = name_len + extra_len + comment_len;
    if (directory_end - pos - kCentralHeaderBytes < variable) {
      throw CheckpointError(source_ + ": corrupt zip archive: central directory entry " +
                            std::to_string(i) + " runs past the directory");
    }
    std::string name(b.text(pos + kCentralHeaderBytes, name_len));

    // Zip64 extended information holds, in this order, exactly the fields saturated above.
    uint64_t extra = pos + kCentralHeaderBytes + name_len;
    const uint64_t extra_end = extra + extra_len;
    while (extra_end - extra >= 4) {
      const uint16_t id = b.u16(extra);
      const uint64_t length = b.u16(extra + 2);
      extra += 4;
      if (extra_end - extra < length) {
        throw CheckpointError(source_ + ": corrupt zip archive: extra field of '" +
                              printable(name) + "' runs past its entry");
      }
      if (id == kZip64ExtraId) {
        uint64_t field = extra;
        auto take = [&](uint64_t& value) {
          if (field + 8 > extra + length) {
            throw CheckpointError(source_ + ": corrupt zip archive: short zip64 field in '" +
                                  printable(name) + "'");
          }
          value = b.u64(field);
          field += 8;
        };
        if (entry.size == 0xffffffff) take(entry.size);
        if (entry.compressed_size == 0xffffffff) take(entry.compressed_size);
        if (local == 0xffffffff) take(local);
      }
      extra += length;
    }
    pos += kCentralHeaderBytes + variable;

    if (disk != 0 && disk != 0xffff) {
      throw CheckpointError(source_ + ": multi-disk zip archives are not supported");
    }
    // The local header repeats the name; its own extra field (torch pads with it to align the
    // data) decides where the data begins.
    b.require(local, kLocalHeaderBytes, "the local header of '" + printable(name) + "'");
    if (b.u32(local) != kLocalHeaderSignature) {
      throw CheckpointError(source_ + ": corrupt zip archive: bad local header for '" +
                            printable(name) + "'");
    }
    const uint64_t local_name_len = b.u16(local + 26);
    const uint64_t local_extra_len = b.u16(local + 28);
    b.require(local + kLocalHeaderBytes, local_name_len + local_extra_len,
              "the local header of '" + printable(name) + "'");
    if (b.text(local + kLocalHeaderBytes, local_name_len) != name) {
      throw CheckpointError(source_ +
                            ": corrupt zip archive: local and central names differ for '" +
                            printable(name) + "'");
    }
    entry.data_offset = local + kLocalHeaderBytes + local_name_len + local_extra_len;
    b.require(entry.data_offset, entry.compressed_size, "the data of '" + printable(name) + "'");

    if (!index_.emplace(name, entries_.size()).second) {
      throw CheckpointError(source_ + ": corrupt zip archive: duplicate entry '" + printable(name) +
                            "'");
    }
    names_.push_back(std::move(name));
    entries_.push_back(entry);
  }
}

std::string_view ZipReader::view(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    throw CheckpointError(source_ + ": zip archive has no entry '" + printable(name) + "'");
  }
  const Entry& entry = entries_[it->second];
  if (entry.flags & 1) {
    throw CheckpointError(source_ + ": zip entry '" + printable(name) + "' is encrypted");
  }
  if (entry.method != 0) {
    throw CheckpointError(source_ + ": zip entry '" + printable(name) + "' is compressed (method " +
                          std::to_string(entry.method) +
                          "); torch.save stores entries uncompressed: was the file re-zipped?");
  }
  if (entry.compressed_size != entry.size) {
    throw CheckpointError(source_ + ": corrupt zip archive: stored entry '" + printable(name) +
                          "' has different compressed and uncompressed sizes");
  }
  const std::string_view data = std::string_view(bytes_).substr(entry.data_offset, entry.size);
  // PyTorch can write archives without CRCs (set_crc32_options(False)); those record 0.
  if (entry.crc32 != 0) {
    uLong crc = ::crc32(0L, Z_NULL, 0);
    size_t done = 0;
    while (done < data.size()) {
      const size_t chunk =
          std::min<size_t>(data.size() - done, std::numeric_limits<uInt>::max() / 2);
      crc = ::crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done),
                    static_cast<uInt>(chunk));
      done += chunk;
    }
    if (static_cast<uint32_t>(crc) != entry.crc32) {
      throw CheckpointError(source_ + ": corrupt file: CRC-32 mismatch in zip entry '" +
                            printable(name) + "'");
    }
  }
  return data;
}

}  // namespace advft::io
