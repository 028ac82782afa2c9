#include "advft/attacks/apgd.h"

#include <algorithm>

#include "advft/attacks/losses.h"
#include "shared.h"

namespace advft::attacks {
namespace {

using detail::Candidate;
using detail::LossFn;

// The paper's constants: the momentum alpha, and rho, the share of rising steps below which an
// interval counts as oscillating.
constexpr double kMomentum = 0.75;
constexpr double kRho = 0.75;

torch::Tensor as_image_mask(const torch::Tensor& per_example) {
  return per_example.view({-1, 1, 1, 1});
}

// x + the projection of (point - x): the point moved into the ball around x and the box (the
// clamp again because x + (p - x) may round one ulp past 1).
torch::Tensor into_ball(const torch::Tensor& x, const torch::Tensor& point,
                        const AttackOptions& o) {
  return (x + detail::project(x, point - x, o)).clamp(0.0, 1.0);
}

// The loss and its gradient at x_adv, averaged over o.eot forwards: for a model with randomness
// in it, the expectation over transformation (Athalye et al., 2018) that AutoAttack's "rand"
// version ascends. The logits are the last forward's.
detail::LossAndGradient expected_loss_and_gradient(models::ClassifierImpl& model,
                                                   const torch::Tensor& x_adv,
                                                   const LossFn& loss_fn, const AttackOptions& o) {
  detail::LossAndGradient at = detail::loss_and_gradient(model, x_adv, loss_fn);
  for (int64_t draw = 1; draw < o.eot; ++draw) {
    detail::LossAndGradient next = detail::loss_and_gradient(model, x_adv, loss_fn);
    at.loss = at.loss + next.loss;
    at.grad = at.grad + next.grad;
    at.logits = next.logits;
  }
  if (o.eot == 1) return at;
  const double draws = static_cast<double>(o.eot);
  return {at.loss / draws, at.grad / draws, at.logits};
}

// One APGD run from a random start.
Candidate apgd_run(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& o, const LossFn& loss_fn) {
  const std::vector<int64_t> checkpoints = apgd_checkpoints(o.steps);
  // AutoAttack's start: on the surface of the ball rather than inside it.
  torch::Tensor x_adv = detail::random_point_at(x, o, o.eps);
  detail::LossAndGradient at = expected_loss_and_gradient(model, x_adv, loss_fn, o);
  torch::Tensor grad = at.grad;

  torch::Tensor fooled = at.logits.argmax(1).ne(y);
  torch::Tensor x_fooled = x_adv;  // the latest iterate that fooled the model, per example
  torch::Tensor x_best = x_adv;    // the highest loss so far, its point and gradient
  torch::Tensor grad_best = grad;
  torch::Tensor loss_best = at.loss;
  torch::Tensor loss_last = at.loss;
  torch::Tensor x_last = x_adv;  // the iterate before x_adv, for the momentum term
  torch::Tensor step = torch::full({x.size(0), 1, 1, 1}, 2.0 * o.eps, x.options());

  // Progress since the last checkpoint: how many steps raised the loss, the best loss then, and
  // whether that checkpoint halved the step.
  torch::Tensor rises = torch::zeros_like(loss_best);
  torch::Tensor loss_best_at_check = loss_best;
  torch::Tensor halved_at_check = torch::ones_like(fooled);
  int64_t last_check = 0;
  std::size_t next_check = 0;

  for (int64_t i = 0; i < o.steps; ++i) {
    // The first step is plain PGD; later ones mix in the previous move.
    const double momentum = i == 0 ? 1.0 : kMomentum;
    const torch::Tensor z = into_ball(x, x_adv + step * detail::ascent_direction(grad, o), o);
    const torch::Tensor moved =
        x_adv + momentum * (z - x_adv) + (1.0 - momentum) * (x_adv - x_last);
    x_last = x_adv;
    x_adv = into_ball(x, moved, o);

    at = expected_loss_and_gradient(model, x_adv, loss_fn, o);
    grad = at.grad;
    const torch::Tensor fools = at.logits.argmax(1).ne(y);
    x_fooled = torch::where(as_image_mask(fools), x_adv, x_fooled);
    fooled = fooled | fools;
    rises = rises + at.loss.gt(loss_last).to(rises.scalar_type());
    loss_last = at.loss;
    const torch::Tensor improved = at.loss.gt(loss_best);
    x_best = torch::where(as_image_mask(improved), x_adv, x_best);
    grad_best = torch::where(as_image_mask(improved), grad, grad_best);
    loss_best = torch::where(improved, at.loss, loss_best);

    if (next_check < checkpoints.size() && i + 1 == checkpoints[next_check]) {
      // Halve the step where the loss mostly did not rise over the interval, or where the best
      // loss did not improve although the last checkpoint kept the step; go back to the best.
      const int64_t interval = checkpoints[next_check] - last_check;
      const torch::Tensor oscillating = rises.le(kRho * static_cast<double>(interval));
      const torch::Tensor stalled = ~halved_at_check & loss_best_at_check.ge(loss_best);
      const torch::Tensor halve = oscillating | stalled;
      step = torch::where(as_image_mask(halve), step * 0.5, step);
      x_adv = torch::where(as_image_mask(halve), x_best, x_adv);
      grad = torch::where(as_image_mask(halve), grad_best, grad);
      halved_at_check = halve;
      loss_best_at_check = loss_best;
      rises = torch::zeros_like(rises);
      last_check = checkpoints[next_check];
      ++next_check;
    }
  }
  return {torch::where(as_image_mask(fooled), x_fooled, x_best), fooled, loss_best};
}

// Runs `restarts` APGD runs on one loss and keeps the worst case into `worst` (or starts it).
void run_restarts(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& o, const LossFn& loss_fn, Candidate& worst) {
  for (int64_t r = 0; r < o.restarts; ++r) {
    detail::keep_worst(worst, apgd_run(model, x, y, o, loss_fn));
  }
}

}  // namespace

std::vector<int64_t> apgd_checkpoints(int64_t steps) {
  // Python's int(p * steps), at least 1, as in the reference implementation.
  const auto share = [steps](double p) {
    return std::max<int64_t>(static_cast<int64_t>(p * static_cast<double>(steps)), 1);
  };
  const int64_t shrink = share(0.03);
  const int64_t shortest = share(0.06);
  std::vector<int64_t> checkpoints;
  // A check after the last iteration would change nothing that is returned.
  for (int64_t interval = share(0.22), at = interval; at < steps; at += interval) {
    checkpoints.push_back(at);
    interval = std::max(interval - shrink, shortest);
  }
  return checkpoints;
}

torch::Tensor apgd(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& options) {
  detail::check_inputs(x, y);
  Candidate worst;
  run_restarts(model, x, y, options, detail::untargeted_loss(options, y), worst);
  return worst.x_adv.detach();
}

torch::Tensor apgd_targeted(models::ClassifierImpl& model, const torch::Tensor& x,
                            const torch::Tensor& y, const AttackOptions& options) {
  detail::check_inputs(x, y);
  const torch::Tensor targets = detail::ranked_targets(model, x, options);
  Candidate worst;
  for (int64_t rank = 0; rank < targets.size(1); ++rank) {
    const torch::Tensor target = targets.select(1, rank);
    const LossFn loss = [y, target](const torch::Tensor& logits) {
      return targeted_dlr_loss(logits, y, target);
    };
    run_restarts(model, x, y, options, loss, worst);
  }
  return worst.x_adv.detach();
}

}  // namespace advft::attacks
