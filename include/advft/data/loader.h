#pragma once
// Batches for training and evaluation, addressable by (epoch, index) so that a resumed run sees
// exactly the batches it would have seen, and device-side augmentation.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "advft/data/dataset.h"

namespace advft::data {

class HostPrefetcher;

/// Where a BatchLoader keeps its data set.
enum class Placement {
  kDevice,  ///< all of it on the device as uint8; batches gathered there
  kHost,    ///< in host memory; HostPrefetcher gathers batches ahead and copies them over
};

/// The `data.placement` setting ("auto" | "device" | "host") for `data` on `device`: auto keeps
/// the set on a GPU when its uint8 pixels take under a quarter of the GPU's memory (CIFAR:
/// 150 MB), and on the device for CPU runs. Image folders are always kHost (decoded as drawn);
/// "device" for one is a ConfigError. Logs where it went.
Placement resolve_placement(const std::string& setting, const Dataset& data,
                            const torch::Device& device);

/// The example order of epoch `epoch`: a permutation that depends only on (seed, epoch).
std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, int64_t size);

/// This process's part of every training batch in a data-parallel run of `size` processes:
/// rows [rank * B / size, (rank + 1) * B / size) of each batch of B, so that together the
/// processes see exactly the batches of one process, and a recipe means the same on any count.
struct Shard {
  int rank = 0;
  int size = 1;
};

/// The examples that `shard` draws from an epoch's `order`, batch after batch: its part of each
/// full batch of `batch_size` (a multiple of shard.size) taken in turn. A final partial batch is
/// left out, as drop_last does.
std::vector<int64_t> shard_order(const std::vector<int64_t>& order, int64_t batch_size,
                                 Shard shard);

/// `shard`'s part of a data set evaluated as a whole (validation, `eval`): every shard.size-th
/// example from shard.rank on, so that the parts differ by at most one example.
Dataset shard_of(const Dataset& data, Shard shard);

/// One batch on the target device.
struct Batch {
  torch::Tensor images;  ///< float32 [B, C, H, W] in [0,1]
  torch::Tensor labels;  ///< int64 [B]
};

/// Random-access batches of a Dataset. With Placement::kDevice the whole data set is moved to
/// the device once as uint8 (a CIFAR training set is 150 MB); with kHost it stays in host memory
/// and batches arrive through a HostPrefetcher, which is also how image folders are read (kHost
/// whatever `placement` says). Either way only the drawn batch is converted to float, on the
/// device, and the batches are the same.
class BatchLoader {
 public:
  /// `shuffle`: each epoch's order is epoch_order(seed, epoch, size).
  /// `drop_last`: skip the final partial batch. With a `shard` of several processes,
  /// `batch_size` is the batch of all of them together (a multiple of shard.size), each batch()
  /// is this process's part of it, and drop_last must be on.
  BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
              torch::Device device, Placement placement = Placement::kDevice, Shard shard = {});
  ~BatchLoader();
  BatchLoader(BatchLoader&&) noexcept;
  BatchLoader& operator=(BatchLoader&&) noexcept;

  /// Examples in each batch() of this process (batch_size / shard.size).
  int64_t local_batch_size() const { return batch_size_ / shard_.size; }
  /// Batches in one epoch (0 for an empty data set or drop_last with fewer examples than a batch).
  int64_t batches_per_epoch() const;
  /// Examples in the data set.
  int64_t size() const;
  /// Batch `index` (0 <= index < batches_per_epoch()) of epoch `epoch` (>= 0).
  Batch batch(int64_t epoch, int64_t index);
  /// Seconds batch() has waited for the prefetcher (always 0 with Placement::kDevice).
  double input_wait_seconds() const;

 private:
  const torch::Tensor& order_of(int64_t epoch);

  torch::Tensor
      images_;  // uint8 [N, C, H, W] on device_ (kDevice) or the CPU (kHost); none for files
  torch::Tensor labels_;  // int64 [N], beside images_
  int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  uint64_t seed_;
  torch::Device device_;
  Shard shard_;
  int64_t cached_epoch_ = -1;
  torch::Tensor cached_order_;  // int64 [N] on device_: the permutation of cached_epoch_
  std::unique_ptr<HostPrefetcher> prefetcher_;  // kHost only
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
