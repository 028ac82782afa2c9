// Data-parallel runs: the launcher's environment, the process group's collectives (two
// processes played by two threads of this one), shards of the batches, the averaged training
// step, and real advft processes training together.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "advft/data/loader.h"
#include "advft/dist/device.h"
#include "advft/dist/launch.h"
#include "advft/dist/process_group.h"
#include "advft/dist/world.h"
#include "advft/error.h"
#include "advft/eval/evaluator.h"
#include "advft/io/checkpoint.h"
#include "advft/io/metrics.h"
#include "advft/train/sgd.h"
#include "advft/train/train_step.h"
#include "fixtures.h"
#include "test_util.h"

#if ADVFT_HAVE_DIST
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace advft::dist {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Variables = std::map<std::string, std::string>;

// An environment of exactly `vars`.
EnvironmentFn environment(Variables vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

// What `run` threw as a DistError ("" when it did not), checked to be one line.
std::string dist_error(const std::function<void()>& run) {
  try {
    run();
  } catch (const DistError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  return "";
}

#define EXPECT_DIST_ERROR(expression, part)                              \
  do {                                                                   \
    const std::string message = dist_error([&] { (void)(expression); }); \
    EXPECT_NE(message.find(part), std::string::npos)                     \
        << "'" << (part) << "' not in: '" << message << "'";             \
  } while (false)

const Variables kTorchrun = {{"WORLD_SIZE", "4"},       {"RANK", "3"},
                             {"LOCAL_RANK", "1"},       {"LOCAL_WORLD_SIZE", "2"},
                             {"MASTER_ADDR", "node-a"}, {"MASTER_PORT", "29400"}};

TEST(World, ReadsTorchrunsEnvironment) {
  const World w = world_from_environment(environment(kTorchrun));
  EXPECT_TRUE(w.distributed());
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.master_addr, "node-a");
  EXPECT_EQ(w.master_port, 29400);
  EXPECT_EQ(describe(w), "rank 3 of 4 (local 1 of 2, torchrun)");
  EXPECT_FALSE(w.agent_store);

  // PyTorch 2.x's torchrun: its agent serves the store, a fresh prefix for each restart.
  Variables elastic = kTorchrun;
  elastic["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  elastic["TORCHELASTIC_RESTART_COUNT"] = "2";
  const World joined = world_from_environment(environment(elastic));
  EXPECT_TRUE(joined.agent_store);
  EXPECT_EQ(joined.store_prefix, "/worker/attempt_2");
}

TEST(World, ReadsAnSrunStepButNotTheBatchScriptsOwnShell) {
  const Variables step = {{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"},
                          {"SLURM_LOCALID", "1"},        {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                          {"SLURM_NTASKS", "8"},         {"MASTER_ADDR", "gpu17"}};
  const World w = world_from_environment(environment(step));
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 4);
  EXPECT_EQ(w.master_port, 29500);
  EXPECT_EQ(w.launcher, "slurm");
  // sbatch's shell has the job's task count but is no step of it: one process, not rank 0 of 8
  // waiting for seven that never come.
  const World script = world_from_environment(
      environment({{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}, {"MASTER_ADDR", "gpu17"}}));
  EXPECT_FALSE(script.distributed());
  EXPECT_FALSE(world_from_environment(environment({})).distributed());
  EXPECT_FALSE(world_from_environment(environment({{"WORLD_SIZE", "1"}})).distributed());
}

TEST(World, NamesTheVariableThatIsWrong) {
  struct Case {
    std::string name;
    std::string value;  // "" removes it
    std::string message;
  };
  const std::vector<Case> cases = {
      {"RANK", "4", "RANK = '4' (set by torchrun) is not a whole number in [0, 3]"},
      {"RANK", "", "RANK is not set, but torchrun started several processes"},
      {"WORLD_SIZE", "four", "WORLD_SIZE = 'four'"},
      {"MASTER_PORT", "70000", "MASTER_PORT = '70000'"},
      {"MASTER_ADDR", "", "MASTER_ADDR is not set"},
      {"LOCAL_RANK", "-1", "LOCAL_RANK = '-1'"},
  };
  for (const Case& c : cases) {
    Variables vars = kTorchrun;
    if (c.value.empty()) {
      vars.erase(c.name);
    } else {
      vars[c.name] = c.value;
    }
    EXPECT_DIST_ERROR(world_from_environment(environment(vars)), c.message);
  }
  EXPECT_DIST_ERROR(
      world_from_environment(environment({{"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_PROCID", "1"}})),
      "MASTER_ADDR is not set, but srun started several processes; export "
      "MASTER_ADDR=$(scontrol show hostnames");
}

TEST(World, TimeoutComesFromTheEnvironment) {
  EXPECT_EQ(timeout_from_environment(environment({})), std::chrono::minutes(30));
  EXPECT_EQ(timeout_from_environment(environment({{"ADVFT_DIST_TIMEOUT", "90"}})),
            std::chrono::seconds(90));
  EXPECT_DIST_ERROR(timeout_from_environment(environment({{"ADVFT_DIST_TIMEOUT", "1m"}})),
                    "ADVFT_DIST_TIMEOUT = '1m' is not a whole number of seconds");
  EXPECT_DIST_ERROR(timeout_from_environment(environment({{"ADVFT_DIST_TIMEOUT", "0"}})),
                    "ADVFT_DIST_TIMEOUT = '0'");
}

TEST(World, EachProcessTakesTheGpuOfItsLocalRank) {
  World one;
  EXPECT_EQ(process_device("auto", one), "auto");
  World w = world_from_environment(environment(kTorchrun));
  EXPECT_EQ(process_device("cpu", w), "cpu");
  EXPECT_EQ(process_device("cuda:0", w), "cuda:0");  // asked for by name: kept
  if (torch::cuda::is_available()) {
    w.local_rank = 0;
    EXPECT_EQ(process_device("auto", w), "cuda:0");
  } else {
    EXPECT_EQ(process_device("auto", w), "cpu");
  }
}

World local_world(int rank, int size, int port) {
  World w;
  w.rank = rank;
  w.size = size;
  w.local_rank = rank;
  w.local_size = size;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  w.launcher = "test";
  return w;
}

// Runs body(rank, group) as each rank of a fresh group of `size`, one thread each; returns what
// each rank threw ("" for none).
template <typename Body>
std::vector<std::string> as_ranks(int size, const Body& body,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                  const std::function<void(World&)>& adjust = {},
                                  int port = free_loopback_port()) {
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        World world = local_world(rank, size, port);
        if (adjust) adjust(world);
        const auto group = ProcessGroup::connect(world, timeout);
        body(rank, *group);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (auto& t : threads)
    t.join();
  return errors;
}

TEST(ProcessGroup, CollectivesGiveEveryRankTheSameAnswer) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  std::array<std::vector<torch::Tensor>, 2> seen;
  const auto errors = as_ranks(2, [&](int rank, ProcessGroup& group) {
    const double r = rank;
    // Two dtypes (two flat buffers) and a channels-last tensor, as gradients come.
    torch::Tensor a = torch::full({2, 3}, 1.0 + r);
    torch::Tensor b = torch::arange(4, torch::kDouble) * (r + 1.0);
    torch::Tensor c =
        (torch::ones({1, 2, 2, 2}) * (r * 4.0)).contiguous(torch::MemoryFormat::ChannelsLast);
    c.select(1, 1).add_(r);  // channels differ, so a mixed-up layout would show
    group.average({a, b, c});
    std::vector<torch::Tensor> sums{torch::tensor({rank + 1}, torch::kLong)};
    group.all_reduce_sum(sums);
    torch::Tensor from_root = torch::arange(6, torch::kFloat).reshape({2, 3}).t() * (r + 7.0);
    group.broadcast({from_root}, 0);  // a transposed view: not contiguous
    const int64_t largest = group.max(10 * rank + 3);
    const std::string shared = group.share("name", rank == 0 ? "runs/x" : "ignored");
    seen[static_cast<size_t>(rank)] = {a,
                                       b,
                                       c,
                                       sums[0],
                                       from_root,
                                       torch::tensor({largest}),
                                       torch::tensor({shared == "runs/x" ? 1 : 0})};
  });
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  for (const auto& s : seen) {
    EXPECT_TRUE(s[0].equal(torch::full({2, 3}, 1.5)));
    EXPECT_TRUE(s[1].equal(torch::arange(4, torch::kDouble) * 1.5));
    EXPECT_TRUE(s[2].is_contiguous(torch::MemoryFormat::ChannelsLast));
    torch::Tensor c = torch::full({1, 2, 2, 2}, 2.0);
    c.select(1, 1).add_(0.5);
    EXPECT_TRUE(s[2].equal(c)) << s[2];
    EXPECT_EQ(s[3].item<int64_t>(), 3);
    EXPECT_TRUE(s[4].equal(torch::arange(6, torch::kFloat).reshape({2, 3}).t() * 7.0));
    EXPECT_EQ(s[5].item<int64_t>(), 13);
    EXPECT_EQ(s[6].item<int64_t>(), 1);
  }
}

// Gloo stages CUDA tensors through host memory; both ranks share this machine's first GPU.
TEST(ProcessGroup, AveragesAndBroadcastsCudaTensors_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  std::array<std::vector<torch::Tensor>, 2> seen;
  const auto errors = as_ranks(2, [&](int rank, ProcessGroup& group) {
    const auto on_gpu = torch::TensorOptions().device(torch::kCUDA, 0);
    torch::Tensor a = torch::full({1000}, rank + 1.0, on_gpu);
    torch::Tensor b = torch::full({3}, rank * 10.0, on_gpu.dtype(torch::kDouble));
    group.average({a, b});
    torch::Tensor c = torch::arange(5, on_gpu) * (rank + 1.0);
    group.broadcast({c}, 1);
    std::vector<torch::Tensor> sums{torch::ones({2}, on_gpu.dtype(torch::kLong))};
    group.all_reduce_sum(sums);
    seen[static_cast<size_t>(rank)] = {a.cpu(), b.cpu(), c.cpu(), sums[0].cpu()};
  });
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  for (const auto& s : seen) {
    EXPECT_TRUE(s[0].equal(torch::full({1000}, 1.5)));
    EXPECT_TRUE(s[1].equal(torch::full({3}, 5.0, torch::kDouble)));
    EXPECT_TRUE(s[2].equal(torch::arange(5, torch::kFloat) * 2.0));
    EXPECT_TRUE(s[3].equal(torch::full({2}, 2, torch::kLong)));
  }
}

// torchrun's agent listens on MASTER_PORT before its workers start; rank 0 must not try to.
TEST(ProcessGroup, JoinsTheStoreOfATorchrunAgent) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
#if ADVFT_HAVE_DIST
  const int port = free_loopback_port();
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(30);
  c10d::TCPStore agent("127.0.0.1", options);
  agent.add("/worker/attempt_0/advft/arrived", 2);  // the failed first attempt's roll call
  std::array<int64_t, 2> sums{};
  const auto errors = as_ranks(
      2,
      [&](int rank, ProcessGroup& group) {
        std::vector<torch::Tensor> t{torch::tensor({rank + 1}, torch::kLong)};
        group.all_reduce_sum(t);
        sums[static_cast<size_t>(rank)] = t[0].item<int64_t>();
      },
      std::chrono::seconds(30),
      [](World& w) {
        w.agent_store = true;
        w.store_prefix = "/worker/attempt_1";
      },
      port);
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(sums, (std::array<int64_t, 2>{3, 3}));
  EXPECT_EQ(agent.add("/worker/attempt_1/advft/arrived", 0), 2);
#endif
}

TEST(ProcessGroup, NobodyComingIsOneLineNotAHang) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_DIST_ERROR(
      ProcessGroup::connect(local_world(0, 2, free_loopback_port()), std::chrono::seconds(2)),
      "rank 0 could not meet the other 1 process(es) at 127.0.0.1:");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(ProcessGroup, APeerThatLeavesIsADistErrorForTheOthers) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  const auto errors = as_ranks(2, [](int rank, ProcessGroup& group) {
    if (rank == 1) return;  // leaves: its group closes its connections
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::vector<torch::Tensor> t{torch::ones({4})};
    group.all_reduce_sum(t);
  });
  EXPECT_EQ(errors[1], "");
  EXPECT_NE(errors[0].find("distributed: rank 0 lost the other processes during a sum"),
            std::string::npos)
      << errors[0];
  EXPECT_EQ(errors[0].find('\n'), std::string::npos) << errors[0];
}

TEST(Shard, TheProcessesPartsMakeUpEachBatch) {
  std::vector<int64_t> order{9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  EXPECT_EQ(data::shard_order(order, 4, {0, 2}), (std::vector<int64_t>{9, 8, 5, 4}));
  EXPECT_EQ(data::shard_order(order, 4, {1, 2}), (std::vector<int64_t>{7, 6, 3, 2}));
  EXPECT_THROW(data::shard_order(order, 5, {0, 2}), c10::Error);

  data::Dataset set;
  set.images = torch::arange(46 * 3 * 2 * 2, torch::kLong)
                   .remainder(251)
                   .to(torch::kUInt8)
                   .reshape({46, 3, 2, 2});
  set.labels = torch::arange(46, torch::kLong);
  set.num_classes = 46;
  set.name = "test";
  for (const auto placement : {data::Placement::kDevice, data::Placement::kHost}) {
    data::BatchLoader whole(set, 12, true, true, 5, torch::kCPU, placement);
    std::vector<data::BatchLoader> parts;
    for (int rank = 0; rank < 3; ++rank)
      parts.emplace_back(set, 12, true, true, 5, torch::kCPU, placement, data::Shard{rank, 3});
    for (const auto& part : parts) {
      EXPECT_EQ(part.batches_per_epoch(), whole.batches_per_epoch());
      EXPECT_EQ(part.local_batch_size(), 4);
    }
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      for (int64_t b = 0; b < whole.batches_per_epoch(); ++b) {
        const data::Batch all = whole.batch(epoch, b);
        std::vector<torch::Tensor> images;
        std::vector<torch::Tensor> labels;
        for (auto& part : parts) {
          const data::Batch mine = part.batch(epoch, b);
          images.push_back(mine.images);
          labels.push_back(mine.labels);
        }
        EXPECT_TRUE(torch::cat(labels).equal(all.labels)) << "epoch " << epoch << " batch " << b;
        EXPECT_TRUE(torch::cat(images).equal(all.images));
      }
    }
  }
}

// A classifier without BatchNorm: with batch statistics, halves of a batch train differently
// from the whole one, and the equality below would only hold approximately.
class PlainNetImpl : public models::ClassifierImpl {
 public:
  PlainNetImpl() {
    conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 6, 3)));
    fc_ = register_module("fc", torch::nn::Linear(6, 4));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(conv_(x));
    return fc_(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(PlainNet);

// Three clean SGD steps (momentum, weight decay) of `net` on (x, y); its weights after them.
std::vector<torch::Tensor> three_steps(PlainNet net, const torch::Tensor& x, const torch::Tensor& y,
                                       ProcessGroup* group) {
  train::Sgd sgd(*net, config::OptimizerConfig{});
  train::LossScaler scaler(false);
  train::StepOptions options;
  options.adversarial = false;
  options.group = group;
  train::TrainStep step(*net, sgd, scaler, options);
  for (int i = 0; i < 3; ++i)
    step.run(x, y, 0.1);
  std::vector<torch::Tensor> weights;
  for (const auto& p : net->parameters())
    weights.push_back(p.detach().clone());
  return weights;
}

PlainNet same_net() {
  torch::manual_seed(3);
  return PlainNet();
}

TEST(DataParallelStep, TwoHalvesTrainExactlyLikeTheWholeBatch) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  torch::manual_seed(0);
  const torch::Tensor x = torch::rand({8, 3, 6, 6});
  const torch::Tensor y = torch::randint(0, 4, {8}, torch::kLong);
  const std::vector<torch::Tensor> whole = three_steps(same_net(), x, y, nullptr);
  std::array<PlainNet, 2> nets{same_net(), same_net()};  // made here: the seed is global
  std::array<std::vector<torch::Tensor>, 2> halves;
  const auto errors = as_ranks(2, [&](int rank, ProcessGroup& group) {
    halves[static_cast<size_t>(rank)] =
        three_steps(nets[static_cast<size_t>(rank)], x.narrow(0, 4 * rank, 4),
                    y.narrow(0, 4 * rank, 4), &group);
  });
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  // Each half alone would not: the test sees the average.
  const std::vector<torch::Tensor> alone =
      three_steps(same_net(), x.narrow(0, 0, 4), y.narrow(0, 0, 4), nullptr);
  for (size_t i = 0; i < whole.size(); ++i) {
    for (const auto& half : halves)
      EXPECT_TRUE(torch::allclose(half[i], whole[i], 1e-5, 1e-6)) << "parameter " << i;
    EXPECT_TRUE(halves[0][i].equal(halves[1][i]));
    EXPECT_FALSE(torch::allclose(alone[i], whole[i], 1e-5, 1e-6)) << "parameter " << i;
  }
}

