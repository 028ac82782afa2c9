#include "advft/runtime/stream.h"

#include <optional>

#include <spdlog/spdlog.h>

#ifdef ADVFT_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace advft::runtime {

#ifdef ADVFT_HAVE_CUDA

namespace {

c10::DeviceIndex cuda_index(const torch::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}

}  // namespace

struct StreamScope::State {
  explicit State(c10::cuda::CUDAStream s) : stream(s), guard(s) {}
  c10::cuda::CUDAStream stream;
  c10::cuda::CUDAStreamGuard guard;
};

StreamScope::StreamScope(const torch::Device& device) {
  if (!device.is_cuda()) return;
  const c10::DeviceIndex index = cuda_index(device);
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(index);
  if (current != c10::cuda::getDefaultCUDAStream(index)) return;
  // Whatever was queued on the default stream (weights moved to the GPU, say) comes first.
  current.synchronize();
  state_ = std::make_unique<State>(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
}

StreamScope::~StreamScope() {
  if (!state_) return;
  try {
    // Code after the scope runs on the default stream and must see the scope's results.
    state_->stream.synchronize();
  } catch (const std::exception& e) {
    spdlog::error("CUDA stream synchronize failed when leaving a loop: {}", e.what());
  }
}

struct StreamFence::State {
  at::cuda::CUDAEvent event;
  bool recorded = false;
};

StreamFence::StreamFence() : state_(std::make_unique<State>()) {}

void StreamFence::record(const torch::Device& device) {
  if (!device.is_cuda()) return;
  state_->event.record(c10::cuda::getCurrentCUDAStream(cuda_index(device)));
  state_->recorded = true;
}

void StreamFence::wait() {
  if (state_ && state_->recorded) state_->event.synchronize();
}

#else  // CPU-only LibTorch: nothing is ever asynchronous.

struct StreamScope::State {};
StreamScope::StreamScope(const torch::Device&) {}
StreamScope::~StreamScope() = default;

struct StreamFence::State {};
StreamFence::StreamFence() : state_(std::make_unique<State>()) {}
void StreamFence::record(const torch::Device&) {}
void StreamFence::wait() {}

#endif

StreamFence::~StreamFence() = default;
StreamFence::StreamFence(StreamFence&&) noexcept = default;
StreamFence& StreamFence::operator=(StreamFence&&) noexcept = default;

}  // namespace advft::runtime
