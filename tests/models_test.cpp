// Behaviour of the models component that checkpoints, attacks and configs rely on: exact
// parameter counts and state_dict names of the reference PyTorch definitions, output shapes for
// CIFAR and Fashion-MNIST inputs, normalization inside the model, and config errors.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "advft/error.h"
#include "advft/models/batch_norm_relu.h"
#include "advft/models/factory.h"
#include "advft/models/normalize.h"
#include "advft/models/preact_resnet.h"
#include "advft/models/resnet.h"
#include "advft/models/wide_resnet.h"

namespace advft::models {
namespace {

ModelSpec spec_for(const std::string& arch, int64_t num_classes = 10) {
  ModelSpec spec;
  spec.arch = arch;
  spec.num_classes = num_classes;
  return spec;
}

// Parameters and buffers together: the keys of PyTorch's state_dict().
std::set<std::string> state_keys(torch::nn::Module& module) {
  std::set<std::string> keys;
  for (const auto& item : module.named_parameters()) {
    keys.insert(item.key());
  }
  for (const auto& item : module.named_buffers()) {
    keys.insert(item.key());
  }
  return keys;
}

std::vector<std::string> bn_keys(const std::string& prefix) {
  return {prefix + ".weight", prefix + ".bias", prefix + ".running_mean", prefix + ".running_var",
          prefix + ".num_batches_tracked"};
}

void add(std::set<std::string>& keys, const std::vector<std::string>& more) {
  keys.insert(more.begin(), more.end());
}

// Copies every parameter and buffer except the normalization statistics.
void copy_weights_except_normalize(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto dst_params = to.named_parameters();
  for (const auto& item : from.named_parameters()) {
    dst_params[item.key()].copy_(item.value());
  }
  auto dst_buffers = to.named_buffers();
  for (const auto& item : from.named_buffers()) {
    if (item.key().rfind("normalize.", 0) != 0) {
      dst_buffers[item.key()].copy_(item.value());
    }
  }
}

// Runs make_model(spec) expecting a ConfigError whose message contains `needle`.
void expect_config_error(const ModelSpec& spec, const std::string& needle) {
  try {
    make_model(spec);
    FAIL() << "no error for arch " << spec.arch << ", expected one mentioning " << needle;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), kExitConfig);
  }
}

TEST(Models, ParameterCountsMatchReferenceDefinitions) {
  struct Case {
    const char* arch;
    int64_t classes;
    int64_t expected;
  };
  // One network alive at a time: WRN-70-16 alone is about 1 GB of float32.
  const std::vector<Case> cases = {
      {"preact_resnet18", 10, 11172170},   {"resnet18", 1000, 11689512},
      {"resnet34", 1000, 21797672},        {"resnet50", 1000, 25557032},
      {"resnet101", 1000, 44549160},       {"resnet152", 1000, 60192808},
      {"wide_resnet50_2", 1000, 68883240}, {"wrn28_10", 10, 36479194},
      {"wrn34_10", 10, 46160474},          {"wrn70_16", 10, 266796506},
  };
  for (const auto& c : cases) {
    auto model = make_model(spec_for(c.arch, c.classes));
    EXPECT_EQ(count_parameters(*model), c.expected) << c.arch;
  }
}

TEST(Models, ParameterCountsOfVariants) {
  // kuangliu-style CIFAR ResNet-18: 3x3 stem, 10 classes.
  auto spec = spec_for("resnet18");
  spec.cifar_stem = true;
  EXPECT_EQ(count_parameters(*make_model(spec)), 11173962);
  // preact_resnet18 is fixed; the spec's blocks/width only shape "preact_resnet".
  spec = spec_for("preact_resnet18");
  spec.blocks = {1};
  spec.width = 8;
  EXPECT_EQ(count_parameters(*make_model(spec)), 11172170);
  spec.arch = "preact_resnet";
  spec.blocks = {2, 2, 2, 2};
  spec.width = 64;
  EXPECT_EQ(count_parameters(*make_model(spec)), 11172170);
  spec = spec_for("wide_resnet");
  spec.depth = 34;
  spec.widen_factor = 10;
  EXPECT_EQ(count_parameters(*make_model(spec)), 46160474);
}

