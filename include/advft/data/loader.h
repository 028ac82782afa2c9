#pragma once
// Batches for training and evaluation, addressable by (epoch, index) so that a resumed run sees
// exactly the batches it would have seen, and device-side augmentation.
#include <cstdint>

#include "advft/data/dataset.h"

namespace advft::data {

/// One batch on the target device.
struct Batch {
  torch::Tensor images;  ///< float32 [B, C, H, W] in [0,1]
  torch::Tensor labels;  ///< int64 [B]
};

/// Random-access batches of a Dataset. The whole data set is moved to the device once as uint8
/// (a CIFAR training set is 150 MB); only the drawn batch is converted to float there.
class BatchLoader {
 public:
  /// `shuffle`: each epoch's order is a permutation that depends only on (seed, epoch).
  /// `drop_last`: skip the final partial batch.
  BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
              torch::Device device);

  /// Batches in one epoch (0 for an empty data set or drop_last with fewer examples than a batch).
  int64_t batches_per_epoch() const;
  /// Examples in the data set.
  int64_t size() const;
  /// Batch `index` (0 <= index < batches_per_epoch()) of epoch `epoch` (>= 0).
  Batch batch(int64_t epoch, int64_t index);

 private:
  const torch::Tensor& order_of(int64_t epoch);

  torch::Tensor images_;  // uint8 [N, C, H, W] on device_
  torch::Tensor labels_;  // int64 [N] on device_
  int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  uint64_t seed_;
  torch::Device device_;
  int64_t cached_epoch_ = -1;
  torch::Tensor cached_order_;  // int64 [N] on device_: the permutation of cached_epoch_
};

/// Training-time augmentation, applied on the batch's device.
struct AugmentOptions {
  int64_t crop_padding = 0;      ///< random crop of the original size after zero padding (0 = off)
  bool horizontal_flip = false;  ///< mirror each image with probability 1/2
};

/// Per-example random crop and horizontal flip of a [B, C, H, W] batch (any dtype). Randomness
/// comes from LibTorch's global generator of the batch's device, which the trainer reseeds every
/// step. Returns `images` itself when both options are off.
torch::Tensor augment(const torch::Tensor& images, const AugmentOptions& opts);

}  // namespace advft::data
