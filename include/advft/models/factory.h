#pragma once
// Builds any supported network from a ModelSpec; the one place that knows architecture names.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "advft/models/classifier.h"
#include "advft/models/model_spec.h"

namespace advft::models {

/// A torchvision ResNet built by name (fixed blocks and width; the spec's do not apply).
struct ResNetVariant {
  const char* arch;             ///< ModelSpec::arch, e.g. "resnet50"
  const char* title;            ///< e.g. "ResNet-50"
  std::vector<int64_t> blocks;  ///< blocks in layer1..layer4
  bool bottleneck;              ///< bottleneck blocks (ResNet-50 and up) instead of basic ones
  int64_t width_per_group;      ///< bottleneck inner width per 64 planes (128: Wide-ResNet)
};

/// ResNet-18/34/50/101/152 and Wide-ResNet-50-2, in known_architectures() order; what the key
/// layout detection of foreign checkpoints matches against.
const std::vector<ResNetVariant>& resnet_variants();

/// Architecture names accepted in ModelSpec::arch, in a stable order for messages and help.
std::vector<std::string> known_architectures();

/// True when `arch` is one of known_architectures().
bool is_known_architecture(const std::string& arch);

/// known_architectures() as one comma-separated list, for messages.
std::string known_architectures_text();

/// Throws advft::ConfigError naming the `model.<field>` at fault when the spec cannot be built.
void validate(const ModelSpec& spec);

/// A freshly initialized network for the spec (validated first; train mode, CPU, float32).
ClassifierPtr make_model(const ModelSpec& spec);

/// Number of parameter elements (BatchNorm running statistics are buffers, not counted).
int64_t count_parameters(torch::nn::Module& module);

/// Short human description, e.g. "PreActResNet-18, 10 classes, 3x32x32".
std::string describe(const ModelSpec& spec);

}  // namespace advft::models
