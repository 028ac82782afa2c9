#include "advft/attacks/attacks.h"

#include "advft/error.h"

namespace advft::attacks {
namespace {

// Gradient of the summed cross-entropy with respect to the perturbation only. A sum instead of
// a mean keeps per-example gradients independent of the batch size (signs are unaffected).
torch::Tensor input_gradient(models::ClassifierImpl& model, const torch::Tensor& x,
                             const torch::Tensor& delta, const torch::Tensor& y) {
  torch::Tensor d = delta.detach().requires_grad_(true);
  torch::Tensor logits = model.forward((x + d).clamp(0.0, 1.0));
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  return torch::autograd::grad({loss}, {d})[0].detach();
}

// L2 norm of each example, shaped to broadcast over C, H, W.
torch::Tensor per_example_norm(const torch::Tensor& t) {
  return t.flatten(1).norm(2, {1}).clamp_min(1e-12).view({-1, 1, 1, 1});
}

// Projects a perturbation onto the eps-ball and keeps x + delta inside [0, 1].
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& delta, const AttackOptions& o) {
  torch::Tensor d;
  if (o.norm == "l2") {
    d = delta * (o.eps / per_example_norm(delta)).clamp_max(1.0);
  } else {
    d = delta.clamp(-o.eps, o.eps);
  }
  return (x + d).clamp(0.0, 1.0) - x;
}

torch::Tensor random_start(const torch::Tensor& x, const AttackOptions& o) {
  if (o.norm == "l2") {
    // Uniform direction, radius uniform in [0, eps] (torchattacks / robustness convention).
    torch::Tensor direction = torch::randn_like(x);
    direction = direction / per_example_norm(direction);
    torch::Tensor radius = torch::rand({x.size(0), 1, 1, 1}, x.options()) * o.eps;
    return project(x, direction * radius, o);
  }
  return project(x, torch::empty_like(x).uniform_(-o.eps, o.eps), o);
}

torch::Tensor ascent_step(const torch::Tensor& grad, const AttackOptions& o) {
  if (o.norm == "l2") return o.step_size * grad / per_example_norm(grad);
  return o.step_size * grad.sign();
}

void check_inputs(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(x.dim() == 4, "attacks expect NCHW images, got ", x.sizes());
  TORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "attacks expect one label per image");
}

torch::Tensor pgd_once(models::ClassifierImpl& model, const torch::Tensor& x,
                       const torch::Tensor& y, const AttackOptions& o) {
  torch::Tensor delta = o.random_start ? random_start(x, o) : torch::zeros_like(x);
  for (int64_t step = 0; step < o.steps; ++step) {
    torch::Tensor grad = input_gradient(model, x, delta, y);
    delta = project(x, delta + ascent_step(grad, o), o);
  }
  return (x + delta).clamp(0.0, 1.0);
}

}  // namespace

torch::Tensor fgsm(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& options) {
  check_inputs(x, y);
  AttackOptions o = options;
  o.steps = 1;
  torch::Tensor delta = o.random_start ? random_start(x, o) : torch::zeros_like(x);
  torch::Tensor grad = input_gradient(model, x, delta, y);
  delta = project(x, delta + ascent_step(grad, o), o);
  return (x + delta).clamp(0.0, 1.0).detach();
}

torch::Tensor pgd(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& options) {
  check_inputs(x, y);
  torch::Tensor best = pgd_once(model, x, y, options);
  if (options.restarts <= 1) return best.detach();

  // Worst case over restarts, per example: prefer a fooling restart, then a higher loss.
  auto score = [&](const torch::Tensor& x_adv) {
    torch::NoGradGuard no_grad;
    torch::Tensor logits = model.forward(x_adv);
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    torch::Tensor fooled = logits.argmax(1).ne(y);
    return std::make_pair(fooled, loss);
  };
  auto [best_fooled, best_loss] = score(best);
  for (int64_t r = 1; r < options.restarts; ++r) {
    torch::Tensor candidate = pgd_once(model, x, y, options);
    auto [fooled, loss] = score(candidate);
    torch::Tensor better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss));
    torch::Tensor mask = better.view({-1, 1, 1, 1});
    best = torch::where(mask, candidate, best);
    best_fooled = best_fooled | fooled;
    best_loss = torch::where(better, loss, best_loss);
  }
  return best.detach();
}

torch::Tensor run_attack(models::ClassifierImpl& model, const torch::Tensor& x,
                         const torch::Tensor& y, const AttackOptions& options) {
  if (options.kind == "fgsm") return fgsm(model, x, y, options);
  if (options.kind == "pgd") return pgd(model, x, y, options);
  throw Error("unknown attack kind \"" + options.kind + "\"");
}

}  // namespace advft::attacks
