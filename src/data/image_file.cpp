#include "advft/data/image_file.h"

#include <algorithm>
#include <cstdint>

#include "advft/data/jpeg.h"
#include "advft/data/png.h"
#include "advft/error.h"
#include "advft/io/atomic_file.h"

namespace advft::data {
namespace {

bool starts_with(const std::string& bytes, std::initializer_list<uint8_t> magic) {
  return bytes.size() >= magic.size() &&
         std::equal(magic.begin(), magic.end(), bytes.begin(),
                    [](uint8_t m, char b) { return m == static_cast<uint8_t>(b); });
}

}  // namespace

torch::Tensor decode_image(const std::string& bytes, const std::string& path) {
  if (starts_with(bytes, {0xFF, 0xD8, 0xFF})) return decode_jpeg(bytes, path);
  if (starts_with(bytes, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}))
    return decode_png(bytes, path);
  throw DataError(path + ": neither a JPEG nor a PNG image (" + std::to_string(bytes.size()) +
                  " bytes); image folders are read as JPEG or PNG: convert it or move it out");
}

void check_header_size(int64_t width, int64_t height, const std::string& format,
                       const std::string& path) {
  if (width <= 0 || height <= 0 || width * height > (int64_t{1} << 28)) {
    throw DataError(path + ": " + format + " header says " + std::to_string(width) + "x" +
                    std::to_string(height) + " pixels; the file is damaged");
  }
}

torch::Tensor read_image(const std::string& path) {
  std::string bytes;
  try {
    bytes = io::read_file_bytes(path);
  } catch (const Error& e) {
    throw DataError(e.what());  // "cannot read <path>: <reason>", a data error here
  }
  return decode_image(bytes, path);
}

}  // namespace advft::data
