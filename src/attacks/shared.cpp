#include "shared.h"

#include <algorithm>

#include "advft/attacks/losses.h"
#include "advft/error.h"

namespace advft::attacks::detail {

torch::Tensor per_example_norm(const torch::Tensor& t) {
  return t.flatten(1).norm(2, {1}).clamp_min(1e-12).view({-1, 1, 1, 1});
}

torch::Tensor random_point_at(const torch::Tensor& x, const AttackOptions& o, double radius) {
  torch::Tensor t;
  if (o.norm == "l2") {
    t = torch::randn_like(x);
    t = t / per_example_norm(t);
  } else {
    t = torch::rand_like(x) * 2.0 - 1.0;
    t = t / t.abs().flatten(1).amax(1).clamp_min(1e-12).view({-1, 1, 1, 1});
  }
  return (x + radius * t).clamp(0.0, 1.0);
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& delta, const AttackOptions& o) {
  torch::Tensor d;
  if (o.norm == "l2") {
    d = delta * (o.eps / per_example_norm(delta)).clamp_max(1.0);
  } else {
    d = delta.clamp(-o.eps, o.eps);
  }
  return (x + d).clamp(0.0, 1.0) - x;
}

torch::Tensor ascent_direction(const torch::Tensor& grad, const AttackOptions& o) {
  if (o.norm == "l2") return grad / per_example_norm(grad);
  return grad.sign();
}

void check_images(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "attacks expect NCHW images, got ", x.sizes());
}

void check_inputs(const torch::Tensor& x, const torch::Tensor& y) {
  check_images(x);
  TORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "attacks expect one label per image");
}

void check_classes(const AttackOptions& o, int64_t classes) {
  const bool targeted = o.kind == "apgd_t";
  const int64_t needed = targeted ? 4 : o.loss == "dlr" ? 3 : 2;
  if (classes >= needed) return;
  // The CE loss is the fallback that needs the fewest classes; below 2 there is nothing to fool.
  const std::string fallback = needed > 2 && classes >= 2 ? "; use pgd or apgd with loss=ce" : "";
  throw ConfigError("attack " + describe_attack(o) + ": the " +
                    (targeted ? "targeted DLR" : o.loss) + " loss needs at least " +
                    std::to_string(needed) + " classes, the model has " + std::to_string(classes) +
                    fallback);
}

torch::Tensor ranked_targets(models::ClassifierImpl& model, const torch::Tensor& x,
                             const AttackOptions& o) {
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model.forward(x);
  const int64_t classes = logits.size(1);
  check_classes(o, classes);
  const int64_t targets = std::min(o.targets, classes - 1);
  // By the clean logits, largest first: rank 0 is (usually) the true class.
  return std::get<1>(logits.topk(targets + 1, 1)).slice(1, 1);
}

LossFn untargeted_loss(const AttackOptions& o, const torch::Tensor& y) {
  return [o, y](const torch::Tensor& logits) {
    check_classes(o, logits.size(1));
    return attack_loss(o.loss, logits, y);
  };
}

LossAndGradient loss_and_gradient(models::ClassifierImpl& model, const torch::Tensor& x_adv,
                                  const LossFn& loss_fn) {
  torch::AutoGradMode enable_grad(true);  // callers may evaluate under NoGradGuard
  const torch::Tensor input = x_adv.detach().requires_grad_(true);
  const torch::Tensor logits = model.forward(input);
  const torch::Tensor loss = loss_fn(logits);
  // A sum, not a mean: each example's gradient does not depend on the batch size.
  torch::Tensor grad = torch::autograd::grad({loss.sum()}, {input})[0].detach();
  return {loss.detach(), grad, logits.detach()};
}

torch::Tensor ascend(models::ClassifierImpl& model, const torch::Tensor& x, torch::Tensor delta,
                     const LossFn& loss_fn, const AttackOptions& o, const torch::Tensor& labels) {
  const bool keep_fooling = labels.defined();
  // Tensor operations only, no host reads: the loop stays capturable in a CUDA graph.
  torch::Tensor fooled, first_fooling;
  if (keep_fooling) {
    fooled = torch::zeros({x.size(0)}, labels.options().dtype(torch::kBool));
    first_fooling = torch::zeros_like(x);
  }
  for (int64_t step = 0; step < o.steps; ++step) {
    const torch::Tensor x_adv = (x + delta).clamp(0.0, 1.0);
    const LossAndGradient at = loss_and_gradient(model, x_adv, loss_fn);
    if (keep_fooling) {
      const torch::Tensor newly = at.logits.argmax(1).ne(labels) & ~fooled;
      first_fooling = torch::where(newly.view({-1, 1, 1, 1}), x_adv, first_fooling);
      fooled = fooled | newly;
    }
    delta = project(x, delta + o.step_size * ascent_direction(at.grad, o), o);
  }
  const torch::Tensor last = (x + delta).clamp(0.0, 1.0);
  if (!keep_fooling) return last;
  return torch::where(fooled.view({-1, 1, 1, 1}), first_fooling, last);
}

void keep_worst(Candidate& best, Candidate next) {
  if (!best.x_adv.defined()) {
    best = std::move(next);
    return;
  }
  const torch::Tensor better =
      (next.fooled & ~best.fooled) | ((next.fooled == best.fooled) & (next.loss > best.loss));
  best.x_adv = torch::where(better.view({-1, 1, 1, 1}), next.x_adv, best.x_adv);
  best.fooled = best.fooled | next.fooled;
  best.loss = torch::where(better, next.loss, best.loss);
}

}  // namespace advft::attacks::detail
