#include "advft/train/train_step.h"

#include <tuple>

#include <spdlog/spdlog.h>

#include "advft/attacks/attacks.h"
#include "advft/attacks/losses.h"
#include "advft/attacks/trades.h"
#include "advft/eval/evaluator.h"

namespace advft::train {

std::string step_not_capturable(runtime::Precision precision, const std::string& model_kind) {
  if (precision == runtime::Precision::kFp16) {
    return "fp16 training decides on the host whether to skip an overflowing step (use bf16 "
           "for graphs)";
  }
  return eval::eval_not_capturable(model_kind);
}

TrainStep::TrainStep(models::ClassifierImpl& model, Sgd& optimizer, LossScaler& scaler,
                     StepOptions options)
    : model_(model),
      optimizer_(optimizer),
      scaler_(scaler),
      options_(std::move(options)),
      call_([this](const std::vector<torch::Tensor>& in) { return body(in); }, options_.graphs,
            options_.graph_warmup, "the training step") {
  TORCH_CHECK(!(scaler_.enabled() && options_.graphs != runtime::GraphMode::kOff),
              "TrainStep: fp16 loss scaling cannot run in a CUDA graph");
  TORCH_CHECK(!(options_.group && options_.graphs != runtime::GraphMode::kOff),
              "TrainStep: the gradient average of a data-parallel run cannot run in a CUDA graph");
}

StepResult TrainStep::run(const torch::Tensor& x, const torch::Tensor& y, double lr) {
  apply_lr(optimizer_, lr);
  std::vector<torch::Tensor> out = call_({x, y});
  return {out[0], out[1]};
}

std::pair<torch::Tensor, torch::Tensor> TrainStep::pgd_at_loss(const torch::Tensor& x,
                                                               const torch::Tensor& y) {
  // Like the public PGD-AT code, examples are built in train mode (BatchNorm batch statistics).
  const torch::Tensor x_train =
      options_.adversarial
          ? attacks::run_attack(model_, x, y, options_.attack, attacks::AttackPurpose::kTraining)
          : x;
  runtime::drop_autocast_cache();  // the weights' casts again, with their autograd history
  torch::Tensor logits = model_.forward(x_train);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);  // autocast: in fp32
  if (options_.adversarial && options_.clean_weight > 0.0) {
    const torch::Tensor clean_loss = torch::nn::functional::cross_entropy(model_.forward(x), y);
    loss = (1.0 - options_.clean_weight) * loss + options_.clean_weight * clean_loss;
  }
  return {loss, logits};
}

std::pair<torch::Tensor, torch::Tensor> TrainStep::trades_loss(const torch::Tensor& x,
                                                               const torch::Tensor& y) {
  // As the TRADES reference code: examples built in eval mode, the loss in train mode, and the
  // gradient flows through the clean output in both terms. The clean forward is shared by the
  // two terms (the reference runs it twice, which only updates BatchNorm's running statistics
  // twice).
  model_.eval();
  const torch::Tensor x_adv = attacks::trades_examples(model_, x, options_.attack);
  runtime::drop_autocast_cache();  // its clean pass cast the weights under no_grad
  model_.train();
  const torch::Tensor clean_logits = model_.forward(x);
  torch::Tensor adv_logits = model_.forward(x_adv);
  const torch::Tensor clean_probs = torch::softmax(clean_logits.to(torch::kFloat), 1);
  const torch::Tensor loss =
      torch::nn::functional::cross_entropy(clean_logits.to(torch::kFloat), y) +
      options_.trades_beta * attacks::kl_from(clean_probs, adv_logits).mean();
  return {loss, adv_logits};
}

std::vector<torch::Tensor> TrainStep::body(const std::vector<torch::Tensor>& inputs) {
  const torch::Tensor& x = inputs[0];
  const torch::Tensor& y = inputs[1];
  model_.train();
  torch::Tensor logits;
  torch::Tensor loss;
  {
    const runtime::AutocastGuard autocast(options_.precision, options_.device);
    std::tie(loss, logits) = options_.adversarial && options_.objective == "trades"
                                 ? trades_loss(x, y)
                                 : pgd_at_loss(x, y);
  }
  optimizer_.zero_grad();
  scaler_.scale_loss(loss).backward();
  if (options_.group != nullptr) {
    // Averaged before the overflow check, so that every process skips the same fp16 steps.
    std::vector<torch::Tensor> gradients;
    for (const torch::Tensor& p : model_.parameters()) {
      if (p.grad().defined()) gradients.push_back(p.grad());
    }
    options_.group->average(gradients);
  }
  if (scaler_.unscale_and_update(model_.parameters())) {
    optimizer_.step();
  } else {
    spdlog::debug("fp16 gradients overflowed; step skipped, loss scale now {}", scaler_.scale());
  }
  torch::NoGradGuard no_grad;
  return {loss.detach().to(torch::kFloat), logits.argmax(1).eq(y).sum()};
}

}  // namespace advft::train
