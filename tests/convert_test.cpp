// `advft convert` both ways and TorchScript models: users' files become advft checkpoints and
// come back as files Python loads (torch.load(weights_only=True) + load_state_dict(strict=True),
// torch.jit.load) with the same logits; TorchScript archives run as whole models. Python's side
// is Debian's python3-torch running tests/fixtures/*.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "advft/error.h"
#include "advft/io/checkpoint.h"
#include "advft/io/foreign.h"
#include "advft/io/torch_file.h"
#include "advft/io/torch_save.h"
#include "advft/models/factory.h"
#include "advft/models/torchscript.h"
#include "fixtures.h"

namespace advft::testing {
namespace {

constexpr double kTolerance = 1e-4;

const FixtureFiles& zoo() {
  return python_fixtures("make_zoo_fixtures.py");
}
const FixtureFiles& scripts() {
  return python_fixtures("make_convert_fixtures.py");
}

std::map<std::string, torch::Tensor> tensors_by_name(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& t : io::read_torch_file(path).tensors)
    out[t.name] = t.tensor;
  return out;
}

// Runs check_converted.py: Python loads `file` as a user would and compares its logits.
::testing::AssertionResult python_agrees(const std::string& kind, const std::string& file,
                                         const FixtureFiles& fixtures, const std::string& name,
                                         const std::string& input = "input") {
  const std::string command = std::string(detail::kFixturePython) + " '" + ADVFT_SOURCE_DIR +
                              "/tests/fixtures/check_converted.py' " + kind + " '" + file + "' '" +
                              fixtures.path("expected.pt") + "' " + name + " " + input;
  const RunResult r = run_command(command);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << command << "\n" << r.output;
  return ::testing::AssertionSuccess() << r.output;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Logits of an advft checkpoint on the fixtures' input, in eval mode.
torch::Tensor advft_logits(const std::string& checkpoint, const torch::Tensor& input) {
  const io::LoadedCheckpoint ckpt = io::load_checkpoint(checkpoint);
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  io::load_weights(*model, ckpt.tensors, ckpt.path);
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(input);
}

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(zoo().status, 0) << "fixture generation failed: " << zoo().command;
    ASSERT_EQ(scripts().status, 0) << "fixture generation failed: " << scripts().command;
  }
  TempDir dir_;
};

struct RoundTrip {
  const char* file;  // in make_zoo_fixtures.py's folder
  const char* kind;  // check_converted.py's reference definition, and the logits' name
  const char* back_flags;
  const char* input = "input";  // the logits' input in expected.pt
};

// CTest names the cases by file instead of printing the struct's bytes.
void PrintTo(const RoundTrip& c, std::ostream* out) {
  *out << c.file;
}

class ZooRoundTripTest : public ConvertTest, public ::testing::WithParamInterface<RoundTrip> {};

// PyTorch file -> advft checkpoint (model detected from the key layout) -> torch.save file:
// advft's logits and Python's, from the file advft wrote, both equal the original's.
TEST_P(ZooRoundTripTest, ToAdvftAndBackToPythonKeepsTheLogits) {
  const RoundTrip& c = GetParam();
  const auto expected = tensors_by_name(zoo().path("expected.pt"));
  const std::string advft_file = dir_.file("model.safetensors");
  const std::string back = dir_.file("back.pt");

  const RunResult to_advft = run_advft("convert '" + zoo().path(c.file) + "' " + advft_file);
  ASSERT_EQ(to_advft.exit_code, 0) << to_advft.output;
  const io::FileInfo info = io::inspect_file(advft_file);
  EXPECT_EQ(info.format, io::FileFormat::kAdvftCheckpoint);
  const models::ModelSpec spec = io::load_checkpoint(advft_file).spec;
  EXPECT_EQ(spec.input_size, std::string(c.input) == "input64" ? 224 : 32);  // ImageNet stems
  EXPECT_LE(max_diff(advft_logits(advft_file, expected.at(c.input)), expected.at(c.kind)),
            kTolerance);

  const RunResult to_torch = run_advft("convert " + advft_file + " " + back + " " + c.back_flags);
  ASSERT_EQ(to_torch.exit_code, 0) << to_torch.output;
  EXPECT_TRUE(python_agrees(c.kind, back, zoo(), c.kind, c.input));
  // advft reads its own torch.save output as well.
  EXPECT_EQ(io::inspect_file(back).layout, info.layout);
}

