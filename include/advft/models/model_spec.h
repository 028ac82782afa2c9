#pragma once
// What a checkpoint needs to rebuild its network: architecture, shape and normalization.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace advft::models {

/// Everything that determines a network's structure. Saved in checkpoint metadata so that
/// `advft eval --checkpoint X` needs no config.
struct ModelSpec {
  /// "zoo": one of advft's architectures, named by `arch`; "torchscript": the scripted or traced
  /// model in the TorchScript archive `path` (torch.jit.save), whose structure is its own.
  std::string kind = "zoo";
  /// kind "torchscript": the archive that defines the network (an absolute path once built).
  std::string path;
  /// kind "zoo": "preact_resnet18", "preact_resnet" (custom blocks/width), "resnet18", "resnet34",
  /// "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet" (depth/widen_factor),
  /// or the shorthands "wrn28_10", "wrn34_10", "wrn70_16" (models::known_architectures()).
  std::string arch = "preact_resnet18";
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  int64_t input_size = 32;  ///< height = width of the input images
  /// Per-channel normalization applied inside the model (size 1 or in_channels).
  std::vector<double> mean = {0.0};
  std::vector<double> std = {1.0};
  /// preact_resnet: blocks per stage and width of the first stage (doubles every stage).
  std::vector<int64_t> blocks = {2, 2, 2, 2};
  int64_t width = 64;
  /// resnet*: CIFAR stem (3x3 conv stride 1, no max-pool) instead of ImageNet's 7x7 + max-pool.
  bool cifar_stem = false;
  /// wide_resnet: depth (6n+4) and widen factor k.
  int64_t depth = 34;
  int64_t widen_factor = 10;
};

/// The spec as a JSON object with every field (checkpoint metadata, resolved configs).
nlohmann::json spec_to_json(const ModelSpec& spec);

}  // namespace advft::models
