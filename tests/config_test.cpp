#include <gtest/gtest.h>

#include "advft/config/load.h"
#include "advft/error.h"
#include "advft/runtime/device.h"
#include "test_util.h"

namespace advft::config {
namespace {

using nlohmann::json;

std::string config_error(const json& root) {
  try {
    RunConfig c = parse_run_config(root, default_config(Command::kFinetune));
    validate(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, FractionsAndNumbers) {
  EXPECT_DOUBLE_EQ(parse_number("8/255", "attack.eps"), 8.0 / 255.0);
  EXPECT_DOUBLE_EQ(parse_number(0.25, "x"), 0.25);
  EXPECT_DOUBLE_EQ(parse_number("0.5", "x"), 0.5);
  EXPECT_THROW(parse_number("8/0", "x"), ConfigError);
  for (const char* not_finite : {"nan", "inf", "-inf/2", "1/nan"})
    EXPECT_THROW(parse_number(not_finite, "x"), ConfigError) << not_finite;
  EXPECT_THROW(parse_number("eight", "x"), ConfigError);
  EXPECT_THROW(parse_number(json::array(), "x"), ConfigError);
}

TEST(Config, FileValuesOverrideDefaultsAndSetOverridesFile) {
  testing::TempDir dir;
  testing::write_bytes(dir.file("c.json"),
                       R"({"train": {"epochs": 7, "batch_size": 64}, "attack": {"eps": "4/255"}})");
  RunConfig c = load_run_config(Command::kFinetune, dir.file("c.json"), {"train.epochs=2"});
  EXPECT_EQ(c.train.epochs, 2);       // --set beats the file
  EXPECT_EQ(c.train.batch_size, 64);  // the file beats the default
  EXPECT_DOUBLE_EQ(c.attack.eps, 4.0 / 255.0);
  EXPECT_EQ(c.schedule.kind, "slow_start_fast_decay");  // finetune's default
  RunConfig t = load_run_config(Command::kTrain, dir.file("c.json"), {});
  EXPECT_EQ(t.schedule.kind, "piecewise");  // train's default
}

TEST(Config, UnknownKeySuggestsTheNearestKnownOne) {
  std::string message = config_error(json::parse(R"({"train": {"epoch": 3}})"));
  EXPECT_NE(message.find("unknown key train.epoch"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean train.epochs?"), std::string::npos) << message;
  message = config_error(json::parse(R"({"scheduel": {}})"));
  EXPECT_NE(message.find("did you mean schedule?"), std::string::npos) << message;
}

TEST(Config, WrongTypesAndRangesNameTheKey) {
  EXPECT_NE(config_error(json::parse(R"({"train": {"epochs": "three"}})")).find("train.epochs"),
            std::string::npos);
  EXPECT_NE(config_error(json::parse(R"({"attack": {"eps": 8}})")).find("attack.eps = 8"),
            std::string::npos);
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"loss": "hinge"}})")),
            "config: attack.loss = \"hinge\": must be \"ce\", \"cw\" or \"dlr\"");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "apgd_t", "targets": 0}})")),
            "config: attack.targets = 0: must be in [1, 1000]");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"val_attack": {"kind": "autoattack"}}})")),
            "config: train.val_attack.kind = \"autoattack\": must be \"pgd\", \"fgsm\", "
            "\"apgd\" or \"apgd_t\"");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "apgd", "loss": "dlr"}})")), "");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "pgd", "eot": 4}})")),
            "config: attack.eot = 4: only apgd and apgd_t average gradients over several "
            "forwards");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "apgd", "eot": 0}})")),
            "config: attack.eot = 0: must be in [1, 1000]");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "apgd", "eot": 4}})")), "");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"kind": "fgsm", "restarts": 3}})")),
            "config: attack.restarts = 3: FGSM is one step from one start; use attack.kind = "
            "\"pgd\" for restarts");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"targets": 500}})")),
            "config: attack.targets = 500: only apgd_t attacks target classes; drop it");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"step_size": 0}})")),
            "config: attack.step_size = 0: must be > 0: a zero step never leaves the start, and "
            "the robust accuracy would be the clean one");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"norm": "l2", "eps": 1e18}})")),
            "config: attack.eps = 1e+18: must be in [0, 1000] (an L2 length in pixel units)");
  EXPECT_EQ(config_error(json::parse(R"({"attack": {"steps": 100001}})")),
            "config: attack.steps = 100001: must be in [1, 100000]");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "mart"}})")),
            "config: train.objective = \"mart\": must be \"pgd_at\" or \"trades\"");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades", "clean_weight": 0.2}})")),
            "config: train.clean_weight = 0.2: train.objective = trades has its own clean term "
            "(weighted by train.trades_beta); set 0");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades"}, "attack": {"kind":
            "fgsm"}})")),
            "config: attack.kind = \"fgsm\": train.objective = trades builds its examples with "
            "PGD on the KL divergence; use \"pgd\"");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades", "trades_beta": -1}})")),
            "config: train.trades_beta = -1: must be >= 0");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades"}, "attack": {"loss":
            "cw"}})")),
            "config: attack.loss = \"cw\": train.objective = trades ascends the KL divergence, "
            "not attack.loss; leave it \"ce\" (the default)");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades"}, "attack": {"restarts":
            10}})")),
            "config: attack.restarts = 10: train.objective = trades builds one set of examples "
            "per step; set 1");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"objective": "trades"}, "attack":
            {"random_start": false}})")),
            "config: attack.random_start = false: train.objective = trades starts from x + 0.001 "
            "N(0, 1), as its reference code; set true");
  // A clean pre-training run ignores the objective.
  EXPECT_EQ(
      config_error(json::parse(
          R"({"train": {"objective": "trades", "adversarial": false, "clean_weight": 0.5}})")),
      "");
  EXPECT_NE(config_error(json::parse(R"({"schedule": {"warmup": 1.5}})")).find("schedule.warmup"),
            std::string::npos);
  EXPECT_NE(config_error(json::parse(R"({"schedule": {"kind": "step"}})")).find("schedule.kind"),
            std::string::npos);
  EXPECT_NE(
      config_error(json::parse(R"({"optimizer": {"momentum": 1.0}})")).find("optimizer.momentum"),
      std::string::npos);
  EXPECT_NE(config_error(json::parse(R"({"model": []})")).find("model"), std::string::npos);
  EXPECT_NE(config_error(json::parse(R"({"eval": {"attacks": ["pgd:stepz=3"]}})"))
                .find("eval.attacks[0]"),
            std::string::npos);
  EXPECT_NE(
      config_error(json::parse(R"({"eval": {"attacks": ["fgsm", "autoattack:steps=3"]}})"))
          .find("eval.attacks[1] \"autoattack:steps=3\": autoattack takes eps, norm and version"),
      std::string::npos);
  EXPECT_EQ(config_error(json::parse(R"({"train": {"epochs": 3}})")), "");
  EXPECT_EQ(config_error(json::parse(R"({"cudnn_benchmark_limit": -1})")),
            "config: cudnn_benchmark_limit = -1: must be in [0, 10000] (0: time every "
            "algorithm; PyTorch's default 10)");
  EXPECT_EQ(config_error(json::parse(R"({"cudnn_benchmark_limit": 0})")), "");
  EXPECT_EQ(config_error(json::parse(R"({"device": "cuda:x"})")),
            "config: device = \"cuda:x\": must be auto, cpu, cuda or cuda:N (N: the GPU's "
            "index, 0 to 9999)");
  EXPECT_EQ(config_error(json::parse(R"({"device": "cuda:1"})")), "");  // a GPU is asked for later
  EXPECT_EQ(config_error(json::parse(R"({"data": {"image_size": 224, "resize_size": 200}})")),
            "config: data.resize_size = 200: must be in [data.image_size, 8192] (evaluation "
            "crops image_size out of it)");
  EXPECT_EQ(config_error(json::parse(R"({"data": {"min_crop_scale": 0}})")),
            "config: data.min_crop_scale = 0: must be in (0, 1]");
  EXPECT_EQ(config_error(json::parse(R"({"data": {"image_size": 0}})")),
            "config: data.image_size = 0: must be in [1, 4096]");
}

