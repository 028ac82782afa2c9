#pragma once
// The two image pipelines every ImageNet code uses (torchvision's transforms), on one decoded
// image: RandomResizedCrop + horizontal flip for training, Resize + CenterCrop for evaluation.
#include <torch/torch.h>

#include <cstdint>

namespace advft::data {

/// How a decoded image becomes a square model input.
struct ImageTransform {
  int64_t image_size = 224;      ///< side of the square the model sees
  int64_t resize_size = 256;     ///< evaluation: shorter side after resizing, before the crop
  double min_crop_scale = 0.08;  ///< training: smallest crop, as a fraction of the image's area
  bool horizontal_flip = true;   ///< training: mirror with probability 1/2
  bool random = false;           ///< training pipeline (random crop and flip) or evaluation's
};

/// The crop of an [H, W] image that torchvision's RandomResizedCrop(scale = (min_crop_scale, 1),
/// ratio = (3/4, 4/3)) draws: up to ten tries at a random area and aspect ratio, then the
/// central crop of the nearest allowed ratio. Draws from `seed` only, so a resumed run crops alike.
struct CropBox {
  int64_t top = 0;
  int64_t left = 0;
  int64_t height = 0;
  int64_t width = 0;
};
CropBox random_resized_crop_box(int64_t height, int64_t width, double min_crop_scale,
                                uint64_t seed);

/// `box` of `image` (uint8 [C, H, W]) resized to `size` x `size`: torchvision's resized_crop.
torch::Tensor resized_crop(const torch::Tensor& image, const CropBox& box, int64_t size);

/// `image` (uint8 [C, H, W]) through `transform`, written into `out` (uint8 [C, S, S],
/// S = image_size). `seed` drives the random pipeline; evaluation's ignores it. Resizing is
/// bilinear with antialiasing, as torchvision does on PIL images.
void transform_image(const torch::Tensor& image, const ImageTransform& transform, uint64_t seed,
                     torch::Tensor out);

}  // namespace advft::data
