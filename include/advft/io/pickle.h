#pragma once
// A restricted unpickler for the data.pkl of torch.save files. Python's pickle is a small stack
// machine that can call any importable function; this one knows only plain values, OrderedDict,
// the storage types and the tensor rebuild functions, and refuses every other global by name,
// as PyTorch's torch.load(weights_only=True) does: loading a checkpoint must never run code.
// Data set files (CIFAR's python release) may opt in to numpy arrays, which it recognizes by the
// exact shape of numpy's own pickling and rebuilds without calling anything.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace advft::io {

struct PickleDictEntry;

/// One Python value of the subset checkpoints use, as an owned tree (no cycles, bounded depth).
struct PickleValue {
  /// The Python type; sets become kList, OrderedDict and dict both kDict, Parameter kTensor.
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kTensor };

  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                      ///< kString (UTF-8 as pickled) and kBytes
  std::vector<PickleValue> items;        ///< kTuple and kList
  std::vector<PickleDictEntry> entries;  ///< kDict, in insertion order, keys unique
  torch::Tensor tensor;                  ///< kTensor: CPU, contiguous, owns its memory

  /// The value of a kDict entry whose key is the string `key`, or nullptr.
  const PickleValue* find(const std::string& key) const;

  /// As find, but a bytes key with the same bytes matches too: Python 2's str keys (CIFAR's
  /// b'data') load as str, and as bytes once Python 3 has re-pickled them.
  const PickleValue* find_str_or_bytes(const std::string& key) const;

  /// The Python-ish name of the kind ("dict", "tensor", "int", ...), for messages.
  const char* kind_name() const;
};

/// One key/value pair of a dict.
struct PickleDictEntry {
  PickleValue key;
  PickleValue value;
};

/// The torch.<Name>Storage class torch.save files name for `type` ("FloatStorage" for float32),
/// or nullptr for a dtype outside the ten the unpickler reads.
const char* storage_type_name(torch::ScalarType type);

/// Returns the raw bytes of the storage record `key` (archive/data/<key> in a torch.save zip, the
/// record after the pickles in a legacy file); the view must stay valid until unpickle returns.
/// Throws advft::CheckpointError when missing.
using StorageLoader = std::function<std::string_view(const std::string& key)>;

/// What unpickle accepts beyond a checkpoint's values, and whose errors it raises.
struct UnpickleOptions {
  /// Also rebuild numpy arrays of plain numeric dtypes (bool, int8-int64, uint8, float16-float64;
  /// little-endian, C order) as kTensor: numpy.core.multiarray._reconstruct(numpy.ndarray, ...)
  /// with its BUILD state, or protocol 5's numpy.core.numeric._frombuffer, and numpy.dtype
  /// (numpy 2's numpy._core too). Off by default: checkpoints refuse numpy's globals, as
  /// torch.load(weights_only=True) does.
  bool numpy_arrays = false;
  /// The bytes are a data set file: errors are advft::DataError, and a refused global reads
  /// "...: loading a data file must never run code".
  bool data_file = false;
};

/// Unpickles the pickle at the start of `bytes` (protocol 2 as torch.save writes it; the binary
/// opcodes of protocols 1-5 that plain data uses are accepted too) up to its STOP opcode, and
/// stores in `length`, when given, how many bytes that took. Storages named by persistent ids
/// ('storage', torch.<Type>Storage, key, location, numel; the legacy format adds a sixth item,
/// None or a view (view_key, offset, numel) into the storage) come from `load_storage` (once
/// per key: views of one storage share it) and tensors are rebuilt from them with their offset,
/// size and stride, range-checked. Any other global, opcode or malformed input throws
/// advft::CheckpointError "<source>: ..."; a refused global reads
/// "<source>: refuses to load global os.system: loading a checkpoint must never run code".
/// `options` widens what loads (see UnpickleOptions); the defaults are a checkpoint's.
PickleValue unpickle(std::string_view bytes, const std::string& source,
                     const StorageLoader& load_storage, size_t* length = nullptr,
                     const UnpickleOptions& options = {});

/// A storage that a pickle's persistent ids name.
struct StorageRef {
  std::string key;
  torch::ScalarType type = torch::kFloat32;
  int64_t numel = 0;
};

/// What the pickle at the start of some bytes refers to, found without building its values.
struct PickleScan {
  /// The bytes it takes, through its STOP opcode.
  size_t length = 0;
  /// The storages its persistent ids name (for a view, the storage it views), first-named first.
  std::vector<StorageRef> storages;
};

/// Runs the pickle at the start of `bytes` with unpickle's checks but no storage bytes and no
/// tensors built: a legacy torch.save file keeps its storages after the pickle, each sized by the
/// type only the pickle names. A storage claiming more bytes than `bytes` holds is an error.
PickleScan scan_pickle(std::string_view bytes, const std::string& source);

}  // namespace advft::io
