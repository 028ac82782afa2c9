// Users' PyTorch checkpoints in the reference layouts (fast-AT PreActResNet-18, TRADES
// WideResNet, torchvision ResNet) load into advft's models and give Python's logits; the
// commands take them too. The fixtures come from tests/fixtures/make_zoo_fixtures.py, run with
// Debian's python3-torch and python3-torchvision (/usr/bin/python3) once per build and script
// version.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/error.h"
#include "advft/io/checkpoint.h"
#include "advft/io/foreign.h"
#include "advft/io/safetensors.h"
#include "advft/io/torch_file.h"
#include "advft/models/factory.h"
#include "expect_error.h"
#include "fixtures.h"

namespace advft::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const FixtureFiles& zoo_files() {
  return python_fixtures("make_zoo_fixtures.py");
}

class ForeignTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { zoo_files(); }
  // A missing python3-torch is a broken test set-up, not a reason to skip.
  void SetUp() override {
    ASSERT_EQ(zoo_files().status, 0) << "fixture generation failed: " << zoo_files().command;
  }
  static std::string path(const std::string& name) { return zoo_files().path(name); }

  // Python's logits (and the input they were computed on) from expected.pt.
  static torch::Tensor expected(const std::string& name) {
    static const std::map<std::string, torch::Tensor> tensors = [] {
      std::map<std::string, torch::Tensor> out;
      const io::TorchFileContent content = io::read_torch_file(path("expected.pt"));
      for (const auto& t : content.tensors)
        out[t.name] = t.tensor;
      return out;
    }();
    const auto it = tensors.find(name);
    return it == tensors.end() ? torch::Tensor() : it->second;
  }
};

models::ModelSpec preact18_spec(int64_t num_classes = 10) {
  models::ModelSpec spec;
  spec.arch = "preact_resnet18";
  spec.num_classes = num_classes;
  return spec;  // mean 0, std 1: the model's normalization is the identity, as in the fixtures
}

models::ModelSpec wrn16_2_spec() {
  models::ModelSpec spec;
  spec.arch = "wide_resnet";
  spec.depth = 16;
  spec.widen_factor = 2;
  return spec;
}

models::ModelSpec resnet18_cifar_spec() {
  models::ModelSpec spec;
  spec.arch = "resnet18";
  spec.cifar_stem = true;
  return spec;
}

// torchvision's ImageNet models as the fixture script saves them: 64x64 inputs.
models::ModelSpec torchvision_spec(const std::string& arch, int64_t num_classes = 1000) {
  models::ModelSpec spec;
  spec.arch = arch;
  spec.num_classes = num_classes;
  spec.input_size = 64;
  return spec;
}

models::ModelSpec wrn28_10_spec() {
  models::ModelSpec spec;
  spec.arch = "wrn28_10";
  return spec;
}

io::ForeignOptions with_spec(const models::ModelSpec& spec) {
  io::ForeignOptions options;
  options.spec = spec;
  return options;
}

struct ZooCase {
  const char* file;
  const char* logits;  // name in expected.pt
  models::ModelSpec spec;
  const char* format;
  const char* layout;           // what detect_layout calls the file's names
  const char* input = "input";  // name in expected.pt: 4x3x32x32, or input64
};

// What gtest (and so CTest's listing) shows for a case, instead of its bytes.
void PrintTo(const ZooCase& c, std::ostream* out) {
  *out << c.file;
}

class ZooLogitsTest : public ForeignTest, public ::testing::WithParamInterface<ZooCase> {};

TEST_P(ZooLogitsTest, LogitsEqualPython) {
  const ZooCase& c = GetParam();
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(path(c.file), with_spec(c.spec));
  EXPECT_TRUE(ckpt.foreign());
  EXPECT_EQ(ckpt.foreign_format, c.format);
  EXPECT_EQ(io::detect_layout(ckpt.tensors), c.layout);
  for (const auto& t : ckpt.tensors) {
    EXPECT_NE(t.name.rfind("module.", 0), 0u) << t.name;
    EXPECT_NE(t.name.rfind("sub_block1.", 0), 0u) << t.name;
  }
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  const io::LoadReport report =
      io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, models::describe(ckpt.spec));
  EXPECT_TRUE(report.ok());
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor want = expected(c.logits);
  ASSERT_TRUE(want.defined()) << c.logits;
  const torch::Tensor got = model->forward(expected(c.input));
  ASSERT_EQ(got.sizes().vec(), want.sizes().vec());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4) << c.file << ": advft\n" << got << "\nPython\n" << want;
  RecordProperty("max_abs_diff", diff);  // in --gtest_output reports
}

