#include "advft/attacks/losses.h"

#include <limits>

#include "advft/error.h"

namespace advft::attacks {
namespace {

torch::Tensor true_logit(const torch::Tensor& z, const torch::Tensor& y) {
  return z.gather(1, y.view({-1, 1})).squeeze(1);
}

// The largest logit other than the true class's.
torch::Tensor best_other_logit(const torch::Tensor& z, const torch::Tensor& y) {
  return z.scatter(1, y.view({-1, 1}), -std::numeric_limits<float>::infinity()).amax(1);
}

// The 1e-12 of the reference keeps the ratio finite when the sorted logits tie.
constexpr double kDlrFloor = 1e-12;

}  // namespace

torch::Tensor ce_loss(const torch::Tensor& logits, const torch::Tensor& y) {
  return torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat), y,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
}

torch::Tensor cw_loss(const torch::Tensor& logits, const torch::Tensor& y) {
  const torch::Tensor z = logits.to(torch::kFloat);
  return best_other_logit(z, y) - true_logit(z, y);
}

torch::Tensor dlr_loss(const torch::Tensor& logits, const torch::Tensor& y) {
  const torch::Tensor z = logits.to(torch::kFloat);
  const torch::Tensor top = std::get<0>(z.topk(3, 1));
  const torch::Tensor spread = top.select(1, 0) - top.select(1, 2) + kDlrFloor;
  return -(true_logit(z, y) - best_other_logit(z, y)) / spread;
}

torch::Tensor targeted_dlr_loss(const torch::Tensor& logits, const torch::Tensor& y,
                                const torch::Tensor& target) {
  const torch::Tensor z = logits.to(torch::kFloat);
  const torch::Tensor top = std::get<0>(z.topk(4, 1));
  const torch::Tensor spread =
      top.select(1, 0) - 0.5 * (top.select(1, 2) + top.select(1, 3)) + kDlrFloor;
  return -(true_logit(z, y) - true_logit(z, target)) / spread;
}

torch::Tensor kl_from(const torch::Tensor& target_probs, const torch::Tensor& logits) {
  const torch::Tensor p = target_probs.to(torch::kFloat);
  const torch::Tensor log_q = torch::log_softmax(logits.to(torch::kFloat), 1);
  return (torch::xlogy(p, p) - p * log_q).sum(1);
}

torch::Tensor attack_loss(const std::string& loss, const torch::Tensor& logits,
                          const torch::Tensor& y) {
  if (loss == "ce") return ce_loss(logits, y);
  if (loss == "cw") return cw_loss(logits, y);
  if (loss == "dlr") return dlr_loss(logits, y);
  throw Error("unknown attack loss \"" + loss + "\"");
}

}  // namespace advft::attacks
