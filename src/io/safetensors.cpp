#include "advft/io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/printable.h"

// The format is little-endian and we copy raw bytes; a big-endian port needs byte swapping here.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

namespace advft::io {
namespace {

// The reference implementation refuses larger headers too; it bounds what a lying file costs us.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kLengthBytes = 8;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  size_t itemsize;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) {
      return &d;
    }
  }
  return nullptr;
}

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      return &d;
    }
  }
  return nullptr;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw CheckpointError(source + ": " + what);
}

[[noreturn]] void fail_tensor(const std::string& source, const std::string& name,
                              const std::string& what) {
  fail(source, "tensor '" + printable(name) + "': " + what);
}

// A file whose first bytes cannot start a safetensors file. A torch.save file is the most likely
// one, and saying so beats "header length exceeds the file size". Only consulted once the
// safetensors reading has failed: 0x80 0x02 is also a valid start (a 640-byte header).
[[noreturn]] void fail_header(const std::string& bytes, const std::string& source,
                              const std::string& what) {
  if (bytes.compare(0, 4, "PK\x03\x04", 4) == 0) {
    fail(source, "not a safetensors file: it is a zip archive (a PyTorch torch.save file?)");
  }
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x80 && bytes[1] >= 2 &&
      bytes[1] <= 5) {
    fail(source, "not a safetensors file: it is a Python pickle (a legacy torch.save file?)");
  }
  fail(source, what);
}

uint64_t read_u64_le(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}

// Reads a non-negative JSON integer; nlohmann stores non-negative literals as unsigned.
bool as_u64(const nlohmann::json& j, uint64_t& out) {
  if (!j.is_number_unsigned()) {
    return false;
  }
  out = j.get<uint64_t>();
  return true;
}

NamedTensor decode_tensor(const std::string& source, const std::string& name,
                          const nlohmann::json& entry, const char* buffer, uint64_t buffer_size,
                          uint64_t& begin_out, uint64_t& end_out) {
  if (!entry.is_object()) {
    fail_tensor(source, name, "header entry is not a JSON object");
  }
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    fail_tensor(source, name, "missing or non-string \"dtype\"");
  }
  const std::string dtype_name = dtype_it->get<std::string>();
  const DtypeInfo* dtype = dtype_by_name(dtype_name);
  if (dtype == nullptr) {
    fail_tensor(source, name,
                "unsupported dtype \"" + printable(dtype_name) +
                    "\" (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
  }

  if (shape_it == entry.end() || !shape_it->is_array()) {
    fail_tensor(source, name, "missing or non-array \"shape\"");
  }
  std::vector<int64_t> shape;
  shape.reserve(shape_it->size());
  bool has_zero = false;
  for (const auto& dim : *shape_it) {
    uint64_t d = 0;
    if (!as_u64(dim, d)) {
      fail_tensor(source, name,
                  "shape has a negative or non-integer dimension: " + printable(dim.dump()));
    }
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_tensor(source, name, "shape dimension " + std::to_string(d) + " is too large");
    }
    has_zero = has_zero || d == 0;
    shape.push_back(static_cast<int64_t>(d));
  }
  // A wrapped-around byte count could pass the span check below with a tiny span, and torch's
  // own stride arithmetic must not overflow either, even for an empty tensor like [0, 2^62, 2^62].
  uint64_t span = dtype->itemsize;
  const auto limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (int64_t d : shape) {
    const uint64_t ud = std::max<uint64_t>(static_cast<uint64_t>(d), 1);
    if (span > limit / ud) {
      fail_tensor(source, name, "shape " + shape_text(shape) + " is impossibly large");
    }
    span *= ud;
  }
  const uint64_t nbytes = has_zero ? 0 : span;

  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    fail_tensor(source, name, "missing \"data_offsets\" or it is not [begin, end]");
  }
  uint64_t begin = 0;
  uint64_t end = 0;
  if (!as_u64((*offsets_it)[0], begin) || !as_u64((*offsets_it)[1], end)) {
    fail_tensor(source, name, "data_offsets must be non-negative integers");
  }
  if (begin > end) {
    fail_tensor(source, name,
                "data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
  }
  if (end > buffer_size) {
    fail_tensor(source, name,
                "data_offsets end " + std::to_string(end) + " is past the end of the data (" +
                    std::to_string(buffer_size) + " bytes; file truncated?)");
  }
  // With end <= buffer_size this bounds the allocation below by the file's own size.
  if (end - begin != nbytes) {
    fail_tensor(source, name,
                "data_offsets span " + std::to_string(end - begin) + " bytes but " + dtype_name +
                    " " + shape_text(shape) + " needs " + std::to_string(nbytes));
  }

  // Bool bytes other than 0/1 are undefined behaviour for torch; normalize through U8.
  const torch::ScalarType load_type = dtype->type == torch::kBool ? torch::kUInt8 : dtype->type;
  torch::Tensor t;
  try {
    t = torch::empty(shape, torch::TensorOptions().dtype(load_type));
  } catch (const c10::Error&) {
    fail_tensor(source, name, "cannot create a tensor of shape " + shape_text(shape));
  }
  if (nbytes > 0) {
    std::memcpy(t.data_ptr(), buffer + begin, static_cast<size_t>(nbytes));
  }
  if (dtype->type == torch::kBool) {
    t = t.ne(0);
  }
  begin_out = begin;
  end_out = end;
  return {name, t};
}

// Where a tensor's bytes lie in the data buffer, and which decoded tensor they are.
struct Span {
  uint64_t begin;
  uint64_t end;
  size_t index;
};

