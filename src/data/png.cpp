#include "advft/data/png.h"

#include <memory>

#include "advft/data/image_file.h"
#include "advft/error.h"

#ifdef ADVFT_HAVE_PNG
#include <png.h>
#endif

namespace advft::data {

bool png_supported() {
#ifdef ADVFT_HAVE_PNG
  return true;
#else
  return false;
#endif
}

torch::Tensor decode_png(const std::string& bytes, const std::string& path) {
#ifdef ADVFT_HAVE_PNG
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  // libpng's read state, freed on every way out (a no-op once finish_read has freed it).
  const std::unique_ptr<png_image, void (*)(png_image*)> read_state(&image, png_image_free);
  if (png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    throw DataError(path + ": damaged PNG: " + image.message);
  }
  check_header_size(image.width, image.height, "PNG", path);
  // 16-bit files without gAMA/sRGB are sRGB in practice (Pillow keeps their top byte), not the
  // linear light libpng assumes by default.
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  // RGBA, not RGB: asked for RGB, libpng would blend a transparent image onto a background;
  // Pillow's convert("RGB") drops the alpha, and so do we below.
  image.format = PNG_FORMAT_RGBA;
  torch::Tensor pixels = torch::empty({image.height, image.width, 4}, torch::kUInt8);
  if (png_image_finish_read(&image, nullptr, pixels.data_ptr<uint8_t>(), 0, nullptr) == 0) {
    throw DataError(path + ": damaged PNG: " + image.message);
  }
  return pixels.narrow(2, 0, 3).permute({2, 0, 1}).contiguous();
#else
  (void)bytes;
  throw DataError(path +
                  ": this advft was built without libpng, so it cannot read PNG images; "
                  "install libpng-dev (Debian/Ubuntu) and rebuild");
#endif
}

}  // namespace advft::data
