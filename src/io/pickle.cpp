#include "advft/io/pickle.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "advft/error.h"
#include "advft/io/printable.h"
#include "pickle_opcodes.h"

// Storage bytes are little-endian (torch_file checks the archive's byteorder) and copied raw.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the unpickler assumes little-endian");

namespace advft::io {
namespace {

// Bounds on what a hostile pickle can make us hold. A ResNet-152 state_dict needs about 10^4
// nodes and a stack of a few dozen; these are orders of magnitude above any real checkpoint.
constexpr size_t kMaxNodes = size_t{1} << 22;
constexpr size_t kMaxStack = size_t{1} << 20;
constexpr size_t kMaxMemo = size_t{1} << 22;
constexpr int kMaxDepth = 100;
// Views may overlap (expanded tensors), so rebuilt tensors can exceed their storages; not by
// more than this factor (plus kSlackBytes) in total, or a 1 KiB pickle could demand terabytes.
constexpr uint64_t kExpansionFactor = 4;
constexpr uint64_t kSlackBytes = uint64_t{64} << 20;

struct StorageType {
  const char* name;
  torch::ScalarType type;
  uint64_t itemsize;
};

constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", torch::kFloat32, 4},     {"HalfStorage", torch::kFloat16, 2},
    {"BFloat16Storage", torch::kBFloat16, 2}, {"DoubleStorage", torch::kFloat64, 8},
    {"LongStorage", torch::kInt64, 8},        {"IntStorage", torch::kInt32, 4},
    {"ShortStorage", torch::kInt16, 2},       {"CharStorage", torch::kInt8, 1},
    {"ByteStorage", torch::kUInt8, 1},        {"BoolStorage", torch::kBool, 1},
};

// The numpy dtypes (by the type code their pickles carry) that load as tensors: plain numbers.
// Unsigned types wider than a byte have no tensor type in every LibTorch we build against.
struct NumpyType {
  const char* code;
  torch::ScalarType type;
  uint64_t itemsize;
};

constexpr NumpyType kNumpyTypes[] = {
    {"b1", torch::kBool, 1},    {"i1", torch::kInt8, 1},    {"u1", torch::kUInt8, 1},
    {"i2", torch::kInt16, 2},   {"i4", torch::kInt32, 4},   {"i8", torch::kInt64, 8},
    {"f2", torch::kFloat16, 2}, {"f4", torch::kFloat32, 4}, {"f8", torch::kFloat64, 8},
};

// The only callables a checkpoint may name; the numpy ones only where UnpickleOptions allow.
enum class Global {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildTensor,
  kRebuildParameter,
  kRebuildParameterWithState,
  kCodecsEncode,  // protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1')
  kStorageType,
  kNumpyReconstruct,  // ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b'), then BUILD
  kNumpyFromBuffer,   // ndarray.__reduce_ex__(5): _frombuffer(data, dtype, shape, order)
  kNumpyNdarray,      // only as _reconstruct's first argument
  kNumpyDtype,        // dtype(code, align, copy), then BUILD with the byte order
};

struct NamedGlobal {
  const char* qualified;
  Global global;
};

// The functions a checkpoint may name (the storage types are matched by their own table).
constexpr NamedGlobal kCheckpointGlobals[] = {
    {"collections.OrderedDict", Global::kOrderedDict},
    {"torch._utils._rebuild_tensor_v2", Global::kRebuildTensorV2},
    {"torch._utils._rebuild_tensor", Global::kRebuildTensor},
    {"torch._utils._rebuild_parameter", Global::kRebuildParameter},
    {"torch._utils._rebuild_parameter_with_state", Global::kRebuildParameterWithState},
    {"_codecs.encode", Global::kCodecsEncode},
};

// Names numpy's array pickling uses, for data files that allow them: never called, only
// recognized by call() and BUILD in the exact pattern numpy writes.
// numpy 2 moved numpy.core to numpy._core; files of both name theirs.
constexpr NamedGlobal kNumpyGlobals[] = {
    {"numpy.core.multiarray._reconstruct", Global::kNumpyReconstruct},
    {"numpy._core.multiarray._reconstruct", Global::kNumpyReconstruct},
    {"numpy.core.numeric._frombuffer", Global::kNumpyFromBuffer},
    {"numpy._core.numeric._frombuffer", Global::kNumpyFromBuffer},
    {"numpy.ndarray", Global::kNumpyNdarray},
    {"numpy.dtype", Global::kNumpyDtype},
};

/// The entry of `table` named `qualified`, or nullptr.
template <size_t N>
const NamedGlobal* find_global(const NamedGlobal (&table)[N], const std::string& qualified) {
  for (const NamedGlobal& known : table) {
    if (qualified == known.qualified) return &known;
  }
  return nullptr;
}

enum class NodeKind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kTensor,
  kGlobal,
  kStorage,
  kDtype,  // numpy.dtype: storage_index into kNumpyTypes, boolean once its state is set
  kArray,  // numpy.ndarray: boolean and tensor once its state (shape, dtype, data) is set
};

// The unpickler's own value: containers refer to other nodes by index into one arena, so that
// memo references, mutation after memoization and even cycles cost nothing to represent and
// nothing recursive happens until the depth-limited conversion at the end.
struct Node {
  NodeKind kind = NodeKind::kNone;
  bool boolean = false;
  int64_t integer = 0;  // kInt; kGlobal: Global; kStorage: its number of elements
  double real = 0.0;
  std::string text;  // kString, kBytes; kGlobal: qualified name; kStorage: record key
  std::vector<size_t> items;
  std::vector<std::pair<size_t, size_t>> entries;
  torch::Tensor tensor;       // kTensor; kStorage: 1-D over the record (undefined when scanning)
  int64_t storage_index = 0;  // kGlobal of a storage type, kStorage: index into kStorageTypes
};

namespace op = detail::op;