TEST(DataParallelEval, ShardReportsAddUp) {
  if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
  std::array<eval::EvalReport, 2> combined;
  const auto errors = as_ranks(2, [&](int rank, ProcessGroup& group) {
    eval::EvalReport mine;
    mine.total = rank == 0 ? 50 : 49;
    mine.clean_correct = rank == 0 ? 40 : 30;
    mine.worst_case_correct = rank == 0 ? 20 : 9;
    mine.seconds = rank == 0 ? 1.5 : 2.25;
    mine.attacks.push_back({"PGD-10", {}, rank == 0 ? 25 : 14, 0.0, 0.0});
    combined[static_cast<size_t>(rank)] = eval::combine_over(mine, group);
  });
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  for (const auto& r : combined) {
    EXPECT_EQ(r.total, 99);
    EXPECT_EQ(r.clean_correct, 70);
    EXPECT_DOUBLE_EQ(r.clean_accuracy, 100.0 * 70 / 99);
    EXPECT_EQ(r.attacks[0].correct, 39);
    EXPECT_DOUBLE_EQ(r.attacks[0].accuracy, 100.0 * 39 / 99);
    EXPECT_DOUBLE_EQ(r.worst_case_accuracy, 100.0 * 29 / 99);
    EXPECT_DOUBLE_EQ(r.seconds, 2.25);
  }
}

