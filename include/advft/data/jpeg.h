#pragma once
// JPEG files to RGB pixels through libjpeg-turbo: the decoder behind image-folder data sets
// (ImageNet ships as JPEG). The build links libjpeg-turbo when it finds it; without it, decoding
// throws a DataError that says how to rebuild.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace advft::data {

/// Whether this build can decode JPEG (it found libjpeg-turbo).
bool jpeg_supported();

/// The image in `bytes` (a whole JPEG file read from `path`) as uint8 [3, H, W] RGB. Grayscale
/// images are repeated over the three channels, CMYK ones converted as Pillow converts them.
/// Throws DataError naming `path` when the bytes are not a JPEG or are damaged.
torch::Tensor decode_jpeg(const std::string& bytes, const std::string& path);

}  // namespace advft::data