// Every reference layout of the fixtures, each detected from its keys alone.
INSTANTIATE_TEST_SUITE_P(
    Zoo, ZooRoundTripTest,
    ::testing::Values(RoundTrip{"preact18.pt", "preact18", ""},
                      // TRADES' definition also declares sub_block1.
                      RoundTrip{"wrn16_2.pt", "wrn16_2", "--sub-block1"},
                      RoundTrip{"trades_wrn28_10.pt", "trades_wrn28_10", "--sub-block1"},
                      RoundTrip{"resnet18_cifar.tar", "resnet18_cifar", ""},
                      RoundTrip{"tv_resnet18.pth", "tv_resnet18", "", "input64"},
                      RoundTrip{"tv_resnet50.pth", "tv_resnet50", "", "input64"},
                      RoundTrip{"tv_wide_resnet50_2.pth", "tv_wide_resnet50_2", "", "input64"},
                      RoundTrip{"nested_resnet18.pth", "nested_resnet18", "", "input64"}),
    // gtest's names (what --gtest_filter and tests/CMakeLists.txt match) by the definition.
    [](const ::testing::TestParamInfo<RoundTrip>& info) { return std::string(info.param.kind); });

TEST(TorchSaveWriter, EveryDtypeAndViewReadsBackExactly) {
  const torch::Tensor base = torch::arange(24, torch::kFloat64).reshape({4, 6});
  std::vector<io::NamedTensor> tensors = {
      {"f32", base.to(torch::kFloat32)},
      {"f16", base.to(torch::kFloat16)},
      {"bf16", base.to(torch::kBFloat16)},
      {"f64", base},
      {"i64", base.to(torch::kInt64) - 10},
      {"i32", base.to(torch::kInt32)},
      {"i16", base.to(torch::kInt16)},
      {"i8", base.to(torch::kInt8) - 12},
      {"u8", base.to(torch::kUInt8)},
      {"bool", base.remainder(3).eq(0)},
      {"transposed_view", base.to(torch::kFloat32).t().slice(0, 1, 4)},
      {"scalar", torch::tensor(7, torch::kInt64).reshape({})},
      {"big_numel_name.with.dots", torch::zeros({3, 1, 2})},
  };
  const io::TorchFileContent back =
      io::decode_torch_file(io::encode_torch_save(tensors), "written.pt");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].name, tensors[i].name);
    EXPECT_EQ(back.tensors[i].tensor.scalar_type(), tensors[i].tensor.scalar_type());
    EXPECT_TRUE(torch::equal(back.tensors[i].tensor, tensors[i].tensor)) << tensors[i].name;
  }
  EXPECT_THROW(io::encode_torch_save({{"a", base}, {"a", base}}), Error);
  EXPECT_THROW(io::encode_torch_save({{"c", torch::zeros({2}, torch::kComplexFloat)}}), Error);
}

