#include "advft/data/prefetcher.h"

#include <algorithm>

#include "advft/data/image_folder.h"

namespace advft::data {

HostPrefetcher::HostPrefetcher(Dataset data, int64_t batch_size, int64_t batches_per_epoch,
                               OrderFn order, uint64_t seed, torch::Device device, int64_t depth)
    : data_(std::move(data)),
      batch_size_(batch_size),
      batches_per_epoch_(batches_per_epoch),
      order_(std::move(order)),
      seed_(seed),
      device_(device) {
  TORCH_CHECK(depth >= 1, "HostPrefetcher: depth must be >= 1, got ", depth);
  TORCH_CHECK(batch_size_ >= 1 && batches_per_epoch_ >= 1, "HostPrefetcher: nothing to read");
  TORCH_CHECK(data_.labels.device().is_cpu(), "HostPrefetcher: the labels must be on the CPU");
  if (data_.in_memory()) {
    TORCH_CHECK(data_.images.device().is_cpu(),
                "HostPrefetcher: the data set must be in host memory");
    TORCH_CHECK(data_.images.dim() == 4 && data_.images.is_contiguous(),
                "HostPrefetcher: images must be contiguous [N, C, H, W], got ",
                data_.images.sizes());
  }
  // Only page-locked memory can be copied to a GPU while the host goes on.
  const auto options = torch::TensorOptions().pinned_memory(device_.is_cuda());
  const std::vector<int64_t> shape = data_.image_shape();
  slots_.resize(static_cast<std::size_t>(depth));
  for (auto& slot : slots_) {
    slot.images =
        torch::empty({batch_size_, shape[0], shape[1], shape[2]}, options.dtype(torch::kUInt8));
    slot.labels = torch::empty({batch_size_}, options.dtype(torch::kLong));
  }
  worker_ = std::thread([this] { produce(); });
}

HostPrefetcher::~HostPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
  try {
    for (auto& slot : slots_) {
      if (slot.state == SlotState::kTaken) slot.copied.wait();
    }
  } catch (const std::exception&) {
    // A broken device already failed the run; the page-locked allocator keeps in-flight
    // buffers alive on its own.
  }
}

HostPrefetcher::Position HostPrefetcher::after(const Position& p) const {
  return p.index + 1 < batches_per_epoch_ ? Position{p.epoch, p.index + 1}
                                          : Position{p.epoch + 1, 0};
}

void HostPrefetcher::fill(Slot& slot, const Position& position, std::vector<int64_t>& order,
                          int64_t& order_epoch) {
  const int64_t start = position.index * batch_size_;
  const int64_t count = std::min(batch_size_, data_.size() - start);
  TORCH_CHECK(count > 0, "HostPrefetcher: batch ", position.index, " is past the data set");
  torch::Tensor images = slot.images.narrow(0, 0, count);
  torch::Tensor labels = slot.labels.narrow(0, 0, count);
  if (order_ && order_epoch != position.epoch) {
    order = order_(position.epoch);
    order_epoch = position.epoch;
  }
  const bool shuffled = order_ && !order.empty();
  if (!data_.in_memory()) {
    std::vector<int64_t> picks(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k)
      picks[static_cast<size_t>(k)] = shuffled ? order[static_cast<size_t>(start + k)] : start + k;
    torch::index_select_out(labels, data_.labels, 0, torch::tensor(picks, torch::kLong));
    // Apart from the shuffle's seed, so that crops and order are unrelated draws.
    const uint64_t epoch_seed =
        mix_seed(mix_seed(seed_ + 0x243F6A8885A308D3ULL) ^ static_cast<uint64_t>(position.epoch));
    decode_examples(*data_.files, picks, epoch_seed, images);
  } else if (shuffled) {
    const torch::Tensor picks =
        torch::from_blob(order.data() + start, {count}, torch::TensorOptions().dtype(torch::kLong));
    torch::index_select_out(images, data_.images, 0, picks);
    torch::index_select_out(labels, data_.labels, 0, picks);
  } else {
    images.copy_(data_.images.narrow(0, start, count));
    labels.copy_(data_.labels.narrow(0, start, count));
  }
  slot.count = count;
}

void HostPrefetcher::produce() {
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    Slot* slot = nullptr;
    changed_.wait(lock, [&] {
      if (stop_) return true;
      if (!started_ || error_) return false;
      for (auto& s : slots_) {
        if (s.state == SlotState::kFree) {
          slot = &s;
          return true;
        }
      }
      return false;
    });
    if (stop_) return;
    const Position position = next_to_fill_;
    const uint64_t generation = generation_;
    next_to_fill_ = after(position);
    slot->state = SlotState::kFilling;
    slot->position = position;
    slot->generation = generation;
    lock.unlock();
    try {
      fill(*slot, position, order, order_epoch);
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      slot->state = SlotState::kFree;
      changed_.notify_all();
      continue;
    }
    lock.lock();
    // A restart while this batch was gathered made it useless.
    slot->state = slot->generation == generation_ ? SlotState::kReady : SlotState::kFree;
    changed_.notify_all();
  }
}

std::pair<torch::Tensor, torch::Tensor> HostPrefetcher::get(int64_t epoch, int64_t index) {
  const Position wanted{epoch, index};
  std::unique_lock<std::mutex> lock(mutex_);
  // Buffers handed out earlier go back to the worker once their copy to the device is done.
  // The wait happens here, not on the worker: while this thread captures a CUDA graph, a
  // synchronizing CUDA call from any other thread would invalidate the capture.
  for (auto& s : slots_) {
    if (s.state != SlotState::kTaken) continue;
    lock.unlock();
    s.copied.wait();
    lock.lock();
    s.state = SlotState::kFree;
    changed_.notify_all();
  }
  if (!started_ || !(wanted == next_expected_)) {
    ++generation_;
    for (auto& s : slots_) {
      if (s.state == SlotState::kReady) s.state = SlotState::kFree;
    }
    next_to_fill_ = wanted;
    started_ = true;
    changed_.notify_all();
  }
  Slot* slot = nullptr;
  const auto wait_start = std::chrono::steady_clock::now();
  changed_.wait(lock, [&] {
    if (error_) return true;
    for (auto& s : slots_) {
      if (s.state == SlotState::kReady && s.generation == generation_ && s.position == wanted) {
        slot = &s;
        return true;
      }
    }
    return false;
  });
  waited_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
  if (error_) std::rethrow_exception(error_);
  slot->state = SlotState::kTaken;
  next_expected_ = after(wanted);
  lock.unlock();

  torch::Tensor images = slot->images.narrow(0, 0, slot->count);
  torch::Tensor labels = slot->labels.narrow(0, 0, slot->count);
  if (device_.is_cuda()) {
    images = images.to(device_, /*non_blocking=*/true);
    labels = labels.to(device_, /*non_blocking=*/true);
  } else {
    images = images.clone();
    labels = labels.clone();
  }
  slot->copied.record(device_);  // the buffer stays taken until the next call sees this pass
  return {images, labels};
}

}  // namespace advft::data
