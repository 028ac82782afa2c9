#include "advft/io/foreign.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/printable.h"
#include "advft/io/torch_file.h"
#include "advft/io/zip_reader.h"
#include "advft/models/factory.h"
#include "advft/models/torchscript.h"

namespace advft::io {
namespace {

// TRADES' WideResNet defines a second first block that forward() never calls.
constexpr const char* kUnusedPrefix = "sub_block1.";
constexpr const char* kNormalizeNames[] = {"normalize.mean", "normalize.std"};
constexpr const char* kHeads[] = {"linear", "fc"};
constexpr const char* kTorchScriptKind = "torchscript";

std::string absolute_path(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<int64_t>& values, const char* separator) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? separator : "") + std::to_string(values[i]);
  return out;
}

// Names and shapes of a state_dict, for the layout rules.
class KeyIndex {
 public:
  explicit KeyIndex(const std::vector<NamedTensor>& tensors) {
    for (const auto& t : tensors) {
      if (t.tensor.defined()) shapes_[t.name] = t.tensor.sizes().vec();
    }
  }
  bool has(const std::string& name) const { return shapes_.count(name) != 0; }
  // Size of dimension `dim` of `name`, 0 when absent or of lower rank.
  int64_t size(const std::string& name, size_t dim) const {
    const auto it = shapes_.find(name);
    return it == shapes_.end() || it->second.size() <= dim ? 0 : it->second[dim];
  }
  // Number of numbered children `<prefix><i>.` (their highest index + 1), e.g. blocks of a stage.
  int64_t children(const std::string& prefix) const {
    int64_t count = 0;
    for (auto it = shapes_.lower_bound(prefix);
         it != shapes_.end() && starts_with(it->first, prefix); ++it) {
      const std::string rest = it->first.substr(prefix.size());
      const size_t dot = rest.find('.');
      if (dot == 0 || dot == std::string::npos || dot > 6) continue;
      if (!std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                       [](char c) { return c >= '0' && c <= '9'; }))
        continue;
      count = std::max<int64_t>(count, std::stoll(rest.substr(0, dot)) + 1);
    }
    return count;
  }

 private:
  std::map<std::string, std::vector<int64_t>> shapes_;
};

Layout preact_layout(const KeyIndex& keys) {
  Layout l;
  l.family = "preact_resnet";
  for (int stage = 1; keys.children("layer" + std::to_string(stage) + ".") > 0; ++stage)
    l.blocks.push_back(keys.children("layer" + std::to_string(stage) + "."));
  l.width = keys.size("conv1.weight", 0);
  l.in_channels = keys.size("conv1.weight", 1);
  l.num_classes = keys.size("linear.weight", 0);
  const bool is18 = l.blocks == std::vector<int64_t>{2, 2, 2, 2} && l.width == 64;
  int64_t layers = 2;
  for (int64_t b : l.blocks)
    layers += 2 * b;
  l.description = is18 ? "fast-AT PreActResNet-18"
                       : "fast-AT-style PreActResNet-" + std::to_string(layers) + " (blocks " +
                             join(l.blocks, "-") + ", width " + std::to_string(l.width) + ")";
  l.suggested_model =
      is18 ? nlohmann::json{{"arch", "preact_resnet18"}}
           : nlohmann::json{{"arch", "preact_resnet"}, {"blocks", l.blocks}, {"width", l.width}};
  return l;
}

// The factory's ResNet with this layout's blocks and width, or nullptr.
const models::ResNetVariant* matching_resnet(const Layout& l) {
  for (const auto& v : models::resnet_variants()) {
    // A basic block has no inner width: resnet_layout reports 64, as the table has.
    if (v.blocks == l.blocks && v.bottleneck == l.bottleneck && v.width_per_group == l.width)
      return &v;
  }
  return nullptr;
}

