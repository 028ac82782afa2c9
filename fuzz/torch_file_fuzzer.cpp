// libFuzzer target: arbitrary bytes as a whole torch.save file (zip directory, records, byte
// order, data.pkl and storages together). The seeds include archives whose CRCs are 0, which
// the reader accepts unchecked, so that mutations inside records get past the zip layer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "advft/io/torch_file.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  advft::fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  advft::fuzz::expect_success_or_checkpoint_error(
      [&] { advft::io::decode_torch_file(std::move(bytes), advft::fuzz::kSourceName); });
  return 0;
}
