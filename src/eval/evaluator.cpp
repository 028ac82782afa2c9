#include "advft/eval/evaluator.h"

#include <chrono>
#include <iomanip>
#include <sstream>

#include "advft/attacks/attacks.h"
#include "advft/config/load.h"
#include "advft/data/loader.h"
#include "advft/error.h"
#include "advft/runtime/signals.h"
#include "advft/runtime/stream.h"

namespace advft::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double percent(int64_t part, int64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// Restores the model's train/eval mode on every exit path.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(models::ClassifierImpl& model)
      : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  models::ClassifierImpl& model_;
  bool was_training_;
};

}  // namespace

std::string eval_not_capturable(const std::string& model_kind) {
  if (model_kind == "torchscript")
    return "a TorchScript model may synchronize with the host inside its forward";
  return "";
}

torch::Tensor correct_mask(models::ClassifierImpl& model, const torch::Tensor& x,
                           const torch::Tensor& y, const attacks::AttackOptions* attack,
                           runtime::Precision precision) {
  const runtime::AutocastGuard autocast(precision, x.device());
  const torch::Tensor input =
      attack ? attacks::run_attack(model, x, y, *attack, attacks::AttackPurpose::kEvaluation) : x;
  torch::NoGradGuard no_grad;
  return model.forward(input).argmax(1).eq(y);
}

std::unique_ptr<runtime::GraphedCall> graphed_correct_mask(models::ClassifierImpl& model,
                                                           const attacks::AttackOptions* attack,
                                                           const EvalOptions& options,
                                                           const std::string& what) {
  const runtime::Precision precision = options.precision;
  return std::make_unique<runtime::GraphedCall>(
      [&model, attack, precision](const std::vector<torch::Tensor>& in) {
        return std::vector<torch::Tensor>{correct_mask(model, in[0], in[1], attack, precision)};
      },
      options.graphs, options.graph_warmup, what);
}

EvalReport evaluate(models::ClassifierImpl& model, const data::Dataset& full_data,
                    const std::vector<attacks::NamedAttack>& attacks, const EvalOptions& options,
                    torch::Device device, const ProgressFn& progress) {
  const auto start = Clock::now();
  data::Dataset data = options.limit > 0 && options.limit < full_data.size()
                           ? data::sample(full_data, options.limit)
                           : full_data;
  const runtime::StreamScope stream(device);
  EvalModeGuard mode_guard(model);
  torch::manual_seed(options.seed);

  EvalReport report;
  report.total = data.size();
  report.cascade = options.cascade;
  for (const auto& attack : attacks)
    report.attacks.push_back({attack.name, attack.options, 0, 0.0, 0.0});

  // One call per row of the table, each captured as its own graph: the host reads each row's
  // count before the next starts, which times every attack on its own.
  const std::unique_ptr<runtime::GraphedCall> clean_row =
      graphed_correct_mask(model, nullptr, options, "the clean evaluation");
  std::vector<std::unique_ptr<runtime::GraphedCall>> attack_rows;
  for (const auto& attack : attacks) {
    // Eagerly: a cascade's subsets change size from batch to batch, and Square's thousands of
    // forwards would make a graph of hundreds of thousands of kernels, costly to build, for
    // launches that its large forwards hide anyway.
    EvalOptions row_options = options;
    if (attack.options.kind == "square" || options.cascade)
      row_options.graphs = runtime::GraphMode::kOff;
    attack_rows.push_back(graphed_correct_mask(model, &attack.options, row_options,
                                               "the evaluation under " + attack.name));
  }

  data::BatchLoader loader(data, options.batch_size, /*shuffle=*/false, /*drop_last=*/false,
                           options.seed, device, options.placement);
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    if (options.stop_on_signal) runtime::throw_if_stopped("evaluation");
    data::Batch batch = loader.batch(0, b);
    const torch::Tensor clean = (*clean_row)({batch.images, batch.labels})[0].clone();
    torch::Tensor robust = clean.clone();
    report.clean_correct += clean.sum().item<int64_t>();
    for (std::size_t a = 0; a < attacks.size(); ++a) {
      // Also between attacks: a strong one on a large batch takes a while, longest on the CPU.
      if (a > 0 && options.stop_on_signal) runtime::throw_if_stopped("evaluation");
      const auto attack_start = Clock::now();
      if (options.cascade) {
        const torch::Tensor still = robust.nonzero().squeeze(1);
        if (still.numel() > 0) {
          const torch::Tensor correct = (*attack_rows[a])(
              {batch.images.index_select(0, still), batch.labels.index_select(0, still)})[0];
          robust.index_put_({still}, correct);
        }
        report.attacks[a].correct += robust.sum().item<int64_t>();
      } else {
        // An image the model gets wrong is not robust, whatever the attack's point does: the
        // clean image is in the ball too. (The attack may land a wrong image on its right class;
        // AutoAttack attacks only the right ones, so a row never exceeds the clean accuracy.)
        const torch::Tensor correct =
            (*attack_rows[a])({batch.images, batch.labels})[0].logical_and(clean);
        report.attacks[a].correct += correct.sum().item<int64_t>();
        robust = robust & correct;
      }
      report.attacks[a].seconds += seconds_since(attack_start);
    }
    report.worst_case_correct += robust.sum().item<int64_t>();
    if (progress)
      progress(std::min<int64_t>((b + 1) * options.batch_size, report.total), report.total);
  }
  report.clean_accuracy = percent(report.clean_correct, report.total);
  for (auto& a : report.attacks)
    a.accuracy = percent(a.correct, report.total);
  report.worst_case_accuracy = percent(report.worst_case_correct, report.total);
  report.seconds = seconds_since(start);
  return report;
}

