#pragma once
// Floating-point operations of one forward pass, counted from the operators that actually run
// (convolutions and matrix products, 2 FLOPs per multiply-add), so that any model — a zoo network
// or a TorchScript archive — gets an exact figure without a per-architecture formula.
#include <cstdint>

#include "advft/models/classifier.h"

namespace advft::bench {

/// FLOPs of model.forward on one in_channels x size x size image (eval mode, no gradient, CPU):
/// every aten::convolution (or a TorchScript graph's aten::_convolution) and aten::addmm /
/// aten::mm / aten::bmm. Element-wise work (BatchNorm, ReLU, additions) is left out, as the
/// peers' counts leave it out.
int64_t forward_flops(models::ClassifierImpl& model, int64_t in_channels, int64_t size);

/// FLOPs per image of one adversarial-training step whose attack takes k input gradients (PGD-k:
/// k; attacks::gradient_passes): k forwards and input-gradient backwards (2 forwards' worth
/// each), then the training forward and backward (3 forwards' worth): (2k + 3) x forward.
inline int64_t at_step_flops(int64_t forward, int64_t attack_gradients) {
  return forward * (2 * attack_gradients + 3);
}

/// FLOPs per image of a PGD-k evaluation: k attack iterations and the final forward.
inline int64_t eval_flops(int64_t forward, int64_t attack_steps) {
  return forward * (2 * attack_steps + 1);
}

}  // namespace advft::bench