// Two advft processes on one machine, as `torchrun --nproc-per-node=2 --no-python advft ...`
// starts them.
class DataParallelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!available()) GTEST_SKIP() << "built without c10d + Gloo";
    data_dir = tmp.file("cifar");
    testing::write_cifar10(data_dir, 100, 100);
    config_path = tmp.file("tiny.json");
    json config = testing::tiny_config(data_dir);
    config["train"]["log_every"] = 1;  // a step record per step, which the tests count
    testing::write_bytes(config_path, config.dump(2));
    port = free_loopback_port();
  }

  std::string environment(int rank, int size = 2) const {
    return "WORLD_SIZE=" + std::to_string(size) + " RANK=" + std::to_string(rank) +
           " LOCAL_RANK=" + std::to_string(rank) + " LOCAL_WORLD_SIZE=" + std::to_string(size) +
           " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " ADVFT_DIST_TIMEOUT=60";
  }

  // Starts `args` as every rank of a run of two; rank r's output goes to tmp/rank<r>.txt.
  std::vector<std::unique_ptr<testing::BackgroundAdvft>> start_both(const std::string& args) {
    std::vector<std::unique_ptr<testing::BackgroundAdvft>> ranks;
    for (int rank = 0; rank < 2; ++rank) {
      ranks.push_back(
          std::make_unique<testing::BackgroundAdvft>(args, output(rank), environment(rank)));
    }
    return ranks;
  }
  std::string output(int rank) const { return tmp.file("rank" + std::to_string(rank) + ".txt"); }

  testing::TempDir tmp;
  std::string data_dir;
  std::string config_path;
  int port = 0;
};

