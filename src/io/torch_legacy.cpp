#include "torch_legacy.h"

#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "advft/error.h"
#include "advft/io/printable.h"
#include "pickle_opcodes.h"

namespace advft::io::detail {
namespace {

// torch.serialization.MAGIC_NUMBER (0x1950a86a20f9469cfc6c) as LONG1 pickles it.
constexpr char kLegacyMagicLong[] = "\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
constexpr int64_t kLegacyProtocolVersion = 1001;

// The bytes of the magic-number pickle at the start of `bytes` (PROTO, a FRAME from protocol 4
// on, the LONG1, STOP), or 0 when it is not there.
size_t magic_pickle_length(std::string_view bytes) {
  if (bytes.size() < 2 || static_cast<uint8_t>(bytes[0]) != op::kProto || bytes[1] < 2 ||
      bytes[1] > 5) {
    return 0;
  }
  size_t pos = 2;
  if (bytes.size() > pos && static_cast<uint8_t>(bytes[pos]) == op::kFrame) pos += 9;
  const size_t magic = sizeof kLegacyMagicLong - 1;
  if (bytes.size() <= pos + magic || bytes.compare(pos, magic, kLegacyMagicLong) != 0 ||
      static_cast<uint8_t>(bytes[pos + magic]) != op::kStop) {
    return 0;
  }
  return pos + magic + 1;
}

class LegacyReader {
 public:
  LegacyReader(std::string_view bytes, const std::string& source)
      : bytes_(bytes), source_(source), pos_(magic_pickle_length(bytes)) {}

  PickleValue read() {
    if (pos_ == 0) fail("not a legacy torch.save file (no magic number)");
    const PickleValue version = next_pickle();
    if (version.kind != PickleValue::Kind::kInt || version.integer != kLegacyProtocolVersion) {
      fail("legacy torch.save protocol version " +
           (version.kind == PickleValue::Kind::kInt
                ? std::to_string(version.integer)
                : std::string("of type ") + version.kind_name()) +
           ", expected 1001");
    }
    check_system_info(next_pickle());
    const size_t object_start = pos_;
    const PickleScan scan = scan_pickle(bytes_.substr(pos_), source_);
    pos_ += scan.length;
    locate_records(scan);
    const StorageLoader load = [this](const std::string& key) { return records_.at(key); };
    return unpickle(bytes_.substr(object_start), source_, load);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError(source_ + ": " + what);
  }

  PickleValue next_pickle() {
    if (pos_ >= bytes_.size()) fail("truncated: the file ends before its storages");
    size_t length = 0;
    PickleValue value = unpickle(bytes_.substr(pos_), source_, StorageLoader{}, &length);
    pos_ += length;
    return value;
  }

  // {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}. Storage records are
  // raw bytes in the saving machine's order; the type sizes matter to no storage PyTorch wrote
  // (LongStorage is 8 bytes whatever C's long is), as torch.load also ignores them.
  void check_system_info(const PickleValue& info) {
    if (info.kind != PickleValue::Kind::kDict) {
      fail(std::string("legacy torch.save system information is a ") + info.kind_name() +
           ", not a dict");
    }
    const PickleValue* little = info.find("little_endian");
    if (little != nullptr && little->kind == PickleValue::Kind::kBool && !little->boolean) {
      fail("saved on a big-endian machine; only little-endian torch.save files are supported");
    }
  }

  // After the object: the sorted storage keys, then per key its element count and bytes.
  void locate_records(const PickleScan& scan) {
    std::unordered_map<std::string, StorageRef> named;
    for (const auto& ref : scan.storages)
      named.emplace(ref.key, ref);
    const PickleValue keys = next_pickle();
    if (keys.kind != PickleValue::Kind::kList) {
      fail(std::string("the legacy storage key list is a ") + keys.kind_name() + ", not a list");
    }
    for (const auto& key_value : keys.items) {
      if (key_value.kind != PickleValue::Kind::kString) {
        fail(std::string("a legacy storage key is a ") + key_value.kind_name() + ", not a str");
      }
      const std::string& key = key_value.text;
      const auto ref = named.find(key);
      if (ref == named.end()) fail("storage record '" + printable(key) + "' is not in the pickle");
      if (records_.count(key) != 0) fail("storage '" + printable(key) + "' is recorded twice");
      records_.emplace(key, read_record(ref->second));
    }
    for (const auto& ref : scan.storages) {
      if (records_.count(ref.key) == 0) {
        fail("storage '" + printable(ref.key) + "' that the pickle names has no record");
      }
    }
  }

  std::string_view read_record(const StorageRef& ref) {
    const std::string what = "the record of storage '" + printable(ref.key) + "'";
    if (bytes_.size() - pos_ < sizeof(int64_t)) fail("truncated: " + what + " is cut short");
    int64_t count = 0;
    std::memcpy(&count, bytes_.data() + pos_, sizeof count);  // little-endian, checked above
    pos_ += sizeof count;
    if (count != ref.numel) {
      fail(what + " holds " + std::to_string(count) + " elements, but the pickle claims " +
           std::to_string(ref.numel));
    }
    // scan_pickle bounded numel by the file's size, so this cannot overflow.
    const uint64_t nbytes = static_cast<uint64_t>(ref.numel) * c10::elementSize(ref.type);
    if (bytes_.size() - pos_ < nbytes) fail("truncated: " + what + " is cut short");
    const std::string_view record = bytes_.substr(pos_, nbytes);
    pos_ += nbytes;
    return record;
  }

  std::string_view bytes_;
  const std::string& source_;
  size_t pos_;
  std::unordered_map<std::string, std::string_view> records_;
};

}  // namespace

bool is_legacy_torch_save(std::string_view bytes) {
  return magic_pickle_length(bytes) != 0;
}

PickleValue decode_legacy_torch_save(std::string_view bytes, const std::string& source) {
  return LegacyReader(bytes, source).read();
}

}  // namespace advft::io::detail
