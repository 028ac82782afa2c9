#pragma once
// The examples TRADES trains on (Zhang et al., "Theoretically principled trade-off between
// robustness and accuracy", ICML 2019): PGD that ascends the KL divergence between the model's
// output on the clean image and on the attacked one, so it needs no label.
#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks {

/// Starts at x + 0.001 N(0, 1) (the reference code's start: at x itself the KL and its gradient
/// are zero), then `steps` steps of `step_size` ascending KL(softmax(f(x)) || softmax(f(x_adv)))
/// in options.norm (sign of the gradient for Linf, the normalized gradient for L2), projected
/// onto the eps-ball and [0, 1]. Same contract as the other attacks: model mode and parameter
/// gradients untouched.
torch::Tensor trades_examples(models::ClassifierImpl& model, const torch::Tensor& x,
                              const AttackOptions& options);

}  // namespace advft::attacks
