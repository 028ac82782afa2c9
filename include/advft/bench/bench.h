#pragma once
// `advft bench`: throughput of the two loops advft spends its time in — the PGD-k
// adversarial-training step and PGD evaluation — on synthetic data of the model's shape, with
// the FLOPs they do, so that runs on different cards and against the Python peers compare.
#include <cstdint>
#include <string>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "advft/attacks/attack_spec.h"
#include "advft/models/model_spec.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/device.h"
#include "advft/runtime/precision.h"

namespace advft::bench {

struct BenchOptions {
  models::ModelSpec spec;
  int64_t batch = 128;
  attacks::AttackOptions train_attack;  ///< PGD-10, eps 8/255, step 2/255 by default
  int64_t eval_steps = 20;              ///< PGD-k of the evaluation measurement
  runtime::Precision precision = runtime::Precision::kFp32;
  bool channels_last = false;
  bool fused_bn_relu = false;  ///< advft's fused BatchNorm+ReLU kernels in the AT step
  /// algorithms cuDNN's autotuning times (0: all)
  int64_t cudnn_benchmark_limit = runtime::kDefaultCudnnBenchmarkLimit;
  /// kCuda: both loops run as the trainer and evaluator run them with CUDA graphs (eager warm-up
  /// steps and the capture come before the untimed iterations).
  runtime::GraphMode graphs = runtime::GraphMode::kOff;
  int64_t warmup = 3;        ///< untimed iterations first (cuDNN autotuning, allocator)
  int64_t iterations = 10;   ///< timed iterations of each loop
  bool time_at_step = true;  ///< time the AT step (GPU time is scarce: skip what is not compared)
  bool time_eval = true;     ///< time the PGD evaluation
  /// An image folder (DIR/train/<class>/*.jpg, or DIR/<class>/*.jpg) whose training input is
  /// timed too: decoding, random crop, flip and the copy to the device, on `threads` cores
  /// as training runs it (empty: not timed).
  std::string input_dir;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;
};

struct BenchResult {
  std::string model;   ///< models::describe(spec)
  std::string device;  ///< e.g. "NVIDIA H100 80GB HBM3" or "CPU, 2 threads"
  std::string precision;
  bool channels_last = false;
  bool fused_bn_relu = false;
  int64_t cudnn_benchmark_limit = 0;  ///< as asked; it matters only on a GPU (`cuda`)
  bool cuda = false;
  bool graphs = false;
  int64_t batch = 0;
  std::string train_attack;
  int64_t eval_steps = 0;
  int64_t forward_flops = 0;     ///< per image
  int64_t at_step_flops = 0;     ///< per image
  int64_t eval_flops = 0;        ///< per image
  bool at_timed = false;         ///< whether the AT step was timed (BenchOptions::time_at_step)
  bool eval_timed = false;       ///< whether the evaluation was timed
  double at_images_per_s = 0;    ///< adversarial-training step
  double eval_images_per_s = 0;  ///< PGD evaluation
  /// Seconds of each loop's untimed first calls (autotuning, eager warm-up, capture, `warmup`).
  double at_warmup_seconds = 0;
  double eval_warmup_seconds = 0;
  bool input_timed = false;       ///< whether an image folder's input was timed
  std::string input_dir;          ///< its split folder
  int64_t input_images = 0;       ///< images in it
  int64_t input_threads = 0;      ///< the decoding threads
  double input_images_per_s = 0;  ///< decoded and cropped batches reaching the device
  double input_warmup_seconds = 0;
  double at_tflops = 0;  ///< achieved, from at_step_flops
  double eval_tflops = 0;
};

/// Builds the model, counts its FLOPs, then times `iterations` AT steps (train::TrainStep: attack
/// in train mode, forward, backward, SGD) and `iterations` PGD evaluations (eval::correct_mask in
/// eval mode) after `warmup` each; either loop can be left out. With `input_dir`, also times as
/// many batches of that image folder's training input at the model's input size.
BenchResult run_bench(const BenchOptions& options);

/// The result as an aligned table (a row per timed loop).
std::string format_bench(const BenchResult& result);

/// The result as JSON; "at_step", "eval" and "input" are there only for the loops that were timed.
nlohmann::json to_json(const BenchResult& result);

}  // namespace advft::bench