TEST(Config, OverridesParseJsonOrKeepStrings) {
  json root = json::object();
  apply_override(root, "train.epochs=5");
  apply_override(root, "attack.eps=8/255");
  apply_override(root, "train.adversarial=false");
  apply_override(root, "model.blocks=[1,1,1]");
  EXPECT_EQ(root["train"]["epochs"], 5);
  EXPECT_EQ(root["attack"]["eps"], "8/255");
  EXPECT_EQ(root["train"]["adversarial"], false);
  EXPECT_EQ(root["model"]["blocks"].size(), 3u);
  EXPECT_THROW(apply_override(root, "noequals"), ConfigError);
  EXPECT_THROW(apply_override(root, "train..epochs=1"), ConfigError);
  // Numbers no double or int64 holds are config errors naming what was written, not wrapped.
  EXPECT_THROW(apply_override(root, "attack.eps=1e400"), ConfigError);
  EXPECT_EQ(config_error(json::parse(R"({"train": {"epochs": 18446744073709551615}})")),
            "config: train.epochs = 18446744073709551615: too large");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"epochs": 1e30}})")),
            "config: train.epochs = 1e+30: too large");
  // Spaces around the key are not part of it.
  apply_override(root, " train.batch_size = 64");
  EXPECT_EQ(root["train"]["batch_size"], 64);
}

