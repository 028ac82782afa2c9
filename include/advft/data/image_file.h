#pragma once
// One image file of an image folder to RGB pixels, by what its bytes are (JPEG or PNG), not by
// its name: ImageNet's training set holds a PNG named n02105855_2933.JPEG, which Pillow reads.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace advft::data {

/// `bytes` (the whole file at `path`) decoded as uint8 [3, H, W] RGB: JPEG (data/jpeg.h) or PNG
/// (data/png.h). Throws DataError naming `path` for anything else.
torch::Tensor decode_image(const std::string& bytes, const std::string& path);

/// Throws DataError naming `path` unless the size a `format` ("JPEG", "PNG") header announces is
/// positive and at most 2^28 pixels: far above any photograph a classifier is trained on
/// (ImageNet's largest is about 5,000 pixels a side), so a corrupt header fails here instead of
/// in the allocator.
void check_header_size(int64_t width, int64_t height, const std::string& format,
                       const std::string& path);

/// Reads `path` whole and decodes it (DataError when it cannot be read).
torch::Tensor read_image(const std::string& path);

}  // namespace advft::data