constexpr const char* kTorchSave = "torch.save zip";
constexpr const char* kTorchSaveLegacy = "torch.save legacy";

INSTANTIATE_TEST_SUITE_P(
    Zoo, ZooLogitsTest,
    ::testing::Values(
        ZooCase{"preact18.pt", "preact18", preact18_spec(), kTorchSave, "fast-AT PreActResNet-18"},
        ZooCase{"preact18_legacy.pth", "preact18", preact18_spec(), kTorchSaveLegacy,
                "fast-AT PreActResNet-18"},
        // Half-precision weights; Python's logits come from the same rounded weights in float32.
        ZooCase{"preact18_half.pth", "preact18_half", preact18_spec(), kTorchSave,
                "fast-AT PreActResNet-18"},
        ZooCase{"wrn16_2.pt", "wrn16_2", wrn16_2_spec(), kTorchSave,
                "RobustBench/TRADES WideResNet-16-2"},
        ZooCase{"wrn16_2_legacy.pt", "wrn16_2", wrn16_2_spec(), kTorchSaveLegacy,
                "RobustBench/TRADES WideResNet-16-2"},
        ZooCase{"wrn16_2.safetensors", "wrn16_2", wrn16_2_spec(), "safetensors",
                "RobustBench/TRADES WideResNet-16-2"},
        ZooCase{"resnet18_cifar.tar", "resnet18_cifar", resnet18_cifar_spec(), kTorchSave,
                "torchvision ResNet-18 (basic, layers 2-2-2-2, CIFAR stem)"},
        // The real torchvision models and a full-size TRADES WRN-28-10 (with sub_block1).
        ZooCase{"tv_resnet18.pth", "tv_resnet18", torchvision_spec("resnet18"), kTorchSave,
                "torchvision ResNet-18 (basic, layers 2-2-2-2)", "input64"},
        ZooCase{"tv_resnet50.pth", "tv_resnet50", torchvision_spec("resnet50"), kTorchSave,
                "torchvision ResNet-50 (bottleneck, layers 3-4-6-3)", "input64"},
        ZooCase{"tv_wide_resnet50_2.pth", "tv_wide_resnet50_2", torchvision_spec("wide_resnet50_2"),
                kTorchSave, "torchvision Wide-ResNet-50-2 (bottleneck, layers 3-4-6-3, width 128)",
                "input64"},
        ZooCase{"trades_wrn28_10.pt", "trades_wrn28_10", wrn28_10_spec(), kTorchSave,
                "RobustBench/TRADES WideResNet-28-10"},
        // {'state': {'model': DataParallel state_dict}, 'optimizer': ..., 'epoch': ...}.
        ZooCase{"nested_resnet18.pth", "nested_resnet18", torchvision_spec("resnet18", 10),
                kTorchSave, "torchvision ResNet-18 (basic, layers 2-2-2-2)", "input64"}),
    [](const ::testing::TestParamInfo<ZooCase>& info) {
      std::string name = info.param.file;
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

std::vector<io::NamedTensor> tensors_of(models::ClassifierImpl& model) {
  std::vector<io::NamedTensor> out;
  for (const auto& p : model.named_parameters())
    out.push_back({p.key(), p.value()});
  for (const auto& b : model.named_buffers())
    out.push_back({b.key(), b.value()});
  return out;
}

TEST_F(ForeignTest, DetectsTheReferenceLayouts) {
  EXPECT_EQ(io::detect_layout(io::read_torch_file(path("preact18.pt")).tensors),
            "fast-AT PreActResNet-18");
  EXPECT_EQ(io::detect_layout(io::read_torch_file(path("wrn16_2.pt")).tensors),
            "RobustBench/TRADES WideResNet-16-2");
  EXPECT_EQ(io::detect_layout(io::read_torch_file(path("resnet18_cifar.tar")).tensors),
            "torchvision ResNet-18 (basic, layers 2-2-2-2, CIFAR stem)");

  models::ModelSpec spec;
  spec.arch = "resnet50";
  spec.num_classes = 1000;
  EXPECT_EQ(io::detect_layout(tensors_of(*models::make_model(spec))),
            "torchvision ResNet-50 (bottleneck, layers 3-4-6-3)");
  spec.arch = "wide_resnet";
  spec.depth = 34;
  spec.widen_factor = 1;
  const io::Layout wrn = io::analyze_layout(tensors_of(*models::make_model(spec)));
  EXPECT_EQ(wrn.description, "RobustBench/TRADES WideResNet-34-1");
  EXPECT_EQ(wrn.num_classes, 1000);
  EXPECT_EQ(io::detect_layout({{"encoder.weight", torch::zeros({2})}}), "unknown");
  EXPECT_EQ(io::detect_layout({}), "unknown");
}

// No fixture for these (178 and 241 MB of float32): advft's own models, whose parameter counts
// models_test checks against torchvision's, stand in for the files.
TEST_F(ForeignTest, NamesTheDeepTorchvisionResNets) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"resnet101", "torchvision ResNet-101 (bottleneck, layers 3-4-23-3)"},
      {"resnet152", "torchvision ResNet-152 (bottleneck, layers 3-8-36-3)"}};
  for (const auto& [arch, description] : cases) {
    const io::Layout layout =
        io::analyze_layout(tensors_of(*models::make_model(torchvision_spec(arch))));
    EXPECT_EQ(layout.description, description);
    EXPECT_EQ(layout.suggested_model["arch"], arch);
    EXPECT_EQ(layout.suggested_model["cifar_stem"], false);
    EXPECT_EQ(layout.num_classes, 1000);
  }
  // A depth torchvision does not define (layer3 cut to 2 blocks) is described, not named.
  std::vector<io::NamedTensor> shallower =
      tensors_of(*models::make_model(torchvision_spec("resnet50")));
  const auto beyond_two_blocks = [](const io::NamedTensor& t) {
    return t.name.rfind("layer3.", 0) == 0 && t.name[7] >= '2';
  };
  shallower.erase(std::remove_if(shallower.begin(), shallower.end(), beyond_two_blocks),
                  shallower.end());
  const io::Layout layout = io::analyze_layout(shallower);
  EXPECT_EQ(layout.description, "torchvision ResNet (bottleneck, layers 3-4-2-3)");
  EXPECT_TRUE(layout.suggested_model.is_null());
}