const char* node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kNone:
      return "None";
    case NodeKind::kBool:
      return "bool";
    case NodeKind::kInt:
      return "int";
    case NodeKind::kFloat:
      return "float";
    case NodeKind::kString:
      return "str";
    case NodeKind::kBytes:
      return "bytes";
    case NodeKind::kTuple:
      return "tuple";
    case NodeKind::kList:
      return "list";
    case NodeKind::kDict:
      return "dict";
    case NodeKind::kTensor:
      return "tensor";
    case NodeKind::kGlobal:
      return "global";
    case NodeKind::kStorage:
      return "storage";
    case NodeKind::kDtype:
      return "numpy.dtype";
    case NodeKind::kArray:
      return "numpy.ndarray";
  }
  return "?";
}

class Unpickler {
 public:
  /// `scan_only`: run the machine for its checks, the pickle's length and the storages it
  /// names, but load no storage and build no tensor (see scan_pickle).
  Unpickler(std::string_view bytes, const std::string& source, const StorageLoader& load_storage,
            const UnpickleOptions& options, bool scan_only = false)
      : bytes_(bytes),
        source_(source),
        load_storage_(load_storage),
        options_(options),
        scan_only_(scan_only) {}

  /// The value (an empty one when scanning), once the machine has reached STOP.
  PickleValue run() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t code = next_byte();
      if (code == op::kStop) {
        const size_t result = pop();
        length_ = pos_;
        if (scan_only_) return {};
        budget_ = 8 * bytes_.size() + 4096;
        return convert(result, 0);
      }
      step(code);
    }
  }

  /// After run(): the bytes through STOP.
  size_t length() const { return length_; }
  /// After run(): the storages the persistent ids named, first-named first.
  std::vector<StorageRef>& storage_refs() { return refs_; }

 private:
  // A data set file's errors are the data's (exit code 4), a checkpoint's the checkpoint's.
  [[noreturn]] void raise(const std::string& message) const {
    if (options_.data_file) throw DataError(message);
    throw CheckpointError(message);
  }

  [[noreturn]] void fail(const std::string& what) const {
    raise(source_ + ": " + what + " (pickle byte " + std::to_string(op_pos_) + ")");
  }

  [[noreturn]] void refuse(const std::string& name) const {
    if (options_.data_file) {
      raise(source_ + ": refuses to load global " + printable(name) +
            ": loading a data file must never run code");
    }
    raise(source_ + ": refuses to load global " + printable(name) +
          ": loading a checkpoint must never run code" + whole_model_hint(name));
  }

  // torch.save(model) pickles the model object, whose first global is its class: a module of
  // torch.nn, a model zoo's, or the training script's own. Its weights are there, but only
  // Python can rebuild the object; say how to save them in a form that loads.
  static std::string whole_model_hint(const std::string& name) {
    static const std::string advice =
        "(torch.save(model)): save model.state_dict() instead, or a TorchScript archive "
        "(torch.jit.save, model.kind=torchscript)";
    for (const char* prefix : {"torch.nn.", "torchvision.", "timm.", "__main__."}) {
      if (name.rfind(prefix, 0) == 0) return "; the file holds a whole pickled model " + advice;
    }
    // A class of the training code's own package (models.wideresnet.WideResNet) looks like any
    // other class; Python's and NumPy's own are not models.
    const size_t dot = name.rfind('.');
    const std::string root = name.substr(0, name.find('.'));
    const bool capitalized = dot != std::string::npos && dot + 1 < name.size() &&
                             std::isupper(static_cast<unsigned char>(name[dot + 1]));
    for (const char* library : {"argparse", "builtins", "__builtin__", "collections", "copyreg",
                                "datetime", "enum", "functools", "numpy", "nt", "os", "pathlib",
                                "posix", "subprocess", "sys", "torch", "types", "_codecs"})
      if (root == library) return "";
    if (capitalized)
      return "; if it is a model class, the file holds a whole pickled model " + advice;
    return "";
  }

  // ---- reading the byte stream ----
  uint8_t next_byte() {
    if (pos_ >= bytes_.size()) {
      fail("truncated pickle: it ends without a STOP opcode");
    }
    return static_cast<uint8_t>(bytes_[pos_++]);
  }

  std::string_view take(uint64_t n) {
    if (n > bytes_.size() - pos_) {
      fail("truncated pickle: a " + std::to_string(n) + "-byte field runs past its end");
    }
    const std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  uint64_t read_le(int width) {
    const std::string_view b = take(static_cast<uint64_t>(width));
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) {
      v = (v << 8) | static_cast<unsigned char>(b[static_cast<size_t>(i)]);
    }
    return v;
  }

  std::string_view read_line() {
    const size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) {
      fail("truncated pickle: unterminated text field");
    }
    const std::string_view out = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }

  // ---- the machine ----
  size_t make(Node node) {
    if (nodes_.size() >= kMaxNodes) {
      fail("pickle holds more than " + std::to_string(kMaxNodes) + " values");
    }
    nodes_.push_back(std::move(node));
    return nodes_.size() - 1;
  }

  size_t make_kind(NodeKind kind) {
    Node node;
    node.kind = kind;
    return make(std::move(node));
  }

  void push(size_t id) {
    if (stack_.size() >= kMaxStack) {
      fail("pickle stack deeper than " + std::to_string(kMaxStack));
    }
    stack_.push_back(id);
  }

  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }

  size_t pop() {
    if (stack_.size() <= stack_floor()) {
      fail("malformed pickle: stack underflow");
    }
    const size_t id = stack_.back();
    stack_.pop_back();
    return id;
  }

  size_t top() const {
    if (stack_.size() <= stack_floor()) {
      fail("malformed pickle: stack underflow");
    }
    return stack_.back();
  }

  std::vector<size_t> pop_mark() {
    if (marks_.empty()) {
      fail("malformed pickle: no MARK to pop to");
    }
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<size_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  Node& node(size_t id) { return nodes_[id]; }

  Node& expect(size_t id, NodeKind kind, const char* what) {
    if (nodes_[id].kind != kind) {
      fail(std::string(what) + " must be of type " + node_kind_name(kind) + ", got " +
           node_kind_name(nodes_[id].kind));
    }
    return nodes_[id];
  }

  void memo_put(uint64_t index) {
    if (memo_.size() >= kMaxMemo && memo_.count(index) == 0) {
      fail("pickle memo larger than " + std::to_string(kMaxMemo) + " entries");
    }
    memo_[index] = top();
  }

  void memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) {
      fail("malformed pickle: memo entry " + std::to_string(index) + " was never stored");
    }
    push(it->second);
  }

  void push_int(int64_t value) {
    Node n;
    n.kind = NodeKind::kInt;
    n.integer = value;
    push(make(std::move(n)));
  }

  void push_text(NodeKind kind, std::string_view text) {
    Node n;
    n.kind = kind;
    n.text = std::string(text);
    push(make(std::move(n)));
  }

  void push_tuple(std::vector<size_t> items) {
    Node n;
    n.kind = NodeKind::kTuple;
    n.items = std::move(items);
    push(make(std::move(n)));
  }

  // Python's arbitrary-precision little-endian two's complement, as far as int64 reaches.
  void push_long(std::string_view b) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
    if (b.size() > 8) {
      const unsigned char fill = (byte(b.size() - 1) & 0x80) ? 0xff : 0x00;
      for (size_t i = 8; i < b.size(); ++i) {
        if (byte(i) != fill) fail("integer does not fit in 64 bits");
      }
      if ((byte(7) & 0x80) != (fill & 0x80)) fail("integer does not fit in 64 bits");
    }
    const size_t n = std::min<size_t>(b.size(), 8);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) {
      v = (v << 8) | byte(i);
    }
    if (n > 0 && n < 8 && (byte(n - 1) & 0x80)) {
      v |= ~uint64_t{0} << (8 * n);  // sign-extend
    }
    push_int(static_cast<int64_t>(v));
  }

  void push_global(const std::string& module, const std::string& name) {
    const std::string qualified = module + "." + name;
    Node n;
    n.kind = NodeKind::kGlobal;
    n.text = qualified;
    const NamedGlobal* known = find_global(kCheckpointGlobals, qualified);
    if (known == nullptr && options_.numpy_arrays) known = find_global(kNumpyGlobals, qualified);
    if (known != nullptr) {
      n.integer = static_cast<int64_t>(known->global);
    } else if (module == "torch" && name.size() > 7 &&
               name.compare(name.size() - 7, 7, "Storage") == 0) {
      bool found = false;
      for (size_t i = 0; i < std::size(kStorageTypes); ++i) {
        if (name == kStorageTypes[i].name) {
          n.integer = static_cast<int64_t>(Global::kStorageType);
          n.storage_index = static_cast<int64_t>(i);
          found = true;
        }
      }
      if (!found) {
        fail("unsupported storage type " + printable(qualified) +
             " (supported: float32, float16, bfloat16, float64, int64, int32, int16, int8, "
             "uint8, bool)");
      }
    } else {
      refuse(qualified);
    }
    push(make(std::move(n)));
  }

  void step(uint8_t code) {
    switch (code) {
      case op::kProto: {
        const uint8_t version = next_byte();
        if (version > 5) {
          fail("unsupported pickle protocol " + std::to_string(version));
        }
        return;
      }
      case op::kFrame:
        read_le(8);
        return;  // framing is a reading hint; we hold every byte
      case op::kMark:
        if (marks_.size() >= kMaxStack) fail("too many nested MARKs");
        marks_.push_back(stack_.size());
        return;
      case op::kPop:
        if (stack_.size() > stack_floor()) {
          stack_.pop_back();
        } else {
          pop_mark();
        }
        return;
      case op::kPopMark:
        pop_mark();
        return;
      case op::kDup:
        push(top());
        return;

      case op::kNone:
        push(make_kind(NodeKind::kNone));
        return;
      case op::kNewTrue:
      case op::kNewFalse: {
        Node n;
        n.kind = NodeKind::kBool;
        n.boolean = code == op::kNewTrue;
        push(make(std::move(n)));
        return;
      }
      case op::kBinInt:
        push_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4))));
        return;
      case op::kBinInt1:
        push_int(static_cast<int64_t>(read_le(1)));
        return;
      case op::kBinInt2:
        push_int(static_cast<int64_t>(read_le(2)));
        return;
      case op::kLong1:
        push_long(take(read_le(1)));
        return;
      case op::kLong4: {
        const auto n = static_cast<int32_t>(static_cast<uint32_t>(read_le(4)));
        if (n < 0) fail("negative LONG4 length");
        push_long(take(static_cast<uint64_t>(n)));
        return;
      }
      case op::kBinFloat: {
        const std::string_view b = take(8);
        uint64_t bits = 0;
        for (char c : b) {
          bits = (bits << 8) | static_cast<unsigned char>(c);  // big-endian, unlike the rest
        }
        Node n;
        n.kind = NodeKind::kFloat;
        std::memcpy(&n.real, &bits, sizeof bits);
        push(make(std::move(n)));
        return;
      }

      case op::kShortBinUnicode:
        push_text(NodeKind::kString, take(read_le(1)));
        return;
      case op::kBinUnicode:
        push_text(NodeKind::kString, take(read_le(4)));
        return;
      case op::kBinUnicode8:
        push_text(NodeKind::kString, take(read_le(8)));
        return;
      case op::kShortBinString:
        push_text(NodeKind::kString, take(read_le(1)));
        return;
      case op::kBinString: {
        const auto n = static_cast<int32_t>(static_cast<uint32_t>(read_le(4)));
        if (n < 0) fail("negative BINSTRING length");
        push_text(NodeKind::kString, take(static_cast<uint64_t>(n)));
        return;
      }
      case op::kShortBinBytes:
        push_text(NodeKind::kBytes, take(read_le(1)));
        return;
      case op::kBinBytes:
        push_text(NodeKind::kBytes, take(read_le(4)));
        return;
      case op::kBinBytes8:
      case op::kByteArray8:
        push_text(NodeKind::kBytes, take(read_le(8)));
        return;

      case op::kEmptyTuple:
        push_tuple({});
        return;
      case op::kTuple:
        push_tuple(pop_mark());
        return;
      case op::kTuple1:
      case op::kTuple2:
      case op::kTuple3: {
        std::vector<size_t> items(static_cast<size_t>(code - op::kTuple1 + 1));
        for (size_t i = items.size(); i-- > 0;) {
          items[i] = pop();
        }
        push_tuple(std::move(items));
        return;
      }
      // Sets are rare in checkpoints and have no C++ counterpart here: they load as lists.
      case op::kEmptySet:
      case op::kEmptyList:
        push(make_kind(NodeKind::kList));
        return;
      case op::kFrozenSet:
      case op::kList: {
        Node n;
        n.kind = NodeKind::kList;
        n.items = pop_mark();
        push(make(std::move(n)));
        return;
      }
      case op::kAppend: {
        const size_t value = pop();
        expect(top(), NodeKind::kList, "APPEND target").items.push_back(value);
        return;
      }
      case op::kAddItems:
      case op::kAppends: {
        std::vector<size_t> values = pop_mark();
        auto& items = expect(top(), NodeKind::kList, "APPENDS target").items;
        items.insert(items.end(), values.begin(), values.end());
        return;
      }
      case op::kEmptyDict:
        push(make_kind(NodeKind::kDict));
        return;
      case op::kDict: {
        const std::vector<size_t> values = pop_mark();
        const size_t id = make_kind(NodeKind::kDict);
        set_items(id, values);
        push(id);
        return;
      }
      case op::kSetItem: {
        const size_t value = pop();
        const size_t key = pop();
        set_items(top(), {key, value});
        return;
      }
      case op::kSetItems: {
        const std::vector<size_t> values = pop_mark();
        set_items(top(), values);
        return;
      }

      case op::kBinPut:
        memo_put(read_le(1));
        return;
      case op::kLongBinPut:
        memo_put(read_le(4));
        return;
      case op::kMemoize:
        memo_put(memo_.size());
        return;
      case op::kBinGet:
        memo_get(read_le(1));
        return;
      case op::kLongBinGet:
        memo_get(read_le(4));
        return;

      case op::kGlobal: {
        const std::string module(read_line());
        const std::string name(read_line());
        push_global(module, name);
        return;
      }
      case op::kStackGlobal: {
        const size_t name = pop();
        const size_t module = pop();
        push_global(expect(module, NodeKind::kString, "STACK_GLOBAL module").text,
                    expect(name, NodeKind::kString, "STACK_GLOBAL name").text);
        return;
      }
      case op::kInst: {
        const std::string module(read_line());
        const std::string name(read_line());
        refuse(module + "." + name);
      }
      case op::kExt1:
      case op::kExt2:
      case op::kExt4: {
        const int width = code == op::kExt1 ? 1 : code == op::kExt2 ? 2 : 4;
        refuse("from the copyreg extension registry (code " + std::to_string(read_le(width)) + ")");
      }
      case op::kReduce: {
        const size_t args = pop();
        const size_t callable = pop();
        push(call(callable, args));
        return;
      }
      case op::kNewObj: {
        const size_t args = pop();
        const size_t cls = pop();
        if (global_of(cls, "NEWOBJ class") != Global::kOrderedDict) {
          fail("NEWOBJ of " + printable(node(cls).text) + " is not allowed");
        }
        push(call(cls, args));
        return;
      }
      case op::kBuild: {
        const size_t state = pop();
        const size_t target = top();
        switch (node(target).kind) {
          case NodeKind::kDict:
          case NodeKind::kTensor:
            return;  // an OrderedDict's attributes or a tensor's Python state: not needed
          case NodeKind::kDtype:
            build_dtype(target, state);
            return;
          case NodeKind::kArray:
            build_array(target, state);
            return;
          default:
            fail("BUILD (setting object state) on type " +
                 std::string(node_kind_name(node(target).kind)) + " is not allowed");
        }
      }
      case op::kBinPersId:
        push(persistent_load(pop()));
        return;
      case op::kObj:
        fail("OBJ opcode (object construction) is not allowed");
      default: {
        static const char kHex[] = "0123456789abcdef";
        fail(std::string("unsupported pickle opcode 0x") + kHex[code >> 4] + kHex[code & 15]);
      }
    }
  }

  void set_items(size_t dict, const std::vector<size_t>& values) {
    if (values.size() % 2 != 0) {
      fail("malformed pickle: odd number of dict items");
    }
    auto& entries = expect(dict, NodeKind::kDict, "SETITEMS target").entries;
    for (size_t i = 0; i < values.size(); i += 2) {
      entries.emplace_back(values[i], values[i + 1]);
    }
  }

  Global global_of(size_t id, const char* what) {
    return static_cast<Global>(expect(id, NodeKind::kGlobal, what).integer);
  }

  const std::vector<size_t>& tuple_args(size_t args, const std::string& callee, size_t min_size,
                                        size_t max_size) {
    const auto& items = expect(args, NodeKind::kTuple, "call arguments").items;
    if (items.size() < min_size || items.size() > max_size) {
      fail(callee + " called with " + std::to_string(items.size()) + " arguments");
    }
    return items;
  }

  size_t call(size_t callable, size_t args) {
    const Global global = global_of(callable, "REDUCE callable");
    const std::string name = node(callable).text;
    switch (global) {
      case Global::kOrderedDict:
        tuple_args(args, name, 0, 0);
        return make_kind(NodeKind::kDict);
      case Global::kRebuildTensorV2: {
        const auto items = tuple_args(args, name, 6, 7);
        return rebuild_tensor(items);
      }
      case Global::kRebuildTensor: {
        const auto items = tuple_args(args, name, 4, 4);
        return rebuild_tensor(items);
      }
      case Global::kRebuildParameter:
      case Global::kRebuildParameterWithState: {
        const size_t n = global == Global::kRebuildParameter ? 3 : 4;
        const size_t data = tuple_args(args, name, n, n)[0];
        expect(data, NodeKind::kTensor, "Parameter data");
        return data;  // a Parameter is its tensor here; requires_grad and hooks do not load
      }
      case Global::kCodecsEncode:
        return codecs_encode(tuple_args(args, name, 2, 2));
      case Global::kStorageType:
        fail("calling storage type " + printable(name) + " is not allowed");
      case Global::kNumpyReconstruct:
        return numpy_reconstruct(tuple_args(args, name, 3, 3));
      case Global::kNumpyFromBuffer:
        return numpy_frombuffer(tuple_args(args, name, 4, 4));
      case Global::kNumpyDtype:
        return numpy_dtype(tuple_args(args, name, 1, 3));
      case Global::kNumpyNdarray:
        fail("calling numpy.ndarray is not allowed (only as numpy's _reconstruct argument)");
    }
    fail("unknown global");
  }

  // ---- numpy arrays (UnpickleOptions::numpy_arrays) ----

  // Python 2's str loads as str, Python 3's bytes as bytes: numpy's type codes and data are
  // either, depending on which Python pickled them.
  const std::string& str_or_bytes(size_t id, const char* what) {
    const Node& n = node(id);
    if (n.kind != NodeKind::kString && n.kind != NodeKind::kBytes) {
      fail(std::string(what) + " must be of type str or bytes, got " + node_kind_name(n.kind));
    }
    return n.text;
  }

  bool truth(size_t id, const char* what) {
    const Node& n = node(id);
    if (n.kind == NodeKind::kBool) return n.boolean;
    return int_arg(id, what) != 0;  // Python 2 code may pickle flags as 0 and 1
  }

  // numpy.dtype('u1', False, True): the type code, whose byte order comes with the BUILD state.
  size_t numpy_dtype(std::vector<size_t> args) {
    const std::string code = str_or_bytes(args[0], "numpy dtype type code");
    for (size_t i = 0; i < std::size(kNumpyTypes); ++i) {
      if (code == kNumpyTypes[i].code) {
        Node n;
        n.kind = NodeKind::kDtype;
        n.text = code;
        n.storage_index = static_cast<int64_t>(i);
        return make(std::move(n));
      }
    }
    const std::string why = !code.empty() && code[0] == 'O' ? "an object array" : "not a number";
    fail("numpy dtype '" + printable(code) + "' is not supported (" + why +
         "; arrays load of bool, int8, uint8, int16, int32, int64, float16, float32, float64)");
  }

  // The dtype's state: (3, byte order, subarray, names, fields, elsize, alignment, flags), and
  // version 4 adds metadata. A plain number has no subarray, names or fields.
  void build_dtype(size_t dtype, size_t state) {
    const std::vector<size_t> items = expect(state, NodeKind::kTuple, "numpy dtype state").items;
    if (node(dtype).boolean) fail("numpy dtype state set twice");
    if (items.size() != 8 && items.size() != 9) {
      fail("numpy dtype state has " + std::to_string(items.size()) + " items, expected 8 or 9");
    }
    const int64_t version = int_arg(items[0], "numpy dtype state version");
    if (version != 3 && version != 4) {
      fail("numpy dtype state version " + std::to_string(version) + " is not supported");
    }
    for (size_t i = 2; i <= 4; ++i) {
      if (node(items[i]).kind != NodeKind::kNone) {
        fail("structured or subarray numpy dtypes are not supported (only plain numbers)");
      }
    }
    const NumpyType& type = kNumpyTypes[node(dtype).storage_index];
    const std::string order = str_or_bytes(items[1], "numpy dtype byte order");
    if (order == ">") {
      fail(std::string("big-endian numpy arrays ('>") + type.code +
           "') are not supported: convert with .astype('<" + type.code + "')");
    }
    if (order != "<" && !(order == "|" && type.itemsize == 1)) {
      fail("numpy dtype '" + std::string(type.code) + "' with byte order '" + printable(order) +
           "' is not supported (expected '<', or '|' for one-byte types)");
    }
    node(dtype).boolean = true;
  }

  // _reconstruct(numpy.ndarray, (0,), b'b'): an empty array that BUILD fills. Subclasses
  // (numpy.matrix, masked arrays) are other globals, refused by name.
  size_t numpy_reconstruct(std::vector<size_t> args) {
    const Node& cls = node(args[0]);
    if (cls.kind != NodeKind::kGlobal ||
        static_cast<Global>(cls.integer) != Global::kNumpyNdarray) {
      fail("numpy _reconstruct of " +
           (cls.kind == NodeKind::kGlobal ? printable(cls.text) : node_kind_name(cls.kind)) +
           ", not numpy.ndarray");
    }
    expect(args[1], NodeKind::kTuple, "numpy _reconstruct shape");
    str_or_bytes(args[2], "numpy _reconstruct type code");
    return make_kind(NodeKind::kArray);
  }

  // ndarray's state: (1, shape, dtype, is_fortran, data); numpy also reads it without the
  // version.
  void build_array(size_t array, size_t state) {
    std::vector<size_t> items = expect(state, NodeKind::kTuple, "numpy array state").items;
    if (node(array).boolean) fail("numpy array state set twice");
    if (items.size() == 5) {
      const int64_t version = int_arg(items[0], "numpy array state version");
      if (version != 1) {
        fail("numpy array state version " + std::to_string(version) + " is not supported");
      }
      items.erase(items.begin());
    } else if (items.size() != 4) {
      fail("numpy array state has " + std::to_string(items.size()) + " items, expected 5");
    }
    if (truth(items[2], "numpy array is_fortran")) {
      fail("Fortran-order numpy arrays are not supported: save np.ascontiguousarray(a)");
    }
    torch::Tensor tensor = numpy_tensor(items[0], items[1], items[3]);
    node(array).tensor = std::move(tensor);
    node(array).boolean = true;
  }

  // _frombuffer(data, dtype, shape, order): protocol 5's form of a contiguous array.
  size_t numpy_frombuffer(std::vector<size_t> args) {
    const std::string order = str_or_bytes(args[3], "numpy _frombuffer order");
    if (order == "F") {
      fail("Fortran-order numpy arrays are not supported: save np.ascontiguousarray(a)");
    }
    if (order != "C") fail("numpy _frombuffer order '" + printable(order) + "' is not supported");
    Node n;
    n.kind = NodeKind::kArray;
    n.tensor = numpy_tensor(args[2], args[1], args[0]);
    n.boolean = true;
    return make(std::move(n));
  }

  // The array's bytes copied into a tensor of its shape, after checking that they are exactly
  // what shape and dtype need. Makes no node, so references into the arena stay valid.
  torch::Tensor numpy_tensor(size_t shape_id, size_t dtype_id, size_t data_id) {
    const std::vector<int64_t> shape = int_tuple(shape_id, "numpy array shape");
    const Node& dtype = expect(dtype_id, NodeKind::kDtype, "numpy array dtype");
    if (!dtype.boolean) fail("numpy dtype used before its state was set");
    const NumpyType& type = kNumpyTypes[dtype.storage_index];
    if (node(data_id).kind == NodeKind::kList) {
      fail("numpy object arrays are not supported (only plain numbers)");
    }
    const std::string& data = str_or_bytes(data_id, "numpy array data");
    if (shape.size() > 64) fail("numpy array has " + std::to_string(shape.size()) + " dimensions");
    uint64_t nbytes = type.itemsize;
    for (int64_t size : shape) {
      if (size < 0) fail("numpy array has a negative size");
      if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(size), &nbytes)) {
        fail("numpy array size overflows");
      }
    }
    if (nbytes != data.size()) {
      fail("numpy array of shape " + shape_text(shape) + " and dtype '" + type.code + "' needs " +
           std::to_string(nbytes) + " bytes, its data holds " + std::to_string(data.size()));
    }
    // Each array's bytes are in the pickle; one shared data string built into many arrays is
    // not how numpy writes, and would let a small file fill the memory.
    if (nbytes > bytes_.size() - array_bytes_) {
      fail("numpy arrays hold more bytes than the pickle");
    }
    array_bytes_ += nbytes;
    if (type.type == torch::kBool && data.find_first_not_of(std::string("\0\1", 2)) != data.npos) {
      fail("numpy bool array holds a byte other than 0 or 1");
    }
    if (scan_only_) return {};
    torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(type.type));
    if (nbytes > 0) std::memcpy(tensor.data_ptr(), data.data(), nbytes);
    return tensor;
  }

  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string out = "(";
    for (size_t i = 0; i < shape.size(); ++i) {
      out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
    }
    return out + (shape.size() == 1 ? ",)" : ")");
  }

  // _codecs.encode(text, 'latin1'): each code point of the UTF-8 text becomes one byte.
  size_t codecs_encode(const std::vector<size_t>& items) {
    const std::string& text = expect(items[0], NodeKind::kString, "_codecs.encode text").text;
    const std::string& encoding =
        expect(items[1], NodeKind::kString, "_codecs.encode encoding").text;
    if (encoding != "latin1" && encoding != "latin-1") {
      fail("_codecs.encode with encoding '" + printable(encoding) + "' is not supported");
    }
    Node out;
    out.kind = NodeKind::kBytes;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x80) {
        out.text += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && i + 1 < text.size() && c <= 0xc3) {
        out.text += static_cast<char>(((c & 0x03) << 6) | (text[++i] & 0x3f));
      } else {
        fail("_codecs.encode: text is not latin-1");
      }
    }
    return make(std::move(out));
  }

  int64_t int_arg(size_t id, const char* what) { return expect(id, NodeKind::kInt, what).integer; }

  std::vector<int64_t> int_tuple(size_t id, const char* what) {
    std::vector<int64_t> out;
    for (size_t item : expect(id, NodeKind::kTuple, what).items) {
      out.push_back(int_arg(item, what));
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
  // [, metadata]); _rebuild_tensor has the first four. The view is copied out of the storage so
  // that the result owns compact memory and nothing aliases the file's buffer.
  size_t rebuild_tensor(const std::vector<size_t>& args) {
    const Node& storage = expect(args[0], NodeKind::kStorage, "tensor storage");
    const int64_t offset = int_arg(args[1], "storage offset");
    const std::vector<int64_t> sizes = int_tuple(args[2], "tensor size");
    const std::vector<int64_t> strides = int_tuple(args[3], "tensor stride");
    if (sizes.size() != strides.size()) {
      fail("tensor has " + std::to_string(sizes.size()) + " sizes but " +
           std::to_string(strides.size()) + " strides");
    }
    if (sizes.size() > 64) {
      fail("tensor has " + std::to_string(sizes.size()) + " dimensions");
    }
    if (offset < 0) {
      fail("negative storage offset");
    }
    const int64_t storage_numel = storage.integer;
    int64_t numel = 1;
    int64_t last = offset;  // index of the last element the view reaches
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] < 0 || strides[d] < 0) {
        fail("negative tensor size or stride");
      }
      if (__builtin_mul_overflow(numel, sizes[d], &numel)) {
        fail("tensor size overflows");
      }
    }
    // A zero size makes numel 0 whatever the others are, but torch::empty still multiplies them
    // into contiguous strides: [0, 2^62, 2^62] would overflow those (the fuzz target's check), and
    // safetensors readers refuse such a shape, so `advft convert` could not write it either.
    int64_t extent = static_cast<int64_t>(kStorageTypes[storage.storage_index].itemsize);
    for (int64_t size : sizes) {
      if (__builtin_mul_overflow(extent, std::max<int64_t>(size, 1), &extent)) {
        fail("tensor size overflows");
      }
    }
    if (numel > 0) {
      for (size_t d = 0; d < sizes.size(); ++d) {
        int64_t reach = 0;
        if (__builtin_mul_overflow(sizes[d] - 1, strides[d], &reach) ||
            __builtin_add_overflow(last, reach, &last)) {
          fail("tensor view overflows");
        }
      }
      if (last >= storage_numel) {
        fail("tensor view (offset " + std::to_string(offset) + ", reaching element " +
             std::to_string(last) + ") lies outside its storage '" + printable(storage.text) +
             "' of " + std::to_string(storage_numel) + " elements");
      }
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel),
                               kStorageTypes[storage.storage_index].itemsize, &nbytes) ||
        nbytes > kExpansionFactor * storage_bytes_ + kSlackBytes - tensor_bytes_) {
      fail("tensor views expand to far more memory than their storages hold");
    }
    tensor_bytes_ += nbytes;
    Node out;
    out.kind = NodeKind::kTensor;
    if (scan_only_) return make(std::move(out));
    out.tensor = torch::empty(sizes, storage.tensor.options());
    if (numel > 0) {
      // as_strided's offset counts from the start of the memory, where a view's tensor
      // (legacy storage views) does not begin.
      out.tensor.copy_(
          storage.tensor.as_strided(sizes, strides, storage.tensor.storage_offset() + offset));
    }
    return make(std::move(out));
  }

  // ('storage', torch.<Type>Storage, key, location, numel): the zip format's persistent id. The
  // legacy format adds a sixth item: None, or (view_key, offset, numel) when the pickle holds a
  // view into the storage (PyTorch before 0.4 saved those; its tensors then rebuild from views).
  size_t persistent_load(size_t pid) {
    // A copy: making nodes below may move the arena the items live in.
    const std::vector<size_t> items = expect(pid, NodeKind::kTuple, "persistent id").items;
    if ((items.size() != 5 && items.size() != 6) || node(items[0]).kind != NodeKind::kString ||
        node(items[0]).text != "storage") {
      fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    }
    if (global_of(items[1], "storage type") != Global::kStorageType) {
      fail("persistent id names " + printable(node(items[1]).text) + ", not a storage type");
    }
    const auto type_index = node(items[1]).storage_index;
    const std::string key = expect(items[2], NodeKind::kString, "storage key").text;
    expect(items[3], NodeKind::kString, "storage location");  // cpu, cuda:0...: all load on CPU
    const int64_t numel = int_arg(items[4], "storage size");
    if (numel < 0) {
      fail("storage '" + printable(key) + "' has a negative size");
    }
    const size_t storage = root_storage(type_index, key, numel);
    if (items.size() == 5 || node(items[5]).kind == NodeKind::kNone) {
      return storage;
    }
    return storage_view(storage, items[5]);
  }

  size_t root_storage(int64_t type_index, const std::string& key, int64_t numel) {
    const StorageType& type = kStorageTypes[type_index];
    const auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      const Node& known = node(cached->second);
      if (known.storage_index != type_index || known.integer != numel) {
        fail("storage '" + printable(key) + "' is referenced with two different types or sizes");
      }
      return cached->second;
    }
    Node n;
    n.kind = NodeKind::kStorage;
    n.text = key;
    n.storage_index = type_index;
    n.integer = numel;
    const uint64_t nbytes = static_cast<uint64_t>(numel) * type.itemsize;
    if (scan_only_) {
      // The bytes come after the pickle, so they cannot be counted yet; no storage can be larger
      // than the file, which also keeps the byte counts below from overflowing.
      if (static_cast<uint64_t>(numel) > bytes_.size() / type.itemsize) {
        fail("storage '" + printable(key) + "' claims " + std::to_string(numel) + " elements of " +
             std::to_string(type.itemsize) + " bytes, more than the file holds");
      }
      refs_.push_back({key, type.type, numel});
    } else {
      n.tensor = load_storage_bytes(type, key, numel);
    }
    storage_bytes_ += nbytes;
    const size_t id = make(std::move(n));
    storages_.emplace(key, id);
    return id;
  }

  torch::Tensor load_storage_bytes(const StorageType& type, const std::string& key, int64_t numel) {
    if (!load_storage_) {
      fail("pickle refers to storage '" + printable(key) + "' but no archive holds storages");
    }
    const std::string_view data = load_storage_(key);
    if (static_cast<uint64_t>(numel) > data.size() / type.itemsize) {
      fail("storage '" + printable(key) + "' holds " + std::to_string(data.size()) +
           " bytes, but the pickle claims " + std::to_string(numel) + " elements of " +
           std::to_string(type.itemsize) + " bytes");
    }
    const uint64_t nbytes = static_cast<uint64_t>(numel) * type.itemsize;
    if (type.type == torch::kBool) {
      for (uint64_t i = 0; i < nbytes; ++i) {
        if (static_cast<unsigned char>(data[i]) > 1) {
          fail("bool storage '" + printable(key) + "' holds a byte other than 0 or 1");
        }
      }
    }
    const auto options = torch::TensorOptions().dtype(type.type);
    // torch.save aligns zip records to 64 bytes, so this normally views the file without a copy;
    // only an unaligned record (a legacy file, another writer, a crafted file) is copied first.
    if (reinterpret_cast<uintptr_t>(data.data()) % type.itemsize == 0) {
      return torch::from_blob(const_cast<char*>(data.data()), {numel}, options);
    }
    torch::Tensor out = torch::empty({numel}, options);
    // An empty tensor has no buffer (data_ptr() is null): memcpy must not see it.
    if (nbytes > 0) std::memcpy(out.data_ptr(), data.data(), nbytes);
    return out;
  }

  // (view_key, offset, numel): elements [offset, offset + numel) of `storage`, one storage of
  // its own to the pickle (a view key named again is the same view, as in torch.load).
  size_t storage_view(size_t storage, size_t view_id) {
    const std::vector<size_t> view = expect(view_id, NodeKind::kTuple, "storage view").items;
    if (view.size() != 3) {
      fail("storage view must be (key, offset, size), got " + std::to_string(view.size()) +
           " items");
    }
    const std::string key = expect(view[0], NodeKind::kString, "storage view key").text;
    const int64_t offset = int_arg(view[1], "storage view offset");
    const int64_t numel = int_arg(view[2], "storage view size");
    const auto cached = views_.find(key);
    if (cached != views_.end()) {
      return cached->second;
    }
    Node n = node(storage);  // its type and key; the elements are narrowed below
    if (offset < 0 || numel < 0 || offset > n.integer - numel) {
      fail("storage view '" + printable(key) + "' (offset " + std::to_string(offset) + ", " +
           std::to_string(numel) + " elements) lies outside its storage '" + printable(n.text) +
           "' of " + std::to_string(n.integer) + " elements");
    }
    n.text = key;
    n.integer = numel;
    if (n.tensor.defined()) n.tensor = n.tensor.narrow(0, offset, numel);
    const size_t id = make(std::move(n));
    views_.emplace(key, id);
    return id;
  }

  // The arena graph to an owned tree; the depth limit also stops cycles, the budget stops
  // shared sub-structures that would multiply when copied out.
  PickleValue convert(size_t id, int depth) {
    if (depth > kMaxDepth) {
      fail("values nested deeper than " + std::to_string(kMaxDepth) + " levels (or a cycle)");
    }
    if (budget_ == 0) {
      fail("pickle shares values too many times");
    }
    --budget_;
    const Node& n = nodes_[id];
    PickleValue out;
    switch (n.kind) {
      case NodeKind::kNone:
        out.kind = PickleValue::Kind::kNone;
        break;
      case NodeKind::kBool:
        out.kind = PickleValue::Kind::kBool;
        out.boolean = n.boolean;
        break;
      case NodeKind::kInt:
        out.kind = PickleValue::Kind::kInt;
        out.integer = n.integer;
        break;
      case NodeKind::kFloat:
        out.kind = PickleValue::Kind::kFloat;
        out.real = n.real;
        break;
      case NodeKind::kString:
      case NodeKind::kBytes:
        out.kind =
            n.kind == NodeKind::kString ? PickleValue::Kind::kString : PickleValue::Kind::kBytes;
        out.text = n.text;
        break;
      case NodeKind::kTuple:
      case NodeKind::kList:
        out.kind =
            n.kind == NodeKind::kTuple ? PickleValue::Kind::kTuple : PickleValue::Kind::kList;
        for (size_t item : n.items) {
          out.items.push_back(convert(item, depth + 1));
        }
        break;
      case NodeKind::kDict: {
        out.kind = PickleValue::Kind::kDict;
        // Python keeps the first position and the last value of a repeated key.
        std::map<std::string, size_t> string_keys;
        std::map<std::string, size_t> bytes_keys;  // b'a' is not 'a' in Python 3
        std::map<int64_t, size_t> int_keys;
        for (const auto& [key_id, value_id] : n.entries) {
          PickleValue key = convert(key_id, depth + 1);
          PickleValue value = convert(value_id, depth + 1);
          size_t* seen = nullptr;
          if (key.kind == PickleValue::Kind::kString || key.kind == PickleValue::Kind::kBytes) {
            auto& keys = key.kind == PickleValue::Kind::kString ? string_keys : bytes_keys;
            const auto [it, fresh] = keys.emplace(key.text, out.entries.size());
            seen = fresh ? nullptr : &it->second;
          } else if (key.kind == PickleValue::Kind::kInt) {
            const auto [it, fresh] = int_keys.emplace(key.integer, out.entries.size());
            seen = fresh ? nullptr : &it->second;
          }
          if (seen != nullptr) {
            out.entries[*seen].value = std::move(value);
          } else {
            out.entries.push_back(PickleDictEntry{std::move(key), std::move(value)});
          }
        }
        break;
      }
      case NodeKind::kTensor:
        out.kind = PickleValue::Kind::kTensor;
        out.tensor = n.tensor;
        break;
      case NodeKind::kGlobal:
        fail("the pickle holds the global " + printable(n.text) + " itself as a value");
      case NodeKind::kStorage:
        fail("the pickle holds a bare storage, not a tensor");
      case NodeKind::kDtype:
        fail("the pickle holds a numpy dtype by itself, not an array");
      case NodeKind::kArray:
        if (!n.boolean) fail("the pickle holds a numpy array without its state (no BUILD)");
        out.kind = PickleValue::Kind::kTensor;
        out.tensor = n.tensor;
        break;
    }
    return out;
  }

  std::string_view bytes_;
  const std::string& source_;
  const StorageLoader& load_storage_;
  const UnpickleOptions options_;
  const bool scan_only_;
  size_t pos_ = 0;
  size_t length_ = 0;
  size_t op_pos_ = 0;
  std::vector<Node> nodes_;
  std::vector<size_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, size_t> memo_;
  std::unordered_map<std::string, size_t> storages_;
  std::unordered_map<std::string, size_t> views_;
  std::vector<StorageRef> refs_;
  uint64_t storage_bytes_ = 0;
  uint64_t tensor_bytes_ = 0;
  uint64_t array_bytes_ = 0;  // of numpy arrays' data
  uint64_t budget_ = 0;
};

}  // namespace

