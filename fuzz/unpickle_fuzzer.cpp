// libFuzzer target: arbitrary bytes as the data.pkl of a torch.save archive. Storages come from
// one fixed buffer, so that tensor rebuilding (offsets, sizes, strides, dtypes) is reachable
// without the fuzzer having to build a zip archive around the pickle. Every tensor that loads
// must also be one `advft convert` can write to safetensors and read back unchanged. The same
// bytes are then read as a data file, with numpy arrays allowed (CIFAR's python release).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "advft/io/pickle.h"
#include "advft/io/safetensors.h"
#include "advft/io/torch_file.h"
#include "fuzz_util.h"

namespace {

constexpr size_t kStorageBytes = 4096;

// 0/1 bytes first (a bool storage must hold nothing else, so small bool storages load), then a
// spread of values so float storages see zeros, normals, NaNs and infinities.
struct StorageBuffer {
  alignas(64) char bytes[kStorageBytes + 1];
  StorageBuffer() {
    for (size_t i = 0; i < sizeof bytes; ++i) {
      bytes[i] = static_cast<char>(i < 256 ? i % 2 : (i * 37) ^ (i >> 3));
    }
  }
};

const StorageBuffer& storage_buffer() {
  static const StorageBuffer buffer;
  return buffer;
}

// torch.save names records "0", "1", ...: those view the aligned buffer. Keys starting with 'u'
// view it one byte in, so the copy path for unaligned records runs too; other keys are missing
// records, as in a damaged archive.
std::string_view load_storage(const std::string& key) {
  const char* bytes = storage_buffer().bytes;
  if (!key.empty() && key[0] >= '0' && key[0] <= '9') {
    return std::string_view(bytes, kStorageBytes);
  }
  if (!key.empty() && key[0] == 'u') {
    return std::string_view(bytes + 1, kStorageBytes);
  }
  throw advft::CheckpointError(advft::fuzz::kSourceName + ": storage record '" + key +
                               "' is missing");
}

// Names are replaced by t0, t1, ...: a pickle's keys need not be UTF-8, which safetensors
// requires; the tensors themselves (dtype, shape, bytes) must always be representable.
void check_convertible(const std::vector<advft::io::NamedTensor>& tensors) {
  std::vector<advft::io::NamedTensor> renamed;
  for (const auto& t : tensors) {
    renamed.push_back({"t" + std::to_string(renamed.size()), t.tensor});
  }
  advft::io::SafetensorsContent back;
  try {
    back = advft::io::decode_safetensors(advft::io::encode_safetensors(renamed), "converted");
  } catch (const advft::Error& e) {
    std::fprintf(stderr, "a loaded state_dict does not convert to safetensors: %s\n", e.what());
    std::abort();
  }
  for (size_t i = 0; i < renamed.size(); ++i) {
    const torch::Tensor& a = renamed[i].tensor;
    const torch::Tensor* b = nullptr;
    for (const auto& t : back.tensors) {
      if (t.name == renamed[i].name) b = &t.tensor;
    }
    const size_t nbytes = static_cast<size_t>(a.numel()) * a.element_size();
    if (b == nullptr || b->scalar_type() != a.scalar_type() || !b->sizes().equals(a.sizes()) ||
        (nbytes > 0 && std::memcmp(a.data_ptr(), b->data_ptr(), nbytes) != 0)) {
      std::fprintf(stderr, "tensor '%s' does not survive conversion to safetensors\n",
                   tensors[i].name.c_str());
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  advft::fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view pickle(reinterpret_cast<const char*>(data), size);
  advft::fuzz::expect_success_or_checkpoint_error([&] {
    const advft::io::PickleValue root =
        advft::io::unpickle(pickle, advft::fuzz::kSourceName, load_storage);
    // What the loader does next with the value: finding and flattening the state_dict.
    check_convertible(advft::io::find_state_dict(root, advft::fuzz::kSourceName).tensors);
  });
  // The same bytes as a data file (a CIFAR python batch), where numpy arrays load: its errors
  // are DataErrors naming the file.
  advft::fuzz::expect_success_or_error<advft::DataError>([&] {
    advft::io::UnpickleOptions options;
    options.numpy_arrays = true;
    options.data_file = true;
    advft::io::unpickle(pickle, advft::fuzz::kSourceName, nullptr, nullptr, options);
  });
  return 0;
}
