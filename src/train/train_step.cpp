#include "advft/train/train_step.h"

#include <spdlog/spdlog.h>

#include "advft/attacks/attacks.h"
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
}

StepResult TrainStep::run(const torch::Tensor& x, const torch::Tensor& y, double lr) {
  apply_lr(optimizer_, lr);
  std::vector<torch::Tensor> out = call_({x, y});
  return {out[0], out[1]};
}

std::vector<torch::Tensor> TrainStep::body(const std::vector<torch::Tensor>& inputs) {
  const torch::Tensor& x = inputs[0];
  const torch::Tensor& y = inputs[1];
  // Like the public PGD-AT code, examples are built in train mode (BatchNorm batch statistics).
  model_.train();
  torch::Tensor logits;
  torch::Tensor loss;
  {
    const runtime::AutocastGuard autocast(options_.precision, options_.device);
    const torch::Tensor x_train =
        options_.adversarial ? attacks::run_attack(model_, x, y, options_.attack) : x;
    logits = model_.forward(x_train);
    loss = torch::nn::functional::cross_entropy(logits, y);  // autocast computes it in fp32
    if (options_.adversarial && options_.clean_weight > 0.0) {
      const torch::Tensor clean_loss = torch::nn::functional::cross_entropy(model_.forward(x), y);
      loss = (1.0 - options_.clean_weight) * loss + options_.clean_weight * clean_loss;
    }
  }
  optimizer_.zero_grad();
  scaler_.scale_loss(loss).backward();
  if (scaler_.unscale_and_update(model_.parameters())) {
    optimizer_.step();
  } else {
    spdlog::debug("fp16 gradients overflowed; step skipped, loss scale now {}", scaler_.scale());
  }
  torch::NoGradGuard no_grad;
  return {loss.detach().to(torch::kFloat), logits.argmax(1).eq(y).sum()};
}

}  // namespace advft::train
