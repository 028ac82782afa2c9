#include "advft/dist/world.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "advft/data/dataset.h"
#include "advft/error.h"

namespace advft::dist {
namespace {

// The whole of `text` as a base-10 integer in [low, high], or a DistError naming `name`.
int parse_int(const char* name, const std::string& text, int low, int high,
              const std::string& launcher) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < low || value > high) {
    throw DistError(std::string(name) + " = '" + text + "' (set by " + launcher +
                    ") is not a whole number in [" + std::to_string(low) + ", " +
                    std::to_string(high) + "]");
  }
  return static_cast<int>(value);
}

std::string required(const EnvironmentFn& env, const char* name, const std::string& launcher,
                     const std::string& hint) {
  const char* value = env(name);
  if (value == nullptr || *value == '\0') {
    throw DistError(std::string(name) + " is not set, but " + launcher + " started " +
                    "several processes; " + hint);
  }
  return value;
}

std::string optional(const EnvironmentFn& env, const char* name, const std::string& fallback) {
  const char* value = env(name);
  return value == nullptr || *value == '\0' ? fallback : std::string(value);
}

constexpr int kMaxProcesses = 1 << 20;
constexpr const char* kDefaultPort = "29500";  // torch.distributed's

World from_torchrun(const EnvironmentFn& env) {
  const std::string who = "torchrun";
  const std::string hint = "start advft with torchrun --no-python advft ... or set it";
  World w;
  w.launcher = who;
  w.size = parse_int("WORLD_SIZE", required(env, "WORLD_SIZE", who, hint), 1, kMaxProcesses, who);
  if (!w.distributed()) return World{};
  w.rank = parse_int("RANK", required(env, "RANK", who, hint), 0, w.size - 1, who);
  w.local_size =
      parse_int("LOCAL_WORLD_SIZE", optional(env, "LOCAL_WORLD_SIZE", "1"), 1, w.size, who);
  w.local_rank = parse_int("LOCAL_RANK", optional(env, "LOCAL_RANK", "0"), 0, w.size - 1, who);
  w.master_addr = required(env, "MASTER_ADDR", who, hint);
  w.master_port = parse_int("MASTER_PORT", required(env, "MASTER_PORT", who, hint), 1, 65535, who);
  if (optional(env, "TORCHELASTIC_USE_AGENT_STORE", "") == "True") {
    w.agent_store = true;
    w.store_prefix = "/worker/attempt_" +
                     std::to_string(parse_int("TORCHELASTIC_RESTART_COUNT",
                                              optional(env, "TORCHELASTIC_RESTART_COUNT", "0"), 0,
                                              kMaxProcesses, who));
  }
  return w;
}

// SLURM_STEP_TASKS_PER_NODE looks like "4(x2)" or "2,1": this node's count is not in it, the
// first node's is a fair guess for dividing the cores (a homogeneous job).
int first_tasks_per_node(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 6) return 1;
  return std::max(1, std::atoi(text.substr(0, digits).c_str()));
}

World from_slurm(const EnvironmentFn& env, int tasks) {
  const std::string who = "srun";
  World w;
  w.launcher = "slurm";
  w.size = tasks;
  w.rank = parse_int("SLURM_PROCID", required(env, "SLURM_PROCID", who, "run advft under srun"), 0,
                     w.size - 1, who);
  w.local_rank =
      parse_int("SLURM_LOCALID", optional(env, "SLURM_LOCALID", "0"), 0, w.size - 1, who);
  w.local_size =
      std::min(w.size, first_tasks_per_node(optional(env, "SLURM_STEP_TASKS_PER_NODE", "1")));
  w.master_addr = required(env, "MASTER_ADDR", who,
                           "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" "
                           "| head -n 1) in the job script before srun");
  w.master_port =
      parse_int("MASTER_PORT", optional(env, "MASTER_PORT", kDefaultPort), 1, 65535, who);
  return w;
}

}  // namespace

World world_from_environment(const EnvironmentFn& env) {
  if (env("WORLD_SIZE") != nullptr) return from_torchrun(env);
  if (const char* tasks = env("SLURM_STEP_NUM_TASKS")) {
    const int n = parse_int("SLURM_STEP_NUM_TASKS", tasks, 1, kMaxProcesses, "srun");
    if (n > 1) return from_slurm(env, n);
  }
  return World{};
}

uint64_t process_seed(uint64_t seed, const World& world) {
  if (world.rank == 0) return seed;
  return data::mix_seed(seed ^ data::mix_seed(static_cast<uint64_t>(world.rank)));
}

int64_t cpu_threads_per_process(const World& world) {
  if (world.local_size <= 1) return 0;
  const int64_t cores = std::thread::hardware_concurrency();
  return std::max<int64_t>(1, cores / world.local_size);
}

std::string describe(const World& world) {
  if (!world.distributed()) return "a single process";
  return "rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) + " (local " +
         std::to_string(world.local_rank) + " of " + std::to_string(world.local_size) + ", " +
         world.launcher + ")";
}

}  // namespace advft::dist
