// End-to-end tests of the real advft binary on CIFAR-format files the tests write.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "advft/config/load.h"
#include "advft/error.h"
#include "advft/io/checkpoint.h"
#include "advft/io/metrics.h"
#include "advft/io/run_dir.h"
#include "advft/io/safetensors.h"
#include "advft/models/factory.h"
#include "advft/schedule/lr_schedule.h"
#include "checkpoint_bytes.h"
#include "fixtures.h"

namespace advft::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir = tmp.file("cifar");
    write_cifar10(data_dir, 100, 200);
    config_path = tmp.file("tiny.json");
    write_config(tiny_config(data_dir));
  }
  void write_config(const json& config) { write_bytes(config_path, config.dump(2)); }

  std::string pretrain(const std::string& name = "pre") {
    std::string out = tmp.file(name);
    RunResult r = run_advft("train --config " + config_path + " --out " + out +
                            " --set train.adversarial=false --set schedule.peak_lr=0.05");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }

  TempDir tmp;
  std::string data_dir;
  std::string config_path;
};

// bf16 autocast on the CPU: the run trains, validates and records its precision.
TEST_F(CliTest, TrainsWithBf16Autocast) {
  const std::string out = tmp.file("bf16");
  RunResult r = run_advft("train --config " + config_path + " --out " + out +
                          " --set precision=bf16 --set train.log_every=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("bf16"), std::string::npos) << r.output;
  const json config = json::parse(read_bytes(out + "/config.json"));
  EXPECT_EQ(config["precision"], "bf16");
  // Evaluation reports at its own precision (--precision), not at the run's training one.
  r = run_advft("eval --checkpoint " + out + "/best.safetensors --attack fgsm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on cpu, fp32"), std::string::npos) << r.output;
  r = run_advft("eval --checkpoint " + out + "/best.safetensors --attack fgsm --precision bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on cpu, bf16"), std::string::npos) << r.output;
  r = run_advft("train --config " + config_path + " --out " + tmp.file("fp16") +
                " --set precision=fp16");
  EXPECT_EQ(r.exit_code, 3) << r.output;  // no fp16 autocast on the CPU: a config error
  EXPECT_NE(r.output.find("precision"), std::string::npos) << r.output;
}

