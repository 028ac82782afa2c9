#include "advft/data/image_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "advft/data/jpeg.h"
#include "advft/data/png.h"
#include "advft/error.h"

namespace advft::data {
namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

bool starts_with(const std::vector<uint8_t>& bytes, std::initializer_list<uint8_t> magic) {
  return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
}

}  // namespace

torch::Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& path) {
  if (starts_with(bytes, {0xFF, 0xD8, 0xFF})) return decode_jpeg(bytes, path);
  if (starts_with(bytes, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}))
    return decode_png(bytes, path);
  throw DataError(path + ": neither a JPEG nor a PNG image (" + std::to_string(bytes.size()) +
                  " bytes); image folders are read as JPEG or PNG: convert it or move it out");
}

torch::Tensor read_image(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw DataError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) != 0 || !S_ISREG(st.st_mode))
    throw DataError(path + ": not a regular file");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (std::fread(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) {
    throw DataError(
        path + ": cannot read: " +
        (std::ferror(file.get()) ? std::strerror(errno) : "it shrank while being read"));
  }
  return decode_image(bytes, path);
}

}  // namespace advft::data
