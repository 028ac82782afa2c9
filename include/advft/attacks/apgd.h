#pragma once
// Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
// diverse parameter-free attacks", ICML 2020): the gradient attacks of AutoAttack. PGD with
// momentum whose step size starts at 2 eps and is halved, per example, at fixed checkpoints when
// the loss stopped rising; each halving restarts from the best point found so far. No step size
// to tune, and far fewer overestimates of robustness than PGD with a fixed step.
//
// Same contract as the other attacks: input gradients only, model mode and parameter gradients
// untouched, results in the eps-ball and in [0, 1]. Only tensor operations after the first
// forward, so a whole run can be captured in a CUDA graph.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks {

/// Untargeted APGD on options.loss ("ce" is APGD-CE, "dlr" APGD-DLR), options.steps iterations
/// from a random start, options.restarts restarts. Per example it returns a point that fools the
/// model if any iterate did, else the one with the highest loss; over restarts the worst case.
/// With options.eot > 1 each step ascends the loss averaged over that many forwards (for
/// randomized models; APGD-T too).
torch::Tensor apgd(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& options);

/// APGD-T: APGD on the targeted DLR loss, once for each of the options.targets classes the model
/// ranks highest after the true one on the clean input (at most classes - 1 of them); an example
/// counts as fooled if any target run fools it (the model then predicts any wrong class).
torch::Tensor apgd_targeted(models::ClassifierImpl& model, const torch::Tensor& x,
                            const torch::Tensor& y, const AttackOptions& options);

/// The iterations after which APGD checks its progress: the first after 22% of `steps`, then at
/// intervals shrinking by 3% of `steps` down to 6% (each at least one iteration).
std::vector<int64_t> apgd_checkpoints(int64_t steps);

}  // namespace advft::attacks
