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

/// Reads `path` whole and decodes it (DataError when it cannot be read).
torch::Tensor read_image(const std::string& path);

}  // namespace advft::data
