#pragma once
// The processes of a data-parallel run, connected: the few collectives training needs, over CPU
// or CUDA tensors, and a store for the strings that rank 0 decides for everyone.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "advft/dist/world.h"

namespace advft::dist {

/// Whether this build can run several processes (LibTorch's c10d with Gloo was found).
bool available();

/// How long processes wait for each other to start and, once running, for one collective:
/// ADVFT_DIST_TIMEOUT seconds when set (a DistError when it is not a whole number >= 1), else
/// 30 minutes, as torch.distributed.
std::chrono::milliseconds timeout_from_environment(const EnvironmentFn& env);

class ProcessGroup {
 public:
  /// Meets the other processes of `world` (rank 0 listens on master_addr:master_port). Throws
  /// DistError when they do not all arrive within `timeout`, when the port is taken, or when
  /// this build has no distributed support.
  static std::unique_ptr<ProcessGroup> connect(const World& world,
                                               std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  const World& world() const { return world_; }
  int rank() const { return world_.rank; }
  int size() const { return world_.size; }

  /// Sums each tensor in place over the processes (same shapes and dtypes on every rank).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  /// Replaces each tensor by its mean over the processes: gradients, BatchNorm statistics. The
  /// tensors of one dtype and device go through one flat buffer, one collective for all.
  void average(const std::vector<torch::Tensor>& tensors);
  /// The largest of each process's `value`: flags every rank must agree on (a stop signal).
  int64_t max(int64_t value);
  /// Copies rank `root`'s tensors into everyone's, in place.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root);
  /// Rank 0's `value` for `key` on every rank (the others' `value` is ignored): a run directory
  /// named after the time, or the error that stopped rank 0 from making it.
  std::string share(const std::string& key, const std::string& value);

 private:
  struct Impl;
  ProcessGroup(World world, std::unique_ptr<Impl> impl);

  World world_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace advft::dist