Layout resnet_layout(const KeyIndex& keys) {
  Layout l;
  l.family = "resnet";
  for (int stage = 1; stage <= 4; ++stage)
    l.blocks.push_back(keys.children("layer" + std::to_string(stage) + "."));
  l.bottleneck = keys.has("layer1.0.conv3.weight");
  l.width = l.bottleneck ? keys.size("layer1.0.conv1.weight", 0) : 64;
  l.cifar_stem = keys.size("conv1.weight", 2) == 3;
  l.in_channels = keys.size("conv1.weight", 1);
  l.num_classes = keys.size("fc.weight", 0);
  std::string details =
      std::string(l.bottleneck ? "bottleneck" : "basic") + ", layers " + join(l.blocks, "-");
  if (l.bottleneck && l.width != 64) details += ", width " + std::to_string(l.width);
  if (l.cifar_stem) details += ", CIFAR stem";
  // Named after the torchvision model it matches; a custom depth or width stays nameless.
  const models::ResNetVariant* variant = matching_resnet(l);
  l.description =
      std::string("torchvision ") + (variant ? variant->title : "ResNet") + " (" + details + ")";
  if (variant) l.suggested_model = {{"arch", variant->arch}, {"cifar_stem", l.cifar_stem}};
  return l;
}

Layout wide_resnet_layout(const KeyIndex& keys) {
  Layout l;
  l.family = "wide_resnet";
  const int64_t n = keys.children("block1.layer.");
  l.depth = 6 * n + 4;
  l.widen_factor = keys.size("block1.layer.0.conv1.weight", 0) / 16;
  l.in_channels = keys.size("conv1.weight", 1);
  l.num_classes = keys.size("fc.weight", 0);
  l.description = "RobustBench/TRADES WideResNet-" + std::to_string(l.depth) + "-" +
                  std::to_string(l.widen_factor);
  l.suggested_model = {
      {"arch", "wide_resnet"}, {"depth", l.depth}, {"widen_factor", l.widen_factor}};
  return l;
}

// "model.arch = "wide_resnet", model.depth = 16, ..." from a layout's suggested settings.
std::string suggestion(const Layout& layout) {
  std::string out;
  if (layout.suggested_model.is_object()) {
    for (const auto& [key, value] : layout.suggested_model.items()) {
      out += (out.empty() ? "" : ", ") + ("model." + key + " = " + value.dump());
    }
  }
  if (layout.num_classes > 0) {
    out +=
        (out.empty() ? "" : ", ") + ("model.num_classes = " + std::to_string(layout.num_classes));
  }
  // RGB is every config's default: a grayscale network (Fashion-MNIST) must say so.
  if (layout.in_channels > 0 && layout.in_channels != 3) {
    out +=
        (out.empty() ? "" : ", ") + ("model.in_channels = " + std::to_string(layout.in_channels));
  }
  return out;
}

// Everything but the class count, which --reset-head may change.
bool same_structure(const Layout& a, const Layout& b) {
  return a.family == b.family && a.blocks == b.blocks && a.width == b.width &&
         a.bottleneck == b.bottleneck && a.cifar_stem == b.cifar_stem && a.depth == b.depth &&
         a.widen_factor == b.widen_factor && a.in_channels == b.in_channels;
}

std::vector<NamedTensor> model_tensors(models::ClassifierImpl& model) {
  std::vector<NamedTensor> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true))
    out.push_back({item.key(), item.value()});
  for (const auto& item : model.named_buffers(/*recurse=*/true))
    out.push_back({item.key(), item.value()});
  return out;
}