TEST_F(ForeignTest, ForeignFileNeedsAModelSpec) {
  expect_checkpoint_error(
      [] { io::load_any_checkpoint(path("wrn16_2.pt"), {}); },
      {"wrn16_2.pt has no model description", "pass --config with the model.* it was trained as",
       "model.arch = \"wide_resnet\"", "model.depth = 16"});
}

TEST_F(ForeignTest, WrongSpecNamesTheLayoutThatFits) {
  expect_checkpoint_error(
      [] { io::load_any_checkpoint(path("preact18.pt"), with_spec(wrn16_2_spec())); },
      {"preact18.pt holds a fast-AT PreActResNet-18", "WRN-16-2",
       "model.arch = \"preact_resnet18\""});
  expect_checkpoint_error(
      [] { io::load_any_checkpoint(path("resnet18_cifar.tar"), with_spec(models::ModelSpec{})); },
      {"torchvision ResNet-18 (basic, layers 2-2-2-2, CIFAR stem)", "model.arch = \"resnet18\"",
       "model.cifar_stem = true"});
  expect_checkpoint_error(
      [] { io::load_any_checkpoint(path("preact18.pt"), with_spec(preact18_spec(100))); },
      {"10-class head", "model.num_classes = 100", "--reset-head"});
  // Non-strict: a warning, and the mismatching head is left out of the load.
  io::ForeignOptions options = with_spec(preact18_spec(100));
  options.strict = false;
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(path("preact18.pt"), options);
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  const io::LoadReport report = io::load_checkpoint_weights(*model, ckpt, /*strict=*/false, "");
  EXPECT_EQ(report.mismatched, (std::vector<std::string>{"linear.weight", "linear.bias"}));
}

