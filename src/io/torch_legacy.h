#pragma once
// torch.save's format before PyTorch 1.6, which 1.6 and later still write when asked
// (_use_new_zipfile_serialization=False) and in which many of the field's released robust
// checkpoints (TRADES, fast-AT, robust overfitting, early RobustBench entries) were saved: five
// pickles in a row (a magic number, the protocol version 1001, the saving machine's byte order
// and type sizes, the object, the sorted list of storage keys), then for each key in that order
// the storage's element count (int64) and its raw bytes.
#include <string>
#include <string_view>

#include "advft/io/pickle.h"

namespace advft::io::detail {

/// Whether `bytes` start with the legacy format's pickled magic number (protocols 2 to 5).
bool is_legacy_torch_save(std::string_view bytes);

/// Decodes a legacy torch.save file into the object it holds, under unpickle's rules (no global
/// but the tensor rebuilders, OrderedDict and the storage types; nothing is executed). A record
/// whose element count differs from the pickle's, a record or storage missing, a file saved on a
/// big-endian machine or cut short throws advft::CheckpointError naming `source`.
PickleValue decode_legacy_torch_save(std::string_view bytes, const std::string& source);

}  // namespace advft::io::detail
