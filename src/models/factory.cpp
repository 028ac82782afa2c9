#include "advft/models/factory.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "advft/error.h"
#include "advft/models/preact_resnet.h"
#include "advft/models/resnet.h"
#include "advft/models/torchscript.h"
#include "advft/models/wide_resnet.h"

namespace advft::models {

namespace {

constexpr const char* kZoo = "zoo";
constexpr const char* kTorchScript = "torchscript";

// Fixed-shape architectures: the spec's blocks/width/depth fields do not apply to these.
constexpr const char* kPreAct18 = "preact_resnet18";
const std::vector<int64_t> kPreAct18Blocks = {2, 2, 2, 2};
constexpr int64_t kPreAct18Width = 64;

const ResNetVariant* find_resnet(const std::string& arch) {
  for (const auto& v : resnet_variants()) {
    if (arch == v.arch) {
      return &v;
    }
  }
  return nullptr;
}

struct WrnShorthand {
  const char* arch;
  int64_t depth;
  int64_t widen_factor;
};

const std::vector<WrnShorthand>& wrn_shorthands() {
  static const std::vector<WrnShorthand> shorthands = {
      {"wrn28_10", 28, 10},
      {"wrn34_10", 34, 10},
      {"wrn70_16", 70, 16},
  };
  return shorthands;
}

// The (depth, widen_factor) a WRN arch resolves to; false when arch is not a WideResNet.
bool wrn_shape(const ModelSpec& spec, int64_t& depth, int64_t& widen_factor) {
  if (spec.arch == "wide_resnet") {
    depth = spec.depth;
    widen_factor = spec.widen_factor;
    return true;
  }
  for (const auto& s : wrn_shorthands()) {
    if (spec.arch == s.arch) {
      depth = s.depth;
      widen_factor = s.widen_factor;
      return true;
    }
  }
  return false;
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    out += (i ? separator : "") + items[i];
  }
  return out;
}

std::string join(const std::vector<int64_t>& items, const char* separator) {
  std::vector<std::string> strings;
  for (int64_t v : items) {
    strings.push_back(std::to_string(v));
  }
  return join(strings, separator);
}

[[noreturn]] void fail(const std::string& key, const std::string& problem) {
  throw ConfigError("model." + key + ": " + problem);
}

void validate_stats(const char* key, const std::vector<double>& values, int64_t channels,
                    bool positive) {
  if (values.size() != 1 && static_cast<int64_t>(values.size()) != channels) {
    fail(key, "has " + std::to_string(values.size()) + " values; expected 1 or in_channels (" +
                  std::to_string(channels) + ")");
  }
  // Pixels are in [0, 1]: a mean past 1000 or a std outside [0.001, 1000] would blow the
  // normalized images up (or down) until the first steps overflow.
  for (double v : values) {
    if (!std::isfinite(v) || (positive ? (v < 1e-3 || v > 1e3) : std::abs(v) > 1e3)) {
      std::ostringstream s;
      s << "value " << v << " must be " << (positive ? "in [0.001, 1000]" : "in [-1000, 1000]")
        << " (pixel units: images are in [0, 1])";
      fail(key, s.str());
    }
  }
}

void check_count(const char* key, int64_t value, int64_t maximum) {
  if (value < 1 || value > maximum) {
    fail(key, "must be in [1, " + std::to_string(maximum) + "], got " + std::to_string(value));
  }
}

}  // namespace

const std::vector<ResNetVariant>& resnet_variants() {
  static const std::vector<ResNetVariant> variants = {
      {"resnet18", "ResNet-18", {2, 2, 2, 2}, false, 64},
      {"resnet34", "ResNet-34", {3, 4, 6, 3}, false, 64},
      {"resnet50", "ResNet-50", {3, 4, 6, 3}, true, 64},
      {"resnet101", "ResNet-101", {3, 4, 23, 3}, true, 64},
      {"resnet152", "ResNet-152", {3, 8, 36, 3}, true, 64},
      {"wide_resnet50_2", "Wide-ResNet-50-2", {3, 4, 6, 3}, true, 128},
  };
  return variants;
}

std::vector<std::string> known_architectures() {
  std::vector<std::string> names = {kPreAct18, "preact_resnet"};
  for (const auto& v : resnet_variants()) {
    names.emplace_back(v.arch);
  }
  names.emplace_back("wide_resnet");
  for (const auto& s : wrn_shorthands()) {
    names.emplace_back(s.arch);
  }
  return names;
}

bool is_known_architecture(const std::string& arch) {
  const auto known = known_architectures();
  return std::find(known.begin(), known.end(), arch) != known.end();
}

std::string known_architectures_text() {
  return join(known_architectures(), ", ");
}