// The file's layout against the spec's: a wrong spec gets the settings that would fit.
void check_layout(const LoadedCheckpoint& ckpt, const Layout& have, const models::ModelSpec& spec,
                  const ForeignOptions& options) {
  if (have.family.empty()) return;  // unknown layout: load_weights lists the names at fault
  const Layout want = analyze_layout(model_tensors(*models::make_model(spec)));
  std::string problem;
  if (!same_structure(have, want)) {
    // Two descriptions that read alike differ in what they do not name: the input channels.
    const std::string channels =
        have.in_channels != want.in_channels
            ? " taking " + std::to_string(have.in_channels) + "-channel images"
            : std::string();
    problem = ckpt.path + " holds a " + have.description + channels + " but the model is " +
              models::describe(spec) + "; set " + suggestion(have);
  } else if (have.num_classes != want.num_classes && !options.reset_head) {
    problem = ckpt.path + " has a " + std::to_string(have.num_classes) +
              "-class head but model.num_classes = " + std::to_string(spec.num_classes) +
              ": set model.num_classes = " + std::to_string(have.num_classes) +
              ", or pass --reset-head to fine-tune a new head";
  }
  if (problem.empty()) return;
  if (options.strict) throw CheckpointError(problem);
  spdlog::warn("{} (loading what fits: --non-strict)", problem);
}

// MadryLab's robustness library saves its AttackerModel: the network under "model.", the same
// network again under "attacker.model.", and the input normalization as
// "normalizer.new_mean/new_std" of shape [C,1,1]. Keeps one network and turns the normalization
// into advft's normalize.* buffers ([1,C,1,1]). Returns whether the names had that shape.
bool unwrap_robustness(std::vector<NamedTensor>& tensors, const std::string& path) {
  const auto has_prefix = [&](const char* prefix) {
    return std::any_of(tensors.begin(), tensors.end(),
                       [&](const NamedTensor& t) { return starts_with(t.name, prefix); });
  };
  if (!has_prefix("model.") || !has_prefix("attacker.model.") || !has_prefix("normalizer.new_mean"))
    return false;
  std::vector<NamedTensor> kept;
  for (auto& t : tensors) {
    if (starts_with(t.name, "attacker.")) continue;
    if (starts_with(t.name, "model.")) {
      kept.push_back({t.name.substr(6), t.tensor});
    } else if (t.name == "normalizer.new_mean" || t.name == "normalizer.new_std") {
      const char* ours = t.name == "normalizer.new_mean" ? kNormalizeNames[0] : kNormalizeNames[1];
      kept.push_back({ours, t.tensor.reshape({1, -1, 1, 1})});
    } else {
      kept.push_back(std::move(t));
    }
  }
  tensors = std::move(kept);
  spdlog::info("{}: a MadryLab robustness checkpoint: using its model and normalizer", path);
  return true;
}

// The CIFAR ResNet most adversarial-training code copies (kuangliu/pytorch-cifar: TRADES,
// MART, MadryLab robustness' CIFAR models) is torchvision's ResNet with a 3x3 stem under other
// names: "shortcut" for "downsample" and "linear" for "fc". Renames them; returns whether it did.
bool rename_cifar_resnet(std::vector<NamedTensor>& tensors, const std::string& path) {
  const KeyIndex keys(tensors);
  // bn1 at the top and no top-level bn: a post-activation ResNet, not the PreActResNet.
  if (!keys.has("linear.weight") || !keys.has("bn1.weight") || keys.has("bn.weight") ||
      !keys.has("layer1.0.conv1.weight"))
    return false;
  for (auto& t : tensors) {
    const size_t at = t.name.find(".shortcut.");
    if (at != std::string::npos) t.name.replace(at, 10, ".downsample.");
    if (starts_with(t.name, "linear.")) t.name.replace(0, 6, "fc");
  }
  spdlog::info("{}: a CIFAR ResNet with shortcut/linear names: read as torchvision's layout", path);
  return true;
}

