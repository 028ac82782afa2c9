#include "advft/data/jpeg.h"

#include <memory>

#include "advft/data/image_file.h"
#include "advft/error.h"

#ifdef ADVFT_HAVE_JPEG
#include <turbojpeg.h>
#endif

namespace advft::data {
namespace {

#ifdef ADVFT_HAVE_JPEG
struct HandleCloser {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using Decompressor = std::unique_ptr<void, HandleCloser>;

/// A CMYK JPEG from Photoshop (the only kind seen in practice, ImageNet's 22 among them) stores
/// inverted inks. Pillow, which the Python peers decode with, turns them back into inks and
/// computes R = (255 - K) - C * (255 - K) / 255 with its rounding; so do we, to the same bytes.
torch::Tensor cmyk_to_rgb(const torch::Tensor& stored) {
  const torch::Tensor raw = stored.to(torch::kInt);   // [H, W, 4]
  const torch::Tensor not_key = raw.narrow(2, 3, 1);  // 255 - K
  const torch::Tensor inks = 255 - raw.narrow(2, 0, 3);
  // Pillow's MULDIV255: exact rounding of a * b / 255 for a, b in [0, 255].
  const torch::Tensor product = inks * not_key + 128;
  const torch::Tensor scaled = (product + product.div(256, "floor")).div(256, "floor");
  return (not_key - scaled).clamp(0, 255).to(torch::kUInt8);
}
#endif

}  // namespace

bool jpeg_supported() {
#ifdef ADVFT_HAVE_JPEG
  return true;
#else
  return false;
#endif
}

torch::Tensor decode_jpeg(const std::string& bytes, const std::string& path) {
#ifdef ADVFT_HAVE_JPEG
  Decompressor handle(tjInitDecompress());
  if (!handle)
    throw DataError(path + ": cannot start the JPEG decoder: " + tjGetErrorStr2(nullptr));
  int width = 0;
  int height = 0;
  int subsampling = 0;
  int colorspace = 0;
  // TurboJPEG 2.x takes a non-const unsigned char*; it only reads.
  auto* data = reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data()));
  if (tjDecompressHeader3(handle.get(), data, bytes.size(), &width, &height, &subsampling,
                          &colorspace) != 0) {
    throw DataError(path + ": damaged JPEG: " + tjGetErrorStr2(handle.get()));
  }
  check_header_size(width, height, "JPEG", path);
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  torch::Tensor pixels = torch::empty({height, width, channels}, torch::kUInt8);
  // Accurate DCT: the fast one shifts pixel values by one here and there against Pillow.
  // Returns the first warning's text, empty when there was none.
  const auto decompress = [&](const std::string& jpeg) -> std::string {
    auto* input = reinterpret_cast<unsigned char*>(const_cast<char*>(jpeg.data()));
    if (tjDecompress2(handle.get(), input, jpeg.size(), pixels.data_ptr<uint8_t>(), width, 0,
                      height, cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_ACCURATEDCT) == 0)
      return "";
    // Warnings ("extraneous bytes before marker", common in ImageNet) pass, as they do in
    // Pillow; only a fatal error means there is no image.
    if (tjGetErrorCode(handle.get()) == TJERR_FATAL)
      throw DataError(path + ": damaged JPEG: " + tjGetErrorStr2(handle.get()));
    return tjGetErrorStr2(handle.get());
  };
  if (decompress(bytes) == "Premature end of JPEG file") {
    // The data ran out: libjpeg fills the rest of the image with grey and goes on, Pillow
    // refuses the file ("image file is truncated") unless only the end-of-image marker is
    // missing. With the marker appended, a file cut inside its image data still comes up short.
    if (decompress(bytes + "\xFF\xD9").find("premature end") != std::string::npos)
      throw DataError(path + ": damaged JPEG: the file ends inside its image data (truncated)");
  }
  if (cmyk) pixels = cmyk_to_rgb(pixels);
  return pixels.permute({2, 0, 1}).contiguous();
#else
  (void)bytes;
  throw DataError(path +
                  ": this advft was built without libjpeg-turbo, so it cannot read JPEG "
                  "images; install libturbojpeg0-dev (Debian/Ubuntu) and rebuild");
#endif
}

}  // namespace advft::data
