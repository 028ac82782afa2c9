#include "advft/attacks/trades.h"

#include "advft/attacks/losses.h"
#include "shared.h"

namespace advft::attacks {

torch::Tensor trades_examples(models::ClassifierImpl& model, const torch::Tensor& x,
                              const AttackOptions& options) {
  detail::check_images(x);
  torch::Tensor clean_probs;
  {
    torch::NoGradGuard no_grad;
    clean_probs = torch::softmax(model.forward(x).to(torch::kFloat), 1);
  }
  const detail::LossFn kl = [clean_probs](const torch::Tensor& logits) {
    return kl_from(clean_probs, logits);
  };
  const torch::Tensor start = detail::project(x, 0.001 * torch::randn_like(x), options);
  return detail::ascend(model, x, start, kl, options).detach();
}

}  // namespace advft::attacks
