#pragma once
// Test fixtures: CIFAR-format files written by the tests themselves (there is no CIFAR download
// here), with a learnable signal, and a runner for the real advft binary.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace advft::testing {

/// Writes a CIFAR-10 binary set (data_batch_1..5.bin, test_batch.bin) into `dir`: each class
/// has its own colour and a bright square at a class-dependent place, plus noise, so that a
/// small network learns it in one epoch.
inline void write_cifar10(const std::string& dir, int per_batch, int test_count,
                          unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-40, 40);
  auto record = [&](int label) {
    std::string r(1 + 3072, '\0');
    r[0] = static_cast<char>(label);
    for (int c = 0; c < 3; ++c) {
      int base = 60 + 15 * ((label + c * 3) % 10);
      for (int i = 0; i < 1024; ++i) {
        int row = i / 32, col = i % 32;
        bool square = row / 8 == label % 4 && col / 8 == (label / 4 + c) % 4;
        int v = base + (square ? 90 : 0) + noise(rng);
        r[1 + c * 1024 + i] = static_cast<char>(std::clamp(v, 0, 255));
      }
    }
    return r;
  };
  auto write_set = [&](const std::string& name, int count) {
    std::string bytes;
    for (int i = 0; i < count; ++i)
      bytes += record(static_cast<int>(rng() % 10));
    write_bytes(dir + "/" + name, bytes);
  };
  for (int b = 1; b <= 5; ++b)
    write_set("data_batch_" + std::to_string(b) + ".bin", per_batch);
  write_set("test_batch.bin", test_count);
}

/// What a run of the binary printed and returned.
struct RunResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
};

/// Runs `advft <args>` through the shell (args are shell words) and captures everything.
inline RunResult run_advft(const std::string& args) {
  std::string command = std::string(ADVFT_BINARY) + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace advft::testing