// A file that carries its normalization (robustness' normalizer, an advft-made state_dict)
// sets the spec's mean/std, so that checkpoints written later describe the model truthfully.
void adopt_file_normalization(LoadedCheckpoint& ckpt) {
  for (const auto& t : ckpt.tensors) {
    if (!t.tensor.defined() || !t.tensor.is_floating_point()) continue;
    std::vector<double>* field = t.name == kNormalizeNames[0]   ? &ckpt.spec.mean
                                 : t.name == kNormalizeNames[1] ? &ckpt.spec.std
                                                                : nullptr;
    if (field == nullptr) continue;
    const torch::Tensor values = t.tensor.to(torch::kFloat64).flatten().contiguous();
    field->assign(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
  }
}

// The model keeps its own value of `name`: the file's tensor, if any, goes, and the name may be
// missing even in strict loading.
void keep_models_own(LoadedCheckpoint& ckpt, const std::string& name) {
  auto& tensors = ckpt.tensors;
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [&](const NamedTensor& t) { return t.name == name; }),
                tensors.end());
  auto& keep = ckpt.keep_model_names;
  if (std::find(keep.begin(), keep.end(), name) == keep.end()) keep.push_back(name);
}

// --mean / --std win over what the file records: a checkpoint converted with the wrong values
// (a PyTorch model that normalized outside the network, converted without them) is corrected by
// giving the right ones, not silently evaluated with the recorded ones.
void apply_given_normalization(LoadedCheckpoint& ckpt, const ForeignOptions& options) {
  const auto apply = [&](const std::vector<double>& given, std::vector<double>& recorded,
                         const char* tensor_name, const char* flag) {
    if (given.empty()) return;
    if (given != recorded) {
      spdlog::warn("{} records the input {} {}; using {} {} instead", ckpt.path, flag + 2,
                   nlohmann::json(recorded).dump(), flag, nlohmann::json(given).dump());
    }
    recorded = given;
    keep_models_own(ckpt, tensor_name);  // the model builds the buffer from the spec
  };
  apply(options.mean, ckpt.spec.mean, kNormalizeNames[0], "--mean");
  apply(options.std, ckpt.spec.std, kNormalizeNames[1], "--std");
}

void drop_unused(std::vector<NamedTensor>& tensors, const std::string& path) {
  const auto unused = std::remove_if(tensors.begin(), tensors.end(), [](const NamedTensor& t) {
    return starts_with(t.name, kUnusedPrefix);
  });
  const auto dropped = std::distance(unused, tensors.end());
  if (dropped > 0) {
    spdlog::info("{}: ignoring {} tensors of TRADES' unused sub_block1", path, dropped);
    tensors.erase(unused, tensors.end());
  }
}

void reset_head(LoadedCheckpoint& ckpt, int64_t num_classes) {
  for (const std::string head : kHeads) {
    const auto weight =
        std::find_if(ckpt.tensors.begin(), ckpt.tensors.end(),
                     [&](const NamedTensor& t) { return t.name == head + ".weight"; });
    if (weight == ckpt.tensors.end() || !weight->tensor.defined() || weight->tensor.dim() < 1 ||
        weight->tensor.size(0) == num_classes)
      continue;
    spdlog::warn(
        "{}: its head {}.weight has {} classes, the model {}: starting from a new, "
        "randomly initialized head (--reset-head)",
        ckpt.path, head, weight->tensor.size(0), num_classes);
    for (const std::string& name : {head + ".weight", head + ".bias"})
      keep_models_own(ckpt, name);
  }
}

// The safetensors framing: an 8-byte little-endian header length, then a JSON object.
bool looks_like_safetensors(const std::string& bytes) {
  if (bytes.size() < 10 || bytes[8] != '{') return false;
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i)
    header = (header << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return header <= bytes.size() - 8;
}

bool looks_like_zip(const std::string& bytes) {
  return bytes.compare(0, 4, "PK\x03\x04", 4) == 0 || bytes.compare(0, 4, "PK\x05\x06", 4) == 0;
}

bool is_torchscript(const std::string& bytes, const std::string& path) {
  const ZipReader zip(bytes, path);
  return std::any_of(zip.names().begin(), zip.names().end(), [](const std::string& name) {
    return ends_with(name, "/constants.pkl") && std::count(name.begin(), name.end(), '/') == 1;
  });
}

bool is_advft_metadata(const std::map<std::string, std::string>& metadata) {
  const auto it = metadata.find("format");
  return it != metadata.end() && starts_with(it->second, "advft");
}