const char* storage_type_name(torch::ScalarType type) {
  for (const auto& storage : kStorageTypes) {
    if (storage.type == type) return storage.name;
  }
  return nullptr;
}

const PickleValue* PickleValue::find(const std::string& key) const {
  if (kind != Kind::kDict) {
    return nullptr;
  }
  for (const auto& entry : entries) {
    if (entry.key.kind == Kind::kString && entry.key.text == key) {
      return &entry.value;
    }
  }
  return nullptr;
}

const PickleValue* PickleValue::find_str_or_bytes(const std::string& key) const {
  if (kind != Kind::kDict) {
    return nullptr;
  }
  for (const auto& entry : entries) {
    if ((entry.key.kind == Kind::kString || entry.key.kind == Kind::kBytes) &&
        entry.key.text == key) {
      return &entry.value;
    }
  }
  return nullptr;
}

const char* PickleValue::kind_name() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kTensor:
      return "tensor";
  }
  return "?";
}

PickleValue unpickle(std::string_view bytes, const std::string& source,
                     const StorageLoader& load_storage, size_t* length,
                     const UnpickleOptions& options) {
  Unpickler unpickler(bytes, source, load_storage, options);
  PickleValue value = unpickler.run();
  if (length != nullptr) *length = unpickler.length();
  return value;
}

PickleScan scan_pickle(std::string_view bytes, const std::string& source) {
  const StorageLoader none;  // never called when scanning
  Unpickler unpickler(bytes, source, none, UnpickleOptions{}, /*scan_only=*/true);
  unpickler.run();
  return {unpickler.length(), std::move(unpickler.storage_refs())};
}

}  // namespace advft::io
