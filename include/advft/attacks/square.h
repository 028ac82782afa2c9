#pragma once
// Square Attack (Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient
// black-box adversarial attack via random search", ECCV 2020), the black-box member of
// AutoAttack: a random search over square windows of the perturbation that uses only the
// model's outputs, so that gradient masking cannot hide a weak model from it.
//
// Each of options.steps queries changes one random square window per image, whose side shrinks
// on AutoAttack's schedule from 80% of the image's area, and keeps the change when it lowers the
// loss; an image stops changing at its first query that fools the model. Linf starts from
// vertical stripes of +-eps and sets each window to +-eps per channel; L2 starts from a grid of
// pseudo-Gaussian bumps and moves the perturbation's mass between two windows, staying on the
// sphere of radius eps. The windows and signs are drawn per image on the device (AutoAttack's
// code shares one window per batch), so a whole run is tensor operations a CUDA graph can hold.
// Same contract as the other attacks: model mode and parameter gradients untouched, results in
// the eps-ball and in [0, 1].
#include <cstdint>

#include <torch/torch.h>

#include "advft/attacks/attack_spec.h"
#include "advft/models/classifier.h"

namespace advft::attacks {

/// AutoAttack's share of the image a window covers at the start.
constexpr double kSquareInitialFraction = 0.8;

/// Square Attack in options.norm's ball of radius options.eps: options.steps queries after the
/// initial one, options.restarts restarts (per example the worst case is kept). It lowers the
/// margin z_y - max_{j != y} z_j with options.loss "cw" (AutoAttack's choice), or minus the
/// cross-entropy ("ce") or the DLR loss ("dlr").
torch::Tensor square(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                     const AttackOptions& options);

/// The share of the image a window covers at query `step` (0-based): `initial` halved past each
/// of AutoAttack's milestones (queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000), as
/// AutoAttack runs it, whatever the number of queries: 1/128 of it over the last of 5,000.
double square_window_fraction(double initial, int64_t step);

/// The L2 attack's s x s window pattern (s >= 2): two pseudo-Gaussian bumps of opposite sign,
/// the top half positive, of unit L2 norm.
torch::Tensor square_l2_pattern(int64_t side, const torch::TensorOptions& options);

}  // namespace advft::attacks