TEST(Models, NormalizationIsBuffersNotParameters) {
  auto spec = spec_for("preact_resnet");
  spec.blocks = {1};
  spec.width = 4;
  spec.mean = {0.5};
  spec.std = {0.25};
  auto model = make_model(spec);
  auto buffers = model->named_buffers();
  ASSERT_TRUE(buffers.contains("normalize.mean"));
  ASSERT_TRUE(buffers.contains("normalize.std"));
  EXPECT_EQ(buffers["normalize.mean"].sizes(), torch::IntArrayRef({1, 3, 1, 1}));
  EXPECT_TRUE(torch::equal(buffers["normalize.std"].flatten(), torch::full({3}, 0.25)));
  for (const auto& item : model->named_parameters()) {
    EXPECT_NE(item.key().rfind("normalize.", 0), 0u) << item.key();
  }
}

TEST(Models, PreActResNetStateDictNames) {
  auto model = make_model(spec_for("preact_resnet18"));
  const auto keys = state_keys(*model);
  for (const char* key :
       {"conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv1.weight", "layer1.1.conv2.weight",
        "layer2.0.shortcut.0.weight", "layer4.0.shortcut.0.weight", "layer4.1.bn2.running_var",
        "layer1.0.bn1.num_batches_tracked", "bn.weight", "bn.running_mean", "linear.weight",
        "linear.bias", "normalize.mean", "normalize.std"}) {
    EXPECT_TRUE(keys.count(key)) << key;
  }
  for (const char* key : {"layer1.0.shortcut.0.weight", "layer2.1.shortcut.0.weight", "conv1.bias",
                          "layer5.0.conv1.weight", "fc.weight"}) {
    EXPECT_FALSE(keys.count(key)) << key;
  }

  // The complete key set of a small variant pins the layout down.
  PreActResNet small(PreActResNetOptions().blocks({1, 1}).width(4));
  std::set<std::string> expected = {"normalize.mean",        "normalize.std",
                                    "conv1.weight",          "layer1.0.conv1.weight",
                                    "layer1.0.conv2.weight", "layer2.0.conv1.weight",
                                    "layer2.0.conv2.weight", "layer2.0.shortcut.0.weight",
                                    "linear.weight",         "linear.bias"};
  for (const char* bn : {"layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1", "layer2.0.bn2", "bn"}) {
    add(expected, bn_keys(bn));
  }
  EXPECT_EQ(state_keys(*small), expected);
}

TEST(Models, ResNetStateDictNames) {
  const auto r18 = state_keys(*make_model(spec_for("resnet18", 1000)));
  for (const char* key : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight",
                          "layer1.1.bn2.running_mean", "layer2.0.downsample.0.weight",
                          "layer2.0.downsample.1.weight", "layer2.0.downsample.1.running_var",
                          "layer4.1.conv2.weight", "fc.weight", "fc.bias", "normalize.std"}) {
    EXPECT_TRUE(r18.count(key)) << key;
  }
  for (const char* key : {"layer1.0.downsample.0.weight", "layer2.1.downsample.0.weight",
                          "layer1.0.conv3.weight", "conv1.bias"}) {
    EXPECT_FALSE(r18.count(key)) << key;
  }

  const auto r50 = state_keys(*make_model(spec_for("resnet50", 1000)));
  // Bottlenecks widen 64 -> 256 in layer1, so its first block needs a projection.
  for (const char* key :
       {"layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer1.0.conv3.weight",
        "layer1.0.bn3.weight", "layer3.5.conv2.weight", "layer4.2.bn3.running_var", "fc.bias"}) {
    EXPECT_TRUE(r50.count(key)) << key;
  }
  EXPECT_FALSE(r50.count("layer1.1.downsample.0.weight"));
}

TEST(Models, ResNetBottleneckPutsStrideOnConv2) {
  ResNet model(ResNetOptions().blocks({1, 1, 1, 1}).bottleneck(true).num_classes(10));
  auto* block = model->layers[1]->ptr<ResNetBottleneckImpl>(0).get();
  EXPECT_EQ(torch::IntArrayRef(block->conv1->options.stride()), torch::IntArrayRef({1, 1}));
  EXPECT_EQ(torch::IntArrayRef(block->conv2->options.stride()), torch::IntArrayRef({2, 2}));
  EXPECT_EQ(block->conv3->weight.sizes(), torch::IntArrayRef({512, 128, 1, 1}));
}

