#include "advft/io/torch_save.h"

#include <cstdint>
#include <set>
#include <string_view>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/pickle.h"
#include "advft/io/zip_writer.h"
#include "pickle_opcodes.h"

namespace advft::io {
namespace {

// The record folder inside the zip; torch.load accepts any name.
constexpr const char* kArchive = "archive/";
// What PyTorch 1.6 - 2.x write as the archive's format version.
constexpr const char* kFormatVersion = "3\n";

namespace op = detail::op;

// Builds the pickle of an OrderedDict of tensors, writing each tensor's bytes as a storage
// record of the archive.
class StateDictPickler {
 public:
  explicit StateDictPickler(ZipWriter& zip) : zip_(zip) {}

  std::string pickle(const std::vector<NamedTensor>& tensors) {
    opcode(op::kProto);
    out_ += '\x02';
    ordered_dict();
    opcode(op::kMark);
    for (const auto& t : tensors) {
      text(t.name);
      tensor(t.name, t.tensor);
    }
    opcode(op::kSetItems);
    opcode(op::kStop);
    return std::move(out_);
  }

 private:
  void opcode(uint8_t code) { out_ += static_cast<char>(code); }

  void global(std::string_view module, std::string_view name) {
    opcode(op::kGlobal);
    out_.append(module);
    out_ += '\n';
    out_.append(name);
    out_ += '\n';
  }

  void ordered_dict() {  // collections.OrderedDict()
    global("collections", "OrderedDict");
    opcode(op::kEmptyTuple);
    opcode(op::kReduce);
  }

  void text(std::string_view s) {
    opcode(op::kBinUnicode);
    put_le(static_cast<uint64_t>(s.size()), 4);
    out_.append(s);
  }

  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      opcode(op::kBinInt);
      put_le(static_cast<uint64_t>(v), 4);
    } else {
      opcode(op::kLong1);  // 8 bytes, little-endian two's complement
      out_ += '\x08';
      put_le(static_cast<uint64_t>(v), 8);
    }
  }

  void int_tuple(torch::IntArrayRef values) {
    opcode(op::kMark);
    for (int64_t v : values)
      integer(v);
    opcode(op::kTuple);
  }

  void put_le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks), the
  // storage a persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel) whose bytes are
  // the record data/<key>.
  void tensor(const std::string& name, const torch::Tensor& value) {
    if (!value.defined()) throw Error("torch.save: tensor " + name + " is undefined");
    const char* type = storage_type_name(value.scalar_type());
    if (type == nullptr) {
      throw Error("torch.save: tensor " + name + " has dtype " +
                  std::string(c10::toString(value.scalar_type())) + ", which advft does not write");
    }
    const torch::Tensor data = value.detach().to(torch::kCPU).contiguous();
    const std::string key = std::to_string(next_key_++);
    zip_.add(std::string(kArchive) + "data/" + key,
             std::string_view(static_cast<const char*>(data.data_ptr()), data.nbytes()));

    global("torch._utils", "_rebuild_tensor_v2");
    opcode(op::kMark);
    opcode(op::kMark);
    text("storage");
    global("torch", type);
    text(key);
    text("cpu");
    integer(data.numel());
    opcode(op::kTuple);
    opcode(op::kBinPersId);
    integer(0);  // storage offset
    int_tuple(data.sizes());
    int_tuple(data.strides());
    opcode(op::kNewFalse);  // requires_grad
    ordered_dict();         // backward hooks
    opcode(op::kTuple);
    opcode(op::kReduce);
  }

  ZipWriter& zip_;
  std::string out_;
  int64_t next_key_ = 0;
};

}  // namespace

std::string encode_torch_save(const std::vector<NamedTensor>& tensors) {
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) throw Error("torch.save: duplicate tensor name " + t.name);
  }
  // data.pkl names the storages before they exist in the zip, so records are written first
  // and the pickle after them: torch.load finds records by name, not by position.
  ZipWriter zip;
  const std::string pickle = StateDictPickler(zip).pickle(tensors);
  zip.add(std::string(kArchive) + "data.pkl", pickle);
  zip.add(std::string(kArchive) + "byteorder", "little");
  zip.add(std::string(kArchive) + "version", kFormatVersion);
  return zip.finish();
}

void write_torch_save(const std::string& path, const std::vector<NamedTensor>& tensors) {
  write_file_atomic(path, encode_torch_save(tensors));
}

}  // namespace advft::io
