#include <gtest/gtest.h>

#include <atomic>
#include <csignal>

#include "advft/error.h"
#include "advft/runtime/background_job.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/device.h"
#include "advft/runtime/signals.h"
#include "advft/runtime/switch.h"
#include "advft/runtime/version.h"

namespace advft::runtime {
namespace {

TEST(Device, ResolvesNamesAndRefusesMissingCuda) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  if (torch::cuda::is_available()) {
    EXPECT_TRUE(resolve_device("auto").is_cuda());
  } else {
    EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCPU));
    EXPECT_THROW(resolve_device("cuda"), ConfigError);
    EXPECT_THROW(resolve_device("cuda:1"), ConfigError);
  }
  EXPECT_THROW(resolve_device("tpu"), ConfigError);
}

// A malformed name is a typo on every machine, with or without a GPU, and says so.
TEST(Device, RefusesMalformedCudaNamesAsTypos) {
  for (const std::string name :
       {"cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda:99999", "CUDA", "cuda0", " cuda"}) {
    try {
      resolve_device(name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("must be auto, cpu, cuda or cuda:N"), std::string::npos)
          << name << ": " << e.what();
    }
  }
  EXPECT_NO_THROW(check_device_name("cuda:0"));
  EXPECT_NO_THROW(check_device_name("cuda:15"));
}

// cuDNN's autotuning reads LibTorch's global limit at each new convolution shape.
TEST(Device, SetsCudnnBenchmarkLimit) {
  const int before = at::globalContext().benchmarkLimitCuDNN();
  set_cudnn_benchmark_limit(0, torch::kCPU);
  EXPECT_EQ(at::globalContext().benchmarkLimitCuDNN(), 0);
  set_cudnn_benchmark_limit(25, torch::kCPU);
  EXPECT_EQ(at::globalContext().benchmarkLimitCuDNN(), 25);
  EXPECT_THROW(set_cudnn_benchmark_limit(-1, torch::kCPU), ConfigError);
  EXPECT_THROW(set_cudnn_benchmark_limit(int64_t{1} << 32, torch::kCPU), ConfigError);
  EXPECT_EQ(at::globalContext().benchmarkLimitCuDNN(), 25);
  set_cudnn_benchmark_limit(before, torch::kCPU);
}

// The CUDA context is made beside the data loading (Device.WarmupMakesTheContext..._CUDA); on the
// CPU there is nothing to make, and nothing to wait for.
TEST(Device, WarmupDoesNothingForTheCpu) {
  BackgroundJob cpu = warm_up_device(torch::kCPU);
  EXPECT_FALSE(cpu.pending());
  EXPECT_NO_THROW(cpu.wait());
}

// Work beside the caller's: joined and rethrown (once) at wait(), only logged when nobody waits,
// and a new job takes a variable's place only after the old one has finished.
TEST(BackgroundJob, RethrowsAtWaitAndOnlyLogsInTheDestructor) {
  std::atomic<int> finished{0};
  BackgroundJob job("test job", [&finished] { ++finished; });
  EXPECT_TRUE(job.pending());
  job = BackgroundJob("second test job", [&finished] { finished += 10; });
  EXPECT_TRUE(job.pending());
  job.wait();
  EXPECT_EQ(finished.load(), 11);
  EXPECT_FALSE(job.pending());
  BackgroundJob failing("test job", [] { throw Error("no space left on the device", 6); });
  EXPECT_THROW(failing.wait(), Error);
  EXPECT_NO_THROW(failing.wait());
  EXPECT_NO_THROW(BackgroundJob("unwaited test job", [] { throw Error("lost", 6); }));
}

