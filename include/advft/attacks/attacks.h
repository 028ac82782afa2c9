#pragma once
// Adversarial attacks as pure functions of (model, x, y, options). They use input gradients only
// (torch::autograd::grad), never touch parameter gradients or the model's train/eval mode, keep
// x_adv within the eps-ball around x and within [0, 1].
#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks {

/// What the adversarial images are for. Adversarial training learns from PGD's last iterate
/// (Madry et al.). An evaluation asks whether the attack fooled the model, so there PGD returns
/// per image the first iterate that did, as fast_adversarial's evaluation stops there and
/// robustness keeps its best: an image fooled on the way is not counted robust because a later
/// step happened to leave the wrong class. FGSM is its one step either way; APGD, FAB and Square
/// keep what fools either way.
enum class AttackPurpose { kTraining, kEvaluation };

/// FGSM: one signed-gradient step of size step_size (eps by default); with random_start it is
/// the "fast" FGSM of Wong et al. (uniform start, then the step, then projection).
torch::Tensor fgsm(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& options);

/// PGD in the Linf or L2 ball on options.loss, with random start, `steps` steps and `restarts`
/// restarts; per example the restart that fools the model (else the one with the highest loss)
/// is kept.
torch::Tensor pgd(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& options, AttackPurpose purpose = AttackPurpose::kEvaluation);

/// Dispatches on options.kind ("fgsm", "pgd", "apgd" or "apgd_t", the APGD ones in apgd.h,
/// "square", square.h, or "fab" and "fab_t", fab.h).
torch::Tensor run_attack(models::ClassifierImpl& model, const torch::Tensor& x,
                         const torch::Tensor& y, const AttackOptions& options,
                         AttackPurpose purpose = AttackPurpose::kEvaluation);

/// How many input gradients (forward plus backward passes) the attack takes per batch: what
/// its cost scales with, for FLOP counts, on a model with `classes` outputs (untargeted FAB
/// takes every logit's gradient; counted as that many passes, one forward shared). Square takes
/// none (it only queries the outputs).
int64_t gradient_passes(const AttackOptions& options, int64_t classes);

}  // namespace advft::attacks
