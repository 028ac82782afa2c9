#include "advft/runtime/cuda_graph.h"

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>

#include "advft/error.h"
#include "advft/runtime/switch.h"

#ifdef ADVFT_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace advft::runtime {
#ifdef ADVFT_HAVE_CUDA
namespace {

// c10::Error messages carry a C++ backtrace after the first line; users need the first line.
std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace
#endif

bool cuda_graphs_available(const torch::Device& device) {
#ifdef ADVFT_HAVE_CUDA
  return device.is_cuda();
#else
  (void)device;
  return false;
#endif
}

GraphMode resolve_graph_mode(const std::string& setting, const torch::Device& device,
                             const std::string& where, const std::string& not_capturable) {
  if (!resolve_switch(setting, cuda_graphs_available(device), where,
                      "a CUDA device and a LibTorch built with CUDA (" + device.str() + " here)"))
    return GraphMode::kOff;
  if (!not_capturable.empty()) {
    if (setting == "on")
      throw ConfigError(where + " = \"on\": " + not_capturable + "; use auto or off");
    spdlog::info("CUDA graphs off: {}", not_capturable);
    return GraphMode::kOff;
  }
  return GraphMode::kCuda;
}

struct GraphedCall::Graph {
#ifdef ADVFT_HAVE_CUDA
  // Made only for kCuda: constructing a CUDAGraph asks CUDA for the current stream, which fails
  // where no GPU is visible (emulated graphs in the tests of a CUDA build on such a machine).
  std::unique_ptr<at::cuda::CUDAGraph> cuda;
#endif
};

GraphedCall::GraphedCall(Fn fn, GraphMode mode, int64_t warmup, std::string what)
    : fn_(std::move(fn)), mode_(mode), warmup_(warmup), what_(std::move(what)) {
#ifndef ADVFT_HAVE_CUDA
  TORCH_CHECK(mode_ != GraphMode::kCuda, "GraphedCall: this LibTorch has no CUDA graphs");
#endif
}

GraphedCall::~GraphedCall() = default;

bool GraphedCall::InputShape::operator==(const InputShape& other) const {
  return sizes == other.sizes && dtype == other.dtype && device == other.device;
}

std::vector<GraphedCall::InputShape> GraphedCall::shapes_of(
    const std::vector<torch::Tensor>& inputs) {
  std::vector<InputShape> shapes;
  for (const torch::Tensor& input : inputs)
    shapes.push_back({input.sizes().vec(), input.scalar_type(), input.device()});
  return shapes;
}

bool GraphedCall::fits(const std::vector<torch::Tensor>& inputs) const {
  return shapes_of(inputs) == shapes_;  // the warmed-up shapes are the captured ones
}

void GraphedCall::capture(const std::vector<torch::Tensor>& inputs) {
  // The captured kernels read these addresses on every replay; clone keeps each memory format.
  static_inputs_.clear();
  for (const auto& input : inputs)
    static_inputs_.push_back(input.detach().clone());
  auto graph = std::make_unique<Graph>();
#ifdef ADVFT_HAVE_CUDA
  if (mode_ == GraphMode::kCuda) {
    // Autocast keeps one bf16 copy of each weight per autocast region, so a PGD-k step casts its
    // weights once instead of k + 1 times, in the graph as in eager steps. That holds only for
    // copies made inside the capture: one made before it would be replayed stale after the
    // optimizer moves the weights, and one left after it would sit in the graph's memory that
    // each replay rewrites. So the cache is emptied on both sides of the capture.
    at::autocast::clear_cache();
    bool capturing = false;
    try {
      graph->cuda = std::make_unique<at::cuda::CUDAGraph>();
      graph->cuda->capture_begin();
      capturing = true;
      static_outputs_ = fn_(static_inputs_);
      capturing = false;
      graph->cuda->capture_end();
    } catch (const std::exception& e) {
      if (capturing) {
        try {
          graph->cuda->capture_end();
        } catch (const std::exception&) {
          // The capture was already invalid; the first error is the one to report.
        }
      }
      at::autocast::clear_cache();
      static_inputs_.clear();
      static_outputs_.clear();
      throw Error("CUDA graph capture of " + what_ + " failed (" + first_line(e.what()) +
                  "); run without graphs: --set cuda_graphs=off (eval and bench: --graphs off)");
    }
    at::autocast::clear_cache();
    // The graph has its own memory now; what the eager warm-up calls cached is only in the way
    // (for a WRN-34-10 step, gigabytes).
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
#endif
  graph_ = std::move(graph);
  spdlog::debug("captured {} as a CUDA graph{}", what_,
                mode_ == GraphMode::kEmulated ? " (emulated)" : "");
}

std::vector<torch::Tensor> GraphedCall::operator()(const std::vector<torch::Tensor>& inputs) {
  if (mode_ == GraphMode::kOff) return fn_(inputs);
  if (!graph_) {
    // The warm-up counts calls of one shape: the capture must not be the first call of its
    // shape (cuDNN's benchmark mode times its algorithms then, and the synchronization would
    // break the capture), e.g. an evaluation whose third and last batch is a short one.
    std::vector<InputShape> shapes = shapes_of(inputs);
    if (shapes != shapes_) {
      shapes_ = std::move(shapes);
      eager_calls_ = 0;
    }
    if (eager_calls_ < warmup_) {
      ++eager_calls_;
      return fn_(inputs);
    }
    capture(inputs);
  } else if (fits(inputs)) {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      static_inputs_[i].copy_(inputs[i]);
  } else {
    return fn_(inputs);
  }
  // A capture only records: the replay is what runs the call that triggered it.
  if (mode_ == GraphMode::kEmulated) {
    static_outputs_ = fn_(static_inputs_);
  } else {
#ifdef ADVFT_HAVE_CUDA
    graph_->cuda->replay();
#endif
  }
  ++replays_;
  return static_outputs_;
}

}  // namespace advft::runtime