void validate(const ModelSpec& spec) {
  if (spec.kind != kZoo && spec.kind != kTorchScript) {
    throw ConfigError("model.kind = \"" + spec.kind + "\": unknown; known: \"zoo\" (advft's " +
                      "architectures, model.arch) and \"torchscript\" (the archive model.path)");
  }
  if (spec.kind == kTorchScript && spec.path.empty()) {
    throw ConfigError(
        "model.kind = \"torchscript\" needs model.path, the archive written by "
        "torch.jit.save (or pass the archive as --checkpoint)");
  }
  if (spec.kind == kZoo && !is_known_architecture(spec.arch)) {
    throw ConfigError("model.arch = \"" + spec.arch +
                      "\": unknown architecture; known: " + known_architectures_text());
  }
  // Upper bounds far past any real model (ImageNet-21k has 21,841 classes): a typo is refused
  // by name instead of failing as an allocation of terabytes.
  check_count("num_classes", spec.num_classes, 100000);
  check_count("in_channels", spec.in_channels, 1024);
  check_count("input_size", spec.input_size, 4096);
  validate_stats("mean", spec.mean, spec.in_channels, /*positive=*/false);
  validate_stats("std", spec.std, spec.in_channels, /*positive=*/true);
  if (spec.arch == "preact_resnet") {
    if (spec.blocks.empty()) {
      fail("blocks", "must list at least one stage, e.g. [2, 2, 2, 2]");
    }
    for (int64_t b : spec.blocks) {
      if (b < 1 || b > 1000) {
        fail("blocks", "every stage needs 1 to 1000 blocks, got [" + join(spec.blocks, ", ") + "]");
      }
    }
    check_count("width", spec.width, 4096);
    // Widths double per stage; keep the last stage's channel count representable.
    if (spec.blocks.size() > 16) {
      fail("blocks", "at most 16 stages, got " + std::to_string(spec.blocks.size()));
    }
  }
  if (spec.arch == "wide_resnet") {
    if (spec.depth < 10 || (spec.depth - 4) % 6 != 0) {
      fail("depth", "must be 6n+4 with n >= 1 (10, 16, 22, 28, 34, 70, ...), got " +
                        std::to_string(spec.depth));
    }
    if (spec.depth > 1000) fail("depth", "must be at most 1000, got " + std::to_string(spec.depth));
    check_count("widen_factor", spec.widen_factor, 64);
  }
}

ClassifierPtr make_model(const ModelSpec& spec) {
  validate(spec);
  if (spec.kind == kTorchScript) return TorchScriptClassifier(spec).ptr();
  if (spec.arch == kPreAct18 || spec.arch == "preact_resnet") {
    const bool fixed = spec.arch == kPreAct18;
    return PreActResNet(PreActResNetOptions()
                            .blocks(fixed ? kPreAct18Blocks : spec.blocks)
                            .width(fixed ? kPreAct18Width : spec.width)
                            .num_classes(spec.num_classes)
                            .in_channels(spec.in_channels)
                            .mean(spec.mean)
                            .std(spec.std))
        .ptr();
  }
  if (const auto* v = find_resnet(spec.arch)) {
    return ResNet(ResNetOptions()
                      .blocks(v->blocks)
                      .bottleneck(v->bottleneck)
                      .width_per_group(v->width_per_group)
                      .num_classes(spec.num_classes)
                      .in_channels(spec.in_channels)
                      .cifar_stem(spec.cifar_stem)
                      .mean(spec.mean)
                      .std(spec.std))
        .ptr();
  }
  int64_t depth = 0;
  int64_t widen_factor = 0;
  if (wrn_shape(spec, depth, widen_factor)) {
    return WideResNet(WideResNetOptions()
                          .depth(depth)
                          .widen_factor(widen_factor)
                          .num_classes(spec.num_classes)
                          .in_channels(spec.in_channels)
                          .mean(spec.mean)
                          .std(spec.std))
        .ptr();
  }
  // validate() accepted an arch that no branch builds: the tables above disagree.
  throw Error("models: no builder for known architecture \"" + spec.arch + "\"");
}

int64_t count_parameters(torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    total += p.numel();
  }
  return total;
}

std::string describe(const ModelSpec& spec) {
  std::string name;
  int64_t depth = 0;
  int64_t widen_factor = 0;
  if (spec.kind == kTorchScript) {
    name = "TorchScript model " + std::filesystem::path(spec.path).filename().string();
  } else if (spec.arch == kPreAct18) {
    name = "PreActResNet-18";
  } else if (spec.arch == "preact_resnet") {
    int64_t layers = 2;  // conv1 + linear
    for (int64_t b : spec.blocks) {
      layers += 2 * b;
    }
    name = "PreActResNet-" + std::to_string(layers) + " (blocks " + join(spec.blocks, "-") +
           ", width " + std::to_string(spec.width) + ")";
  } else if (const auto* v = find_resnet(spec.arch)) {
    name = std::string(v->title) + (spec.cifar_stem ? " (CIFAR stem)" : "");
  } else if (wrn_shape(spec, depth, widen_factor)) {
    name = "WRN-" + std::to_string(depth) + "-" + std::to_string(widen_factor);
  } else {
    name = spec.arch;
  }
  return name + ", " + std::to_string(spec.num_classes) + " classes, " +
         std::to_string(spec.in_channels) + "x" + std::to_string(spec.input_size) + "x" +
         std::to_string(spec.input_size);
}

}  // namespace advft::models
