#include "advft/models/wide_resnet.h"

#include "advft/models/batch_norm_relu.h"
#include "conv.h"

namespace advft::models {

using detail::conv;

WideBasicBlockImpl::WideBasicBlockImpl(const WideBasicBlockOptions& options)
    : equal_in_out(options.in_planes() == options.out_planes()) {
  const int64_t in = options.in_planes();
  const int64_t out = options.out_planes();
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(in));
  conv1 = register_module("conv1", conv(in, out, 3, options.stride()));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1));
  if (!equal_in_out) {
    conv_shortcut = register_module("convShortcut", conv(in, out, 1, options.stride()));
  }
}

torch::Tensor WideBasicBlockImpl::forward(torch::Tensor x) {
  // Mirrors TRADES' equalInOut branches: a projection shortcut sees the activated input, an
  // identity shortcut the raw one.
  auto act = batch_norm_relu(*bn1, x);
  auto out = conv1(act);
  out = conv2(batch_norm_relu(*bn2, out));
  return (equal_in_out ? x : conv_shortcut(act)) + out;
}

NetworkBlockImpl::NetworkBlockImpl(int64_t count, int64_t in_planes, int64_t out_planes,
                                   int64_t stride) {
  TORCH_CHECK(count >= 1, "NetworkBlock: count must be >= 1, got ", count);
  torch::nn::Sequential blocks;
  for (int64_t i = 0; i < count; ++i) {
    blocks->push_back(
        WideBasicBlock(WideBasicBlockOptions(i == 0 ? in_planes : out_planes, out_planes)
                           .stride(i == 0 ? stride : 1)));
  }
  layer = register_module("layer", blocks);
}

torch::Tensor NetworkBlockImpl::forward(torch::Tensor x) {
  return layer->forward(x);
}

WideResNetImpl::WideResNetImpl(const WideResNetOptions& opts) : options(opts) {
  const int64_t depth = options.depth();
  const int64_t k = options.widen_factor();
  TORCH_CHECK(depth >= 10 && (depth - 4) % 6 == 0,
              "WideResNet: depth must be 6n+4 with n >= 1, got ", depth);
  TORCH_CHECK(k >= 1, "WideResNet: widen_factor must be >= 1, got ", k);
  TORCH_CHECK(options.num_classes() >= 1, "WideResNet: num_classes must be >= 1");
  const int64_t n = (depth - 4) / 6;
  const int64_t channels[4] = {16, 16 * k, 32 * k, 64 * k};
  normalize = register_module(
      "normalize",
      Normalize(NormalizeOptions(options.in_channels(), options.mean(), options.std())));
  conv1 = register_module("conv1", conv(options.in_channels(), channels[0], 3, 1));
  block1 = register_module("block1", NetworkBlock(n, channels[0], channels[1], 1));
  block2 = register_module("block2", NetworkBlock(n, channels[1], channels[2], 2));
  block3 = register_module("block3", NetworkBlock(n, channels[2], channels[3], 2));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(channels[3]));
  fc = register_module("fc", torch::nn::Linear(channels[3], options.num_classes()));

  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      // TRADES: normal(0, sqrt(2 / (k*k*out_channels))), i.e. kaiming normal, fan_out.
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(b->weight);
      torch::nn::init::zeros_(b->bias);
    } else if (auto* l = module->as<torch::nn::Linear>()) {
      torch::nn::init::zeros_(l->bias);
    }
  }
}

torch::Tensor WideResNetImpl::forward(torch::Tensor x) {
  auto out = conv1(normalize(x));
  out = block3(block2(block1(out)));
  out = batch_norm_relu(*bn1, out);
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return fc(out);
}

}  // namespace advft::models