TEST(Models, WideResNetStateDictNames) {
  const auto keys = state_keys(*make_model(spec_for("wrn28_10")));
  for (const char* key :
       {"conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.convShortcut.weight",
        "block2.layer.0.convShortcut.weight", "block3.layer.3.conv2.weight",
        "block3.layer.3.bn2.running_mean", "bn1.weight", "bn1.running_var", "fc.weight", "fc.bias",
        "normalize.mean"}) {
    EXPECT_TRUE(keys.count(key)) << key;
  }
  for (const char* key : {"block1.layer.1.convShortcut.weight", "block1.layer.4.conv1.weight",
                          "sub_block1.layer.0.conv1.weight", "conv1.bias"}) {
    EXPECT_FALSE(keys.count(key)) << key;
  }

  // With k = 1 block1 keeps 16 channels, so (as in TRADES) it has no shortcut conv at all.
  WideResNet thin(WideResNetOptions().depth(10).widen_factor(1));
  EXPECT_FALSE(state_keys(*thin).count("block1.layer.0.convShortcut.weight"));

  WideResNet small(WideResNetOptions().depth(10).widen_factor(2));
  std::set<std::string> expected = {"normalize.mean", "normalize.std", "conv1.weight", "fc.weight",
                                    "fc.bias"};
  add(expected, bn_keys("bn1"));
  for (const std::string block : {"block1", "block2", "block3"}) {
    const std::string p = block + ".layer.0.";
    add(expected, {p + "conv1.weight", p + "conv2.weight", p + "convShortcut.weight"});
    add(expected, bn_keys(p + "bn1"));
    add(expected, bn_keys(p + "bn2"));
  }
  EXPECT_EQ(state_keys(*small), expected);
}

TEST(Models, WideResNetInitializationFollowsTrades) {
  WideResNet model(WideResNetOptions().depth(10).widen_factor(2));
  const auto& w = model->block3->layer->ptr<WideBasicBlockImpl>(0)->conv2->weight;
  // N(0, 2 / (3 * 3 * 128)) over 147k values.
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (9 * 128)), 0.002);
  EXPECT_TRUE(torch::equal(model->fc->bias, torch::zeros({10})));
  EXPECT_TRUE(torch::equal(model->bn1->weight, torch::ones({128})));
}

// Small members of each family plus the real ResNets: logits [N, classes] for CIFAR-shaped
// and Fashion-MNIST-shaped inputs.
std::vector<ModelSpec> small_specs() {
  std::vector<ModelSpec> specs;
  auto preact = spec_for("preact_resnet");
  preact.blocks = {1, 1, 1};
  preact.width = 8;
  specs.push_back(preact);
  auto wrn = spec_for("wide_resnet");
  wrn.depth = 10;
  wrn.widen_factor = 1;
  specs.push_back(wrn);
  auto r18 = spec_for("resnet18");
  specs.push_back(r18);
  r18.cifar_stem = true;
  specs.push_back(r18);
  return specs;
}

TEST(Models, OutputShapesForCifarAndFashionMnistInputs) {
  torch::manual_seed(0);
  for (auto spec : small_specs()) {
    for (int64_t channels : {3, 1}) {
      spec.in_channels = channels;
      spec.input_size = channels == 3 ? 32 : 28;
      spec.num_classes = channels == 3 ? 10 : 7;
      auto model = make_model(spec);
      auto x = torch::rand({2, channels, spec.input_size, spec.input_size});
      model->train();
      auto train_logits = model->forward(x);
      EXPECT_EQ(train_logits.sizes(), torch::IntArrayRef({2, spec.num_classes})) << describe(spec);
      model->eval();
      auto logits = model->forward(x);
      EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, spec.num_classes})) << describe(spec);
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << describe(spec);
    }
  }
}

TEST(Models, BottleneckResNetRunsOnSmallGrayscaleInput) {
  auto spec = spec_for("resnet50");
  spec.in_channels = 1;
  spec.input_size = 28;
  auto model = make_model(spec);
  model->eval();
  EXPECT_EQ(model->forward(torch::rand({1, 1, 28, 28})).sizes(), torch::IntArrayRef({1, 10}));
}