// Values that fit their type but no run: each is refused naming its key and range, before a
// run that would overflow fp32 or count steps past int64.
TEST(Config, ValuesPastWhatARunCanUseNameTheirRange) {
  EXPECT_EQ(config_error(json::parse(R"({"schedule": {"peak_lr": 1e300}})")),
            "config: schedule.peak_lr = 1e+300: must be > 0 and at most 3.40282e+38 (fp32's "
            "largest)");
  EXPECT_EQ(config_error(json::parse(R"({"optimizer": {"weight_decay": 2}})")),
            "config: optimizer.weight_decay = 2: must be in [0, 1]");
  EXPECT_EQ(config_error(json::parse(R"({"train": {"epochs": 100000000000000000}})")),
            "config: train.epochs = 100000000000000000: must be in [1, 100000]");
  EXPECT_EQ(config_error(json::parse(R"({"threads": 4294967296})")),
            "config: threads = 4294967296: must be in [0, 1024] (0: every core)");
  // The model's sizes and normalization: Models.SizesPastAnyRealModelAreRefusedByName.
}

TEST(Config, SyntaxErrorGivesLineAndColumn) {
  testing::TempDir dir;
  testing::write_bytes(dir.file("bad.json"), "{\n  \"train\": {\n    \"epochs\": 3,,\n  }\n}\n");
  try {
    read_config_json(dir.file("bad.json"));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json:3:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_config_json(dir.file("missing.json")), ConfigError);
  testing::write_bytes(dir.file("huge.json"), R"({"train": {"epochs": 1e400}})");
  EXPECT_THROW(read_config_json(dir.file("huge.json")), ConfigError);
}

// JSON keeps the last of two equal keys without a word; a config that says one twice means
// only one of them.
TEST(Config, AKeySetTwiceOrATopLevelThatIsNoObjectIsRefused) {
  testing::TempDir dir;
  const auto error = [&dir](const std::string& text) {
    testing::write_bytes(dir.file("c.json"), text);
    try {
      read_config_json(dir.file("c.json"));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error(R"({"train": {"epochs": 3, "batch_size": 8, "epochs": 4}})"),
            "config: " + dir.file("c.json") +
                ": key train.epochs is set twice; JSON would keep only the last, so delete the "
                "other");
  EXPECT_NE(error(R"({"train": {"epochs": 3}, "attack": {}, "train": {"batch_size": 8}})")
                .find("key train is set twice"),
            std::string::npos);
  // Equal keys in two objects of one list are no repeat.
  EXPECT_EQ(error(R"({"x": [{"a": 1}, {"a": 2}], "model": {"mean": [0.5]}})"), "");
  EXPECT_EQ(error("[]"), "config: " + dir.file("c.json") +
                             ": the config must be a JSON object ({...}), not array");
}

TEST(Config, ResolvedConfigRoundTrips) {
  RunConfig c = load_run_config(Command::kFinetune, "",
                                {"train.epochs=4", "model.arch=wrn34_10", "cudnn_benchmark_limit=0",
                                 "eval.cascade=true", "eval.attacks=[\"autoattack\"]"});
  EXPECT_EQ(c.cudnn_benchmark_limit, 0);
  EXPECT_TRUE(c.eval.cascade);
  EXPECT_EQ(c.eval.attacks, std::vector<std::string>{"autoattack"});
  EXPECT_EQ(default_config(Command::kFinetune).cudnn_benchmark_limit, 10);  // PyTorch's default
  EXPECT_EQ(default_config(Command::kFinetune).cudnn_benchmark_limit,
            runtime::kDefaultCudnnBenchmarkLimit);
  RunConfig back = parse_run_config(to_json(c), default_config(Command::kTrain));
  EXPECT_EQ(to_json(back), to_json(c));
}

TEST(Config, ShippedConfigsLoadByNameAndValidate) {
  for (const char* name :
       {"cifar10", "cifar10.json", "cifar100", "cifar10_preact18", "cifar10_wrn34_10",
        "cifar100_wrn34_10", "fashion_mnist", "quickstart", "imagenet"}) {
    RunConfig c = load_run_config(Command::kFinetune, name, {});
    EXPECT_GE(c.train.epochs, 1) << name;
  }
  RunConfig c10 = load_run_config(Command::kFinetune, "cifar10_preact18", {});
  EXPECT_DOUBLE_EQ(c10.attack.eps, 8.0 / 255.0);
  EXPECT_DOUBLE_EQ(c10.attack.step_size, 2.0 / 255.0);
  EXPECT_EQ(c10.attack.steps, 10);
  RunConfig fm = load_run_config(Command::kFinetune, "fashion_mnist", {});
  EXPECT_DOUBLE_EQ(fm.attack.eps, 0.1);
  EXPECT_DOUBLE_EQ(fm.attack.step_size, 0.025);
  EXPECT_EQ(fm.model.in_channels, 1);
  RunConfig in = load_run_config(Command::kFinetune, "imagenet", {});
  EXPECT_EQ(in.data.dataset, "imagenet");
  EXPECT_EQ(in.model.arch, "resnet50");
  EXPECT_EQ(in.data.image_size, in.model.input_size);
  try {
    resolve_config_path("no_such_recipe");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cifar10"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace advft::config
