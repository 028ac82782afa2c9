#pragma once
// advft's self-describing checkpoint: a safetensors file whose metadata carries the model spec
// and the training state, so `advft eval --checkpoint X` needs no config. Optimizer state lives
// beside it in a second safetensors file (save_tensor_state).
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "advft/io/safetensors.h"
#include "advft/models/classifier.h"
#include "advft/models/model_spec.h"

namespace advft::io {

/// Metadata "format" of model checkpoints.
inline constexpr const char* kCheckpointFormat = "advft-checkpoint";
/// Metadata "format_version" this advft writes and reads.
inline constexpr const char* kCheckpointFormatVersion = "1";
/// Metadata "format" of optimizer / tensor state files.
inline constexpr const char* kTensorStateFormat = "advft-state";

/// Inverse of models::spec_to_json; CheckpointError names the missing or mistyped field. Unknown
/// fields are ignored so that older advft versions can read newer specs' known parts.
models::ModelSpec spec_from_json(const nlohmann::json& json);

/// Writes all named parameters and buffers of `model` (LibTorch names, own dtypes, moved to CPU)
/// with the spec and `train_state` in the metadata, atomically.
void save_checkpoint(const std::string& path, models::ClassifierImpl& model,
                     const models::ModelSpec& spec, const nlohmann::json& train_state);

/// What save_checkpoint writes, taken from the model when made: CPU copies that later training
/// steps do not change, so that the file can be written while training goes on.
struct CheckpointImage {
  std::vector<NamedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// The image of `model` now (save_checkpoint = checkpoint_image + write_checkpoint_image).
CheckpointImage checkpoint_image(models::ClassifierImpl& model, const models::ModelSpec& spec,
                                 const nlohmann::json& train_state);

/// Writes an image atomically; safe on any thread.
void write_checkpoint_image(const std::string& path, const CheckpointImage& image);

/// CPU copies of `tensors` that share no memory with them (for writing after they change).
std::vector<NamedTensor> snapshot_tensors(const std::vector<NamedTensor>& tensors);

/// A checkpoint read back: what save_checkpoint wrote.
struct LoadedCheckpoint {
  models::ModelSpec spec;
  nlohmann::json train_state;  ///< an empty object when the file has none
  std::vector<NamedTensor> tensors;
  std::string path;
  /// Empty for an advft checkpoint; else the format of the foreign file it came from
  /// ("safetensors", "torch.save zip", "torch.save legacy", "TorchScript"; see format_name), whose
  /// spec was given by the caller.
  std::string foreign_format;
  /// Model names that may be absent from `tensors` even in strict loading, the model keeping its
  /// own values: a foreign file's normalization buffers, a classifier head dropped to be reset.
  std::vector<std::string> keep_model_names;
  /// True when the file was not written by advft.
  bool foreign() const { return !foreign_format.empty(); }
};

/// Reads an advft checkpoint. CheckpointError: "<path>: no such file", a corrupt or truncated
/// file, or a file that is not an advft checkpoint (the message says what its metadata lacks).
LoadedCheckpoint load_checkpoint(const std::string& path);

/// load_checkpoint of a safetensors file already read from `path`.
LoadedCheckpoint load_checkpoint(SafetensorsContent content, const std::string& path);

/// What load_weights could not load, by name.
struct LoadReport {
  std::vector<std::string> missing;     ///< in the model, not in the checkpoint
  std::vector<std::string> unexpected;  ///< in the checkpoint, not in the model
  std::vector<std::string> mismatched;  ///< in both with different shapes
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

/// Copies `tensors` into the model's parameters and buffers by name, converting dtype and device
/// to the model's. Strict: any missing, unexpected or mismatched name throws one CheckpointError
/// listing them all (naming `source` and, when given, `model_description`) and nothing is
/// copied. Non-strict: copies every match and reports the rest. Model names listed in
/// `keep_model_names` that `tensors` lacks keep the model's values and are not reported.
LoadReport load_weights(models::ClassifierImpl& model, const std::vector<NamedTensor>& tensors,
                        const std::string& source, bool strict = true,
                        const std::string& model_description = "",
                        const std::vector<std::string>& keep_model_names = {});

/// Writes tensors (e.g. SGD momentum buffers keyed by parameter name) and a JSON state,
/// atomically, as safetensors with metadata {"format": "advft-state", "state": <json>}.
void save_tensor_state(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const nlohmann::json& state);

/// Reads what save_tensor_state wrote; CheckpointError on a missing, corrupt or foreign file.
std::pair<std::vector<NamedTensor>, nlohmann::json> load_tensor_state(const std::string& path);

}  // namespace advft::io