TEST(Models, InputGradientFlowsThroughNormalization) {
  auto spec = small_specs().front();
  spec.mean = {0.5};
  spec.std = {0.25};
  auto model = make_model(spec);
  model->eval();
  auto x = torch::rand({2, 3, 32, 32}).requires_grad_(true);
  auto grad = torch::autograd::grad({model->forward(x).sum()}, {x})[0];
  EXPECT_EQ(grad.sizes(), x.sizes());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

TEST(Models, NormalizationInsideModelEqualsNormalizedInput) {
  torch::manual_seed(1);
  const std::vector<std::vector<double>> means = {{0.5}, {0.4914, 0.4822, 0.4465}};
  const std::vector<std::vector<double>> stds = {{0.25}, {0.2471, 0.2435, 0.2616}};
  for (auto spec : small_specs()) {
    for (size_t i = 0; i < means.size(); ++i) {
      auto with_stats = spec;
      with_stats.mean = means[i];
      with_stats.std = stds[i];
      auto normalized = make_model(with_stats);
      auto plain = make_model(spec);
      copy_weights_except_normalize(*normalized, *plain);
      normalized->eval();
      plain->eval();

      auto x = torch::rand({2, 3, 32, 32});
      auto mean = torch::tensor(means[i], torch::kFloat).reshape({1, -1, 1, 1});
      auto std = torch::tensor(stds[i], torch::kFloat).reshape({1, -1, 1, 1});
      torch::NoGradGuard no_grad;
      auto expected = plain->forward((x - mean) / std);
      auto actual = normalized->forward(x);
      EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-5)) << describe(spec);
      // And the statistics do matter: the same weights without them give other logits.
      EXPECT_FALSE(torch::allclose(plain->forward(x), expected, 1e-4, 1e-5)) << describe(spec);
    }
  }
}

TEST(Models, NormalizeModuleChecksShape) {
  Normalize normalize(NormalizeOptions(3, {0.5}, {0.5}));
  EXPECT_THROW(normalize(torch::rand({1, 1, 4, 4})), c10::Error);
  EXPECT_THROW(Normalize(NormalizeOptions(3, {0.5, 0.5}, {0.5})), c10::Error);
  EXPECT_THROW(Normalize(NormalizeOptions(3, {0.5}, {0.0})), c10::Error);
  EXPECT_TRUE(torch::allclose(normalize(torch::ones({1, 3, 2, 2})), torch::ones({1, 3, 2, 2})));
}

TEST(Models, ConfigErrorsNameTheKey) {
  expect_config_error(spec_for("xyz"), "model.arch = \"xyz\": unknown architecture; known: ");
  expect_config_error(spec_for("xyz"), "wrn34_10");

  auto spec = spec_for("wide_resnet");
  spec.depth = 30;
  expect_config_error(spec, "model.depth");
  spec.depth = 4;
  expect_config_error(spec, "model.depth");
  spec = spec_for("wide_resnet");
  spec.widen_factor = 0;
  expect_config_error(spec, "model.widen_factor");

  spec = spec_for("resnet18", 0);
  expect_config_error(spec, "model.num_classes");
  spec = spec_for("wrn34_10");
  spec.in_channels = 0;
  expect_config_error(spec, "model.in_channels");
  spec = spec_for("preact_resnet18");
  spec.mean = {0.1, 0.2};
  expect_config_error(spec, "model.mean");
  spec = spec_for("preact_resnet18");
  spec.std = {0.5, 0.0, 0.5};
  expect_config_error(spec, "model.std");
  spec = spec_for("preact_resnet");
  spec.blocks = {};
  expect_config_error(spec, "model.blocks");
  spec.blocks = {2, 0};
  expect_config_error(spec, "model.blocks");
  spec = spec_for("preact_resnet");
  spec.width = 0;
  expect_config_error(spec, "model.width");
}

TEST(Models, KnownArchitecturesAllBuild) {
  const auto names = known_architectures();
  const std::set<std::string> expected = {
      "preact_resnet18", "preact_resnet",   "resnet18",    "resnet34", "resnet50", "resnet101",
      "resnet152",       "wide_resnet50_2", "wide_resnet", "wrn28_10", "wrn34_10", "wrn70_16"};
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  EXPECT_EQ(names.size(), expected.size());
  // Building is covered for every name by the parameter-count test; validate() must accept all.
  for (const auto& name : names) {
    EXPECT_NO_THROW(validate(spec_for(name))) << name;
  }
}