EvalReport combine_over(const EvalReport& mine, dist::ProcessGroup& group) {
  EvalReport all = mine;
  std::vector<int64_t> counts{mine.total, mine.clean_correct, mine.worst_case_correct};
  for (const auto& a : mine.attacks)
    counts.push_back(a.correct);
  std::vector<torch::Tensor> sums{torch::tensor(counts, torch::kLong)};
  group.all_reduce_sum(sums);
  const int64_t* sum = sums[0].data_ptr<int64_t>();
  all.total = sum[0];
  all.clean_correct = sum[1];
  all.worst_case_correct = sum[2];
  all.clean_accuracy = percent(all.clean_correct, all.total);
  all.worst_case_accuracy = percent(all.worst_case_correct, all.total);
  for (size_t a = 0; a < all.attacks.size(); ++a) {
    all.attacks[a].correct = sum[3 + a];
    all.attacks[a].accuracy = percent(all.attacks[a].correct, all.total);
  }
  // Milliseconds, so that the slowest process's time goes through the integer vote.
  all.seconds =
      static_cast<double>(group.max(static_cast<int64_t>(mine.seconds * 1000.0))) / 1000.0;
  return all;
}

nlohmann::json to_json(const EvalReport& r) {
  nlohmann::json attacks = nlohmann::json::array();
  for (const auto& a : r.attacks) {
    nlohmann::json entry = config::attack_to_json(a.options);
    entry["name"] = a.name;
    entry["correct"] = a.correct;
    entry["accuracy"] = a.accuracy;
    entry["seconds"] = a.seconds;
    attacks.push_back(entry);
  }
  return {{"total", r.total},
          {"cascade", r.cascade},
          {"clean", {{"correct", r.clean_correct}, {"accuracy", r.clean_accuracy}}},
          {"attacks", attacks},
          {"worst_case", {{"correct", r.worst_case_correct}, {"accuracy", r.worst_case_accuracy}}},
          {"seconds", r.seconds}};
}

std::string format_table(const EvalReport& r) {
  std::size_t width = std::string("worst case (all attacks)").size();
  for (const auto& a : r.attacks)
    width = std::max(width, a.name.size() + (r.cascade ? 5 : 0));
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  auto row = [&](const std::string& name, int64_t correct, double accuracy) {
    out << std::left << std::setw(static_cast<int>(width)) << name << "  " << std::right
        << std::setw(7) << accuracy << " %  " << std::setw(7) << correct << " / " << r.total
        << "\n";
  };
  out << std::left << std::setw(static_cast<int>(width)) << "attack"
      << "  " << std::right << std::setw(9) << "accuracy"
      << "  "
      << "correct\n";
  row("clean", r.clean_correct, r.clean_accuracy);
  // A cascade's rows are cumulative: what survives this attack and every one before it.
  for (const auto& a : r.attacks)
    row((r.cascade ? "then " : "") + a.name, a.correct, a.accuracy);
  if (r.attacks.size() > 1)
    row("worst case (all attacks)", r.worst_case_correct, r.worst_case_accuracy);
  return out.str();
}

}  // namespace advft::eval
