#include "advft/data/image_transform.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "advft/data/dataset.h"

namespace advft::data {
namespace {

/// Uniform in [0, 1) from the top 53 bits: the same numbers on every standard library, which
/// std::uniform_real_distribution does not promise.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

/// Bilinear resize with antialiasing of uint8 [C, h, w] to [C, out_h, out_w], rounded back.
torch::Tensor resize(const torch::Tensor& image, int64_t out_h, int64_t out_w) {
  if (image.size(1) == out_h && image.size(2) == out_w) return image;
  namespace F = torch::nn::functional;
  const torch::Tensor resized = F::interpolate(image.unsqueeze(0).to(torch::kFloat),
                                               F::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{out_h, out_w})
                                                   .mode(torch::kBilinear)
                                                   .align_corners(false)
                                                   .antialias(true));
  return resized.squeeze(0).round_().clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace

CropBox random_resized_crop_box(int64_t height, int64_t width, double min_crop_scale,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  const double area = static_cast<double>(height * width);
  const double log_min_ratio = std::log(3.0 / 4.0);
  const double log_max_ratio = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (min_crop_scale + (1.0 - min_crop_scale) * uniform01(rng));
    const double ratio = std::exp(log_min_ratio + (log_max_ratio - log_min_ratio) * uniform01(rng));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * ratio)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto top =
          static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(height - h + 1)));
      const auto left =
          static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  // The fallback of torchvision: the whole image, cut to the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width;
  int64_t h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * (4.0 / 3.0)));
  }
  h = std::min(h, height);
  w = std::min(w, width);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

torch::Tensor resized_crop(const torch::Tensor& image, const CropBox& box, int64_t size) {
  return resize(image.narrow(1, box.top, box.height).narrow(2, box.left, box.width), size, size);
}

void transform_image(const torch::Tensor& image, const ImageTransform& transform, uint64_t seed,
                     torch::Tensor out) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8,
              "transform_image: image must be uint8 [C, H, W], got ", image.sizes());
  const int64_t size = transform.image_size;
  const int64_t height = image.size(1);
  const int64_t width = image.size(2);
  if (transform.random) {
    const CropBox box = random_resized_crop_box(height, width, transform.min_crop_scale, seed);
    torch::Tensor resized = resized_crop(image, box, size);
    // The flip draws from its own stream, so turning it off leaves the crops as they were.
    std::mt19937_64 coin(seed ^ 0x5DEECE66DULL);
    if (transform.horizontal_flip && (coin() & 1U) != 0) resized = resized.flip({2});
    out.copy_(resized);
    return;
  }
  // torchvision's Resize(resize_size): the shorter side becomes resize_size and the longer one
  // keeps the aspect ratio (truncated, as torchvision computes it); then the centre square.
  int64_t new_h = transform.resize_size;
  int64_t new_w = transform.resize_size;
  if (height <= width) {
    new_w = transform.resize_size * width / height;
  } else {
    new_h = transform.resize_size * height / width;
  }
  const torch::Tensor resized = resize(image, new_h, new_w);
  // torchvision's CenterCrop rounds the offset: int(round((H - S) / 2.0)).
  const auto offset = [](int64_t from, int64_t to) {
    return static_cast<int64_t>(std::nearbyint(static_cast<double>(from - to) / 2.0));
  };
  out.copy_(resized.narrow(1, offset(new_h, size), size).narrow(2, offset(new_w, size), size));
}

}  // namespace advft::data
