#include "advft/models/torchscript.h"

#include <filesystem>
#include <memory>

#include "advft/error.h"

namespace advft::models {
namespace {

// LibTorch's messages carry a C++ backtrace after the first line; users need only that line.
std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

std::vector<std::string> split_dotted(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', start)) {
    parts.push_back(name.substr(start, dot - start));
    start = dot + 1;
  }
  parts.push_back(name.substr(start));
  return parts;
}

std::string shape_text(const ModelSpec& spec) {
  return std::to_string(spec.in_channels) + "x" + std::to_string(spec.input_size) + "x" +
         std::to_string(spec.input_size);
}

}  // namespace

torch::jit::Module load_torchscript(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw CheckpointError(path + ": no such file");
  try {
    return torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {  // c10::Error, or the deserializer's own errors
    throw CheckpointError(path + ": not a TorchScript archive LibTorch can load (" +
                          first_line(e.what()) + ")");
  }
}

std::vector<io::NamedTensor> torchscript_state(const torch::jit::Module& module) {
  std::vector<io::NamedTensor> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    out.push_back({p.name, p.value});
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    out.push_back({b.name, b.value});
  return out;
}

TorchScriptClassifierImpl::TorchScriptClassifierImpl(const ModelSpec& spec)
    : module_(load_torchscript(spec.path)) {
  normalize_ = register_module("normalize",
                               Normalize(NormalizeOptions(spec.in_channels, spec.mean, spec.std)));
  for (const auto& p : module_.named_parameters(/*recurse=*/true))
    mirror(p.name, p.value, true);
  for (const auto& b : module_.named_buffers(/*recurse=*/true))
    mirror(b.name, b.value, false);

  // One probe on a copy, so that a wrong input shape or class count is a clear configuration
  // error now, not a cryptic one in the first training step; the copy keeps BatchNorm
  // statistics of the real module untouched even when the model was traced in train mode.
  torch::jit::Module probe = module_.deepcopy();
  probe.eval();
  torch::NoGradGuard no_grad;
  c10::IValue output;
  try {
    output = probe.forward({torch::zeros({2, spec.in_channels, spec.input_size, spec.input_size})});
  } catch (const std::exception& e) {  // the TorchScript interpreter's errors are runtime_errors
    throw ConfigError("model.path = \"" + spec.path + "\": the TorchScript model fails on " +
                      shape_text(spec) +
                      " images (model.in_channels / model.input_size): " + first_line(e.what()));
  }
  if (!output.isTensor()) {
    throw ConfigError("model.path = \"" + spec.path + "\": forward() returns " + output.tagKind() +
                      ", not a tensor of logits");
  }
  const torch::Tensor logits = output.toTensor();
  if (logits.dim() != 2 || logits.size(0) != 2 || logits.size(1) != spec.num_classes) {
    throw ConfigError("model.path = \"" + spec.path +
                      "\": the TorchScript model maps 2 images to " + "logits of shape " +
                      c10::str(logits.sizes()) +
                      ", but model.num_classes = " + std::to_string(spec.num_classes) +
                      " needs [2, " + std::to_string(spec.num_classes) + "]");
  }
  train(true);
}

torch::Tensor TorchScriptClassifierImpl::forward(torch::Tensor x) {
  return module_.forward({normalize_->forward(x)}).toTensor();
}

void TorchScriptClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  module_.train(on);
}

void TorchScriptClassifierImpl::mirror(const std::string& dotted_name, const torch::Tensor& tensor,
                                       bool parameter) {
  const std::vector<std::string> parts = split_dotted(dotted_name);
  torch::nn::Module* owner = this;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (owner == this && parts[i] == "normalize") {
      throw ConfigError(
          "the TorchScript model has a submodule named 'normalize', which advft "
          "uses for model.mean/std; rename it before torch.jit.save");
    }
    auto children = owner->named_children();
    const auto* existing = children.find(parts[i]);
    owner = existing != nullptr
                ? existing->get()
                : owner->register_module(parts[i], std::make_shared<torch::nn::Module>()).get();
  }
  // register_* keep the tensor object itself: the archive's forward() sees every update.
  if (parameter) {
    owner->register_parameter(parts.back(), tensor, /*requires_grad=*/true);
  } else {
    owner->register_buffer(parts.back(), tensor);
  }
}

}  // namespace advft::models