// The message of a ConfigError thrown by `call`, or "" if it threw none.
template <typename Call>
std::string config_error_of(Call call) {
  try {
    call();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Switch, ParsesAutoOnOffAndNamesTheSettingOtherwise) {
  EXPECT_EQ(parse_switch("auto", "x"), Switch::kAuto);
  EXPECT_EQ(parse_switch("on", "x"), Switch::kOn);
  EXPECT_EQ(parse_switch("off", "x"), Switch::kOff);
  EXPECT_EQ(config_error_of([] { parse_switch("On", "channels_last"); }),
            "config: channels_last = \"On\": must be auto, on or off");
  EXPECT_NE(config_error_of([] { parse_switch("", "--graphs"); }), "");
}

TEST(Switch, OnWhereUnavailableIsRefusedWithWhatItNeeds) {
  EXPECT_FALSE(resolve_switch("off", true, "x", "a GPU"));
  EXPECT_TRUE(resolve_switch("auto", true, "x", "a GPU"));
  EXPECT_FALSE(resolve_switch("auto", false, "x", "a GPU"));
  EXPECT_TRUE(resolve_switch("on", true, "x", "a GPU"));
  EXPECT_EQ(config_error_of([] { resolve_switch("on", false, "fused_bn_relu", "a GPU"); }),
            "config: fused_bn_relu = \"on\" needs a GPU; use auto or off");
  EXPECT_NE(config_error_of([] { resolve_switch("yes", true, "x", "a GPU"); }), "");
}

TEST(CudaGraphs, SettingResolvesPerDeviceAndRefusesOnWithoutAGpu) {
  EXPECT_EQ(resolve_graph_mode("off", torch::kCPU, "cuda_graphs"), GraphMode::kOff);
  EXPECT_EQ(resolve_graph_mode("auto", torch::kCPU, "cuda_graphs"), GraphMode::kOff);
  try {
    resolve_graph_mode("on", torch::kCPU, "cuda_graphs");
    ADD_FAILURE() << "cuda_graphs = on on the CPU must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda_graphs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_graph_mode("yes", torch::kCPU, "--graphs"), ConfigError);
  if (cuda_graphs_available(torch::Device(torch::kCUDA, 0))) {
    const torch::Device gpu(torch::kCUDA, 0);
    EXPECT_EQ(resolve_graph_mode("auto", gpu, "cuda_graphs"), GraphMode::kCuda);
    EXPECT_EQ(resolve_graph_mode("auto", gpu, "cuda_graphs", "fp16"), GraphMode::kOff);
    EXPECT_THROW(resolve_graph_mode("on", gpu, "cuda_graphs", "fp16"), ConfigError);
  }
}

// What the trainer relies on, checked without a GPU through the emulated mode: warm-up calls
// see the caller's tensors, later calls run on static copies refilled in place, and a call of
// another shape (a last partial batch) runs eagerly.
TEST(CudaGraphs, GraphedCallWarmsUpThenReplaysOnStaticInputs) {
  std::vector<torch::Tensor> seen;
  GraphedCall call(
      [&](const std::vector<torch::Tensor>& in) {
        seen.push_back(in[0]);
        return std::vector<torch::Tensor>{in[0] * 2};
      },
      GraphMode::kEmulated, /*warmup=*/2, "doubling");
  const torch::Tensor a = torch::arange(4.0);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(call({a})[0].equal(a * 2));
    EXPECT_TRUE(seen.back().is_same(a));  // eager: the caller's tensor itself
  }
  EXPECT_FALSE(call.captured());
  const torch::Tensor b = torch::arange(4.0) + 10;
  EXPECT_TRUE(call({b})[0].equal(b * 2));  // capture, then the replay that runs this call
  ASSERT_TRUE(call.captured());
  const torch::Tensor static_input = seen.back();
  EXPECT_FALSE(static_input.is_same(b));
  const torch::Tensor c = torch::arange(4.0) - 3;
  EXPECT_TRUE(call({c})[0].equal(c * 2));
  EXPECT_TRUE(seen.back().is_same(static_input));  // refilled in place, not reallocated
  EXPECT_EQ(call.replays(), 2);
  const torch::Tensor partial = torch::arange(3.0);
  EXPECT_TRUE(call({partial})[0].equal(partial * 2));
  EXPECT_TRUE(seen.back().is_same(partial));
  EXPECT_EQ(call.replays(), 2);
}

// The capture is never a shape's first call (cuDNN's benchmark mode would synchronize inside it):
// an evaluation of two full batches and a short third one runs all three eagerly.
TEST(CudaGraphs, WarmUpCountsCallsOfTheShapeItCaptures) {
  int calls = 0;
  GraphedCall call(
      [&](const std::vector<torch::Tensor>& in) {
        ++calls;
        return std::vector<torch::Tensor>{in[0] + 1};
      },
      GraphMode::kEmulated, /*warmup=*/2, "increment");
  call({torch::ones({4})});
  call({torch::ones({4})});
  call({torch::ones({3})});  // the third call, but this shape's first
  EXPECT_FALSE(call.captured());
  call({torch::ones({3})});
  EXPECT_FALSE(call.captured());
  EXPECT_TRUE(call({torch::ones({3})})[0].equal(torch::full({3}, 2.0)));  // warmed up: captured
  EXPECT_TRUE(call.captured());
  EXPECT_EQ(call.replays(), 1);
  EXPECT_TRUE(call({torch::ones({4})})[0].equal(torch::full({4}, 2.0)));  // another shape: eager
  EXPECT_EQ(call.replays(), 1);
}

TEST(CudaGraphs, OffRunsEveryCallEagerly) {
  int calls = 0;
  GraphedCall call(
      [&](const std::vector<torch::Tensor>& in) {
        ++calls;
        return std::vector<torch::Tensor>{in[0] + 1};
      },
      GraphMode::kOff, /*warmup=*/0, "increment");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(call({torch::ones({2})})[0].equal(torch::full({2}, 2.0)));
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(call.captured());
}

TEST(Signals, HandlerRecordsTheSignalInsteadOfKilling) {
  clear_stop_signal();
  install_stop_handlers();
  std::raise(SIGTERM);
  EXPECT_EQ(stop_signal(), SIGTERM);
  clear_stop_signal();
  EXPECT_EQ(stop_signal(), 0);
  install_stop_handlers();  // SA_RESETHAND: re-arm after each delivery
  std::raise(SIGINT);
  EXPECT_EQ(stop_signal(), SIGINT);
  clear_stop_signal();
  install_stop_handlers();
}

TEST(Version, NamesAdvftAndLibTorch) {
  std::string v = version_string();
  EXPECT_EQ(v.rfind("advft ", 0), 0u);
  EXPECT_NE(v.find("LibTorch " + torch_version()), std::string::npos);
}

}  // namespace
}  // namespace advft::runtime