// The reference implementation's rule: the tensors tile the data buffer, back to back from 0 to
// its end. A header whose offsets overlap, leave gaps or miss trailing bytes was not written by
// a safetensors writer, and decoding it anyway reads weights from the wrong bytes (a header
// length one byte short shifts every tensor by a byte), so it is refused. `spans` is sorted.
void check_layout(const std::string& source, const std::vector<Span>& spans,
                  const std::vector<NamedTensor>& tensors, uint64_t buffer_size) {
  uint64_t expected = 0;
  for (const auto& span : spans) {
    const std::string& name = tensors[span.index].name;
    if (span.begin < expected) {
      fail_tensor(source, name,
                  "data_offsets begin " + std::to_string(span.begin) +
                      " overlaps the tensor before it (which ends at " + std::to_string(expected) +
                      "); the file is corrupt");
    }
    if (span.begin > expected) {
      fail_tensor(source, name,
                  "data_offsets begin " + std::to_string(span.begin) + " leaves a gap after " +
                      std::to_string(expected) +
                      " (safetensors tensors lie back to back); the file is corrupt");
    }
    expected = span.end;
  }
  if (expected != buffer_size) {
    fail(source, "the tensors cover " + std::to_string(expected) + " of the " +
                     std::to_string(buffer_size) +
                     " data bytes after the header (header length wrong, or bytes appended); "
                     "the file is corrupt");
  }
}

}  // namespace

std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    torch::Tensor data;
    const DtypeInfo* dtype;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::map<std::string, int> seen;
  for (const auto& nt : tensors) {
    if (nt.name == "__metadata__") {
      throw Error("safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    }
    if (seen[nt.name]++ > 0) {
      throw Error("safetensors: duplicate tensor name '" + nt.name + "'");
    }
    if (!nt.tensor.defined()) {
      throw Error("safetensors: tensor '" + nt.name + "' is undefined");
    }
    const DtypeInfo* dtype = dtype_by_type(nt.tensor.scalar_type());
    if (dtype == nullptr) {
      throw Error("safetensors: tensor '" + nt.name + "' has unsupported dtype " +
                  std::string(c10::toString(nt.tensor.scalar_type())));
    }
    items.push_back({&nt.name, nt.tensor.detach().to(torch::kCPU).contiguous(), dtype});
  }
  // Element sizes are powers of two, so widest-first keeps every offset a multiple of its
  // tensor's element size (the buffer starts 8-aligned).
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.dtype->itemsize > b.dtype->itemsize;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    header["__metadata__"] = metadata;
  }
  uint64_t offset = 0;
  for (const auto& item : items) {
    const uint64_t nbytes = static_cast<uint64_t>(item.data.numel()) * item.dtype->itemsize;
    header[*item.name] = {{"dtype", item.dtype->name},
                          {"shape", item.data.sizes().vec()},
                          {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(
        std::string("safetensors: cannot encode header (names and metadata must be UTF-8): ") +
        e.what());
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(kLengthBytes + header_text.size() + static_cast<size_t>(offset));
  uint64_t n = header_text.size();
  for (size_t i = 0; i < kLengthBytes; ++i) {
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  out += header_text;
  for (const auto& item : items) {
    const size_t nbytes = static_cast<size_t>(item.data.numel()) * item.dtype->itemsize;
    if (nbytes > 0) {
      out.append(static_cast<const char*>(item.data.data_ptr()), nbytes);
    }
  }
  return out;
}

SafetensorsContent decode_safetensors(const std::string& bytes, const std::string& source_name) {
  const std::string& source = source_name;
  if (bytes.size() < kLengthBytes) {
    fail_header(bytes, source,
                bytes.empty() ? "file is empty, not a safetensors file"
                              : "file is " + std::to_string(bytes.size()) +
                                    " bytes, too short to be a safetensors file");
  }
  const uint64_t header_len = read_u64_le(bytes.data());
  if (header_len > kMaxHeaderBytes) {
    fail_header(bytes, source,
                "safetensors header length " + std::to_string(header_len) +
                    " exceeds the 100 MB limit (not a safetensors file, or corrupt)");
  }
  if (header_len > bytes.size() - kLengthBytes) {
    fail_header(bytes, source,
                "safetensors header length " + std::to_string(header_len) +
                    " exceeds the file size " + std::to_string(bytes.size()) +
                    " (truncated, or not a safetensors file)");
  }
  const char* header_begin = bytes.data() + kLengthBytes;
  if (header_len == 0 || header_begin[0] != '{') {
    fail_header(bytes, source,
                "safetensors header does not start with '{' (not a safetensors file)");
  }

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(source, "safetensors header is not valid JSON: " + printable(e.what(), 200));
  }
  if (!header.is_object()) {
    fail(source, "safetensors header is not a JSON object");
  }

  const char* buffer = header_begin + header_len;
  const uint64_t buffer_size = bytes.size() - kLengthBytes - header_len;
  SafetensorsContent content;
  std::vector<Span> order;  // for buffer order and the layout check
  std::vector<NamedTensor> unordered;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        fail(source, "safetensors \"__metadata__\" is not a JSON object");
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(source, "safetensors metadata value of \"" + printable(key) + "\" is not a string");
        }
        content.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    uint64_t end = 0;
    unordered.push_back(decode_tensor(source, name, entry, buffer, buffer_size, begin, end));
    order.push_back({begin, end, unordered.size() - 1});
  }
  // std::map iteration gave name order; a stable sort by offsets turns that into buffer order
  // (an empty tensor at a shared offset first, as the reference implementation sorts).
  std::stable_sort(order.begin(), order.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_layout(source, order, unordered, buffer_size);
  content.tensors.reserve(unordered.size());
  for (const auto& span : order) {
    content.tensors.push_back(std::move(unordered[span.index]));
  }
  return content;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

SafetensorsContent read_safetensors(const std::string& path) {
  return decode_safetensors(read_checkpoint_bytes(path), path);
}

}  // namespace advft::io