bool is_statistic(const std::string& name) {
  return ends_with(name, "running_mean") || ends_with(name, "running_var") ||
         ends_with(name, "num_batches_tracked") || name == "normalize.mean" ||
         name == "normalize.std";
}

// A TorchScript archive used as the whole model (model.kind = "torchscript"): its tensors fill
// it as they are, names and all.
LoadedCheckpoint whole_archive(LoadedCheckpoint out, const std::string& path,
                               const models::ModelSpec& spec) {
  out.foreign_format = format_name(FileFormat::kTorchScript);
  out.path = path;
  out.spec = spec;
  if (out.spec.path.empty()) out.spec.path = absolute_path(path);
  out.train_state = nlohmann::json::object();
  out.keep_model_names.assign(std::begin(kNormalizeNames), std::end(kNormalizeNames));
  spdlog::info("{}: a TorchScript model with {} tensors", path, out.tensors.size());
  return out;
}

// PyTorch's load_state_dict fills in a BatchNorm's num_batches_tracked that a state_dict lacks
// (files from before PyTorch 0.4.1, and exports that drop integer buffers); the count only
// matters to momentum=None, which advft's models do not use. Each such layer keeps its own.
void keep_missing_batch_counts(LoadedCheckpoint& ckpt) {
  static const std::string kMean = ".running_mean";
  const KeyIndex keys(ckpt.tensors);
  for (const auto& t : ckpt.tensors) {
    if (!ends_with(t.name, kMean)) continue;
    const std::string count =
        t.name.substr(0, t.name.size() - kMean.size()) + ".num_batches_tracked";
    if (!keys.has(count)) ckpt.keep_model_names.push_back(count);
  }
}

}  // namespace

const char* format_name(FileFormat format) {
  switch (format) {
    case FileFormat::kAdvftCheckpoint:
      return "advft checkpoint";
    case FileFormat::kAdvftState:
      return "advft state";
    case FileFormat::kSafetensors:
      return "safetensors";
    case FileFormat::kTorchSave:
      return "torch.save zip";
    case FileFormat::kTorchSaveLegacy:
      return "torch.save legacy";
    case FileFormat::kTorchScript:
      return "TorchScript";
    case FileFormat::kUnknown:
      break;
  }
  return "unknown";
}

std::string dtype_name(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32:
      return "float32";
    case torch::kFloat16:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat64:
      return "float64";
    case torch::kInt64:
      return "int64";
    case torch::kInt32:
      return "int32";
    case torch::kInt16:
      return "int16";
    case torch::kInt8:
      return "int8";
    case torch::kUInt8:
      return "uint8";
    case torch::kBool:
      return "bool";
    default:
      return c10::toString(type);
  }
}

Layout analyze_layout(const std::vector<NamedTensor>& tensors) {
  const KeyIndex keys(tensors);
  if (keys.has("block1.layer.0.bn1.weight") && keys.has("conv1.weight")) {
    return wide_resnet_layout(keys);
  }
  if (keys.has("linear.weight") && keys.has("bn.weight") && keys.has("conv1.weight") &&
      keys.has("layer1.0.bn1.weight")) {
    return preact_layout(keys);
  }
  if (keys.has("fc.weight") && keys.has("bn1.weight") && keys.has("conv1.weight") &&
      keys.has("layer1.0.conv1.weight")) {
    return resnet_layout(keys);
  }
  Layout unknown;
  unknown.description = "unknown";
  return unknown;
}

std::string detect_layout(const std::vector<NamedTensor>& tensors) {
  return analyze_layout(tensors).description;
}