// The writer's output is what Python's torch.load(weights_only=True) reads.
TEST_F(ConvertTest, PythonReadsTheTorchSaveWriterWithWeightsOnly) {
  const std::string file = dir_.file("state.pt");
  io::write_torch_save(file, {{"x", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                              {"n", torch::tensor(3, torch::kInt64).reshape({})}});
  const std::string command =
      std::string(detail::kFixturePython) + " -c \"import torch; d = torch.load('" + file +
      "', weights_only=True); assert list(d) == ['x', 'n'] and d['x'][1, 2] == 5 and d['n'] == 3"
      " and type(d).__name__ == 'OrderedDict'\"";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

models::ModelSpec torchscript_spec(const std::string& path) {
  models::ModelSpec spec;
  spec.kind = "torchscript";
  spec.path = path;
  return spec;  // mean 0, std 1: the archive's own network sees the pixels as Python did
}

TEST_F(ConvertTest, TorchScriptModelsGivePythonsLogits) {
  const auto expected = tensors_by_name(scripts().path("expected.pt"));
  for (const std::string name : {"preact18_traced", "small_scripted"}) {
    models::ClassifierPtr model =
        models::make_model(torchscript_spec(scripts().path(name + ".pt")));
    model->eval();
    torch::NoGradGuard no_grad;
    EXPECT_LE(max_diff(model->forward(expected.at("input")), expected.at(name)), kTolerance)
        << name;
  }
}

TEST_F(ConvertTest, TorchScriptModelExposesItsTensorsForTrainingAndCheckpoints) {
  models::ClassifierPtr model =
      models::make_model(torchscript_spec(scripts().path("small_scripted.pt")));
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters())
    names.push_back(p.key());
  EXPECT_NE(std::find(names.begin(), names.end(), "features.0.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "head.bias"), names.end());
  EXPECT_TRUE(model->named_buffers().contains("features.1.running_var"));

  // A gradient step through the archive's forward() moves the mirrored parameters, and the
  // archive's scripted modules follow train()/eval() (dropout is random only in training).
  const torch::Tensor x = torch::rand({8, 3, 32, 32});
  model->train();
  torch::Tensor head = model->named_parameters()["head.weight"];
  const torch::Tensor before = head.clone();
  const torch::Tensor loss = model->forward(x).square().mean();
  loss.backward();
  ASSERT_TRUE(head.grad().defined());
  {
    torch::NoGradGuard no_grad;
    head.sub_(head.grad());
  }
  EXPECT_FALSE(torch::equal(before, head));
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
}

TEST_F(ConvertTest, WrongClassCountOrInputOfATorchScriptModelIsAConfigError) {
  models::ModelSpec spec = torchscript_spec(scripts().path("small_scripted.pt"));
  spec.num_classes = 100;
  try {
    models::make_model(spec);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.num_classes = 100"), std::string::npos) << e.what();
  }
  spec.num_classes = 10;
  spec.in_channels = 1;
  EXPECT_THROW(models::make_model(spec), ConfigError);
  spec.path = dir_.file("missing.pt");
  EXPECT_THROW(models::make_model(spec), CheckpointError);
  spec.path.clear();
  EXPECT_THROW(models::make_model(spec), ConfigError);
}

// A traced zoo network's tensors fill advft's own implementation of it.
TEST_F(ConvertTest, TracedZooModelFillsTheZooModel) {
  const auto expected = tensors_by_name(scripts().path("expected.pt"));
  io::ForeignOptions options;
  options.spec = models::ModelSpec{};  // preact_resnet18, 10 classes
  const io::LoadedCheckpoint ckpt =
      io::load_any_checkpoint(scripts().path("preact18_traced.pt"), options);
  EXPECT_EQ(ckpt.foreign_format, "TorchScript");
  models::ClassifierPtr model = models::make_model(ckpt.spec);
  EXPECT_TRUE(io::load_checkpoint_weights(*model, ckpt, true, "").ok());
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LE(max_diff(model->forward(expected.at("input")), expected.at("preact18_traced")),
            kTolerance);
}

// MadryLab robustness: the model under 'model' twice (model., attacker.model.) with its
// normalizer, in the kuangliu CIFAR ResNet names (shortcut, linear): detected, normalization
// taken from the file, Python's logits; `convert` detects it all without a config.
TEST_F(ConvertTest, RobustnessCheckpointOfTheCifarResNetLoadsWithItsNormalizer) {
  const auto expected = tensors_by_name(scripts().path("expected.pt"));
  const std::string file = scripts().path("robustness_resnet18.pt");
  const io::FileInfo info = io::inspect_file(file);
  EXPECT_EQ(info.metadata.value("wrapper", ""), "MadryLab robustness");
  EXPECT_EQ(info.layout, "torchvision ResNet-18 (basic, layers 2-2-2-2, CIFAR stem)");

  const std::string advft_file = dir_.file("robust.safetensors");
  const RunResult r = run_advft("convert '" + file + "' " + advft_file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const io::LoadedCheckpoint ckpt = io::load_checkpoint(advft_file);
  EXPECT_EQ(ckpt.spec.arch, "resnet18");
  EXPECT_TRUE(ckpt.spec.cifar_stem);
  ASSERT_EQ(ckpt.spec.mean.size(), 3u);
  EXPECT_NEAR(ckpt.spec.mean[0], 0.4914, 1e-6);
  EXPECT_NEAR(ckpt.spec.std[2], 0.2616, 1e-6);
  EXPECT_LE(
      max_diff(advft_logits(advft_file, expected.at("input")), expected.at("robustness_resnet18")),
      kTolerance);
}

// TorchScript -> advft checkpoint -> TorchScript archive that Python's torch.jit.load runs.
TEST_F(ConvertTest, TorchScriptRoundTripThroughAdvft) {
  const std::string advft_file = dir_.file("small.safetensors");
  const std::string back = dir_.file("small_back.pt");
  RunResult r = run_advft("convert '" + scripts().path("small_scripted.pt") + "' " + advft_file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_advft("inspect " + advft_file);
  EXPECT_NE(r.output.find("TorchScript model small_scripted.pt"), std::string::npos) << r.output;
  r = run_advft("convert " + advft_file + " " + back + " --to torchscript");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(python_agrees("torchscript", back, scripts(), "small_scripted"));

  r = run_advft("convert " + advft_file + " " + back + " --to torchscript");
  EXPECT_EQ(r.exit_code, 2) << r.output;  // exists: --force needed
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  // A link whose target is gone is still the user's: not replaced by a file without --force.
  const std::string dangling = dir_.file("dangling.pt");
  fs::create_symlink(dir_.file("gone/target.pt"), dangling);
  r = run_advft("convert " + advft_file + " " + dangling + " --to torchscript");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(fs::is_symlink(dangling));
  r = run_advft("convert " + advft_file + " " + dir_.file("x.onnx"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_advft("convert '" + zoo().path("preact18.pt") + "' " + dir_.file("p.ts") +
                " --to torchscript");
  EXPECT_EQ(r.exit_code, 2) << r.output;  // a zoo model has no TorchScript code to save
}

// The CLI fine-tunes and evaluates a TorchScript model it has no architecture of its own for.
TEST_F(ConvertTest, FinetuneAndEvalATorchScriptModel) {
  write_cifar10(dir_.file("cifar"), 16, 40);
  const std::string data = " --data-dir " + dir_.file("cifar");
  RunResult r = run_advft("eval --checkpoint '" + scripts().path("small_scripted.pt") +
                          "' --config cifar10" + data + " --limit 8");
  EXPECT_EQ(r.exit_code, 5) << r.output;  // not a zoo layout: the message says what to set
  EXPECT_NE(r.output.find("model.kind=torchscript"), std::string::npos) << r.output;

  r = run_advft("finetune --config cifar10 --set model.kind=torchscript --checkpoint '" +
                scripts().path("small_scripted.pt") + "'" + data +
                " --epochs 1 --batch-size 16 --set data.val_size=16 --set train.val_batch_size=16 "
                "--set attack.steps=2 --set train.val_attack.steps=2 --out " +
                dir_.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_advft("eval --checkpoint " + dir_.file("run/best.safetensors") + data +
                " --limit 8 --attack pgd:steps=2 --json " + dir_.file("eval.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("TorchScript model small_scripted.pt"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace advft::testing