TEST_F(DataParallelCli, TwoProcessesTrainOneRunThatRankZeroWrites) {
  const std::string run = tmp.file("run");
  auto ranks = start_both("train --config " + config_path + " --out " + run + " --epochs 2");
  EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(600)), 0) << testing::read_bytes(output(0));
  EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 0) << testing::read_bytes(output(1));

  const std::string log0 = testing::read_bytes(output(0));
  EXPECT_NE(log0.find("data-parallel over 2 processes: 25 images of each batch of 50"),
            std::string::npos)
      << log0;
  // Rank 1 says nothing but warnings, and prints no results.
  const std::string log1 = testing::read_bytes(output(1));
  EXPECT_EQ(log1.find("info"), std::string::npos) << log1;
  EXPECT_EQ(log1.find("\"best_epoch\""), std::string::npos) << log1;

  const json results = json::parse(testing::read_bytes(run + "/results.json"));
  EXPECT_EQ(results["val_images"], 100);  // both shards, counted once
  EXPECT_EQ(results["steps"], 16);        // 400 training images / 50 a batch, 2 epochs
  int steps = 0;
  int epochs = 0;
  for (const json& record : io::read_jsonl(run + "/metrics.jsonl")) {
    if (record["type"] == "step") ++steps;
    if (record["type"] == "epoch") {
      ++epochs;
      EXPECT_GE(record["val_robust_accuracy"].get<double>(), 0.0);
    }
  }
  EXPECT_EQ(steps, 16);  // one record per step, not one per process
  EXPECT_EQ(epochs, 2);
  EXPECT_NO_THROW(io::load_checkpoint(run + "/last.safetensors"));
}

