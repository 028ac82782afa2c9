#pragma once
// CUDA graphs. A PGD-10 training step is eleven forward and backward passes of a ResNet plus the
// SGD update: thousands of small kernels whose launch cost, not their arithmetic, bounds a batch
// of 128 CIFAR images. Recorded once and replayed, the whole step is a single launch.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace advft::runtime {

/// How a GraphedCall runs its function once warmed up.
enum class GraphMode {
  kOff,   ///< always eagerly
  kCuda,  ///< captured as a CUDA graph, then replayed
  /// Tests on machines without a GPU: "replay" runs the function again on the static inputs,
  /// which exercises the static-buffer bookkeeping that kCuda relies on.
  kEmulated,
};

/// Whether this build and `device` can capture CUDA graphs.
bool cuda_graphs_available(const torch::Device& device);

/// The `cuda_graphs` setting ("auto" | "on" | "off") for a loop on `device`. "auto" captures
/// where graphs are available, unless `not_capturable` gives a reason this loop cannot be
/// captured (then it says so in the log); "on" where graphs are unavailable or not capturable
/// is a ConfigError naming `where`.
GraphMode resolve_graph_mode(const std::string& setting, const torch::Device& device,
                             const std::string& where, const std::string& not_capturable = "");

/// A function of tensors of fixed shapes, run eagerly for its first `warmup` calls in a row of one
/// shape (cuDNN picks its kernels; lazily created state such as momentum buffers comes into being;
/// a call of another shape starts the count again), then captured
/// once over static copies of its inputs and replayed with each call's inputs copied in. A call
/// whose input shapes differ from the captured ones (a last partial batch) runs eagerly.
///
/// The function may only queue device work: no host sync (.item()), no branching on tensor
/// values, no scalar that changes between calls (read it from a tensor instead). Under kCuda
/// the caller must be inside a StreamScope. Replayed outputs live in the graph's memory and are
/// overwritten by the next call: consume them first.
class GraphedCall {
 public:
  using Fn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

  /// `what` names the function in errors ("the training step").
  GraphedCall(Fn fn, GraphMode mode, int64_t warmup, std::string what);
  ~GraphedCall();
  GraphedCall(const GraphedCall&) = delete;
  GraphedCall& operator=(const GraphedCall&) = delete;

  std::vector<torch::Tensor> operator()(const std::vector<torch::Tensor>& inputs);

  /// Whether later calls of the captured shapes replay a graph.
  bool captured() const { return graph_ != nullptr; }
  /// Calls served by a replay so far.
  int64_t replays() const { return replays_; }

 private:
  void capture(const std::vector<torch::Tensor>& inputs);
  bool fits(const std::vector<torch::Tensor>& inputs) const;

  struct InputShape {
    std::vector<int64_t> sizes;
    c10::ScalarType dtype;
    c10::Device device;
    bool operator==(const InputShape& other) const;
  };
  static std::vector<InputShape> shapes_of(const std::vector<torch::Tensor>& inputs);

  struct Graph;
  Fn fn_;
  GraphMode mode_;
  int64_t warmup_;
  std::string what_;
  // Of the eager calls counted towards the warm-up; once captured, what a replay takes.
  std::vector<InputShape> shapes_;
  int64_t eager_calls_ = 0;  // in a row, of shapes_
  int64_t replays_ = 0;
  std::vector<torch::Tensor> static_inputs_;
  std::vector<torch::Tensor> static_outputs_;
  std::unique_ptr<Graph> graph_;
};

}  // namespace advft::runtime
