#include "advft/io/zip_writer.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "advft/error.h"

namespace advft::io {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint16_t kVersion = 20;         // 2.0: stored entries, no zip64
constexpr uint16_t kDosDate1980 = 0x21;   // 1980-01-01: reproducible archives carry no clock
constexpr uint16_t kPaddingTag = 0x4246;  // "FB", the extra field PyTorch pads with
constexpr uint64_t kAlignment = 64;
constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kExtraFieldHeaderSize = 4;

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t narrow32(uint64_t v) {
  if (v >= std::numeric_limits<uint32_t>::max())
    throw Error(
        "zip: the archive would reach 4 GiB, which needs zip64 records advft does not write");
  return static_cast<uint32_t>(v);
}

uint32_t crc_of(std::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes lengths as uInt: feed large entries in pieces.
  for (size_t done = 0; done < data.size();) {
    const size_t piece = std::min<size_t>(data.size() - done, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done), static_cast<uInt>(piece));
    done += piece;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

void ZipWriter::add(const std::string& name, std::string_view data) {
  if (std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.name == name; }))
    throw Error("zip: duplicate entry name " + name);
  Entry entry{name, crc_of(data), data.size(), bytes_.size()};

  // Pad with an extra field so that the data start on a 64-byte boundary.
  const uint64_t unpadded = bytes_.size() + kLocalHeaderSize + name.size() + kExtraFieldHeaderSize;
  const uint64_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;

  put32(bytes_, kLocalHeader);
  put16(bytes_, kVersion);
  put16(bytes_, 0);  // flags
  put16(bytes_, 0);  // method: stored
  put16(bytes_, 0);  // time
  put16(bytes_, kDosDate1980);
  put32(bytes_, entry.crc32);
  put32(bytes_, narrow32(entry.size));  // compressed size
  put32(bytes_, narrow32(entry.size));
  put16(bytes_, static_cast<uint16_t>(name.size()));
  put16(bytes_, static_cast<uint16_t>(kExtraFieldHeaderSize + padding));
  bytes_ += name;
  put16(bytes_, kPaddingTag);
  put16(bytes_, static_cast<uint16_t>(padding));
  bytes_.append(padding, '\0');
  bytes_.append(data.data(), data.size());
  narrow32(bytes_.size());
  entries_.push_back(std::move(entry));
}

std::string ZipWriter::finish() {
  const uint64_t directory_offset = bytes_.size();
  for (const Entry& e : entries_) {
    put32(bytes_, kCentralHeader);
    put16(bytes_, kVersion);  // made by
    put16(bytes_, kVersion);  // needed
    put16(bytes_, 0);         // flags
    put16(bytes_, 0);         // method
    put16(bytes_, 0);         // time
    put16(bytes_, kDosDate1980);
    put32(bytes_, e.crc32);
    put32(bytes_, narrow32(e.size));
    put32(bytes_, narrow32(e.size));
    put16(bytes_, static_cast<uint16_t>(e.name.size()));
    put16(bytes_, 0);  // extra
    put16(bytes_, 0);  // comment
    put16(bytes_, 0);  // disk
    put16(bytes_, 0);  // internal attributes
    put32(bytes_, 0);  // external attributes
    put32(bytes_, narrow32(e.header_offset));
    bytes_ += e.name;
  }
  const uint64_t directory_size = bytes_.size() - directory_offset;
  if (entries_.size() > 0xfffe) throw Error("zip: too many entries for a zip without zip64");
  put32(bytes_, kEndOfCentralDirectory);
  put16(bytes_, 0);  // this disk
  put16(bytes_, 0);  // disk of the directory
  put16(bytes_, static_cast<uint16_t>(entries_.size()));
  put16(bytes_, static_cast<uint16_t>(entries_.size()));
  put32(bytes_, narrow32(directory_size));
  put32(bytes_, narrow32(directory_offset));
  put16(bytes_, 0);  // comment length
  entries_.clear();
  return std::move(bytes_);
}

}  // namespace advft::io
