#pragma once
// Test fixtures: CIFAR-format files written by the tests themselves (there is no CIFAR download
// here), with a learnable signal; PyTorch checkpoints written by the Python scripts of
// tests/fixtures; and a runner for the real advft binary.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/io/directory.h"
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

/// The folder a Python fixture script filled, or how running it failed.
struct FixtureFiles {
  std::filesystem::path dir;
  int status = -1;      ///< the script's exit status; 0 when `dir` is complete
  std::string command;  ///< what ran, for the failure message
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

namespace detail {

/// Debian's interpreter, the one with python3-torch and python3-torchvision.
constexpr const char* kFixturePython = "/usr/bin/python3";

/// Holds an exclusive flock on `path` for the lifetime of the object.
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(::open(path.c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

constexpr const char* kLockName = "lock";

/// Removes what earlier versions of a script left in `script_dir` (hundreds of MB each), but not
/// the lock, `keep`, nor the staging folders of processes working on `keep`.
inline void prune_old_versions(const std::filesystem::path& script_dir, const std::string& keep) {
  std::error_code ec;
  for (const std::string& name : advft::io::directory_names(script_dir.string(), ec)) {
    if (name != kLockName && name.rfind(keep, 0) != 0)
      advft::io::remove_tree((script_dir / name).string(), ec);
  }
}

inline FixtureFiles run_fixture_script(const std::string& script_name) {
  namespace fs = std::filesystem;
  FixtureFiles f;
  const std::string script = std::string(ADVFT_SOURCE_DIR) + "/tests/fixtures/" + script_name;
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(read_bytes(script)));
  const fs::path script_dir =
      fs::path(ADVFT_BINARY).parent_path() / "python_fixtures" / fs::path(script_name).stem();
  f.dir = script_dir / hash;
  fs::create_directories(script_dir);
  // Under `ctest -j` several test processes start at once: one runs the script, the rest wait
  // for its files instead of each writing their own copy.
  const FileLock lock((script_dir / kLockName).string());
  if (fs::exists(f.dir / "complete")) {
    f.status = 0;
    return f;
  }
  prune_old_versions(script_dir, hash);
  // Written aside and published by an atomic rename, so that an interrupted run never leaves a
  // folder that looks complete.
  const fs::path staging = f.dir.string() + ".tmp" + std::to_string(::getpid());
  fs::create_directories(staging);
  f.command = std::string(kFixturePython) + " '" + script + "' '" + staging.string() + "'";
  f.status = std::system(f.command.c_str());
  std::error_code ec;
  if (f.status == 0) {
    write_bytes((staging / "complete").string(), "");
    fs::rename(staging, f.dir, ec);
  }
  advft::io::remove_tree(staging.string(), ec);
  if (f.status == 0 && !fs::exists(f.dir / "complete")) f.status = -1;
  return f;
}

}  // namespace detail

/// The files tests/fixtures/<script_name> writes into the folder its argument names, made with
/// Debian's python3-torch. Importing torch takes seconds and CTest runs every test in its own
/// process, so the script runs once per build and script version: its output is cached in the
/// build directory under the hash of the script's text. A failed run is reported through
/// `status` (a missing python3-torch is a broken test set-up, not a reason to skip).
inline const FixtureFiles& python_fixtures(const std::string& script_name) {
  static std::mutex mutex;
  static std::map<std::string, FixtureFiles> made;
  const std::lock_guard<std::mutex> guard(mutex);
  auto it = made.find(script_name);
  if (it == made.end())
    it = made.emplace(script_name, detail::run_fixture_script(script_name)).first;
  return it->second;
}

/// What a run of the binary printed and returned.
struct RunResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
};

/// Runs a shell command line and captures its stdout and stderr together.
inline RunResult run_command(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
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

/// Runs `advft <args>` through the shell (args are shell words) and captures everything.
inline RunResult run_advft(const std::string& args) {
  return run_command(std::string(ADVFT_BINARY) + " " + args);
}

/// `advft <args>` started in the background (args are shell words), its stdout and stderr going
/// to `output_file`: for tests that signal a command while it runs, or run several at once.
/// `environment` ("NAME=value ..."), when given, is added to its environment. A process still
/// running when this goes out of scope is killed.
class BackgroundAdvft {
 public:
  BackgroundAdvft(const std::string& args, const std::string& output_file,
                  const std::string& environment = "") {
    const std::string command = "exec " + (environment.empty() ? "" : "env " + environment + " ") +
                                std::string(ADVFT_BINARY) + " " + args + " >" + output_file +
                                " 2>&1";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~BackgroundAdvft() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  BackgroundAdvft(const BackgroundAdvft&) = delete;
  BackgroundAdvft& operator=(const BackgroundAdvft&) = delete;

  bool started() const { return pid_ > 0; }
  void signal(int signal_number) const { ::kill(pid_, signal_number); }

  /// The exit code (128 + N when signal N killed it), or -1 when it is still running after
  /// `limit`: a command that ignores a stop request fails its test instead of hanging it.
  int wait(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// A deliberately small recipe: a one-stage pre-activation ResNet of width 8 on 32x32 images.
inline nlohmann::json tiny_config(const std::string& data_dir) {
  nlohmann::json config = nlohmann::json::parse(R"({
    "model": {"arch": "preact_resnet", "blocks": [1], "width": 8, "num_classes": 10,
              "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "data": {"dataset": "cifar10", "val_size": 100, "crop_padding": 2, "horizontal_flip": true},
    "attack": {"eps": "8/255", "step_size": "4/255", "steps": 2},
    "train": {"epochs": 1, "batch_size": 50, "log_every": 2, "val_batch_size": 100,
              "val_attack": {"eps": "8/255", "step_size": "4/255", "steps": 2}},
    "eval": {"batch_size": 100, "attacks": ["fgsm", "pgd:steps=3"]},
    "threads": 1
  })");
  config["data"]["dir"] = data_dir;
  return config;
}

/// A run of `advft bench` and the JSON it wrote (null when it failed).
struct BenchRun {
  RunResult run;
  nlohmann::json json;
};

/// Runs `advft bench <args> --json <a temporary file>`.
inline BenchRun run_bench(const std::string& args) {
  TempDir dir;
  BenchRun b{run_advft("bench " + args + " --json " + dir.file("bench.json")), nullptr};
  if (b.run.exit_code == 0) b.json = nlohmann::json::parse(read_bytes(dir.file("bench.json")));
  return b;
}

}  // namespace advft::testing
