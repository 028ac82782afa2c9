#include "advft/cli/convert.h"

#include <filesystem>
#include <memory>
#include <sstream>

#include <spdlog/spdlog.h>

#include "advft/cli/run_options.h"
#include "advft/config/load.h"
#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/checkpoint.h"
#include "advft/io/foreign.h"
#include "advft/io/torch_save.h"
#include "advft/models/factory.h"
#include "advft/models/torchscript.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/signals.h"

namespace advft::cli {

struct ConvertCliOptions {
  std::string input;
  std::string output;
  std::string to;
  std::string config;
  std::vector<std::string> sets;
  NormalizationFlags normalization;
  std::string key;
  bool non_strict = false;
  bool force = false;
  bool sub_block1 = false;
};

namespace {

namespace fs = std::filesystem;

enum class Target { kAdvft, kTorchSave, kTorchScript };

Target pick_target(const ConvertCliOptions& o) {
  if (o.to == "advft") return Target::kAdvft;
  if (o.to == "torch") return Target::kTorchSave;
  if (o.to == "torchscript") return Target::kTorchScript;
  if (!o.to.empty()) {
    throw UsageError("--to " + o.to + ": must be advft, torch or torchscript");
  }
  const std::string ext = fs::path(o.output).extension().string();
  if (ext == ".safetensors") return Target::kAdvft;
  if (ext == ".pt" || ext == ".pth" || ext == ".tar" || ext == ".bin") return Target::kTorchSave;
  throw UsageError(o.output + ": cannot tell the format from the extension '" + ext +
                   "': use .safetensors (advft) or .pt/.pth (torch.save), or pass --to");
}

// The model a foreign file holds: the config's model.* when the user gave one, else the
// settings its key layout names (a TorchScript archive of no known layout is its own model).
models::ModelSpec foreign_spec(const ConvertCliOptions& o, const io::Layout& layout,
                               io::FileFormat format) {
  std::vector<std::string> overrides = o.sets;
  const bool user_model =
      !o.config.empty() || std::any_of(o.sets.begin(), o.sets.end(), [](const std::string& s) {
        return s.rfind("model.", 0) == 0;
      });
  if (!user_model) {
    if (layout.family.empty() && format == io::FileFormat::kTorchScript) {
      overrides.push_back("model.kind=\"torchscript\"");
    } else if (layout.family.empty()) {
      throw CheckpointError(o.input + " holds a layout advft does not recognize: pass --config " +
                            "or --set model.* with the architecture it was trained as");
    } else {
      for (const auto& [field, value] : layout.suggested_model.items())
        overrides.push_back("model." + field + "=" + value.dump());
      if (layout.num_classes > 0)
        overrides.push_back("model.num_classes=" + std::to_string(layout.num_classes));
      if (layout.in_channels > 0)
        overrides.push_back("model.in_channels=" + std::to_string(layout.in_channels));
      // An ImageNet stem (7x7 conv + max-pool) means ImageNet's images.
      if (layout.family == "resnet" && !layout.cifar_stem)
        overrides.push_back("model.input_size=224");
      spdlog::info("{}: detected a {}", o.input, layout.description);
    }
  }
  append_normalization_overrides(o.normalization, overrides);
  return config::load_run_config(config::Command::kEval, o.config, overrides).model;
}

bool is_identity(const models::ModelSpec& spec) {
  const auto all = [](const std::vector<double>& v, double x) {
    return std::all_of(v.begin(), v.end(), [x](double y) { return y == x; });
  };
  return all(spec.mean, 0.0) && all(spec.std, 1.0);
}

std::string list_text(const std::vector<double>& values) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < values.size(); ++i)
    out << (i ? ", " : "") << values[i];
  return out.str() + "]";
}

// Parameters and buffers module by module, as Python's state_dict() orders them, without
// advft's normalization layer, which the reference definitions do not have.
std::vector<io::NamedTensor> reference_state_dict(models::ClassifierImpl& model, bool sub_block1) {
  std::vector<io::NamedTensor> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    if (prefix == "normalize.") continue;
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.push_back({prefix + p.key(), p.value().detach()});
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      out.push_back({prefix + b.key(), b.value().detach()});
  }
  if (sub_block1) {
    // TRADES' WideResNet defines sub_block1 like block1 and never calls it: any copy will do,
    // and its load_state_dict(strict=True) then finds every key it expects.
    const size_t count = out.size();
    for (size_t i = 0; i < count; ++i) {
      if (out[i].name.rfind("block1.", 0) == 0)
        out.push_back({"sub_" + out[i].name, out[i].tensor});
    }
  }
  return out;
}

