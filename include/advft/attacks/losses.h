#pragma once
// Per-example losses that attacks ascend. Each takes the model's logits (any floating type; the
// losses are computed in fp32, so step-size decisions do not hinge on bf16 rounding) and returns
// one value per example, larger when the example is closer to being misclassified.
#include <string>

#include <torch/torch.h>

namespace advft::attacks {

/// Cross-entropy of the true class.
torch::Tensor ce_loss(const torch::Tensor& logits, const torch::Tensor& y);

/// Carlini-Wagner margin: the largest other logit minus the true one (positive = misclassified).
torch::Tensor cw_loss(const torch::Tensor& logits, const torch::Tensor& y);

/// Croce & Hein's difference of logits ratio, -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3), with
/// z_pi the logits sorted in decreasing order: the CW margin made invariant to scaling the
/// logits, so a model whose logits are large cannot hide behind saturated gradients. Needs at
/// least 3 classes.
torch::Tensor dlr_loss(const torch::Tensor& logits, const torch::Tensor& y);

/// Targeted DLR, -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), for the target classes t.
/// Needs at least 4 classes.
torch::Tensor targeted_dlr_loss(const torch::Tensor& logits, const torch::Tensor& y,
                                const torch::Tensor& target);

/// KL(p || softmax(logits)) per example, for target probabilities p (TRADES): how far the
/// attacked output has moved from the clean one. Zero where p is zero, as torch's kl_div.
torch::Tensor kl_from(const torch::Tensor& target_probs, const torch::Tensor& logits);

/// The loss named by an attack's `loss` option ("ce", "cw" or "dlr").
torch::Tensor attack_loss(const std::string& loss, const torch::Tensor& logits,
                          const torch::Tensor& y);

}  // namespace advft::attacks
