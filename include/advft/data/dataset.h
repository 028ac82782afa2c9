#pragma once
// An image classification data set: small ones (CIFAR, MNIST) in memory as uint8 pixels (4x
// smaller than float) until a batch is drawn, large ones (ImageNet) as a list of image files
// decoded batch by batch; plus the index helpers every split and loader uses.
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "advft/data/image_transform.h"

namespace advft::data {

/// The examples of a data set kept on disk: one image file each, and how it becomes an input.
struct ImageFiles {
  std::vector<std::string> paths;  ///< in the order of Dataset::labels
  ImageTransform transform;
};

/// Images and labels of one split, on the CPU as read from disk.
struct Dataset {
  torch::Tensor images;  ///< uint8 [N, C, H, W], contiguous; undefined when `files` holds them
  torch::Tensor labels;  ///< int64 [N]
  int64_t num_classes = 0;
  std::string name;  ///< "cifar10", "cifar100", "mnist", "fashion_mnist", "imagenet", ...
  std::shared_ptr<const ImageFiles> files;  ///< image-folder data sets only

  /// Number of examples (0 for a default-constructed Dataset).
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  /// Whether the pixels are in `images` (else they are decoded from `files` when drawn).
  bool in_memory() const { return !files; }
  /// [C, H, W] of one example as a loader delivers it.
  std::vector<int64_t> image_shape() const {
    if (files) return {3, files->transform.image_size, files->transform.image_size};
    return {images.size(1), images.size(2), images.size(3)};
  }
};

/// The examples at `indices` (int64 [K], any order), copied into new contiguous tensors.
inline Dataset subset(const Dataset& data, const torch::Tensor& indices) {
  TORCH_CHECK(indices.dim() == 1, "data::subset: indices must be 1-D, got ", indices.sizes());
  const torch::Tensor idx = indices.to(data.labels.device(), torch::kLong).contiguous();
  Dataset out;
  out.labels = data.labels.index_select(0, idx).contiguous();
  out.num_classes = data.num_classes;
  out.name = data.name;
  if (data.files) {
    auto files = std::make_shared<ImageFiles>();
    files->transform = data.files->transform;
    const torch::Tensor picks = idx.cpu();
    const int64_t* pick = picks.data_ptr<int64_t>();
    files->paths.reserve(static_cast<size_t>(picks.numel()));
    for (int64_t k = 0; k < picks.numel(); ++k)
      files->paths.push_back(data.files->paths.at(static_cast<size_t>(pick[k])));
    out.files = std::move(files);
  } else {
    out.images = data.images.index_select(0, idx.to(data.images.device())).contiguous();
  }
  return out;
}

/// The first min(n, size) examples. Tensors are views: slicing dim 0 keeps them contiguous.
inline Dataset head(const Dataset& data, int64_t n) {
  TORCH_CHECK(n >= 0, "data::head: n must be >= 0, got ", n);
  Dataset out = data;
  const int64_t keep = std::min(n, data.size());
  out.labels = data.labels.narrow(0, 0, keep);
  if (data.files) {
    const auto& paths = data.files->paths;
    out.files = std::make_shared<ImageFiles>(ImageFiles{
        std::vector<std::string>(paths.begin(), paths.begin() + keep), data.files->transform});
  } else {
    out.images = data.images.narrow(0, 0, keep);
  }
  return out;
}

/// `n` of `size` positions spread evenly (floor(i * size / n)), in order: a subset of an image
/// folder, whose files are sorted by class, that still holds every class. All when n >= size.
inline std::vector<int64_t> spread_positions(int64_t size, int64_t n) {
  std::vector<int64_t> picks;
  const int64_t keep = std::min(std::max<int64_t>(n, 0), size);
  picks.reserve(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i)
    picks.push_back(i * size / keep);
  return picks;
}

/// The first `n` examples, or for an image folder (sorted by class) `n` spread evenly over it:
/// what "only N images" means to someone who wants a smaller but fair sample.
inline Dataset sample(const Dataset& data, int64_t n) {
  if (data.in_memory() || n >= data.size()) return head(data, n);
  return subset(data, torch::tensor(spread_positions(data.size(), n), torch::kLong));
}

/// SplitMix64: turns related seeds (seed, seed+1, ...) into unrelated generator seeds.
inline uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// Uniform in [0, bound) (bound >= 1) from `rng`, unbiased and the same on every platform:
/// std::uniform_int_distribution is implementation-defined and differs between libstdc++, libc++
/// and MSVC. Rejects the top partial bucket of the 64-bit range.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t r = rng();
  while (r >= limit) {
    r = rng();
  }
  return r % bound;
}

/// A uniformly random permutation of 0..n-1 that depends only on `seed`.
///
/// Fisher-Yates over std::mt19937_64 with our own bounded draw: std::shuffle is
/// implementation-defined too, which would change the validation split and the epoch order
/// across platforms.
inline std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(seed);
  for (size_t i = perm.size(); i > 1; --i) {
    std::swap(perm[i - 1], perm[static_cast<size_t>(uniform_below(rng, i))]);
  }
  return perm;
}

}  // namespace advft::data
