#pragma once
// An in-memory image classification data set, kept as uint8 pixels (4x smaller than float) until
// a batch is drawn, plus the index helpers every split and loader uses.
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace advft::data {

/// Images and labels of one split, on the CPU as read from disk.
struct Dataset {
  torch::Tensor images;  ///< uint8 [N, C, H, W], contiguous
  torch::Tensor labels;  ///< int64 [N]
  int64_t num_classes = 0;
  std::string name;  ///< "cifar10", "cifar100", "mnist", "fashion_mnist"

  /// Number of examples (0 for a default-constructed Dataset).
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// The examples at `indices` (int64 [K], any order), copied into new contiguous tensors.
inline Dataset subset(const Dataset& data, const torch::Tensor& indices) {
  TORCH_CHECK(indices.dim() == 1, "data::subset: indices must be 1-D, got ", indices.sizes());
  const torch::Tensor idx = indices.to(data.images.device(), torch::kLong);
  Dataset out;
  out.images = data.images.index_select(0, idx).contiguous();
  out.labels = data.labels.index_select(0, idx.to(data.labels.device())).contiguous();
  out.num_classes = data.num_classes;
  out.name = data.name;
  return out;
}

/// The first min(n, size) examples. A view: slicing dim 0 keeps the tensors contiguous.
inline Dataset head(const Dataset& data, int64_t n) {
  TORCH_CHECK(n >= 0, "data::head: n must be >= 0, got ", n);
  Dataset out = data;
  const int64_t keep = std::min(n, data.size());
  out.images = data.images.narrow(0, 0, keep);
  out.labels = data.labels.narrow(0, 0, keep);
  return out;
}

/// SplitMix64: turns related seeds (seed, seed+1, ...) into unrelated generator seeds.
inline uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// A uniformly random permutation of 0..n-1 that depends only on `seed`.
///
/// Fisher-Yates over std::mt19937_64 with our own bounded draw: std::shuffle and
/// std::uniform_int_distribution are implementation-defined and differ between libstdc++, libc++
/// and MSVC, which would change the validation split and the epoch order across platforms.
inline std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(seed);
  for (size_t i = perm.size(); i > 1; --i) {
    // Unbiased draw in [0, i): reject the top partial bucket of the 64-bit range.
    const uint64_t bound = static_cast<uint64_t>(i);
    const uint64_t limit =
        std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
    uint64_t r = rng();
    while (r >= limit) {
      r = rng();
    }
    std::swap(perm[i - 1], perm[static_cast<size_t>(r % bound)]);
  }
  return perm;
}

}  // namespace advft::data