void warn_about_normalization(const models::ModelSpec& spec) {
  if (is_identity(spec)) return;
  spdlog::warn(
      "the model normalizes its input inside advft (mean {}, std {}); the file written has no "
      "such layer: normalize inputs with these in Python before the network",
      list_text(spec.mean), list_text(spec.std));
}

void write_torchscript(const std::string& path, models::ClassifierImpl& model,
                       const models::ModelSpec& spec) {
  auto* scripted = dynamic_cast<models::TorchScriptClassifierImpl*>(&model);
  if (scripted == nullptr) {
    throw UsageError("--to torchscript needs a TorchScript model (model.kind = \"torchscript\"); " +
                     models::describe(spec) + " is one of advft's own: write --to torch instead");
  }
  std::ostringstream bytes;
  scripted->module().save(bytes);  // the archive's code with the weights it now holds
  io::write_file_atomic(path, bytes.str());
}

void run_convert(const ConvertCliOptions& o) {
  runtime::init_logging(false);
  const Target target = pick_target(o);
  std::error_code ec;
  if (fs::exists(o.output, ec) && fs::equivalent(o.input, o.output, ec)) {
    throw UsageError(o.output + " is the input file: write the conversion somewhere else");
  }
  // symlink_status: a link whose target is gone is still something the write would replace.
  if (fs::exists(fs::symlink_status(o.output, ec)) && !o.force) {
    throw UsageError(o.output + " exists: pass --force to replace it");
  }

  io::ForeignOptions options;
  options.key = o.key;
  options.strict = !o.non_strict;
  options.mean = o.normalization.mean;
  options.std = o.normalization.std;
  // Read once: the model of a foreign file comes from its layout as loading reads it.
  options.spec_for_layout = [&o](const io::Layout& layout, io::FileFormat format) {
    return foreign_spec(o, layout, format);
  };
  // Reading and building a large model take seconds each; a Ctrl-C or SIGTERM (recorded by
  // main's handlers) ends the command after each of them, before anything is written.
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(o.input, options);
  runtime::throw_if_stopped("convert");
  const models::ClassifierPtr model = models::make_model(ckpt.spec);
  io::load_checkpoint_weights(*model, ckpt, options.strict, models::describe(ckpt.spec));
  model->eval();
  runtime::throw_if_stopped("convert");

  switch (target) {
    case Target::kAdvft: {
      nlohmann::json state = ckpt.train_state;
      if (ckpt.foreign())
        state = {{"converted_from", o.input}, {"source_format", ckpt.foreign_format}};
      io::save_checkpoint(o.output, *model, ckpt.spec, state);
      break;
    }
    case Target::kTorchSave:
      io::write_torch_save(o.output, reference_state_dict(*model, o.sub_block1));
      warn_about_normalization(ckpt.spec);
      break;
    case Target::kTorchScript:
      write_torchscript(o.output, *model, ckpt.spec);
      warn_about_normalization(ckpt.spec);
      break;
  }
  spdlog::info("wrote {} ({}) to {}", models::describe(ckpt.spec),
               target == Target::kAdvft       ? "advft checkpoint"
               : target == Target::kTorchSave ? "torch.save state_dict"
                                              : "TorchScript archive",
               o.output);
}

}  // namespace

void setup_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertCliOptions>();
  auto* command = app.add_subcommand(
      "convert",
      "Convert a checkpoint: any file advft reads (advft, safetensors, torch.save, TorchScript) "
      "to a self-describing advft checkpoint (.safetensors), or to a torch.save state_dict with "
      "the reference key names (.pt) that Python loads with torch.load + load_state_dict");
  command->add_option("input", o->input, "Checkpoint to read")->required();
  command->add_option("output", o->output, "File to write (.safetensors, .pt, .pth)")->required();
  command->add_option("--to", o->to,
                      "advft | torch | torchscript (default: from OUTPUT's extension; "
                      "torchscript: a TorchScript model with the checkpoint's weights)");
  command->add_option("-c,--config", o->config,
                      "A foreign file's model.* (default: detected from its key layout)");
  command->add_option(
      "--set", o->sets,
      "Config override key.path=value, repeatable, e.g. --set model.input_size=224");
  add_normalization_flags(*command, o->normalization);
  command->add_option("--key", o->key,
                      "torch.save files: the top-level key holding the state_dict");
  command->add_flag("--non-strict", o->non_strict,
                    "Convert what fits the model and report the rest instead of failing");
  command->add_flag("--sub-block1", o->sub_block1,
                    "torch.save of a WideResNet: also write TRADES' unused sub_block1 (a copy of "
                    "block1), which TRADES' own definition expects");
  command->add_flag("-f,--force", o->force, "Replace OUTPUT when it exists");
  command->callback([o]() { run_convert(*o); });
}

}  // namespace advft::cli
