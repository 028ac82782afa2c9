#pragma once
// FAB (Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary
// attack", ICML 2020), the minimum-norm member of AutoAttack: FAB-T, its targeted form, in the
// standard version, and untargeted FAB in the "plus" one. Each step linearizes the decision
// boundary between the true class and a target class (FAB: the class whose linearized boundary
// is nearest) at the current point, projects both the current point and the clean image onto that
// hyperplane (within the [0, 1] box, the smallest move in the attack's norm), and goes to a mix of
// the two projections that leans towards the clean image when it is closer (weight at most 0.1),
// overshooting by 5%; once a point fools the model it is kept if it is the closest so far, and the
// search steps back towards the clean image (to 90% of the way) to look for a closer one. It needs
// no step size, and its gradient is of a logit difference, not of a saturating loss.
//
// As an eps-bounded attack, an image counts as fooled when the closest point found lies within
// eps; the others are returned unchanged. Model mode and parameter gradients untouched; only
// tensor operations, so a whole run can be captured in a CUDA graph.
#include <string>

#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks {

/// FAB-T in options.norm's ball of radius options.eps: options.steps steps against each of the
/// options.targets classes ranked highest after the top one on the clean image, options.restarts
/// restarts each (the first from the clean image, as AutoAttack's, the others from random points at
/// half the radius). Per image: the closest fooling point within eps found, else x itself.
torch::Tensor fab_targeted(models::ClassifierImpl& model, const torch::Tensor& x,
                           const torch::Tensor& y, const AttackOptions& options);

/// Untargeted FAB in options.norm's ball of radius options.eps: options.steps steps, each towards
/// the boundary nearest to the current point among all classes' (the gradient of every logit: as
/// many backward passes as the model has classes), options.restarts restarts as FAB-T's. Per
/// image: the closest fooling point within eps found, else x itself.
torch::Tensor fab(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& options);

/// Per row of points [N, D]: the smallest d, in "linf" or "l2", with w . (point + d) = b and
/// point + d inside [0, 1]; where the box admits none, the d within the box that brings
/// w . (point + d) closest to b. w [N, D], b [N]; exact, by one sort per row.
torch::Tensor project_onto_hyperplane_in_box(const torch::Tensor& points, const torch::Tensor& w,
                                             const torch::Tensor& b, const std::string& norm);

}  // namespace advft::attacks