TEST_F(ForeignTest, StrictModeListsWrongNames) {
  io::LoadedCheckpoint ckpt =
      io::load_any_checkpoint(path("preact18.pt"), with_spec(preact18_spec()));
  auto& tensors = ckpt.tensors;
  for (auto it = tensors.begin(); it != tensors.end();) {
    if (it->name == "layer1.0.conv1.weight") {
      it = tensors.erase(it);
    } else {
      if (it->name == "bn.bias") it->name = "bn.beta";
      ++it;
    }
  }
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  expect_checkpoint_error(
      [&] { io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, "PreActResNet-18"); },
      {"preact18.pt does not fit the model", "missing: layer1.0.conv1.weight, bn.bias",
       "unexpected: bn.beta"});
  const io::LoadReport report = io::load_checkpoint_weights(*model, ckpt, /*strict=*/false, "");
  EXPECT_EQ(report.missing, (std::vector<std::string>{"layer1.0.conv1.weight", "bn.bias"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"bn.beta"}));
  // The normalization a foreign file lacks is never reported: the spec's applies.
  EXPECT_TRUE(report.mismatched.empty());
}

TEST_F(ForeignTest, ResetHeadKeepsTheBodyAndStartsANewHead) {
  io::ForeignOptions options = with_spec(preact18_spec(100));
  options.reset_head = true;
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(path("preact18.pt"), options);
  EXPECT_EQ(ckpt.spec.num_classes, 100);
  torch::manual_seed(0);
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  const torch::Tensor fresh_head = model->named_parameters()["linear.weight"].clone();
  EXPECT_TRUE(io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, "").ok());
  const auto params = model->named_parameters();
  EXPECT_EQ(params["linear.weight"].sizes().vec(), (std::vector<int64_t>{100, 512}));
  EXPECT_TRUE(torch::equal(params["linear.weight"], fresh_head));
  const auto file = io::read_torch_file(path("preact18.pt")).tensors;
  for (const auto& t : file) {
    if (t.name == "layer4.1.conv2.weight") {
      EXPECT_TRUE(torch::equal(params[t.name], t.tensor));
    }
  }
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->forward(expected("input")).size(1), 100);
}

TEST_F(ForeignTest, AdvftCheckpointsLoadAsBefore) {
  TempDir tmp;
  models::ModelSpec spec;
  spec.arch = "preact_resnet";
  spec.blocks = {1};
  spec.width = 4;
  spec.mean = {0.5};
  spec.std = {0.25};
  models::ClassifierPtr model = models::make_model(spec);
  const std::string file = tmp.file("m.safetensors");
  io::save_checkpoint(file, *model, spec, {{"epoch", 3}});
  // The caller's spec does not override what an advft checkpoint says it holds.
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(file, with_spec(preact18_spec()));
  EXPECT_FALSE(ckpt.foreign());
  EXPECT_EQ(ckpt.spec.width, 4);
  EXPECT_EQ(ckpt.train_state["epoch"], 3);
  models::ClassifierPtr copy = models::make_model(ckpt.spec);
  EXPECT_TRUE(io::load_checkpoint_weights(*copy, ckpt, true, "").ok());
  EXPECT_EQ(io::detect_layout(ckpt.tensors), "fast-AT-style PreActResNet-4 (blocks 1, width 4)");
}

// A small PreActResNet's state_dict as PyTorch code saves it (no normalize.* buffers), written
// as a plain safetensors file; `keep` picks the tensors that go in.
std::string write_state_dict(
    TempDir& tmp, models::ClassifierImpl& model,
    const std::function<bool(const std::string&)>& keep,
    const std::function<void(const std::string&, torch::Tensor&)>& edit = [](const std::string&,
                                                                             torch::Tensor&) {}) {
  std::vector<io::NamedTensor> tensors;
  for (const auto& t : model.named_parameters())
    tensors.push_back({t.key(), t.value().detach().clone()});
  for (const auto& t : model.named_buffers())
    tensors.push_back({t.key(), t.value().detach().clone()});
  std::vector<io::NamedTensor> kept;
  for (auto& t : tensors) {
    if (t.name.rfind("normalize.", 0) == 0 || !keep(t.name)) continue;
    edit(t.name, t.tensor);
    kept.push_back(std::move(t));
  }
  const std::string file = tmp.file("state_dict.safetensors");
  io::write_safetensors(file, kept);
  return file;
}

models::ModelSpec small_preact_spec() {
  models::ModelSpec spec;
  spec.arch = "preact_resnet";
  spec.blocks = {1};
  spec.width = 4;
  return spec;
}

