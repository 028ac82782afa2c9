#pragma once
// Clean and adversarial accuracy of a model on a data set.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "advft/attacks/attack_spec.h"
#include "advft/data/dataset.h"
#include "advft/data/loader.h"
#include "advft/dist/process_group.h"
#include "advft/models/classifier.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/precision.h"

namespace advft::eval {

/// Accuracy under one attack.
struct AttackAccuracy {
  std::string name;
  attacks::AttackOptions options;
  int64_t correct = 0;
  double accuracy = 0.0;  ///< percent
  double seconds = 0.0;
};

/// What an evaluation measured.
struct EvalReport {
  int64_t total = 0;
  /// The attacks ran as a cascade (EvalOptions::cascade): each row's count is cumulative.
  bool cascade = false;
  int64_t clean_correct = 0;
  double clean_accuracy = 0.0;  ///< percent
  std::vector<AttackAccuracy> attacks;
  /// Per example: correct on the clean image and under every attack.
  int64_t worst_case_correct = 0;
  double worst_case_accuracy = 0.0;
  double seconds = 0.0;
};

struct EvalOptions {
  int64_t batch_size = 500;
  int64_t limit = 0;  ///< only N examples, data::sample's (0 = all)
  uint64_t seed = 0;  ///< seeds the attacks' random starts, so a re-run gives the same numbers
  /// Autocast of every forward pass (attacks included); predictions are compared in fp32.
  runtime::Precision precision = runtime::Precision::kFp32;
  /// kCuda: the clean pass and each attack are captured as CUDA graphs after `graph_warmup`
  /// eager batches and replayed for every full batch (the last partial one runs eagerly).
  runtime::GraphMode graphs = runtime::GraphMode::kOff;
  int64_t graph_warmup = 2;
  data::Placement placement = data::Placement::kDevice;  ///< where the test images wait
  /// Each attack only on the images still robust after the clean pass and every earlier attack
  /// (AutoAttack's order: no work on what is already lost); rows then count what survives that
  /// attack and all before it. The subsets vary in size, so attacks run eagerly.
  bool cascade = false;
  /// Stop with InterruptedError between batches after SIGINT/SIGTERM. Off in a data-parallel
  /// run, whose processes must leave their validation together: the training loop stops them
  /// all at the next step, by a vote.
  bool stop_on_signal = true;
};

/// Why evaluating a model of `model_kind` cannot be captured as CUDA graphs, or "".
std::string eval_not_capturable(const std::string& model_kind);

/// Per example of a batch (x in [0,1], labels y): whether `model` classifies it right, on the
/// clean image (`attack` null) or under `attack`. Only device work, so it can be captured.
torch::Tensor correct_mask(models::ClassifierImpl& model, const torch::Tensor& x,
                           const torch::Tensor& y, const attacks::AttackOptions* attack,
                           runtime::Precision precision);

/// correct_mask over inputs {x, y} as a GraphedCall with `options`' precision, graph mode and
/// warm-up: how `evaluate` runs each row of its table (`attack` null: the clean pass). `model`
/// and `*attack` must outlive it; `what` names it in errors.
std::unique_ptr<runtime::GraphedCall> graphed_correct_mask(models::ClassifierImpl& model,
                                                           const attacks::AttackOptions* attack,
                                                           const EvalOptions& options,
                                                           const std::string& what);

/// Called after each batch with (examples done, total).
using ProgressFn = std::function<void(int64_t, int64_t)>;

/// Evaluates in eval mode (the model's previous mode is restored afterwards).
EvalReport evaluate(models::ClassifierImpl& model, const data::Dataset& data,
                    const std::vector<attacks::NamedAttack>& attacks, const EvalOptions& options,
                    torch::Device device, const ProgressFn& progress = {});

/// The report of every process's shard together: counts summed, accuracies recomputed, the
/// seconds of the slowest. Every process calls it, with reports of the same attacks.
EvalReport combine_over(const EvalReport& mine, dist::ProcessGroup& group);

/// The report as JSON (results.json / --json).
nlohmann::json to_json(const EvalReport& report);

/// The report as an aligned text table.
std::string format_table(const EvalReport& report);

}  // namespace advft::eval