// Both processes on this machine's first GPU (cuda:0 is kept as written): the gradients and the
// records' sums are CUDA tensors through Gloo, and the validation keeps its CUDA graphs.
TEST_F(DataParallelCli, TwoProcessesTrainOnTheGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const std::string run = tmp.file("run");
  auto ranks = start_both("train --config " + config_path + " --out " + run +
                          " --device cuda:0 --epochs 2 --set precision=bf16");
  EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(600)), 0) << testing::read_bytes(output(0));
  EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 0) << testing::read_bytes(output(1));
  const json results = json::parse(testing::read_bytes(run + "/results.json"));
  EXPECT_EQ(results["val_images"], 100);
  EXPECT_GT(results["final"]["val_clean_accuracy"].get<double>(), 10.0);  // it learned something
}

// Each process evaluates every other image of --limit's sample; rank 0 reports them all. FGSM
// and the clean pass are the same per image whatever the batch, so the counts are one process's.
TEST_F(DataParallelCli, EvalSplitsTheTestSetAndCountsItOnce) {
  const std::string run = tmp.file("run");
  ASSERT_EQ(testing::run_advft("train --config " + config_path + " --out " + run).exit_code, 0);
  const std::string common = "eval --checkpoint " + run + "/last.safetensors --attack fgsm " +
                             "--limit 75 --batch-size 20 --threads 1 --json ";
  const testing::RunResult single = testing::run_advft(common + tmp.file("one.json"));
  ASSERT_EQ(single.exit_code, 0) << single.output;
  auto ranks = start_both(common + tmp.file("two.json"));
  EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(300)), 0) << testing::read_bytes(output(0));
  EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 0) << testing::read_bytes(output(1));
  const json one = json::parse(testing::read_bytes(tmp.file("one.json")));
  const json two = json::parse(testing::read_bytes(tmp.file("two.json")));
  EXPECT_EQ(two["total"], 75);
  EXPECT_EQ(two["clean"]["correct"], one["clean"]["correct"]);
  EXPECT_EQ(two["attacks"][0]["correct"], one["attacks"][0]["correct"]);
  // The table once, from rank 0.
  EXPECT_NE(testing::read_bytes(output(0)).find("FGSM"), std::string::npos);
  EXPECT_EQ(testing::read_bytes(output(1)).find("FGSM"), std::string::npos)
      << testing::read_bytes(output(1));
}