LoadedCheckpoint load_any_checkpoint(const std::string& path, const ForeignOptions& options) {
  std::string bytes = read_checkpoint_bytes(path);
  LoadedCheckpoint out;
  std::optional<models::ModelSpec> spec = options.spec;
  FileFormat format = FileFormat::kTorchSave;
  std::vector<NamedTensor> archive_tensors;  // a TorchScript archive's, names as they are
  if (looks_like_safetensors(bytes)) {
    SafetensorsContent content = decode_safetensors(bytes, path);
    bytes.clear();
    if (is_advft_metadata(content.metadata)) {
      out = load_checkpoint(std::move(content), path);
      if (options.reset_head && spec && spec->num_classes != out.spec.num_classes) {
        out.spec.num_classes = spec->num_classes;
        reset_head(out, out.spec.num_classes);
      }
      apply_given_normalization(out, options);
      return out;
    }
    format = FileFormat::kSafetensors;
    out.tensors = std::move(content.tensors);
    const std::string stripped = strip_wrapper_prefixes(out.tensors);
    if (!stripped.empty())
      spdlog::info("{}: removed the prefix '{}' of every name", path, stripped);
  } else if (looks_like_zip(bytes) && is_torchscript(bytes, path)) {
    bytes.clear();
    format = FileFormat::kTorchScript;
    out.tensors = models::torchscript_state(models::load_torchscript(path));
    if (spec && spec->kind == kTorchScriptKind) {
      return whole_archive(std::move(out), path, *spec);
    }
    // spec_for_layout may yet make it the whole model, after the names below are normalized.
    if (!spec && options.spec_for_layout) archive_tensors = out.tensors;
  } else {
    // Everything else goes to the torch.save reader, whose errors say what a file is instead.
    TorchFileContent content = decode_torch_file(std::move(bytes), path, options.key);
    if (content.legacy) format = FileFormat::kTorchSaveLegacy;
    if (!content.stripped_prefix.empty())
      spdlog::info("{}: removed the prefix '{}' of every name", path, content.stripped_prefix);
    out.tensors = std::move(content.tensors);
  }
  out.foreign_format = format_name(format);
  out.path = path;
  out.train_state = nlohmann::json::object();
  unwrap_robustness(out.tensors, path);
  rename_cifar_resnet(out.tensors, path);
  drop_unused(out.tensors, path);

  const Layout layout = analyze_layout(out.tensors);
  if (!spec && options.spec_for_layout) {
    spec = options.spec_for_layout(layout, format);
    if (format == FileFormat::kTorchScript && spec->kind == kTorchScriptKind) {
      out.tensors = std::move(archive_tensors);
      return whole_archive(std::move(out), path, *spec);
    }
  }
  if (!spec) {
    std::string hint;
    if (!layout.family.empty())
      hint = " (its names look like a " + layout.description + ": " + suggestion(layout) + ")";
    if (format == FileFormat::kTorchScript)
      hint += "; to use the archive as the whole model, set model.kind = \"torchscript\"";
    throw CheckpointError(path +
                          " has no model description: pass --config with the model.* it "
                          "was trained as" +
                          hint);
  }
  out.spec = *spec;
  adopt_file_normalization(out);
  spdlog::info(
      "{}: a {} file holding {}", path, out.foreign_format,
      layout.family.empty() ? "a layout advft does not recognize" : "a " + layout.description);
  if (format == FileFormat::kTorchScript && layout.family.empty()) {
    throw CheckpointError(path +
                          " is a TorchScript model whose tensors fit none of advft's "
                          "architectures: set model.kind = \"torchscript\" (--set "
                          "model.kind=torchscript) to fine-tune or evaluate it as it is");
  }
  check_layout(out, layout, *spec, options);
  if (options.reset_head) reset_head(out, out.spec.num_classes);
  for (const char* name : kNormalizeNames) {
    const bool present = std::any_of(out.tensors.begin(), out.tensors.end(),
                                     [&](const NamedTensor& t) { return t.name == name; });
    if (!present) out.keep_model_names.emplace_back(name);
  }
  keep_missing_batch_counts(out);
  apply_given_normalization(out, options);
  return out;
}

