#pragma once
// Input for data sets kept in host memory or on disk: a background thread gathers (or, for image
// folders, decodes on all cores) the next batches into page-locked buffers while the GPU works,
// and each is copied to the device asynchronously, so the GPU never waits for its input and the
// copy overlaps the previous step.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "advft/data/dataset.h"
#include "advft/runtime/stream.h"

namespace advft::data {

class HostPrefetcher {
 public:
  /// The example order of an epoch (indices into the data set), or empty for file order.
  using OrderFn = std::function<std::vector<int64_t>(int64_t epoch)>;

  /// `data` (in memory on the CPU, or image files) read batch by batch in the order `order`
  /// gives; `depth` batches are gathered ahead. `seed` drives the random crops of image files
  /// (with the epoch and the example's index). Buffers are page-locked when `device` is a GPU.
  HostPrefetcher(Dataset data, int64_t batch_size, int64_t batches_per_epoch, OrderFn order,
                 uint64_t seed, torch::Device device, int64_t depth = 4);
  ~HostPrefetcher();
  HostPrefetcher(const HostPrefetcher&) = delete;
  HostPrefetcher& operator=(const HostPrefetcher&) = delete;

  /// uint8 images and int64 labels of batch `index` of `epoch`, on the device (queued on its
  /// current stream). Requests are expected in order; one out of order (a resumed run) restarts
  /// the read-ahead there. Rethrows what the background thread threw.
  std::pair<torch::Tensor, torch::Tensor> get(int64_t epoch, int64_t index);

  /// Seconds get() has spent waiting for a batch that was not ready yet: time the caller, and
  /// in steady state the GPU behind it, lost to input.
  double waited_seconds() const { return waited_seconds_; }

 private:
  struct Position {
    int64_t epoch = 0;
    int64_t index = 0;
    bool operator==(const Position& o) const { return epoch == o.epoch && index == o.index; }
  };
  // kTaken: handed to the caller, its device copy perhaps still running.
  enum class SlotState { kFree, kFilling, kReady, kTaken };
  struct Slot {
    torch::Tensor images;  // uint8 [batch_size, C, H, W], page-locked on GPU runs
    torch::Tensor labels;  // int64 [batch_size]
    SlotState state = SlotState::kFree;
    Position position;
    int64_t count = 0;            // examples in this batch (the last one may be short)
    uint64_t generation = 0;      // the read-ahead it was filled for
    runtime::StreamFence copied;  // passed once the device copy out of the buffers is done
  };

  void produce();
  void fill(Slot& slot, const Position& position, std::vector<int64_t>& order,
            int64_t& order_epoch);
  Position after(const Position& p) const;

  Dataset data_;
  int64_t batch_size_;
  int64_t batches_per_epoch_;
  OrderFn order_;
  uint64_t seed_;
  torch::Device device_;
  std::vector<Slot> slots_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  bool started_ = false;     // the first get() sets where reading starts
  uint64_t generation_ = 0;  // bumped by every restart; stale slots are dropped
  Position next_to_fill_;
  Position next_expected_;
  std::exception_ptr error_;
  double waited_seconds_ = 0.0;  // written and read by the caller's thread only
  std::thread worker_;
};

}  // namespace advft::data
