#pragma once
// The Hugging Face safetensors format: 8-byte little-endian header length N, N bytes of JSON
// header (padded with spaces to a multiple of 8), then one byte buffer that the header's
// data_offsets index into. advft writes its checkpoints in it because every framework reads it
// and, unlike pickle, reading it can be made safe against hostile files.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace advft::io {

/// One tensor with the name it is stored under.
struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

/// What a safetensors file holds.
struct SafetensorsContent {
  /// Tensors in the order of their data in the file's byte buffer.
  std::vector<NamedTensor> tensors;
  /// The header's "__metadata__" (string -> string); empty when the file has none.
  std::map<std::string, std::string> metadata;
};

/// Serializes tensors (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL; any device, any
/// strides) and metadata to safetensors bytes. Tensors are laid out widest dtype first (stable
/// otherwise), as the reference implementation does, so each one is aligned to its element size.
/// Throws advft::Error on duplicate names, the reserved name "__metadata__" or an unsupported
/// dtype.
std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

/// Parses safetensors bytes; `source_name` (usually the path) is named in every error. Safe on
/// hostile input: any malformed, truncated or lying file throws advft::CheckpointError, and no
/// allocation exceeds what the bytes can back. Returned tensors are CPU and own their memory.
SafetensorsContent decode_safetensors(const std::string& bytes, const std::string& source_name);

/// encode_safetensors + write_file_atomic.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Reads and decodes `path`; a missing or unreadable file is a CheckpointError as well.
SafetensorsContent read_safetensors(const std::string& path);

}  // namespace advft::io
