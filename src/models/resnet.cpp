#include "advft/models/resnet.h"

#include <string>

#include "advft/models/batch_norm_relu.h"
#include "conv.h"

namespace advft::models {

using detail::conv;

namespace {

// torchvision adds a projection whenever the block changes resolution or channel count.
torch::nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride) {
  if (stride == 1 && in == out) {
    return torch::nn::Sequential(nullptr);
  }
  return torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out));
}

}  // namespace

ResNetBasicBlockImpl::ResNetBasicBlockImpl(const ResNetBlockOptions& options) {
  const int64_t in = options.in_planes();
  const int64_t out = options.planes() * kExpansion;
  conv1 = register_module("conv1", conv(in, out, 3, options.stride()));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  if (auto ds = make_downsample(in, out, options.stride())) {
    downsample = register_module("downsample", ds);
  }
}

torch::Tensor ResNetBasicBlockImpl::forward(torch::Tensor x) {
  auto out = batch_norm_relu(*bn1, conv1(x));
  out = bn2(conv2(out));
  return torch::relu(out + (downsample ? downsample->forward(x) : x));
}

ResNetBottleneckImpl::ResNetBottleneckImpl(const ResNetBlockOptions& options) {
  const int64_t in = options.in_planes();
  const int64_t width = options.planes() * options.base_width() / 64;
  const int64_t out = options.planes() * kExpansion;
  conv1 = register_module("conv1", conv(in, width, 1, 1));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
  conv2 = register_module("conv2", conv(width, width, 3, options.stride()));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(width));
  conv3 = register_module("conv3", conv(width, out, 1, 1));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(out));
  if (auto ds = make_downsample(in, out, options.stride())) {
    downsample = register_module("downsample", ds);
  }
}

torch::Tensor ResNetBottleneckImpl::forward(torch::Tensor x) {
  auto out = batch_norm_relu(*bn1, conv1(x));
  out = batch_norm_relu(*bn2, conv2(out));
  out = bn3(conv3(out));
  return torch::relu(out + (downsample ? downsample->forward(x) : x));
}

ResNetImpl::ResNetImpl(const ResNetOptions& opts) : options(opts) {
  TORCH_CHECK(options.blocks().size() == 4, "ResNet: blocks must have 4 entries, got ",
              options.blocks().size());
  TORCH_CHECK(options.num_classes() >= 1, "ResNet: num_classes must be >= 1");
  TORCH_CHECK(options.width_per_group() >= 1, "ResNet: width_per_group must be >= 1");
  normalize = register_module(
      "normalize",
      Normalize(NormalizeOptions(options.in_channels(), options.mean(), options.std())));
  const int64_t stem = 64;
  conv1 = register_module("conv1", options.cifar_stem() ? conv(options.in_channels(), stem, 3, 1)
                                                        : conv(options.in_channels(), stem, 7, 2));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(stem));
  const int64_t expansion =
      options.bottleneck() ? ResNetBottleneckImpl::kExpansion : ResNetBasicBlockImpl::kExpansion;
  int64_t in = stem;
  for (size_t stage = 0; stage < 4; ++stage) {
    const int64_t planes = stem << stage;
    const int64_t n = options.blocks()[stage];
    TORCH_CHECK(n >= 1, "ResNet: every stage needs >= 1 block, stage ", stage, " has ", n);
    torch::nn::Sequential layer;
    for (int64_t b = 0; b < n; ++b) {
      auto block_options = ResNetBlockOptions(in, planes)
                               .stride((stage > 0 && b == 0) ? 2 : 1)
                               .base_width(options.width_per_group());
      if (options.bottleneck()) {
        layer->push_back(ResNetBottleneck(block_options));
      } else {
        layer->push_back(ResNetBasicBlock(block_options));
      }
      in = planes * expansion;
    }
    layers.push_back(register_module("layer" + std::to_string(stage + 1), layer));
  }
  fc = register_module("fc", torch::nn::Linear(in, options.num_classes()));

  // torchvision's init; Linear keeps PyTorch's default, as torchvision does.
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(b->weight);
      torch::nn::init::zeros_(b->bias);
    }
  }
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  auto out = batch_norm_relu(*bn1, conv1(normalize(x)));
  if (!options.cifar_stem()) {
    out = torch::max_pool2d(out, /*kernel_size=*/{3, 3}, /*stride=*/{2, 2}, /*padding=*/{1, 1});
  }
  for (auto& layer : layers) {
    out = layer->forward(out);
  }
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return fc(out);
}

}  // namespace advft::models
