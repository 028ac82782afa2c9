#pragma once
// Writing torch.save files that Python users load with torch.load(path) — also with
// weights_only=True — and then model.load_state_dict(...): a zip archive holding a protocol-2
// pickle of an OrderedDict of tensors and one storage record per tensor, as PyTorch writes it.
#include <string>
#include <vector>

#include "advft/io/safetensors.h"

namespace advft::io {

/// The bytes of a torch.save file holding `tensors` as an OrderedDict in the given order (any
/// device, layout or dtype among float32/16, bfloat16, float64, int64/32/16/8, uint8 and bool;
/// stored contiguous on the CPU). Throws advft::Error on another dtype or duplicate names.
std::string encode_torch_save(const std::vector<NamedTensor>& tensors);

/// encode_torch_save + write_file_atomic.
void write_torch_save(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace advft::io
