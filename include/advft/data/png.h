#pragma once
// PNG files to RGB pixels through libpng: image folders of one's own data are often PNG, and
// ImageNet's training set holds one PNG named .JPEG. The build links libpng when it finds it;
// without it, decoding throws a DataError that says how to rebuild.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace advft::data {

/// Whether this build can decode PNG (it found libpng).
bool png_supported();

/// The image in `bytes` (a whole PNG file read from `path`) as uint8 [3, H, W] RGB, as Pillow's
/// convert("RGB") gives it: the stored values whatever gAMA, cHRM, sRGB or iCCP say, grayscale
/// repeated, palettes expanded, alpha dropped (not blended), 16-bit samples cut to their top
/// byte (16-bit grayscale too, which Pillow clips at 255 instead).
/// Throws DataError naming `path` when the bytes are not a PNG or are damaged.
torch::Tensor decode_png(const std::string& bytes, const std::string& path);

}  // namespace advft::data