// As PyTorch's load_state_dict does for files saved before BatchNorm counted its batches.
TEST_F(ForeignTest, MissingBatchCountsKeepTheModelsOwn) {
  TempDir tmp;
  torch::manual_seed(1);
  models::ClassifierPtr source = models::make_model(small_preact_spec());
  const std::string file = write_state_dict(tmp, *source, [](const std::string& name) {
    return name.find("num_batches_tracked") == std::string::npos;
  });
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(file, with_spec(small_preact_spec()));
  torch::manual_seed(2);
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  EXPECT_TRUE(io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, "").ok());
  const auto loaded = model->named_parameters();
  for (const auto& p : source->named_parameters())
    EXPECT_TRUE(torch::equal(loaded[p.key()], p.value())) << p.key();

  // Anything else missing is still an error in strict loading.
  const std::string no_var = write_state_dict(
      tmp, *source, [](const std::string& name) { return name != "bn.running_var"; });
  const io::LoadedCheckpoint partial =
      io::load_any_checkpoint(no_var, with_spec(small_preact_spec()));
  expect_checkpoint_error(
      [&] { io::load_checkpoint_weights(*model, partial, /*strict=*/true, ""); },
      {"missing: bn.running_var"});
}

// A NaN weight would make every prediction one class: a plausible-looking accuracy in eval and a
// "diverged" blamed on the learning rate in a fine-tune. Loading refuses it and changes nothing.
TEST_F(ForeignTest, NonFiniteWeightsAreRefusedByName) {
  TempDir tmp;
  torch::manual_seed(1);
  models::ClassifierPtr source = models::make_model(small_preact_spec());
  for (const float bad : {NAN, INFINITY}) {
    const std::string file = write_state_dict(
        tmp, *source, [](const std::string&) { return true; },
        [bad](const std::string& name, torch::Tensor& t) {
          if (name == "layer1.0.conv1.weight") t.view(-1)[3] = bad;
        });
    const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(file, with_spec(small_preact_spec()));
    models::ClassifierPtr model = models::make_model(ckpt.spec);
    const torch::Tensor before = model->named_parameters()["conv1.weight"].clone();
    for (const bool strict : {true, false}) {
      expect_checkpoint_error(
          [&] { io::load_checkpoint_weights(*model, ckpt, strict, ""); },
          {"'layer1.0.conv1.weight' holds 1 NaN or infinite values", "earlier checkpoint"});
    }
    EXPECT_TRUE(torch::equal(model->named_parameters()["conv1.weight"], before));
  }
}

// A grayscale network given an RGB spec: the message names the difference its descriptions hide.
TEST_F(ForeignTest, WrongInputChannelsAreNamed) {
  TempDir tmp;
  models::ModelSpec gray = small_preact_spec();
  gray.in_channels = 1;
  gray.mean = {0.5};
  gray.std = {0.25};
  const std::string file =
      write_state_dict(tmp, *models::make_model(gray), [](const std::string&) { return true; });
  expect_checkpoint_error([&] { io::load_any_checkpoint(file, with_spec(small_preact_spec())); },
                          {"taking 1-channel images but the model is", "model.in_channels = 1"});
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(file, with_spec(gray));
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  EXPECT_TRUE(io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, "").ok());
}

