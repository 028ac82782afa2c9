#include "advft/io/checkpoint.h"

#include <limits>
#include <map>
#include <set>

#include "advft/error.h"
#include "advft/io/printable.h"

#ifndef ADVFT_VERSION
#error "ADVFT_VERSION must be defined by the build (CMake sets it from the project version)"
#endif

namespace advft::io {
namespace {

std::string shape_text(torch::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

// Never throws on odd strings: train_state may carry user-provided paths.
std::string dump_safe(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const nlohmann::json& field(const nlohmann::json& j, const char* name, const std::string& context) {
  const auto it = j.find(name);
  if (it == j.end()) {
    throw CheckpointError(context + ": missing field \"" + name + "\"");
  }
  return *it;
}

[[noreturn]] void mistyped(const char* name, const char* expected, const nlohmann::json& value,
                           const std::string& context) {
  throw CheckpointError(context + ": field \"" + name + "\" must be " + expected + ", got " +
                        value.type_name());
}

std::string get_string(const nlohmann::json& j, const char* name, const std::string& context) {
  const auto& v = field(j, name, context);
  if (!v.is_string()) {
    mistyped(name, "a string", v, context);
  }
  return v.get<std::string>();
}

int64_t get_int(const nlohmann::json& j, const char* name, const std::string& context) {
  const auto& v = field(j, name, context);
  if (!v.is_number_integer() ||
      (v.is_number_unsigned() &&
       v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    mistyped(name, "an integer", v, context);
  }
  return v.get<int64_t>();
}

bool get_bool(const nlohmann::json& j, const char* name, const std::string& context) {
  const auto& v = field(j, name, context);
  if (!v.is_boolean()) {
    mistyped(name, "true or false", v, context);
  }
  return v.get<bool>();
}

std::vector<double> get_doubles(const nlohmann::json& j, const char* name,
                                const std::string& context) {
  const auto& v = field(j, name, context);
  std::vector<double> out;
  if (!v.is_array()) {
    mistyped(name, "an array of numbers", v, context);
  }
  for (const auto& x : v) {
    if (!x.is_number()) {
      mistyped(name, "an array of numbers", v, context);
    }
    out.push_back(x.get<double>());
  }
  return out;
}

std::vector<int64_t> get_ints(const nlohmann::json& j, const char* name,
                              const std::string& context) {
  const auto& v = field(j, name, context);
  std::vector<int64_t> out;
  if (!v.is_array()) {
    mistyped(name, "an array of integers", v, context);
  }
  for (const auto& x : v) {
    if (!x.is_number_integer() ||
        (x.is_number_unsigned() &&
         x.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      mistyped(name, "an array of integers", v, context);
    }
    out.push_back(x.get<int64_t>());
  }
  return out;
}

models::ModelSpec spec_from_json_in(const nlohmann::json& j, const std::string& context) {
  if (!j.is_object()) {
    throw CheckpointError(context + ": must be a JSON object, got " + j.type_name());
  }
  models::ModelSpec spec;
  // Checkpoints from before TorchScript support have neither field: they hold zoo models.
  if (j.contains("kind")) spec.kind = get_string(j, "kind", context);
  if (j.contains("path")) spec.path = get_string(j, "path", context);
  spec.arch = get_string(j, "arch", context);
  spec.num_classes = get_int(j, "num_classes", context);
  spec.in_channels = get_int(j, "in_channels", context);
  spec.input_size = get_int(j, "input_size", context);
  spec.mean = get_doubles(j, "mean", context);
  spec.std = get_doubles(j, "std", context);
  spec.blocks = get_ints(j, "blocks", context);
  spec.width = get_int(j, "width", context);
  spec.cifar_stem = get_bool(j, "cifar_stem", context);
  spec.depth = get_int(j, "depth", context);
  spec.widen_factor = get_int(j, "widen_factor", context);
  return spec;
}

nlohmann::json parse_metadata_json(const std::map<std::string, std::string>& metadata,
                                   const std::string& key, const std::string& path) {
  try {
    return nlohmann::json::parse(metadata.at(key));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": metadata \"" + key + "\" is not valid JSON (" + e.what() + ")");
  }
}

// Checks the metadata "format" key, naming what is there instead when it is wrong.
void require_format(const std::map<std::string, std::string>& metadata, const std::string& format,
                    const std::string& path, const std::string& kind) {
  const auto it = metadata.find("format");
  if (metadata.empty()) {
    throw CheckpointError(path + ": not an " + kind +
                          ": the safetensors file has no metadata (written by another tool?)");
  }
  if (it == metadata.end()) {
    throw CheckpointError(path + ": not an " + kind +
                          ": its safetensors metadata has no \"format\" key (written by another "
                          "tool?)");
  }
  if (it->second != format) {
    throw CheckpointError(path + ": not an " + kind + ": metadata \"format\" is \"" +
                          it->second.substr(0, 80) + "\", expected \"" + format + "\"");
  }
}

std::vector<std::pair<std::string, torch::Tensor>> model_entries(models::ClassifierImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) {
      out.emplace_back(item.key(), item.value());
    }
  }
  for (const auto& item : model.named_buffers(/*recurse=*/true)) {
    if (item.value().defined()) {
      out.emplace_back(item.key(), item.value());
    }
  }
  return out;
}

}  // namespace

models::ModelSpec spec_from_json(const nlohmann::json& json) {
  return spec_from_json_in(json, "model_spec");
}

std::vector<NamedTensor> snapshot_tensors(const std::vector<NamedTensor>& tensors) {
  std::vector<NamedTensor> out;
  out.reserve(tensors.size());
  for (const auto& nt : tensors) {
    // copy=true: a CPU tensor is cloned too, not aliased.
    out.push_back({nt.name, nt.tensor.detach().to(torch::kCPU, /*non_blocking=*/false,
                                                  /*copy=*/true)});
  }
  return out;
}

CheckpointImage checkpoint_image(models::ClassifierImpl& model, const models::ModelSpec& spec,
                                 const nlohmann::json& train_state) {
  std::vector<NamedTensor> tensors;
  for (auto& [name, tensor] : model_entries(model)) {
    tensors.push_back({name, tensor});
  }
  return {snapshot_tensors(tensors),
          {
              {"format", kCheckpointFormat},
              {"format_version", kCheckpointFormatVersion},
              {"advft_version", ADVFT_VERSION},
              {"model_spec", dump_safe(models::spec_to_json(spec))},
              {"train_state", dump_safe(train_state)},
          }};
}

void write_checkpoint_image(const std::string& path, const CheckpointImage& image) {
  write_safetensors(path, image.tensors, image.metadata);
}

void save_checkpoint(const std::string& path, models::ClassifierImpl& model,
                     const models::ModelSpec& spec, const nlohmann::json& train_state) {
  write_checkpoint_image(path, checkpoint_image(model, spec, train_state));
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  return load_checkpoint(read_safetensors(path), path);
}

LoadedCheckpoint load_checkpoint(SafetensorsContent content, const std::string& path) {
  const auto& meta = content.metadata;
  require_format(meta, kCheckpointFormat, path, "advft checkpoint");

  const auto version = meta.find("format_version");
  if (version == meta.end()) {
    throw CheckpointError(path + ": not an advft checkpoint: metadata has no \"format_version\"");
  }
  if (version->second != kCheckpointFormatVersion) {
    const auto writer = meta.find("advft_version");
    throw CheckpointError(path + ": checkpoint format_version \"" + version->second.substr(0, 80) +
                          "\" (written by advft " +
                          (writer == meta.end() ? "?" : writer->second.substr(0, 80)) +
                          ") is not supported; this advft " + ADVFT_VERSION + " reads version " +
                          kCheckpointFormatVersion);
  }
  if (meta.find("model_spec") == meta.end()) {
    throw CheckpointError(path + ": not an advft checkpoint: metadata has no \"model_spec\"");
  }

  LoadedCheckpoint out;
  out.path = path;
  out.spec =
      spec_from_json_in(parse_metadata_json(meta, "model_spec", path), path + ": model_spec");
  if (meta.find("train_state") != meta.end()) {
    out.train_state = parse_metadata_json(meta, "train_state", path);
  } else {
    out.train_state = nlohmann::json::object();
  }
  out.tensors = std::move(content.tensors);
  return out;
}

LoadReport load_weights(models::ClassifierImpl& model, const std::vector<NamedTensor>& tensors,
                        const std::string& source, bool strict,
                        const std::string& model_description,
                        const std::vector<std::string>& keep_model_names) {
  const std::set<std::string> keep(keep_model_names.begin(), keep_model_names.end());
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& nt : tensors) {
    by_name[nt.name] = &nt.tensor;
  }

