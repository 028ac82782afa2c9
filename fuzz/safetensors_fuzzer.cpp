// libFuzzer target: arbitrary bytes as a safetensors file. Whatever decodes must also survive
// a round trip through encode_safetensors unchanged, which checks that the decoder returned
// consistent tensors (right dtype, shape and bytes), not merely that it did not crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "advft/io/safetensors.h"
#include "fuzz_util.h"

namespace {

using advft::io::NamedTensor;
using advft::io::SafetensorsContent;

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || !a.sizes().equals(b.sizes())) return false;
  const auto nbytes = static_cast<size_t>(a.numel()) * a.element_size();
  return nbytes == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), nbytes) == 0;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "safetensors round trip: %s\n", what.c_str());
  std::abort();
}

void check_round_trip(const SafetensorsContent& first) {
  for (const auto& t : first.tensors) {
    if (!t.tensor.defined() || !t.tensor.is_contiguous() || !t.tensor.device().is_cpu()) {
      fail("tensor '" + t.name + "' is not a defined, contiguous CPU tensor");
    }
  }
  const SafetensorsContent second = advft::io::decode_safetensors(
      advft::io::encode_safetensors(first.tensors, first.metadata), advft::fuzz::kSourceName);
  if (second.metadata != first.metadata) fail("metadata changed");
  if (second.tensors.size() != first.tensors.size()) fail("tensor count changed");
  for (const NamedTensor& a : first.tensors) {
    bool found = false;
    for (const NamedTensor& b : second.tensors) {
      if (b.name == a.name) {
        found = true;
        if (!same_bytes(a.tensor, b.tensor)) fail("tensor '" + a.name + "' changed");
      }
    }
    if (!found) fail("tensor '" + a.name + "' was lost");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  advft::fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  advft::fuzz::expect_success_or_checkpoint_error(
      [&] { check_round_trip(advft::io::decode_safetensors(bytes, advft::fuzz::kSourceName)); });
  return 0;
}
