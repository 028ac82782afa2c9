#pragma once
// Checkpoints from the PyTorch world: torch.save files and timm / Hugging Face safetensors
// files, loaded into advft's models by their reference key names. Such files carry no model
// description, so the caller's spec (the config's model.*) says what they hold; their key
// layout is recognized so that a wrong spec gets a message that says which one fits.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/io/checkpoint.h"
#include "advft/io/safetensors.h"
#include "advft/models/classifier.h"
#include "advft/models/model_spec.h"

namespace advft::io {

/// What a file is, judged by its bytes, not its name.
enum class FileFormat {
  kAdvftCheckpoint,
  kAdvftState,
  kSafetensors,
  kTorchSave,
  kTorchSaveLegacy,  ///< torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization off)
  kTorchScript,
  kUnknown
};

/// "advft checkpoint", "advft state", "safetensors", "torch.save zip", "torch.save legacy",
/// "TorchScript", "unknown".
const char* format_name(FileFormat format);

/// Whether `format` is one of torch.save's (a pickled object whose state_dict was looked for).
inline bool is_torch_save(FileFormat format) {
  return format == FileFormat::kTorchSave || format == FileFormat::kTorchSaveLegacy;
}

/// The network a state_dict's names and shapes describe.
struct Layout {
  /// "preact_resnet", "resnet", "wide_resnet", or empty when not recognized.
  std::string family;
  /// A short human description, e.g. "RobustBench/TRADES WideResNet-34-10"; "unknown".
  std::string description;
  std::vector<int64_t> blocks;  ///< blocks per stage (preact_resnet, resnet)
  int64_t width = 0;            ///< preact_resnet: channels of conv1; resnet: bottleneck width
  bool bottleneck = false;      ///< resnet
  bool cifar_stem = false;      ///< resnet: 3x3 conv1
  int64_t depth = 0;            ///< wide_resnet
  int64_t widen_factor = 0;     ///< wide_resnet
  int64_t num_classes = 0;      ///< rows of the classifier head (0 when not found)
  int64_t in_channels = 0;      ///< input channels of conv1 (0 when not found)
  /// The model.* settings that build this layout (advft config JSON), or null when unknown.
  nlohmann::json suggested_model;
};

/// How load_any_checkpoint treats a file.
struct ForeignOptions {
  /// torch.save files: the top-level key holding the state_dict (empty: found automatically).
  std::string key;
  /// The model a foreign file holds (it has no description of its own); required for those,
  /// unless spec_for_layout is given.
  std::optional<models::ModelSpec> spec;
  /// Without `spec`: called once with the layout a foreign file's names describe (as loading reads
  /// them) and the file's format, and returns the model it holds. Lets a caller that takes the
  /// model from the file read it once (`advft convert`) instead of inspecting it first.
  std::function<models::ModelSpec(const Layout& layout, FileFormat format)> spec_for_layout;
  /// A key layout that disagrees with `spec` is an error (false: a warning).
  bool strict = true;
  /// A classifier head (`linear.*` / `fc.*`) whose class count differs from spec.num_classes is
  /// dropped, so the model keeps its freshly initialized head.
  bool reset_head = false;
  /// Per-channel input mean and std given on the command line (--mean / --std). They replace
  /// what the file records (an advft checkpoint's model, a robustness normalizer), with a
  /// warning where that differs. Empty: the file's own, else the spec's.
  std::vector<double> mean;
  std::vector<double> std;
};

/// Recognizes the fast-AT PreActResNet, torchvision ResNet and TRADES WideResNet layouts.
Layout analyze_layout(const std::vector<NamedTensor>& tensors);

/// analyze_layout(tensors).description: e.g. "torchvision ResNet (bottleneck, layers 3-4-6-3)",
/// "RobustBench/TRADES WideResNet-34-10", "fast-AT PreActResNet-18" or "unknown".
std::string detect_layout(const std::vector<NamedTensor>& tensors);

/// Loads an advft checkpoint as load_checkpoint does, or a foreign file (safetensors without
/// advft metadata, torch.save zip or legacy file) with its names normalized: a `module.` /
/// `model.` prefix shared by every name removed, TRADES' unused `sub_block1.*` dropped. A foreign
/// file takes options.spec, or else spec_for_layout's, as its spec (CheckpointError "<path> has no
/// model description: ..." without either) and has its layout checked against it; its missing
/// `normalize.*` buffers are listed in keep_model_names, so the spec's mean/std apply. With
/// reset_head, a head of another class count is dropped (also from an advft checkpoint, whose spec
/// then takes spec.num_classes). A TorchScript archive is the whole model when the spec's kind is
/// "torchscript", and is read by its names like the others otherwise; unknown files throw
/// CheckpointError.
LoadedCheckpoint load_any_checkpoint(const std::string& path, const ForeignOptions& options);

/// Copies a loaded checkpoint's weights into `model` with load_weights (its keep_model_names
/// may be missing even in strict mode) and logs what non-strict loading left out.
LoadReport load_checkpoint_weights(models::ClassifierImpl& model, const LoadedCheckpoint& ckpt,
                                   bool strict, const std::string& model_description);

/// Everything `advft inspect` shows about a file.
struct FileInfo {
  std::string path;
  FileFormat format = FileFormat::kUnknown;
  /// The tensors in file order, names as stored but for a foreign file's wrapper prefix.
  std::vector<NamedTensor> tensors;
  /// Sum of numel of the floating-point tensors that are not BatchNorm running statistics or
  /// normalization buffers: what models::count_parameters counts.
  int64_t parameters = 0;
  std::string layout;
  /// The layout the tensors have as loading reads them (layout == detected.description).
  Layout detected;
  /// advft: {"model_spec", "model", "train_state"}; torch.save: {"chosen_key",
  /// "candidate_keys", "stripped_prefix"}; safetensors: {"metadata", "stripped_prefix"}.
  nlohmann::json metadata = nlohmann::json::object();
};

/// Reads and describes any checkpoint file; throws CheckpointError on a missing, malformed or
/// unrecognized file. A TorchScript archive is recognized but not read (no tensors).
FileInfo inspect_file(const std::string& path, const std::string& key = "");

/// "float32", "float16", "bfloat16", "int64", ... for messages and `advft inspect`.
std::string dtype_name(torch::ScalarType type);

}  // namespace advft::io
