#include <gtest/gtest.h>

#include <csignal>

#include "advft/error.h"
#include "advft/runtime/device.h"
#include "advft/runtime/signals.h"
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
