#include "advft/data/png.h"

#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>

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

#ifdef ADVFT_HAVE_PNG
namespace {

// libpng's low-level API, not its simplified one (png_image_*): that one converts every file to
// sRGB, so a gAMA of 1.0 turned (64, 128, 200) into (136, 186, 228), and it rounds 16-bit samples
// to v / 257. Pillow, whose pixels torchvision trains on, ignores gAMA, cHRM, sRGB and iCCP and
// keeps the top byte: here no gamma or alpha transform is asked for, so stored values come through.
//
// libpng reports errors by longjmp (it is C: an exception thrown through it would not unwind).
// Every libpng call that can report one runs inside one of the two functions below, which call
// setjmp themselves: the jump lands in their own frame and skips only libpng's frames and the
// callbacks here, none of which holds an object with a destructor, and nothing set after setjmp
// is read after a jump, so no local needs to be volatile. The tensor is allocated between the
// two, once the header's size has been checked.

/// The file being read (libpng's io pointer) and the error libpng reported (its error pointer).
/// Plain data, owned by decode_png, so that a jump leaves it intact.
struct PngInput {
  const png_byte* data;
  std::size_t size;
  std::size_t offset;
  char error[200];
};

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* input = static_cast<PngInput*>(png_get_io_ptr(png));
  if (length > input->size - input->offset) png_error(png, "the file is cut short");
  std::memcpy(out, input->data + input->offset, length);
  input->offset += length;
}

[[noreturn]] void record_error(png_structp png, png_const_charp message) {
  auto* input = static_cast<PngInput*>(png_get_error_ptr(png));
  std::snprintf(input->error, sizeof input->error, "%s", message != nullptr ? message : "error");
  png_longjmp(png, 1);
}

// libpng warns of what it passes over (a damaged ancillary chunk, a colour profile it does not
// accept) and reads the pixels all the same: printed to stderr by the decode threads, once per
// odd file, the warnings would bury the log.
void ignore_warning(png_structp /*png*/, png_const_charp /*message*/) {}

/// Reads the header; false when libpng reported an error (in the PngInput).
bool read_header(png_structp png, png_infop info) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  return true;
}

/// Reads the pixels as 8-bit RGB into `pixels` ([H, W, 3], rows back to back), as Pillow's
/// convert("RGB") gives them; false when libpng reported an error (in the PngInput).
bool read_rgb_pixels(png_structp png, png_infop info, png_bytep pixels) {
  if (setjmp(png_jmpbuf(png))) return false;
  const png_byte color_type = png_get_color_type(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(png);  // its tRNS becomes an alpha channel, stripped below
  if (color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);  // 1 bit to 0 and 255, 4 bits v to 17 v: as Pillow
  png_set_strip_16(png);     // the top byte, as Pillow keeps it (not png_set_scale_16's v / 257)
  png_set_strip_alpha(png);  // Pillow drops the alpha, it does not blend it over a background
  png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  if (png_get_rowbytes(png, info) != std::size_t{width} * 3)
    png_error(png, "the file's colour type did not convert to 8-bit RGB");
  // Interlaced files take every row once per pass, libpng filling in that pass's pixels.
  for (int pass = 0; pass < passes; ++pass) {
    for (png_uint_32 y = 0; y < height; ++y)
      png_read_row(png, pixels + std::size_t{y} * width * 3, nullptr);
  }
  // No png_read_end: the chunks after the image data change no pixel, and Pillow reads a file
  // that ends without IEND.
  return true;
}

/// Frees libpng's read state on every way out of decode_png.
class PngReadState {
 public:
  PngReadState(png_structp png, png_infop info) : png_(png), info_(info) {}
  ~PngReadState() { png_destroy_read_struct(&png_, &info_, nullptr); }
  PngReadState(const PngReadState&) = delete;
  PngReadState& operator=(const PngReadState&) = delete;

 private:
  png_structp png_;
  png_infop info_;
};

}  // namespace
#endif

torch::Tensor decode_png(const std::string& bytes, const std::string& path) {
#ifdef ADVFT_HAVE_PNG
  PngInput input{reinterpret_cast<const png_byte*>(bytes.data()), bytes.size(), 0, {}};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &input, record_error, ignore_warning);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  const PngReadState state(png, info);
  if (info == nullptr) throw DataError(path + ": cannot read PNG: libpng could not start");
  png_set_read_fn(png, &input, read_from_memory);
  if (!read_header(png, info)) throw DataError(path + ": damaged PNG: " + input.error);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  check_header_size(width, height, "PNG", path);
  torch::Tensor pixels = torch::empty({height, width, 3}, torch::kUInt8);
  if (!read_rgb_pixels(png, info, pixels.data_ptr<uint8_t>()))
    throw DataError(path + ": damaged PNG: " + input.error);
  return pixels.permute({2, 0, 1}).contiguous();
#else
  (void)bytes;
  throw DataError(path +
                  ": this advft was built without libpng, so it cannot read PNG images; "
                  "install libpng-dev (Debian/Ubuntu) and rebuild");
#endif
}

}  // namespace advft::data
