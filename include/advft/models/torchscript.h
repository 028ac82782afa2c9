#pragma once
// A TorchScript archive (torch.jit.save of a scripted or traced PyTorch model) as an advft
// classifier, so that any network a user can export, not only advft's zoo, can be fine-tuned,
// attacked and evaluated. Its parameters and buffers are the archive's own tensors, mirrored
// under their TorchScript names (e.g. "layer1.0.conv1.weight"), so checkpoints, the optimizer
// and device moves work on them as on any other model.
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "advft/io/safetensors.h"
#include "advft/models/classifier.h"
#include "advft/models/model_spec.h"
#include "advft/models/normalize.h"

namespace advft::models {

/// Loads `path` with torch::jit::load onto the CPU; CheckpointError "<path>: ..." when it is
/// missing or not a TorchScript archive LibTorch can read.
torch::jit::Module load_torchscript(const std::string& path);

/// The parameters and then the buffers of a TorchScript module, by their dotted names.
std::vector<io::NamedTensor> torchscript_state(const torch::jit::Module& module);

/// spec.path's model behind the spec's normalization (mean/std, the identity by default).
class TorchScriptClassifierImpl : public ClassifierImpl {
 public:
  /// Loads spec.path and checks with one probe forward on a copy that it maps
  /// in_channels x input_size x input_size images to num_classes logits (ConfigError if not).
  explicit TorchScriptClassifierImpl(const ModelSpec& spec);

  torch::Tensor forward(torch::Tensor x) override;

  /// Switches the archive's modules too: scripted models then honour train/eval; a traced model
  /// keeps the mode it was traced in (tracing records one branch of BatchNorm and dropout).
  void train(bool on = true) override;

  /// The wrapped module, e.g. for torch::jit::Module::save with fine-tuned weights.
  torch::jit::Module& module() { return module_; }

 private:
  // Registers `tensor` (the archive's own tensor, not a copy) under its dotted name by creating
  // the intermediate submodules, so named_parameters() yields the archive's names.
  void mirror(const std::string& dotted_name, const torch::Tensor& tensor, bool parameter);

  Normalize normalize_{nullptr};
  torch::jit::Module module_;
};

TORCH_MODULE(TorchScriptClassifier);

}  // namespace advft::models
