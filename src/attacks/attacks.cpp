#include "advft/attacks/attacks.h"

#include "advft/attacks/apgd.h"
#include "advft/attacks/fab.h"
#include "advft/attacks/losses.h"
#include "advft/attacks/square.h"
#include "advft/error.h"
#include "shared.h"

namespace advft::attacks {
namespace {

using detail::project;

torch::Tensor random_start(const torch::Tensor& x, const AttackOptions& o) {
  if (o.norm == "l2") {
    // Uniform direction, radius uniform in [0, eps] (torchattacks / robustness convention).
    torch::Tensor direction = torch::randn_like(x);
    direction = direction / detail::per_example_norm(direction);
    torch::Tensor radius = torch::rand({x.size(0), 1, 1, 1}, x.options()) * o.eps;
    return project(x, direction * radius, o);
  }
  return project(x, torch::empty_like(x).uniform_(-o.eps, o.eps), o);
}

torch::Tensor pgd_once(models::ClassifierImpl& model, const torch::Tensor& x,
                       const torch::Tensor& y, const AttackOptions& o, AttackPurpose purpose) {
  torch::Tensor delta = o.random_start ? random_start(x, o) : torch::zeros_like(x);
  const torch::Tensor keep_first_fooling_of =
      purpose == AttackPurpose::kEvaluation ? y : torch::Tensor();
  return detail::ascend(model, x, delta, detail::untargeted_loss(o, y), o, keep_first_fooling_of);
}

// Scores a PGD restart by the loss it ascended, for the worst case over restarts.
detail::Candidate score(models::ClassifierImpl& model, const torch::Tensor& x_adv,
                        const torch::Tensor& y, const AttackOptions& o) {
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model.forward(x_adv);
  return {x_adv, logits.argmax(1).ne(y), attack_loss(o.loss, logits, y)};
}

}  // namespace

torch::Tensor fgsm(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& options) {
  detail::check_inputs(x, y);
  AttackOptions o = options;
  o.steps = 1;  // one step from the (optional) random start: PGD-1
  // Its one step is the attack, whatever the purpose: a start that fooled (a clean image the
  // model gets wrong) would otherwise come back unmoved.
  return pgd_once(model, x, y, o, AttackPurpose::kTraining).detach();
}

torch::Tensor pgd(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& options, AttackPurpose purpose) {
  detail::check_inputs(x, y);
  torch::Tensor first = pgd_once(model, x, y, options, purpose);
  if (options.restarts <= 1) return first.detach();

  detail::Candidate worst = score(model, first, y, options);
  for (int64_t r = 1; r < options.restarts; ++r)
    detail::keep_worst(worst, score(model, pgd_once(model, x, y, options, purpose), y, options));
  return worst.x_adv.detach();
}

torch::Tensor run_attack(models::ClassifierImpl& model, const torch::Tensor& x,
                         const torch::Tensor& y, const AttackOptions& options,
                         AttackPurpose purpose) {
  if (options.kind == "fgsm") return fgsm(model, x, y, options);
  if (options.kind == "pgd") return pgd(model, x, y, options, purpose);
  if (options.kind == "apgd") return apgd(model, x, y, options);
  if (options.kind == "apgd_t") return apgd_targeted(model, x, y, options);
  if (options.kind == "square") return square(model, x, y, options);
  if (options.kind == "fab_t") return fab_targeted(model, x, y, options);
  if (options.kind == "fab") return fab(model, x, y, options);
  throw Error("unknown attack kind \"" + options.kind + "\"");
}

int64_t gradient_passes(const AttackOptions& o, int64_t classes) {
  if (o.kind == "fgsm") return 1;
  if (o.kind == "pgd") return o.steps * o.restarts;
  if (o.kind == "square") return 0;  // forwards only: (steps + 1) x restarts queries
  if (o.kind == "fab_t") return o.steps * o.restarts * o.targets;  // and as many forwards
  if (o.kind == "fab") return o.steps * o.restarts * classes;
  // APGD takes one gradient at its random start and one after each step, each of `eot`.
  const int64_t apgd_passes = (o.steps + 1) * o.restarts * o.eot;
  if (o.kind == "apgd_t") return apgd_passes * o.targets;
  return apgd_passes;
}

}  // namespace advft::attacks
