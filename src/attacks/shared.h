#pragma once
// What every attack shares: the eps-ball and [0, 1] box it must stay in, the gradient of a
// per-example loss with respect to the input, and the per-example worst case over restarts.
#include <functional>

#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks::detail {

/// Per-example loss of the logits: what an attack ascends.
using LossFn = std::function<torch::Tensor(const torch::Tensor& logits)>;

/// L2 norm of each example, shaped to broadcast over C, H, W.
torch::Tensor per_example_norm(const torch::Tensor& t);

/// A random point at distance `radius` from x in the attack's norm (uniform signs scaled to Linf
/// `radius`, or a Gaussian direction for L2), clamped to the box.
torch::Tensor random_point_at(const torch::Tensor& x, const AttackOptions& o, double radius);

/// Projects a perturbation onto the eps-ball and keeps x + delta inside [0, 1].
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& delta, const AttackOptions& o);

/// The steepest-ascent direction of unit size in the attack's norm: sign(g) for Linf,
/// g / ||g||_2 for L2.
torch::Tensor ascent_direction(const torch::Tensor& grad, const AttackOptions& o);

/// Throws unless x is NCHW images.
void check_images(const torch::Tensor& x);

/// Throws unless x is NCHW and y holds one label per image.
void check_inputs(const torch::Tensor& x, const torch::Tensor& y);

/// Throws ConfigError, naming the attack, when the model's `classes` outputs are too few for the
/// attack's loss (DLR compares the three largest logits, its targeted form four).
void check_classes(const AttackOptions& o, int64_t classes);

/// The classes a targeted attack aims at, [B, targets]: per image the o.targets classes (at most
/// classes - 1) the model ranks highest on x after its top one, most likely first. Checks the
/// class count (check_classes) on the way.
torch::Tensor ranked_targets(models::ClassifierImpl& model, const torch::Tensor& x,
                             const AttackOptions& o);

/// The untargeted loss the options name (o.loss), checking the class count on its first call.
LossFn untargeted_loss(const AttackOptions& o, const torch::Tensor& y);

/// The loss at x_adv (detached, one per example), its gradient with respect to x_adv, and the
/// logits there (detached). x_adv must already lie in the box.
struct LossAndGradient {
  torch::Tensor loss;
  torch::Tensor grad;
  torch::Tensor logits;
};
LossAndGradient loss_and_gradient(models::ClassifierImpl& model, const torch::Tensor& x_adv,
                                  const LossFn& loss_fn);

/// Fixed-step ascent from x + delta (a perturbation already in the ball): o.steps steps of
/// o.step_size along ascent_direction of loss_fn's gradient, each projected onto the ball and
/// the box. Returns the final images, in [0, 1]; given `labels`, per image the first iterate the
/// model already misclassified (the forward of each step shows it), else the final one.
/// FGSM, PGD and TRADES's examples are this loop with their own start and loss.
torch::Tensor ascend(models::ClassifierImpl& model, const torch::Tensor& x, torch::Tensor delta,
                     const LossFn& loss_fn, const AttackOptions& o,
                     const torch::Tensor& labels = {});

/// One restart's answer: the adversarial images, which of them fool the model, and their loss.
struct Candidate {
  torch::Tensor x_adv;
  torch::Tensor fooled;
  torch::Tensor loss;
};

/// Keeps, per example, the worse of `best` and `next` for the model: a fooling one first, then
/// the one with the higher loss; an empty `best` (nothing yet) becomes `next`. Only tensor
/// operations, so it can be captured in a CUDA graph.
void keep_worst(Candidate& best, Candidate next);

}  // namespace advft::attacks::detail