// Step records every 3 steps: a stop between two leaves a logging window that the resumed
// processes complete, so the metrics read as the uninterrupted run's.
TEST_F(DataParallelCli, SigtermStopsBothAtOneStepAndTheyResume) {
  const std::string args = "train --config " + config_path + " --epochs 4 --set train.log_every=3";
  const std::string ref = tmp.file("ref");
  {
    auto ranks = start_both(args + " --out " + ref);
    ASSERT_EQ(ranks[0]->wait(std::chrono::seconds(300)), 0) << testing::read_bytes(output(0));
    ASSERT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 0) << testing::read_bytes(output(1));
  }
  const std::string run = tmp.file("run");
  port = free_loopback_port();
  {
    auto ranks = start_both(args + " --out " + run);
    // Until step 9's record (after 3, 6, 8 and epoch 1's): the stop comes at 10 or 11, most often.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    while (std::chrono::steady_clock::now() < deadline &&
           !(fs::exists(run + "/metrics.jsonl") &&
             io::read_jsonl(run + "/metrics.jsonl").size() >= 5)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // A cluster scheduler's stop reaches each process at its own moment.
    ranks[1]->signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ranks[0]->signal(SIGTERM);
    EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(300)), 143) << testing::read_bytes(output(0));
    EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 143) << testing::read_bytes(output(1));
  }
  ASSERT_TRUE(fs::exists(run + "/last.safetensors")) << testing::read_bytes(output(0));
  const json state = io::load_checkpoint(run + "/last.safetensors").train_state;
  const int64_t stopped_at = state["next_step"].get<int64_t>();
  EXPECT_GT(stopped_at, 0);
  EXPECT_LT(stopped_at, 32);
  int64_t last_record = stopped_at;  // the last step with a record: every 3rd, and epochs' ends
  while (last_record % 3 != 0 && last_record % 8 != 0)
    --last_record;
  const json window = state.value("log_window", json());
  if (last_record < stopped_at) {
    ASSERT_TRUE(window.is_object()) << state.dump();
    EXPECT_EQ(window.value("steps", int64_t{0}), stopped_at - last_record) << state.dump();
  } else {
    EXPECT_TRUE(window.is_null()) << state.dump();
  }

  port = free_loopback_port();
  auto ranks = start_both("train --resume " + run);
  EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(600)), 0) << testing::read_bytes(output(0));
  EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 0) << testing::read_bytes(output(1));
  const json results = json::parse(testing::read_bytes(run + "/results.json"));
  EXPECT_EQ(results["steps"], 32);
  EXPECT_NE(testing::read_bytes(output(0)).find("resuming at step " + std::to_string(stopped_at)),
            std::string::npos);
  const std::vector<json> reference = io::read_jsonl(ref + "/metrics.jsonl");
  const std::vector<json> resumed = io::read_jsonl(run + "/metrics.jsonl");
  ASSERT_EQ(resumed.size(), reference.size());
  for (std::size_t i = 0; i < reference.size(); ++i) {
    for (const char* key : {"type", "step", "epoch", "lr", "loss", "train_adv_accuracy",
                            "val_clean_accuracy", "val_robust_accuracy"})
      EXPECT_EQ(resumed[i].value(key, json()), reference[i].value(key, json())) << i << " " << key;
  }
}