LoadReport load_checkpoint_weights(models::ClassifierImpl& model, const LoadedCheckpoint& ckpt,
                                   bool strict, const std::string& model_description) {
  LoadReport report = load_weights(model, ckpt.tensors, ckpt.path, strict, model_description,
                                   ckpt.keep_model_names);
  const auto& keep = ckpt.keep_model_names;
  if (std::find(keep.begin(), keep.end(), kNormalizeNames[0]) != keep.end()) {
    spdlog::info(
        "{}: the model normalizes its inputs with mean {} and std {} (model.mean/std, "
        "--mean/--std)",
        ckpt.path, nlohmann::json(ckpt.spec.mean).dump(), nlohmann::json(ckpt.spec.std).dump());
  }
  if (!report.missing.empty()) {
    spdlog::warn("{}: {} model tensors not in the file keep their initialization: {}", ckpt.path,
                 report.missing.size(), printable_list(report.missing));
  }
  if (!report.unexpected.empty()) {
    spdlog::warn("{}: {} tensors the model does not have were ignored: {}", ckpt.path,
                 report.unexpected.size(), printable_list(report.unexpected));
  }
  if (!report.mismatched.empty()) {
    spdlog::warn("{}: {} tensors of another shape were ignored: {}", ckpt.path,
                 report.mismatched.size(), printable_list(report.mismatched));
  }
  return report;
}

FileInfo inspect_file(const std::string& path, const std::string& key) {
  FileInfo info;
  info.path = path;
  std::string bytes = read_checkpoint_bytes(path);
  if (looks_like_safetensors(bytes)) {
    SafetensorsContent content = decode_safetensors(bytes, path);
    bytes.clear();
    const auto format = content.metadata.find("format");
    if (format != content.metadata.end() && format->second == kCheckpointFormat) {
      info.format = FileFormat::kAdvftCheckpoint;
      LoadedCheckpoint ckpt = load_checkpoint(std::move(content), path);
      info.tensors = std::move(ckpt.tensors);
      info.metadata["model_spec"] = models::spec_to_json(ckpt.spec);
      info.metadata["model"] = models::describe(ckpt.spec);
      info.metadata["train_state"] = ckpt.train_state;
    } else {
      info.format = format != content.metadata.end() && format->second == kTensorStateFormat
                        ? FileFormat::kAdvftState
                        : FileFormat::kSafetensors;
      info.tensors = std::move(content.tensors);
      if (info.format == FileFormat::kSafetensors)
        info.metadata["stripped_prefix"] = strip_wrapper_prefixes(info.tensors);
      nlohmann::json metadata = nlohmann::json::object();
      for (const auto& [k, v] : content.metadata)
        metadata[printable(k)] = printable(v, 2000);
      info.metadata["metadata"] = metadata;
    }
  } else if (looks_like_zip(bytes) && is_torchscript(bytes, path)) {
    bytes.clear();
    info.format = FileFormat::kTorchScript;
    info.tensors = models::torchscript_state(models::load_torchscript(path));
  } else {
    TorchFileContent content = decode_torch_file(std::move(bytes), path, key);
    info.format = content.legacy ? FileFormat::kTorchSaveLegacy : FileFormat::kTorchSave;
    info.tensors = std::move(content.tensors);
    info.metadata["chosen_key"] = content.chosen_key;
    info.metadata["candidate_keys"] = content.candidate_keys;
    info.metadata["stripped_prefix"] = content.stripped_prefix;
  }
  if (is_torch_save(info.format) || info.format == FileFormat::kSafetensors) {
    if (unwrap_robustness(info.tensors, path)) info.metadata["wrapper"] = "MadryLab robustness";
  }
  for (const auto& t : info.tensors) {
    if (t.tensor.defined() && t.tensor.is_floating_point() && !is_statistic(t.name))
      info.parameters += t.tensor.numel();
  }
  // The layout of the names as loading reads them; the listing keeps the file's own.
  std::vector<NamedTensor> as_loaded = info.tensors;
  rename_cifar_resnet(as_loaded, path);
  info.detected = analyze_layout(as_loaded);
  info.layout = info.detected.description;
  return info;
}

}  // namespace advft::io