// --mean / --std replace what a file records: the way to correct a checkpoint converted with
// the wrong normalization, instead of having the flags silently ignored.
TEST_F(ForeignTest, GivenNormalizationReplacesTheRecordedOne) {
  TempDir tmp;
  models::ModelSpec spec = small_preact_spec();
  spec.mean = {0.5};
  spec.std = {0.25};
  const std::string file = tmp.file("m.safetensors");
  io::save_checkpoint(file, *models::make_model(spec), spec, json::object());
  io::ForeignOptions options = with_spec(preact18_spec());
  options.mean = {0.1, 0.2, 0.3};
  options.std = {0.4};
  const io::LoadedCheckpoint ckpt = io::load_any_checkpoint(file, options);
  EXPECT_EQ(ckpt.spec.mean, (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_EQ(ckpt.spec.std, (std::vector<double>{0.4}));
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  EXPECT_TRUE(io::load_checkpoint_weights(*model, ckpt, /*strict=*/true, "").ok());
  const auto buffers = model->named_buffers();
  EXPECT_TRUE(
      torch::allclose(buffers["normalize.mean"].flatten(), torch::tensor({0.1f, 0.2f, 0.3f})));
  EXPECT_TRUE(torch::allclose(buffers["normalize.std"].flatten(), torch::full({3}, 0.4f)));

  // Without the flags the file's own stays.
  const io::LoadedCheckpoint own = io::load_any_checkpoint(file, with_spec(preact18_spec()));
  EXPECT_EQ(own.spec.mean, (std::vector<double>{0.5}));
}

TEST_F(ForeignTest, InspectDescribesEveryFormat) {
  const io::FileInfo torch_info = io::inspect_file(path("wrn16_2.pt"));
  EXPECT_EQ(torch_info.format, io::FileFormat::kTorchSave);
  EXPECT_EQ(torch_info.metadata["chosen_key"], "state_dict");
  EXPECT_EQ(torch_info.metadata["stripped_prefix"], "module.");
  EXPECT_EQ(torch_info.layout, "RobustBench/TRADES WideResNet-16-2");

  const io::FileInfo legacy_info = io::inspect_file(path("wrn16_2_legacy.pt"));
  EXPECT_EQ(legacy_info.format, io::FileFormat::kTorchSaveLegacy);
  EXPECT_STREQ(io::format_name(legacy_info.format), "torch.save legacy");
  EXPECT_EQ(legacy_info.metadata["chosen_key"], "state_dict");
  EXPECT_EQ(legacy_info.metadata["stripped_prefix"], "module.");
  EXPECT_EQ(legacy_info.layout, "RobustBench/TRADES WideResNet-16-2");
  EXPECT_EQ(legacy_info.parameters, torch_info.parameters);

  const io::FileInfo st_info = io::inspect_file(path("wrn16_2.safetensors"));
  EXPECT_EQ(st_info.format, io::FileFormat::kSafetensors);
  EXPECT_EQ(st_info.metadata["stripped_prefix"], "module.");
  EXPECT_EQ(st_info.layout, "RobustBench/TRADES WideResNet-16-2");
  EXPECT_EQ(st_info.tensors.size(), torch_info.tensors.size());
  EXPECT_EQ(st_info.parameters, torch_info.parameters);

  // Parameters as models::count_parameters counts them: no BatchNorm statistics.
  const io::FileInfo preact = io::inspect_file(path("preact18.pt"));
  models::ClassifierPtr model = models::make_model(preact18_spec());
  EXPECT_EQ(preact.parameters, models::count_parameters(*model));
  EXPECT_EQ(preact.parameters, 11172170);
}

// ---------------------------------------------------------------- the commands

json wrn_config(const std::string& data_dir, int64_t num_classes) {
  json config = json::parse(R"({
    "model": {"arch": "wide_resnet", "depth": 16, "widen_factor": 2, "mean": [0], "std": [1]},
    "data": {"dataset": "cifar10", "val_size": 20},
    "attack": {"eps": "8/255", "step_size": "8/255", "steps": 1},
    "train": {"epochs": 1, "batch_size": 40, "log_every": 1, "val_batch_size": 20,
              "val_attack": {"eps": "8/255", "step_size": "8/255", "steps": 1}},
    "eval": {"batch_size": 50, "attacks": ["fgsm"]},
    "threads": 2
  })");
  config["model"]["num_classes"] = num_classes;
  config["data"]["dir"] = data_dir;
  return config;
}

class ForeignCliTest : public ForeignTest {
 protected:
  void SetUp() override {
    ForeignTest::SetUp();
    data_dir = tmp.file("cifar");
    write_cifar10(data_dir, 20, 50);
  }
  std::string config(int64_t num_classes) {
    const std::string file = tmp.file("wrn" + std::to_string(num_classes) + ".json");
    write_bytes(file, wrn_config(data_dir, num_classes).dump(2));
    return file;
  }
  TempDir tmp;
  std::string data_dir;
};

TEST_F(ForeignCliTest, InspectPrintsLayoutAndKeys) {
  RunResult r = run_advft("inspect " + path("preact18.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* part : {"torch.save zip", "fast-AT PreActResNet-18", "11,172,170",
                           "layer4.1.conv2.weight", "[512, 512, 3, 3]", "float32"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << " not in:\n" << r.output;

  r = run_advft("inspect --json " + path("wrn16_2.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j["format"], "torch.save zip");
  EXPECT_EQ(j["layout"], "RobustBench/TRADES WideResNet-16-2");
  EXPECT_EQ(j["metadata"]["chosen_key"], "state_dict");
  EXPECT_EQ(j["metadata"]["candidate_keys"], json::array({"state_dict"}));
  EXPECT_EQ(j["keys"], j["tensors"].size());
  EXPECT_EQ(j["tensors"][0]["name"], "conv1.weight");
  EXPECT_EQ(j["tensors"][0]["shape"], json::array({16, 3, 3, 3}));

  r = run_advft("inspect " + path("traced.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format:     TorchScript"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.weight"), std::string::npos) << r.output;  // its tensors, listed
  // Not a zoo network: the message says how to use it as a whole model instead.
  expect_checkpoint_error(
      [] { io::load_any_checkpoint(path("traced.pt"), with_spec(preact18_spec())); },
      {"traced.pt", "TorchScript model", "model.kind=torchscript"});

  r = run_advft("inspect " + path("preact18_half.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("float16"), std::string::npos) << r.output;

  const std::string junk = tmp.file("junk.pt");
  write_bytes(junk, "this is not a checkpoint at all");
  r = run_advft("inspect " + junk);
  EXPECT_EQ(r.exit_code, kExitCheckpoint) << r.output;
  EXPECT_NE(r.output.find("junk.pt"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = run_advft("inspect " + tmp.file("missing.pt"));
  EXPECT_EQ(r.exit_code, kExitCheckpoint) << r.output;
}

// A stranger's tensor name may hold a terminal escape sequence or a line break: inspect shows it
// with those characters replaced, on its row, and --json escapes them.
TEST_F(ForeignCliTest, InspectShowsControlCharactersInNamesAsQuestionMarks) {
  const std::string file = tmp.file("hostile.safetensors");
  const std::string name = "conv\x1b[2J\nweight";
  io::write_safetensors(file, {{name, torch::zeros({2, 3})}}, {});
  RunResult r = run_advft("inspect " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  conv?[2J?weight  [2, 3]"), std::string::npos) << r.output;

  r = run_advft("inspect --json " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(r.output)["tensors"][0]["name"], name);
}

TEST_F(ForeignCliTest, EvalAndFinetuneTakeTorchSaveFiles) {
  const std::string checkpoint = path("wrn16_2.pt");
  RunResult r = run_advft("eval --checkpoint " + checkpoint + " --config " + config(10) +
                          " --limit 50 --attack fgsm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("clean"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("outputs but"), std::string::npos) << r.output;

  r = run_advft("eval --checkpoint " + checkpoint + " --data-dir " + data_dir);
  EXPECT_EQ(r.exit_code, kExitCheckpoint) << r.output;
  EXPECT_NE(r.output.find("has no model description: pass --config"), std::string::npos)
      << r.output;

  // A 20-class model from the 10-class file: refused without --reset-head, trained with it.
  const std::string out = tmp.file("ft");
  r = run_advft("finetune --config " + config(20) + " --checkpoint " + checkpoint + " --out " +
                out);
  EXPECT_EQ(r.exit_code, kExitCheckpoint) << r.output;
  EXPECT_NE(r.output.find("--reset-head"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  r = run_advft("finetune --config " + config(20) + " --checkpoint " + checkpoint +
                " --reset-head --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("new, randomly initialized head"), std::string::npos) << r.output;
  // 20 outputs for 10 classes trains, with a warning; so does evaluating the result.
  EXPECT_NE(r.output.find("model.num_classes = 20 but cifar10 has 10 classes: the other 10 "
                          "outputs are never a label"),
            std::string::npos)
      << r.output;
  const json resolved = json::parse(read_bytes(out + "/config.json"));
  EXPECT_EQ(resolved["train"]["init_reset_head"], true);
  EXPECT_EQ(resolved["train"]["init_strict"], true);
  const io::LoadedCheckpoint last = io::load_checkpoint(out + "/last.safetensors");
  EXPECT_EQ(last.spec.num_classes, 20);
  r = run_advft("eval --checkpoint " + out + "/last.safetensors --limit 20 --attack fgsm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("has 20 outputs but cifar10 has 10 classes"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace advft::testing
