#include "advft/attacks/trades.h"

#include "advft/attacks/losses.h"
#include "shared.h"

namespace advft::attacks {

torch::Tensor trades_examples(models::ClassifierImpl& model, const torch::Tensor& x,
                              const AttackOptions& options) {
  TORCH_CHECK(x.dim() == 4, "attacks expect NCHW images, got ", x.sizes());
  torch::Tensor clean_probs;
  {
    torch::NoGradGuard no_grad;
    clean_probs = torch::softmax(model.forward(x).to(torch::kFloat), 1);
  }
  const detail::LossFn kl = [clean_probs](const torch::Tensor& logits) {
    return kl_from(clean_probs, logits);
  };
  torch::Tensor delta = detail::project(x, 0.001 * torch::randn_like(x), options);
  for (int64_t step = 0; step < options.steps; ++step) {
    const torch::Tensor grad =
        detail::loss_and_gradient(model, (x + delta).clamp(0.0, 1.0), kl).grad;
    delta = detail::project(x, delta + options.step_size * detail::ascent_direction(grad, options),
                            options);
  }
  return (x + delta).clamp(0.0, 1.0).detach();
}

}  // namespace advft::attacks
