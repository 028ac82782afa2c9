#pragma once
// Reading PyTorch torch.save files (the zip format of PyTorch >= 1.6 and the legacy format before
// it) without Python and without running anything they name: the state_dict inside, wherever
// common training code put it.
#include <string>
#include <vector>

#include "advft/io/pickle.h"
#include "advft/io/safetensors.h"

namespace advft::io {

/// The state_dict found in a torch.save file.
struct TorchFileContent {
  /// The flattened state_dict in file order: CPU tensors that own their memory, names with any
  /// common `module.` / `model.` prefix removed.
  std::vector<NamedTensor> tensors;
  /// Top-level keys whose values hold tensors (what `key` may name); empty for a bare state_dict.
  std::vector<std::string> candidate_keys;
  /// The top-level key the state_dict came from; empty when the file is the state_dict itself.
  std::string chosen_key;
  /// The prefix removed from every name (e.g. "module."), empty when none.
  std::string stripped_prefix;
  /// Whether the file is in torch.save's legacy format (before PyTorch 1.6), not a zip archive.
  bool legacy = false;
};

/// Removes a `module.` (DataParallel/DDP) or `model.` (RobustBench-style wrapper) prefix that
/// every name shares, repeatedly (module.model.x -> x), and returns what it removed ("" if none).
std::string strip_wrapper_prefixes(std::vector<NamedTensor>& tensors);

/// Finds the state_dict in a decoded torch.save object: under `key` when given; else the object
/// itself when all its values are tensors; else the first of state_dict, model_state_dict, model,
/// net, ema, state_dict_ema, module holding tensors; else the only top-level value holding
/// tensors; else, when no value is a dict holding tensors, the object itself if it holds some.
/// Nested dicts of tensors flatten with dots, other values are skipped, and a `module.`
/// (DataParallel/DDP) or `model.` prefix shared by every name is removed. Throws
/// advft::CheckpointError naming `source` and listing the keys when nothing fits.
TorchFileContent find_state_dict(const PickleValue& root, const std::string& source,
                                 const std::string& key = "");

/// Decodes the bytes of a torch.save file, a zip archive or the legacy format of PyTorch before
/// 1.6, and returns its state_dict (see find_state_dict); `source` (usually the path) is named
/// in every error. Storages of float32, float16, bfloat16, float64, int64, int32, int16, int8,
/// uint8 and bool, views with offsets and strides, and shared storages load; every other global
/// refuses to load. A TorchScript archive, a file saved on a big-endian machine, the tar format
/// of PyTorch before 0.1.10 or any malformed file throws advft::CheckpointError naming
/// `source`; nothing in the file is executed.
TorchFileContent decode_torch_file(std::string bytes, const std::string& source,
                                   const std::string& key = "");

/// Reads `path` and decodes it with decode_torch_file; a missing file is a CheckpointError too.
TorchFileContent read_torch_file(const std::string& path, const std::string& key = "");

}  // namespace advft::io