  LoadReport report;
  std::vector<std::string> mismatch_details;
  struct Match {
    std::string name;
    torch::Tensor target;
    const torch::Tensor* source;
  };
  std::vector<Match> matches;
  std::set<std::string> model_names;
  for (auto& [name, target] : model_entries(model)) {
    model_names.insert(name);
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (keep.count(name) == 0) report.missing.push_back(name);
    } else if (!it->second->defined() || it->second->sizes() != target.sizes()) {
      report.mismatched.push_back(name);
      mismatch_details.push_back(
          name + " (checkpoint " +
          (it->second->defined() ? shape_text(it->second->sizes()) : std::string("undefined")) +
          " vs model " + shape_text(target.sizes()) + ")");
    } else {
      matches.push_back({name, target, it->second});
    }
  }
  for (const auto& [name, tensor] : by_name) {
    if (model_names.count(name) == 0) {
      report.unexpected.push_back(name);
    }
  }

  if (strict && !report.ok()) {
    std::string message = source + " does not fit the model";
    if (!model_description.empty()) {
      message += " (" + model_description + ")";
    }
    message += ":";
    std::string sep = " ";
    if (!report.mismatched.empty()) {
      message += sep + "shape mismatch: " + printable_list(mismatch_details);
      sep = "; ";
    }
    if (!report.missing.empty()) {
      message += sep + "missing: " + printable_list(report.missing);
      sep = "; ";
    }
    if (!report.unexpected.empty()) {
      message += sep + "unexpected: " + printable_list(report.unexpected);
    }
    throw CheckpointError(message);
  }

