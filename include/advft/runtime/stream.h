#pragma once
// CUDA stream plumbing for the loops: a side stream to run (and capture) on, and a fence that
// tells the host when work queued so far has finished. On the CPU both are no-ops, so callers
// need no #ifdef.
#include <memory>

#include <torch/torch.h>

namespace advft::runtime {

/// Makes a non-default CUDA stream of `device` current for its lifetime: CUDA graphs cannot be
/// captured on the default stream, and a loop that stays on one stream keeps eager steps,
/// captures and replays in order. Inside another StreamScope (the trainer's validation) the
/// current side stream is kept. Work queued before is finished before the scope starts, and the
/// scope's work before it ends. Nothing happens for a CPU device.
class StreamScope {
 public:
  explicit StreamScope(const torch::Device& device);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Marks a point in the current stream's queue; wait() blocks the host until the work queued
/// before record() is done (a page-locked buffer may be refilled once its copy finished). A CPU
/// fence is always passed.
class StreamFence {
 public:
  StreamFence();
  ~StreamFence();
  StreamFence(StreamFence&&) noexcept;
  StreamFence& operator=(StreamFence&&) noexcept;

  /// Records the fence on the current stream of `device` (nothing for the CPU).
  void record(const torch::Device& device);
  /// Blocks until the recorded work is done; returns at once if nothing was recorded.
  void wait();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace advft::runtime