// A typo in a size is refused by name, not met as an allocation of terabytes; a normalization
// far off [0, 1] pixels, not as a run that diverges at its first step.
TEST(Models, SizesPastAnyRealModelAreRefusedByName) {
  const auto error = [](const ModelSpec& spec) {
    try {
      validate(spec);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ModelSpec spec = spec_for("preact_resnet");
  spec.num_classes = 100000000;
  EXPECT_EQ(error(spec), "config: model.num_classes: must be in [1, 100000], got 100000000");
  spec = spec_for("preact_resnet");
  spec.width = 4000000000;
  EXPECT_EQ(error(spec), "config: model.width: must be in [1, 4096], got 4000000000");
  spec = spec_for("preact_resnet");
  spec.blocks = {1, 1001};
  EXPECT_EQ(error(spec), "config: model.blocks: every stage needs 1 to 1000 blocks, got [1, 1001]");
  spec = spec_for("wide_resnet");
  spec.widen_factor = 65;
  EXPECT_EQ(error(spec), "config: model.widen_factor: must be in [1, 64], got 65");
  spec = spec_for("preact_resnet");
  spec.std = {1e-300};
  EXPECT_EQ(error(spec),
            "config: model.std: value 1e-300 must be in [0.001, 1000] (pixel units: images are "
            "in [0, 1])");
  spec = spec_for("preact_resnet");
  spec.mean = {1e300};
  EXPECT_EQ(error(spec),
            "config: model.mean: value 1e+300 must be in [-1000, 1000] (pixel units: images "
            "are in [0, 1])");
  spec = spec_for("preact_resnet");
  spec.input_size = 5000;
  EXPECT_EQ(error(spec), "config: model.input_size: must be in [1, 4096], got 5000");
}

TEST(Models, DescribeIsShortAndSpecific) {
  EXPECT_EQ(describe(spec_for("preact_resnet18")), "PreActResNet-18, 10 classes, 3x32x32");
  auto spec = spec_for("preact_resnet");
  spec.blocks = {1, 1, 1};
  spec.width = 16;
  spec.in_channels = 1;
  spec.input_size = 28;
  EXPECT_EQ(describe(spec), "PreActResNet-8 (blocks 1-1-1, width 16), 10 classes, 1x28x28");
  EXPECT_EQ(describe(spec_for("wrn34_10", 100)), "WRN-34-10, 100 classes, 3x32x32");
  spec = spec_for("resnet50", 1000);
  spec.input_size = 224;
  EXPECT_EQ(describe(spec), "ResNet-50, 1000 classes, 3x224x224");
  spec = spec_for("resnet18");
  spec.cifar_stem = true;
  EXPECT_EQ(describe(spec), "ResNet-18 (CIFAR stem), 10 classes, 3x32x32");
}

// Where the fused kernels do not apply (here: the CPU), batch_norm_relu is BatchNorm2d's forward
// and relu to the bit, running statistics and the batch count included, switched on or not.
TEST(BatchNormRelu, IsBatchNormThenReluWhereTheKernelsDoNotApply) {
  torch::manual_seed(0);
  torch::nn::BatchNorm2d fused_bn(16);
  torch::nn::BatchNorm2d reference_bn(16);
  const torch::Tensor x = torch::randn({4, 16, 5, 5}) * 2 + 1;
  set_fused_batch_norm_relu(true);
  const torch::Tensor y = batch_norm_relu(*fused_bn, x);
  set_fused_batch_norm_relu(false);
  const torch::Tensor expected = torch::relu(reference_bn(x));
  EXPECT_TRUE(y.equal(expected));
  EXPECT_TRUE(fused_bn->running_mean.equal(reference_bn->running_mean));
  EXPECT_TRUE(fused_bn->running_var.equal(reference_bn->running_var));
  EXPECT_EQ(fused_bn->num_batches_tracked.item<int64_t>(), 1);
  fused_bn->eval();
  reference_bn->eval();
  EXPECT_TRUE(batch_norm_relu(*fused_bn, x).equal(torch::relu(reference_bn(x))));
}

TEST(BatchNormRelu, SettingResolvesPerDevice) {
  EXPECT_FALSE(resolve_fused_batch_norm_relu("off", torch::kCPU, "fused_bn_relu"));
  EXPECT_FALSE(resolve_fused_batch_norm_relu("auto", torch::kCPU, "fused_bn_relu"));
  for (const char* bad : {"on", "yes"}) {
    try {
      resolve_fused_batch_norm_relu(bad, torch::kCPU, "fused_bn_relu");
      ADD_FAILURE() << bad << " on the CPU must be refused";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("fused_bn_relu"), std::string::npos) << e.what();
    }
  }
  const torch::Device gpu(torch::kCUDA, 0);
  EXPECT_EQ(resolve_fused_batch_norm_relu("auto", gpu, "fused_bn_relu"),
            fused_batch_norm_relu_built());
}

}  // namespace
}  // namespace advft::models
