#include "advft/models/preact_resnet.h"

#include <string>

#include "advft/models/batch_norm_relu.h"
#include "conv.h"

namespace advft::models {

using detail::conv;

PreActBlockImpl::PreActBlockImpl(const PreActBlockOptions& options) {
  const int64_t in = options.in_planes();
  const int64_t out = options.planes();
  const int64_t stride = options.stride();
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(in));
  conv1 = register_module("conv1", conv(in, out, 3, stride));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1));
  if (stride != 1 || in != out) {
    shortcut = register_module("shortcut", torch::nn::Sequential(conv(in, out, 1, stride)));
  }
}

torch::Tensor PreActBlockImpl::forward(torch::Tensor x) {
  auto out = batch_norm_relu(*bn1, x);
  // The projection sees the activated input (as in the reference), the identity the raw one.
  auto skip = shortcut ? shortcut->forward(out) : x;
  out = conv1(out);
  out = conv2(batch_norm_relu(*bn2, out));
  return out + skip;
}

PreActResNetImpl::PreActResNetImpl(const PreActResNetOptions& opts) : options(opts) {
  TORCH_CHECK(!options.blocks().empty(), "PreActResNet: blocks must not be empty");
  TORCH_CHECK(options.width() >= 1, "PreActResNet: width must be >= 1, got ", options.width());
  TORCH_CHECK(options.num_classes() >= 1, "PreActResNet: num_classes must be >= 1");
  normalize = register_module(
      "normalize",
      Normalize(NormalizeOptions(options.in_channels(), options.mean(), options.std())));
  conv1 = register_module("conv1", conv(options.in_channels(), options.width(), 3, 1));
  int64_t in = options.width();
  int64_t planes = options.width();
  for (size_t stage = 0; stage < options.blocks().size(); ++stage) {
    const int64_t n = options.blocks()[stage];
    TORCH_CHECK(n >= 1, "PreActResNet: every stage needs >= 1 block, stage ", stage, " has ", n);
    torch::nn::Sequential layer;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      layer->push_back(PreActBlock(PreActBlockOptions(in, planes).stride(stride)));
      in = planes;
    }
    layers.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    planes *= 2;
  }
  bn = register_module("bn", torch::nn::BatchNorm2d(in));
  linear = register_module("linear", torch::nn::Linear(in, options.num_classes()));
}

torch::Tensor PreActResNetImpl::forward(torch::Tensor x) {
  auto out = conv1(normalize(x));
  for (auto& layer : layers) {
    out = layer->forward(out);
  }
  out = batch_norm_relu(*bn, out);
  // Adaptive instead of the reference's avg_pool2d(4): identical on 32x32, and 28x28 works too.
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return linear(out);
}

}  // namespace advft::models