TEST_F(DataParallelCli, AProcessThatDiesStopsTheOtherWithOneLine) {
  const std::string run = tmp.file("run");
  auto ranks = start_both("train --config " + config_path + " --out " + run + " --epochs 20");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (
      std::chrono::steady_clock::now() < deadline &&
      !(fs::exists(run + "/metrics.jsonl") && io::read_jsonl(run + "/metrics.jsonl").size() >= 2)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ranks[1]->signal(SIGKILL);  // out of memory, a node gone
  EXPECT_EQ(ranks[1]->wait(std::chrono::seconds(60)), 128 + SIGKILL);
  EXPECT_EQ(ranks[0]->wait(std::chrono::seconds(120)), kExitDistributed)
      << testing::read_bytes(output(0));
  const std::string log0 = testing::read_bytes(output(0));
  EXPECT_NE(log0.find("error: distributed: rank 0 lost the other processes during"),
            std::string::npos)
      << log0;
}

// advft as its own launcher, for a machine without torchrun.
TEST_F(DataParallelCli, NprocStartsTheProcessesItself) {
  EXPECT_EQ(without_flag({"advft", "train", "--nproc", "4", "--out", "x", "--nproc=2"}, "--nproc"),
            (std::vector<std::string>{"advft", "train", "--out", "x"}));
  const std::string run = tmp.file("run");
  const testing::RunResult r =
      testing::run_advft("train --config " + config_path + " --out " + run + " --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--nproc 2: starting 2 processes on this machine"), std::string::npos);
  EXPECT_NE(r.output.find("data-parallel over 2 processes"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(testing::read_bytes(run + "/results.json"))["val_images"], 100);

  // The processes' failure is the launcher's exit code, named in one more line.
  const testing::RunResult bad =
      testing::run_advft("train --config " + config_path + " --out " + tmp.file("bad") +
                         " --nproc 2 --set train.batch_size=51");
  EXPECT_EQ(bad.exit_code, kExitConfig) << bad.output;
  EXPECT_NE(bad.output.find(" ended with exit code 3 (its log above says why)"), std::string::npos)
      << bad.output;

  // Under a launcher already: a usage error, before anything starts.
  testing::BackgroundAdvft nested("train --config " + config_path + " --nproc 2", output(0),
                                  environment(0));
  EXPECT_EQ(nested.wait(std::chrono::seconds(60)), kExitUsage);
  EXPECT_NE(testing::read_bytes(output(0)).find("--nproc starts its own processes"),
            std::string::npos);
}

TEST_F(DataParallelCli, SigtermToTheLauncherStopsItsProcessesAndOneResumes) {
  const std::string run = tmp.file("run");
  testing::BackgroundAdvft launcher(
      "train --config " + config_path + " --out " + run + " --epochs 4 --nproc 2", output(0));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (
      std::chrono::steady_clock::now() < deadline &&
      !(fs::exists(run + "/metrics.jsonl") && io::read_jsonl(run + "/metrics.jsonl").size() >= 3)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  launcher.signal(SIGTERM);  // what a scheduler sends; the launcher passes it on once
  EXPECT_EQ(launcher.wait(std::chrono::seconds(300)), 143) << testing::read_bytes(output(0));
  ASSERT_TRUE(fs::exists(run + "/last.safetensors")) << testing::read_bytes(output(0));
  // One process resumes what two began: the batches are the same.
  const testing::RunResult resumed = testing::run_advft("train --resume " + run);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json::parse(testing::read_bytes(run + "/results.json"))["steps"], 32);
}

TEST_F(DataParallelCli, ABatchThatDoesNotSplitAndAMissingPeerAreOneLineEach) {
  const std::string run = tmp.file("run");
  auto ranks =
      start_both("train --config " + config_path + " --out " + run + " --set train.batch_size=51");
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(ranks[static_cast<size_t>(rank)]->wait(std::chrono::seconds(120)), kExitConfig);
    EXPECT_NE(testing::read_bytes(output(rank))
                  .find("config: train.batch_size = 51 does not split over the run's 2 "
                        "processes; make it a multiple of 2"),
              std::string::npos)
        << testing::read_bytes(output(rank));
  }
  EXPECT_FALSE(fs::exists(run));  // nothing was trained: the directory went again

  // Rank 0 alone: it waits ADVFT_DIST_TIMEOUT, then says so.
  testing::BackgroundAdvft alone("train --config " + config_path + " --out " + run, output(0),
                                 "WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                     std::to_string(free_loopback_port()) +
                                     " ADVFT_DIST_TIMEOUT=2");
  EXPECT_EQ(alone.wait(std::chrono::seconds(60)), kExitDistributed);
  EXPECT_NE(testing::read_bytes(output(0)).find("could not meet the other 1 process(es)"),
            std::string::npos)
      << testing::read_bytes(output(0));

  // A launcher's variable that is wrong, before anything waits.
  testing::BackgroundAdvft wrong("train --config " + config_path + " --out " + run, output(1),
                                 "WORLD_SIZE=2 RANK=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1");
  EXPECT_EQ(wrong.wait(std::chrono::seconds(60)), kExitDistributed);
  EXPECT_NE(testing::read_bytes(output(1)).find("RANK = '2' (set by torchrun)"), std::string::npos);
}

}  // namespace
}  // namespace advft::dist