// data.placement=host feeds the same batches through the background prefetcher: the run's
// losses and accuracies are the device-resident run's, bit for bit on the CPU.
TEST_F(CliTest, HostPlacementTrainsExactlyLikeDevicePlacement) {
  std::vector<std::vector<json>> runs;
  for (const char* placement : {"device", "host"}) {
    const std::string out = tmp.file(std::string("placement_") + placement);
    RunResult r = run_advft("train --config " + config_path + " --out " + out +
                            " --set data.placement=" + placement);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::vector<json> records;
    for (json rec : io::read_jsonl(out + "/metrics.jsonl")) {
      rec.erase("images_per_s");
      rec.erase("train_seconds");
      rec.erase("val_seconds");
      // Timings too; only the prefetcher's steps can wait for input.
      if (rec["type"] == "epoch") {
        EXPECT_EQ(rec.contains("input_wait_seconds"), std::string(placement) == "host") << rec;
      }
      rec.erase("input_wait_seconds");
      records.push_back(rec);
    }
    runs.push_back(records);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// data.val_size=0: no validation, so the kept "best" is the last epoch's model, said as such
// rather than as a validation accuracy of -1%.
TEST_F(CliTest, WithoutValidationBestIsTheLastEpoch) {
  const std::string out = tmp.file("noval");
  const RunResult r = run_advft("train --config " + config_path + " --out " + out +
                                " --set data.val_size=0 --epochs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no validation set, best.safetensors is the last epoch's"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("-1.00%"), std::string::npos) << r.output;
  const json results = json::parse(read_bytes(out + "/results.json"));
  EXPECT_TRUE(results["best_val_accuracy"].is_null()) << results.dump();
  EXPECT_EQ(results["best_epoch"], 2);
  EXPECT_EQ(results["best_by"], "last epoch (no validation set)");
  EXPECT_EQ(read_bytes(out + "/best.safetensors"), read_bytes(out + "/last.safetensors"));
  const RunResult eval = run_advft("eval --checkpoint " + out + "/best.safetensors --limit 20");
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
}

TEST_F(CliTest, TrainFinetuneEvalEndToEnd) {
  std::string pre = pretrain();
  for (const char* file : {"config.json", "log.txt", "metrics.jsonl", "last.safetensors",
                           "last.optim.safetensors", "best.safetensors", "results.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(pre) / file)) << file;
  }
  // A clean run picks its best checkpoint by clean accuracy (its robust accuracy is ~0).
  json pre_results = json::parse(read_bytes(pre + "/results.json"));
  EXPECT_EQ(pre_results["best_by"], "clean validation accuracy");
  EXPECT_GT(pre_results["best_val_accuracy"].get<double>(), 0.0);
  std::string ft = tmp.file("ft");

  RunResult r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                          "/best.safetensors --out " + ft + " --epochs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // metrics.jsonl: step records with the scheduled lr, one epoch record per epoch.
  auto records = io::read_jsonl(ft + "/metrics.jsonl");
  int epochs = 0;
  double peak = 0.0;
  for (const auto& rec : records) {
    if (rec["type"] == "epoch") {
      ++epochs;
      EXPECT_TRUE(rec.contains("val_robust_accuracy"));
      EXPECT_TRUE(rec.contains("val_clean_accuracy"));
    }
    if (rec["type"] == "step") {
      EXPECT_TRUE(rec.contains("images_per_s"));
      peak = std::max(peak, rec["lr"].get<double>());
    }
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_LE(peak, 0.05 + 1e-12);  // slow start, then fast decay from the 0.05 peak
  json results = json::parse(read_bytes(ft + "/results.json"));
  EXPECT_EQ(results["command"], "finetune");
  EXPECT_EQ(results["steps"], 16);
  json resolved = json::parse(read_bytes(ft + "/config.json"));
  EXPECT_EQ(resolved["train"]["epochs"], 2);
  EXPECT_EQ(resolved["schedule"]["kind"], "slow_start_fast_decay");

  // The pretrained model's normalization is the one the run uses, and config.json says so rather
  // than repeating the config's.
  const std::string renormalized = tmp.file("ft_normalization");
  r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                "/best.safetensors --out " + renormalized +
                " --epochs 1 --set model.mean=[0.1,0.2,0.3] --set model.std=[0.3,0.3,0.3]");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("normalization: the pretrained model's own, mean [0.5,0.5,0.5] std "
                          "[0.25,0.25,0.25]"),
            std::string::npos)
      << r.output;
  const json recorded = json::parse(read_bytes(renormalized + "/config.json"));
  EXPECT_EQ(recorded["model"]["mean"], json::parse("[0.5,0.5,0.5]"));
  EXPECT_EQ(recorded["model"]["std"], json::parse("[0.25,0.25,0.25]"));
  EXPECT_EQ(recorded["train"]["epochs"], 1);

  // eval needs no config: data set, directory and eps come from the checkpoint.
  std::string json_out = tmp.file("eval.json");
  r = run_advft("eval --checkpoint " + ft + "/last.safetensors --json " + json_out +
                " --attack fgsm --attack pgd:steps=5 --limit 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("clean"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("PGD-5 Linf eps=8/255 step=4/255"), std::string::npos) << r.output;
  json ev = json::parse(read_bytes(json_out));
  EXPECT_EQ(ev["total"], 100);
  ASSERT_EQ(ev["attacks"].size(), 2u);
  const double clean = ev["clean"]["accuracy"].get<double>();
  EXPECT_GT(clean, 30.0);  // the synthetic classes are easy; a broken pipeline sits at 10%
  for (const auto& a : ev["attacks"])
    EXPECT_LE(a["accuracy"].get<double>(), clean + 5.0);
  EXPECT_LE(ev["worst_case"]["accuracy"].get<double>(), ev["attacks"][1]["accuracy"].get<double>());

  // --set without a config file goes over what the checkpoint recorded (its data directory, its
  // step size 4/255), not over the defaults (data/cifar-10-batches-bin, 2/255).
  r = run_advft("eval --checkpoint " + ft + "/last.safetensors --json " + json_out +
                " --set eval.batch_size=50 --set cudnn_benchmark_limit=0 --attack pgd:steps=5 "
                "--limit 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("PGD-5 Linf eps=8/255 step=4/255"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_bytes(json_out))["total"], 100);

  // eps = 0 PGD is clean accuracy (with the GPU-path flags spelled out: off / on work anywhere).
  r = run_advft("eval --checkpoint " + ft + "/last.safetensors --json " + json_out +
                " --attack pgd:eps=0,steps=2 --limit 100 --graphs off --channels-last on");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ev = json::parse(read_bytes(json_out));
  EXPECT_EQ(ev["attacks"][0]["correct"], ev["clean"]["correct"]);

  // AutoAttack's attacks, by name in the table and with their options in the JSON.
  r = run_advft("eval --checkpoint " + ft + "/last.safetensors --json " + json_out +
                " --attack apgd:steps=10 --attack apgd_t:steps=5,targets=3 --attack "
                "square:steps=20 --limit 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("APGD-CE-10 Linf eps=8/255"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("APGD-T-5 Linf eps=8/255 targets=3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Square-20 Linf eps=8/255"), std::string::npos) << r.output;
  ev = json::parse(read_bytes(json_out));
  ASSERT_EQ(ev["attacks"].size(), 3u);
  EXPECT_EQ(ev["attacks"][0]["kind"], "apgd");
  EXPECT_EQ(ev["attacks"][0]["loss"], "ce");
  EXPECT_EQ(ev["attacks"][1]["kind"], "apgd_t");
  EXPECT_EQ(ev["attacks"][1]["targets"], 3);
  EXPECT_EQ(ev["attacks"][2]["kind"], "square");
  EXPECT_EQ(ev["attacks"][2]["loss"], "cw");
  EXPECT_EQ(ev["attacks"][2]["steps"], 20);
  for (const auto& a : ev["attacks"])
    EXPECT_LE(a["correct"].get<int64_t>(), ev["clean"]["correct"].get<int64_t>());

  for (const auto& a : ev["attacks"])
    EXPECT_LE(a["correct"].get<int64_t>(), ev["clean"]["correct"].get<int64_t>());
}

// A minute of attacks on the CPU (labelled long): their parts run under the sanitizers in
// attacks_test and eval_test.
TEST_F(CliTest, EvalRunsAutoattackAsACascade) {
  // `autoattack --cascade`: AutoAttack's standard four as it runs them, each on what the ones
  // before left robust; the rows count what survives.
  const std::string json_out = tmp.file("autoattack.json");
  const RunResult r = run_advft("eval --checkpoint " + pretrain() + "/last.safetensors --json " +
                                json_out + " --attack autoattack --cascade --limit 10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row :
       {"then APGD-CE-100 Linf eps=8/255", "then APGD-T-100 Linf eps=8/255 targets=9",
        "then FAB-T-100 Linf eps=8/255 targets=9", "then Square-5000 Linf eps=8/255"}) {
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  }
  const json ev = json::parse(read_bytes(json_out));
  ASSERT_EQ(ev["attacks"].size(), 4u);
  EXPECT_TRUE(ev["cascade"].get<bool>());
  for (std::size_t a = 1; a < 4; ++a) {
    EXPECT_LE(ev["attacks"][a]["correct"].get<int64_t>(),
              ev["attacks"][a - 1]["correct"].get<int64_t>());
  }
  EXPECT_EQ(ev["worst_case"]["correct"], ev["attacks"][3]["correct"]);
}

// A SIGTERM during eval's last batch (here its only one) is a stop, not a success: the batch ends,
// then exit 143 with no table and no JSON, as for a stop between batches.
TEST_F(CliTest, EvalStoppedDuringItsLastBatchReportsNothing) {
  const std::string pre = pretrain();
  const std::string json_out = tmp.file("stopped.json");
  const std::string log = tmp.file("stopped.log");
  BackgroundAdvft eval("eval --checkpoint " + pre + "/last.safetensors --limit 20 --attack " +
                           "pgd:steps=1000 --json " + json_out,
                       log);
  ASSERT_TRUE(eval.started());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_bytes(log).find("evaluating ") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  eval.signal(SIGTERM);
  EXPECT_EQ(eval.wait(std::chrono::seconds(300)), 143) << read_bytes(log);
  EXPECT_FALSE(fs::exists(json_out));
  EXPECT_NE(read_bytes(log).find("evaluation interrupted by signal 15"), std::string::npos)
      << read_bytes(log);
  EXPECT_EQ(read_bytes(log).find("worst case"), std::string::npos) << read_bytes(log);
}

// TRADES fine-tuning end to end: the objective is recorded, validated and resumable.
TEST_F(CliTest, FinetunesWithTrades) {
  const std::string pre = pretrain();
  const std::string ft = tmp.file("trades");
  RunResult r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                          "/last.safetensors --out " + ft +
                          " --set train.objective=trades --set train.trades_beta=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json resolved = json::parse(read_bytes(ft + "/config.json"));
  EXPECT_EQ(resolved["train"]["objective"], "trades");
  EXPECT_EQ(resolved["train"]["trades_beta"], 3.0);
  const json results = json::parse(read_bytes(ft + "/results.json"));
  EXPECT_EQ(results["command"], "finetune");
  int64_t steps = 0;
  for (const auto& rec : io::read_jsonl(ft + "/metrics.jsonl")) {
    if (rec["type"] != "step") continue;
    ++steps;
    EXPECT_TRUE(std::isfinite(rec["loss"].get<double>()));
  }
  EXPECT_GT(steps, 0);
  r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                "/last.safetensors --out " + tmp.file("bad") +
                " --set train.objective=trades --set train.clean_weight=0.2");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("train.clean_weight = 0.2: train.objective = trades"), std::string::npos)
      << r.output;
}

// An L2 model's eps (1.5) is out of range for the default "pgd:steps=20" (Linf): --attack replaces
// that list unchecked, and --set goes over the checkpoint's record, not over the defaults.
TEST_F(CliTest, EvalOfAnL2ModelTakesItsRecordAndTheOverrides) {
  const std::string out = tmp.file("l2");
  RunResult r = run_advft("train --config " + config_path + " --out " + out +
                          " --set train.adversarial=false --set attack.norm=l2 --set attack.eps=1.5"
                          " --set attack.step_size=0.5 --set 'eval.attacks=[\"pgd_l2:steps=2\"]'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string eval = "eval --checkpoint " + out + "/last.safetensors --limit 20 --attack ";
  r = run_advft(eval + "pgd_l2:steps=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("PGD-2 L2 eps=1.5 step=0.5"), std::string::npos) << r.output;
  r = run_advft(eval + "pgd_l2:steps=2 --set attack.eps=2.5 --set eval.batch_size=10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("PGD-2 L2 eps=2.5 step=0.5"), std::string::npos) << r.output;
}

TEST_F(CliTest, SameSeedSameMetrics) {
  std::string a = pretrain("a");
  std::string b = pretrain("b");
  auto ra = io::read_jsonl(a + "/metrics.jsonl");
  auto rb = io::read_jsonl(b + "/metrics.jsonl");
  ASSERT_EQ(ra.size(), rb.size());
  for (std::size_t i = 0; i < ra.size(); ++i) {
    for (const char* key :
         {"loss", "lr", "train_accuracy", "val_clean_accuracy", "val_robust_accuracy"}) {
      if (ra[i].contains(key)) {
        EXPECT_EQ(ra[i][key], rb[i][key]) << key << " in record " << i;
      }
    }
  }
}

TEST_F(CliTest, SigtermSavesAResumableCheckpointAndResumeIsExact) {
  std::string pre = pretrain();
  // Reference: the same fine-tune without interruption. Step records every 5 steps (and at each
  // epoch's end, every 8): a stop between two records leaves a window for the resumed run.
  std::string ref = tmp.file("ref");
  std::string common = "finetune --config " + config_path + " --checkpoint " + pre +
                       "/last.safetensors --epochs 3 --set train.log_every=5";
  ASSERT_EQ(run_advft(common + " --out " + ref).exit_code, 0);

  std::string run = tmp.file("interrupted");
  BackgroundAdvft finetune(common + " --out " + run, "/dev/null");
  ASSERT_TRUE(finetune.started());
  // Wait until a few steps are logged, then ask it to stop the way a cluster scheduler does.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(run + "/metrics.jsonl") && io::read_jsonl(run + "/metrics.jsonl").size() >= 3)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  finetune.signal(SIGTERM);
  EXPECT_EQ(finetune.wait(std::chrono::seconds(120)), 143);
  ASSERT_TRUE(fs::exists(run + "/last.safetensors"));
  auto state = io::load_checkpoint(run + "/last.safetensors").train_state;
  EXPECT_GT(state["next_step"].get<int64_t>(), 0);
  EXPECT_LT(state["next_step"].get<int64_t>(), 24);
  const int64_t into_window = state["next_step"].get<int64_t>() % 8 % 5;
  EXPECT_EQ(state["log_window"].is_object(), into_window != 0) << state.dump();
  if (into_window != 0) {
    EXPECT_EQ(state["log_window"]["steps"], into_window) << state.dump();
  }

  // As if the process had gone on past that checkpoint and been killed (SIGKILL, out of memory)
  // before the next: the records it wrote meanwhile are the reference's after that step.
  const int64_t saved_at = state["next_step"].get<int64_t>();
  const std::vector<json> reference = io::read_jsonl(ref + "/metrics.jsonl");
  {
    std::ofstream out(run + "/metrics.jsonl", std::ios::app);
    bool after = false;
    for (const json& record : reference) {
      after = after || (record["type"] == "step" && record["step"].get<int64_t>() > saved_at);
      if (after) out << record.dump() << "\n";
    }
  }

  RunResult r = run_advft("finetune --resume " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Its metrics read as the uninterrupted run's: each record once, in order, the same values.
  const std::vector<json> resumed = io::read_jsonl(run + "/metrics.jsonl");
  ASSERT_EQ(resumed.size(), reference.size());
  for (std::size_t i = 0; i < reference.size(); ++i) {
    for (const char* key :
         {"type", "step", "epoch", "lr", "loss", "train_adv_accuracy", "val_robust_accuracy"})
      EXPECT_EQ(resumed[i].value(key, json()), reference[i].value(key, json())) << i << " " << key;
  }
  auto a = io::load_checkpoint(ref + "/last.safetensors");
  auto b = io::load_checkpoint(run + "/last.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_TRUE(a.tensors[i].tensor.equal(b.tensors[i].tensor)) << a.tensors[i].name;
  }
  json ra = json::parse(read_bytes(ref + "/results.json"));
  json rb = json::parse(read_bytes(run + "/results.json"));
  EXPECT_EQ(ra["final"]["val_robust_accuracy"], rb["final"]["val_robust_accuracy"]);
}

// A stop during an epoch's validation saves the epoch's last step without the epoch's record. The
// checkpoint of such a stop is made here from a finished run (validation changes no weight): its
// training state put back to the end of epoch 1's record, results.json and the last records gone.
TEST_F(CliTest, ResumeAfterAStopDuringValidationValidatesThatEpoch) {
  const std::string ref = tmp.file("ref");
  RunResult r = run_advft("train --config " + config_path + " --epochs 2 --out " + ref);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string run = tmp.file("stopped");
  advft::testing::copy_directory(ref, run);
  std::vector<json> records = io::read_jsonl(ref + "/metrics.jsonl");
  std::vector<json> epochs;
  std::string kept;
  for (const json& record : records) {
    if (record["type"] == "epoch") epochs.push_back(record);
    if (record["type"] == "step" || (record["type"] == "epoch" && record["epoch"] == 1))
      kept += record.dump() + "\n";
  }
  ASSERT_EQ(epochs.size(), 2u);
  write_bytes(run + "/metrics.jsonl", kept);
  fs::remove(run + "/results.json");
  io::SafetensorsContent last = io::read_safetensors(run + "/last.safetensors");
  json state = json::parse(last.metadata.at("train_state"));
  state["last_epoch"] = epochs[0];
  state["best_epoch"] = 1;
  state["best_val_score"] = epochs[0]["val_robust_accuracy"];
  last.metadata["train_state"] = state.dump();
  io::write_safetensors(run + "/last.safetensors", last.tensors, last.metadata);

  r = run_advft("train --resume " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<json> resumed;
  for (const json& record : io::read_jsonl(run + "/metrics.jsonl"))
    if (record["type"] == "epoch") resumed.push_back(record);
  ASSERT_EQ(resumed.size(), 2u) << "epoch 2 was not validated on resume";
  // The lr too: that of the epoch's last step, which ran before the stop.
  for (const char* key : {"val_clean_accuracy", "val_robust_accuracy", "lr"})
    EXPECT_EQ(resumed[1][key], epochs[1][key]) << key;
  const json results = json::parse(read_bytes(run + "/results.json"));
  EXPECT_EQ(results["final"]["epoch"], 2);
}

TEST_F(CliTest, ExistingRunDirectoryIsRefusedUnlessForced) {
  std::string pre = pretrain();
  std::string before = read_bytes(pre + "/results.json");
  RunResult r = run_advft("train --config " + config_path + " --out " + pre);
  EXPECT_EQ(r.exit_code, 6) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  EXPECT_EQ(read_bytes(pre + "/results.json"), before);  // untouched

  // --force with a mistake that shows only once the run starts (its data): the earlier run is
  // put back as it was, checkpoints, log and all.
  const std::string config = read_bytes(pre + "/config.json");
  const std::string log = read_bytes(pre + "/log.txt");
  const std::string last = read_bytes(pre + "/last.safetensors");
  r = run_advft("train --config " + config_path + " --out " + pre + " --force --data-dir " +
                tmp.file("no-such-data"));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_EQ(read_bytes(pre + "/config.json"), config);
  EXPECT_EQ(read_bytes(pre + "/log.txt"), log);
  EXPECT_EQ(read_bytes(pre + "/last.safetensors"), last);
  EXPECT_EQ(read_bytes(pre + "/results.json"), before);
  EXPECT_FALSE(fs::exists(io::previous_run_dir(pre)));

  // Fine-tuning a run's own checkpoint into that run: --force would move it aside before it is
  // read. Refused before anything moves, through a link as well.
  fs::create_symlink(pre + "/best.safetensors", tmp.file("link.safetensors"));
  for (const std::string& checkpoint : {pre + "/best.safetensors", tmp.file("link.safetensors")}) {
    r = run_advft("finetune --config " + config_path + " --checkpoint " + checkpoint + " --out " +
                  pre + " --force");
    EXPECT_EQ(r.exit_code, 6) << r.output;
    EXPECT_NE(r.output.find("is a file of the run that --force moves aside"), std::string::npos)
        << r.output;
    EXPECT_EQ(read_bytes(pre + "/last.safetensors"), last);
    EXPECT_EQ(read_bytes(pre + "/results.json"), before);
    EXPECT_FALSE(fs::exists(io::previous_run_dir(pre)));
  }

  // A forced run that gets going replaces the earlier one whole: its own log and metrics only.
  r = run_advft("train --config " + config_path + " --out " + pre +
                " --force --set train.adversarial=false");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("previous-run"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(io::previous_run_dir(pre)));
  EXPECT_NE(read_bytes(pre + "/config.json"), config);
  const std::string new_log = read_bytes(pre + "/log.txt");
  const std::string first_old_line = log.substr(0, log.find('\n'));  // time-stamped to the ms
  EXPECT_EQ(new_log.find(first_old_line), std::string::npos) << new_log;
}

TEST_F(CliTest, DivergingRunStopsAndKeepsTheLastGoodCheckpoint) {
  std::string pre = pretrain();
  // An lr that grows exponentially: fine in the first epoch, NaN later.
  std::string run = tmp.file("diverge");
  RunResult r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                          "/last.safetensors --out " + run +
                          " --epochs 12 --set schedule.warmup=0 --set schedule.peak_lr=0.001 --set "
                          "schedule.end_lr=1e38");
  EXPECT_EQ(r.exit_code, 7) << r.output;
  EXPECT_NE(r.output.find("diverged"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("last.safetensors"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(run + "/last.safetensors"));
  auto ckpt = io::load_checkpoint(run + "/last.safetensors");
  for (const auto& t : ckpt.tensors) {
    if (t.tensor.is_floating_point()) {
      EXPECT_TRUE(t.tensor.isfinite().all().item<bool>()) << t.name;
    }
  }
  EXPECT_FALSE(fs::exists(run + "/results.json"));
}

TEST_F(CliTest, BadInputGetsOneClearLineAndADocumentedExitCode) {
  struct Case {
    std::string args;
    int code;
    std::string needle;
  };
  write_bytes(tmp.file("typo.json"), R"({"train": {"epoch": 3}})");
  write_bytes(tmp.file("junk.safetensors"), "this is not a checkpoint");
  json no_data = tiny_config(tmp.file("nowhere"));
  write_bytes(tmp.file("nodata.json"), no_data.dump());
  std::string pre = pretrain();
  json other = tiny_config(data_dir);
  other["model"]["width"] = 8;
  other["model"]["arch"] = "resnet18";
  other["model"]["cifar_stem"] = true;
  write_bytes(tmp.file("resnet.json"), other.dump());
  // A CIFAR-100 test set (coarse and fine label, then the pixels) for the 10-class model.
  std::string cifar100;
  for (int i = 0; i < 5; ++i)
    cifar100 += std::string(1, '\3') + std::string(1, '\71') + std::string(3072, '\100');
  write_bytes(tmp.file("c100") + "/test.bin", cifar100);
  // A two-class model, too few classes for the DLR loss.
  models::ModelSpec two_classes;
  two_classes.arch = "preact_resnet";
  two_classes.blocks = {1};
  two_classes.width = 8;
  two_classes.num_classes = 2;
  io::save_checkpoint(tmp.file("two.safetensors"), *models::make_model(two_classes), two_classes,
                      json::object());
  // A run whose config.json was edited by hand since: resume checks it as a new run's.
  const std::string edited = tmp.file("edited");
  copy_directory(pre, edited);
  json edited_config = json::parse(read_bytes(edited + "/config.json"));
  edited_config["train"]["log_every"] = 0;
  write_bytes(edited + "/config.json", edited_config.dump(2));
  const std::string edited_metrics = read_bytes(edited + "/metrics.jsonl");
  std::vector<Case> cases = {
      {"train --config " + tmp.file("typo.json"), 3, "did you mean train.epochs?"},
      {"train --resume " + edited, 3, "train.log_every = 0: must be >= 1"},
      // Said before any image is attacked, not as a failed loss inside the first attack.
      {"eval --checkpoint " + pre + "/last.safetensors --dataset cifar100 --data-dir " +
           tmp.file("c100"),
       4, "cifar100 has 100 classes but the model in " + pre + "/last.safetensors has 10 outputs"},
      {"eval --checkpoint " + tmp.file("two.safetensors") + " --data-dir " + data_dir +
           " --attack pgd:steps=3 --attack apgd_dlr",
       3, "loss needs at least 3 classes, the model has 2"},
      {"train --config " + tmp.file("missing.json"), 3, "missing.json"},
      {"train --config " + config_path + " --set attack.eps=8 --out " + tmp.file("x1"), 3,
       "attack.eps"},
      {"train --config " + tmp.file("nodata.json") + " --out " + tmp.file("x2"), 4, "nowhere"},
      {"eval --checkpoint " + tmp.file("junk.safetensors"), 5, "junk.safetensors"},
      {"eval --checkpoint " + tmp.file("none.safetensors"), 5, "none.safetensors"},
      {"finetune --config " + tmp.file("resnet.json") + " --checkpoint " + pre +
           "/last.safetensors --out " + tmp.file("x3"),
       5, "PreActResNet"},
      {"finetune --config " + config_path + " --out " + tmp.file("x4"), 3, "--checkpoint"},
      {"finetune --bogus-flag", 2, "bogus"},
      {"eval --checkpoint " + pre + "/last.safetensors --attack cw", 3, "cw"},
      {"finetune --resume " + tmp.file("norun"), 6, "norun"},
      {"finetune --resume " + tmp.file("norun") + " --epochs 3", 3, "drop --set, --epochs"},
      {"train --resume " + pre + " --batch-size 25", 3, "--batch-size"},
      {"finetune --resume " + pre, 2,
       pre + " is a run of advft train; continue it with advft train --resume " + pre},
      {"train --config " + config_path + " --set data.placement=gpu --out " + tmp.file("x5"), 3,
       "data.placement"},
      {"train --config " + config_path + " --set cuda_graphs=maybe --out " + tmp.file("x6"), 3,
       "cuda_graphs"},
      {"eval --checkpoint " + pre + "/last.safetensors --channels-last sideways", 3,
       "--channels-last"},
      {"bench --device cpu --channels-last sideways", 3, "--channels-last"},
      {"train --config " + config_path + " --set fused_bn_relu=maybe --out " + tmp.file("x8"), 3,
       "fused_bn_relu"},
      // The fused kernels run on a GPU only: asking for them on the CPU is refused, not ignored.
      {"train --config " + config_path + " --set fused_bn_relu=on --device cpu --out " +
           tmp.file("x9"),
       3, "fused_bn_relu = \"on\" needs a CUDA device"},
      {"bench --device cpu --fused-bn-relu on", 3, "--fused-bn-relu"},
      // Found before the evaluation, which may take hours, rather than when it is written.
      {"eval --checkpoint " + pre + "/last.safetensors --json " + tmp.file("no/such/e.json"), 6,
       "--json " + tmp.file("no/such/e.json") + ": cannot create a file in"},
      {"eval --checkpoint " + pre + "/last.safetensors --device cuda:x", 3,
       "device = \"cuda:x\": must be auto, cpu, cuda or cuda:N"},
      {"train --config " + config_path + " --set device=cuda0 --out " + tmp.file("x10"), 3,
       "device = \"cuda0\": must be auto, cpu, cuda or cuda:N"},
      {"train --config " + config_path + " --batch-size 0 --out " + tmp.file("x11"), 2,
       "--batch-size: must be a whole number >= 1, got 0"},
      {"bench --device cpu --warmup -1", 2, "--warmup: must be a whole number >= 0, got -1"},
      {"finetune --config " + config_path + " --checkpoint " + pre +
           "/last.safetensors --mean nan --out " + tmp.file("x12"),
       2, "--mean: must be a finite number, got nan"},
      {"eval --checkpoint " + pre + "/last.safetensors --seed -1", 2,
       "--seed: must be a whole number >= 0, got -1"},
      {"train --config " + config_path + " --threads 4294967296 --out " + tmp.file("x13"), 2,
       "--threads: must be a whole number in [1, 1024], got 4294967296"},
  };
  if (!torch::cuda::is_available()) {
    // Asking for graphs where there is no GPU is a config error, not a silent fallback.
    cases.push_back(
        {"train --config " + config_path + " --set cuda_graphs=on --out " + tmp.file("x7"), 3,
         "cuda_graphs = \"on\" needs a CUDA device"});
    cases.push_back({"eval --checkpoint " + pre + "/last.safetensors --graphs on", 3, "--graphs"});
  }
  for (const auto& c : cases) {
    RunResult r = run_advft(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
  EXPECT_EQ(read_bytes(edited + "/metrics.jsonl"), edited_metrics);
  // Runs that failed before their first checkpoint leave no directory behind.
  for (const char* out :
       {"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13"})
    EXPECT_FALSE(fs::exists(tmp.file(out))) << out;
}

// Files from strangers through the real binary (and under ASan+UBSan in CI): each is refused
// with the checkpoint exit code and one line naming the file, and nothing it names is run.
TEST(CliHostileFileTest, InspectAndEvalRefuseHostileFilesWithOneLine) {
  TempDir tmp;
  const std::string marker = tmp.file("code-ran");
  const std::string floats(6 * 4, '\0');
  const std::string state_dict = pickle_p2("ccollections\nOrderedDict\n)R" + pickle_text("w") +
                                           pickle_tensor(0, {2, 3}, {3, 1}, 6) + "s");
  const std::string good = torch_save_zip(state_dict, floats);
  const std::string shell = "touch " + marker;
  std::string random(3000, '\0');
  std::mt19937 rng(5);
  std::generate(random.begin(), random.end(), [&] { return static_cast<char>(rng()); });
  struct Case {
    std::string name;
    std::string bytes;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"os_system.pt",
       torch_save_zip(pickle_p2("cos\nsystem\n" + pickle_text(shell) + "\x85R"), ""),
       "refuses to load global os.system"},
      {"eval.pt",
       torch_save_zip(pickle_p2("cbuiltins\neval\n" +
                                pickle_text("__import__('os').system('" + shell + "')") + "\x85R"),
                      ""),
       "refuses to load global builtins.eval"},
      {"truncated.pt", good.substr(0, good.size() / 2), "truncated"},
      {"short_storage.pt", torch_save_zip(state_dict, floats.substr(0, 20)),
       "holds 20 bytes, but the pickle claims 6 elements"},
      {"lying.safetensors",
       safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})",
                         std::string(8, '\0')),
       "data_offsets end 24 is past the end of the data"},
      {"huge_header.safetensors", le_bytes(2'000'000'000, 8) + R"({"w":{"dtype":"F32"}})",
       "safetensors header of 2000000000 bytes"},
      {"random.pt", random, "not a torch.save file"},
      {"empty.safetensors", "", "the file is empty (0 bytes)"},
  };
  // The well-formed archive the broken ones are made from loads: the refusals are about the harm.
  write_bytes(tmp.file("good.pt"), good);
  const RunResult ok = run_advft("inspect " + tmp.file("good.pt"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("[2, 3]  float32"), std::string::npos) << ok.output;

  for (const auto& c : cases) {
    const std::string path = tmp.file(c.name);
    write_bytes(path, c.bytes);
    for (const std::string command : {"inspect ", "eval --checkpoint "}) {
      const RunResult r = run_advft(command + path);
      SCOPED_TRACE(command + c.name + "\n" + r.output);
      EXPECT_EQ(r.exit_code, 5);
      EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1);
      EXPECT_NE(r.output.find("checkpoint: " + path + ": "), std::string::npos);
      EXPECT_NE(r.output.find(c.needle), std::string::npos);
    }
  }
  EXPECT_FALSE(fs::exists(marker)) << "a checkpoint ran code";
}

// Runs `advft <command> <fifo> <rest>` and feeds it `bytes` through the FIFO in two halves with a
// Ctrl-C between them, so the signal certainly comes while the file is read. Returns the exit
// code and the output.
RunResult stop_while_reading(const TempDir& dir, const std::string& command,
                             const std::string& rest, const std::string& bytes) {
  const std::string fifo = dir.file("in.safetensors");
  if (::mkfifo(fifo.c_str(), 0600) != 0) return {-1, "mkfifo failed"};
  const std::string log = dir.file("log");
  BackgroundAdvft advft(command + " " + fifo + " " + rest, log);
  // Opening for writing without a reader fails (ENXIO) instead of blocking: a command that
  // fails before it reads cannot hang the test.
  int fd = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (fd < 0 && std::chrono::steady_clock::now() < deadline) {
    fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (fd < 0) return {-1, "advft never opened the FIFO: " + read_bytes(log)};
  ::fcntl(fd, F_SETFL, 0);
  // A reader that has gone would make the writes raise SIGPIPE in the test binary.
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &previous);
  const size_t half = bytes.size() / 2;
  const bool first = ::write(fd, bytes.data(), half) == static_cast<ssize_t>(half);
  advft.signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const bool second = ::write(fd, bytes.data() + half, bytes.size() - half) ==
                      static_cast<ssize_t>(bytes.size() - half);
  ::close(fd);
  ::sigaction(SIGPIPE, &previous, nullptr);
  const int code = advft.wait(std::chrono::seconds(60));
  const std::string output = read_bytes(log);
  if (!first || !second) return {-1, "the writes to the FIFO failed: " + output};
  return {code, output};
}

// A Ctrl-C while convert or inspect reads a large file ends them after the read with one line
// and 130; convert wrote its output and exited 0 before, the signal recorded and ignored.
TEST(CliStopTest, ConvertAndInspectStopAfterReadingWithNothingWritten) {
  models::ModelSpec spec;
  spec.arch = "preact_resnet";
  spec.blocks = {1};
  spec.width = 8;
  const models::ClassifierPtr model = models::make_model(spec);
  TempDir source;
  io::save_checkpoint(source.file("tiny.safetensors"), *model, spec, json::object());
  const std::string bytes = read_bytes(source.file("tiny.safetensors"));
  // The input is whole: without the signal the same command succeeds.
  const RunResult plain =
      run_advft("convert " + source.file("tiny.safetensors") + " " + source.file("plain.pt"));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;

  TempDir convert_dir;
  const RunResult convert =
      stop_while_reading(convert_dir, "convert", convert_dir.file("out.pt"), bytes);
  EXPECT_EQ(convert.exit_code, 130) << convert.output;
  EXPECT_NE(convert.output.find("error: convert interrupted by signal 2; nothing was written"),
            std::string::npos)
      << convert.output;
  EXPECT_EQ(dir_entries(convert_dir.path()), (std::vector<std::string>{"in.safetensors", "log"}));

  TempDir inspect_dir;
  const RunResult inspect = stop_while_reading(inspect_dir, "inspect", "", bytes);
  EXPECT_EQ(inspect.exit_code, 130) << inspect.output;
  EXPECT_NE(inspect.output.find("error: inspect interrupted by signal 2"), std::string::npos)
      << inspect.output;
  EXPECT_EQ(inspect.output.find("model_spec:"), std::string::npos) << inspect.output;  // no report
}

// A batch far past the machine's memory is the user's to lower: one line that says so, exit 3,
// not an internal error. (Under AddressSanitizer the allocation fails the same way only when
// its allocator may return null.)
TEST(CliOutOfMemoryTest, AnAllocationPastTheMemoryIsAConfigError) {
  const RunResult r = run_command(
      "ASAN_OPTIONS=\"${ASAN_OPTIONS}:allocator_may_return_null=1\" " + std::string(ADVFT_BINARY) +
      " bench --device cpu --model preact18 --in-channels 1 --input-size 8 --iterations 1 "
      "--warmup 0 --loops at --batch 100000000000");
  EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
  EXPECT_NE(r.output.find("error: out of memory: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lower the batch size"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("enforce fail"), std::string::npos) << r.output;
}

// `--config configs/cifar10.json` works from any directory: a path that is not there means the
// shipped config of its name. Said in the log, in case the path was a typo.
TEST(CliConfigTest, APathThatIsNotThereFallsBackToTheShippedConfigAndSaysSo) {
  const RunResult r = run_advft("schedule --config /no/such/dir/cifar10.json --every 1000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--config /no/such/dir/cifar10.json: no such file; using the shipped "),
            std::string::npos)
      << r.output;
  const RunResult by_name = run_advft("schedule --config cifar10 --every 1000");
  ASSERT_EQ(by_name.exit_code, 0) << by_name.output;
  EXPECT_EQ(by_name.output.find("no such file"), std::string::npos) << by_name.output;
}

// --help's footer is where a script's author looks up what an exit status means: every code.
TEST(CliHelpTest, HelpNamesEveryExitCode) {
  const RunResult r = run_advft("--help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string footer = r.output.substr(r.output.find("Exit codes:"));
  for (const int code : {kExitOk, kExitInternal, kExitUsage, kExitConfig, kExitData,
                         kExitCheckpoint, kExitRunDir, kExitDiverged, kExitDistributed}) {
    EXPECT_NE(footer.find(" " + std::to_string(code) + " "), std::string::npos)
        << code << " not in: " << footer;
  }
  EXPECT_NE(footer.find("130/143"), std::string::npos) << footer;
}

TEST_F(CliTest, ScheduleCommandPrintsTheCurve) {
  RunResult r = run_advft("schedule --config " + config_path + " --set train.epochs=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step,epoch,lr\n0,0,0\n1,0.125,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n15,1.875,"), std::string::npos) << r.output;
  // Every digit of the lr the run uses: the schedule's text reads back as metrics.jsonl's double.
  const std::string line_7 = r.output.substr(r.output.find("\n7,0.875,") + 9);
  const double lr_7 = std::stod(line_7.substr(0, line_7.find('\n')));
  const config::RunConfig finetune =
      config::load_run_config(config::Command::kFinetune, config_path, {"train.epochs=2"});
  EXPECT_EQ(lr_7, schedule::make_schedule(finetune.schedule, 16)->lr(7)) << r.output;

  // Without the data: ImageNet's standard size (1,281,167 less the 10,000 held out), and for a
  // folder of one's own no guess but the flag that gives the size.
  const std::string missing = " --set data.dir=" + tmp.file("no-imagenet");
  r = run_advft("schedule --config imagenet --every 1000" + missing);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("assuming the standard 1271167 training images of imagenet"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\n9000,1.81269,"), std::string::npos) << r.output;  // 4965 a epoch
  r = run_advft("schedule --config imagenet --set data.dataset=image_folder" + missing);
  EXPECT_EQ(r.exit_code, kExitData) << r.output;
  EXPECT_NE(r.output.find("or pass --train-size N"), std::string::npos) << r.output;
  r = run_advft("schedule --config imagenet --set data.dataset=image_folder --train-size 2560" +
                missing);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\n19,1.9,"), std::string::npos) << r.output;  // 10 steps per epoch

  // A schedule of 10^16 steps would run for months: SIGTERM ends it, with its code and one line.
  BackgroundAdvft endless("schedule --config " + config_path +
                              " --train-size 4000000000000000000 --every 1000000000000000000",
                          tmp.file("endless.log"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  endless.signal(SIGTERM);
  EXPECT_EQ(endless.wait(std::chrono::seconds(30)), 143);
  const std::string log = read_bytes(tmp.file("endless.log"));
  EXPECT_NE(log.find("error: schedule interrupted by signal 15 after step "), std::string::npos)
      << log;
}

}  // namespace
}  // namespace advft::testing