  // A NaN weight makes every prediction the same class, which an evaluation would report as a
  // plausible accuracy and a fine-tune as divergence blamed on the learning rate: say it here.
  for (const auto& match : matches) {
    const torch::Tensor& values = *match.source;
    if (!values.is_floating_point()) continue;
    const int64_t bad = values.numel() - values.isfinite().sum().item<int64_t>();
    if (bad > 0) {
      throw CheckpointError(source + ": tensor '" + printable(match.name) + "' holds " +
                            std::to_string(bad) + " NaN or infinite values of " +
                            std::to_string(values.numel()) +
                            "; the file is corrupt or was saved by a run that diverged: use an "
                            "earlier checkpoint");
    }
  }

  torch::NoGradGuard no_grad;
  for (auto& match : matches) {
    match.target.copy_(*match.source);  // converts dtype and device to the model's
  }
  return report;
}

void save_tensor_state(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const nlohmann::json& state) {
  write_safetensors(path, tensors, {{"format", kTensorStateFormat}, {"state", dump_safe(state)}});
}

std::pair<std::vector<NamedTensor>, nlohmann::json> load_tensor_state(const std::string& path) {
  SafetensorsContent content = read_safetensors(path);
  require_format(content.metadata, kTensorStateFormat, path, "advft state file");
  nlohmann::json state = nlohmann::json::object();
  if (content.metadata.count("state") != 0) {
    state = parse_metadata_json(content.metadata, "state", path);
  }
  return {std::move(content.tensors), std::move(state)};
}

}  // namespace advft::io
