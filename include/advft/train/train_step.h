#pragma once
// One optimization step — attack examples of the batch, the loss, backward and the SGD update — as
// one unit that runs eagerly or as a replayed CUDA graph. The trainer and `advft bench` both run
// it, so the benchmark measures the training loop itself.
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/dist/process_group.h"
#include "advft/models/classifier.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/precision.h"
#include "advft/train/loss_scaler.h"
#include "advft/train/sgd.h"

namespace advft::train {

struct StepOptions {
  bool adversarial = true;  ///< train on attack examples (false: clean training)
  attacks::AttackOptions attack;
  double clean_weight = 0.0;  ///< pgd_at: loss = (1-w)*adversarial + w*clean
  /// "pgd_at" or "trades" (config::TrainConfig::objective); TRADES's weight of its KL term.
  std::string objective = "pgd_at";
  double trades_beta = 6.0;
  runtime::Precision precision = runtime::Precision::kFp32;
  torch::Device device = torch::kCPU;
  runtime::GraphMode graphs = runtime::GraphMode::kOff;
  /// Eager steps before the capture. They are real training steps, not thrown away.
  int64_t graph_warmup = 3;
  /// A data-parallel run's processes: the gradients are averaged over them between backward and
  /// the update, as DistributedDataParallel does. Needs graphs off (the collective runs on the
  /// host's schedule). Null or one process: a plain step.
  dist::ProcessGroup* group = nullptr;
};

/// What a step leaves on the device. Reading it (.item()) is the caller's host sync, so a loop
/// that reads it every few dozen steps keeps the GPU queue full.
struct StepResult {
  torch::Tensor loss;  ///< fp32 scalar: the batch's training loss
  torch::Tensor
      correct;  ///< int64 scalar: examples the model got right (attacked ones when adversarial)
};

/// Why a training step with these settings cannot be captured, or "" when it can.
std::string step_not_capturable(runtime::Precision precision, const std::string& model_kind);

class TrainStep {
 public:
  /// `model`, `optimizer` and `scaler` must outlive the step. An enabled `scaler` (fp16) needs
  /// options.graphs off: whether to skip a step is decided on the host.
  TrainStep(models::ClassifierImpl& model, Sgd& optimizer, LossScaler& scaler, StepOptions options);

  /// One step on images `x` (float [B, C, H, W] in [0, 1]) and labels `y` at learning rate
  /// `lr`, in train mode. The result is valid until the next call.
  StepResult run(const torch::Tensor& x, const torch::Tensor& y, double lr);

  /// Steps served by a CUDA graph replay so far.
  int64_t replays() const { return call_.replays(); }

 private:
  std::vector<torch::Tensor> body(const std::vector<torch::Tensor>& inputs);
  /// The training loss and the logits whose accuracy is reported, under autocast.
  std::pair<torch::Tensor, torch::Tensor> pgd_at_loss(const torch::Tensor& x,
                                                      const torch::Tensor& y);
  std::pair<torch::Tensor, torch::Tensor> trades_loss(const torch::Tensor& x,
                                                      const torch::Tensor& y);

  models::ClassifierImpl& model_;
  Sgd& optimizer_;
  LossScaler& scaler_;
  StepOptions options_;
  runtime::GraphedCall call_;
};

}  // namespace advft::train
