#pragma once
// Which process of a data-parallel run this one is, as its launcher says: torchrun's environment
// (also torch.distributed.launch's and most cluster scripts'), or Slurm's srun.
#include <cstdint>
#include <functional>
#include <string>

namespace advft::dist {

/// One process's place in a run of `size` processes (one per GPU).
struct World {
  int rank = 0;             ///< 0 .. size-1; rank 0 writes the run directory and the log
  int size = 1;             ///< processes in the run
  int local_rank = 0;       ///< among the processes on this machine: picks this process's GPU
  int local_size = 1;       ///< processes on this machine: they share its CPU cores
  std::string master_addr;  ///< the host where rank 0 listens for the others
  int master_port = 0;
  std::string launcher;  ///< "torchrun" or "slurm"; "" for a single process
  /// torchrun's agent already serves the store at master_addr:master_port
  /// (TORCHELASTIC_USE_AGENT_STORE=True, PyTorch 2.x): every rank joins it as a client, under
  /// `store_prefix` ("/worker/attempt_<TORCHELASTIC_RESTART_COUNT>"), as torch.distributed does.
  bool agent_store = false;
  std::string store_prefix;

  bool distributed() const { return size > 1; }
};

/// Reads an environment variable (nullptr when unset); std::getenv in the program.
using EnvironmentFn = std::function<const char*(const char*)>;

/// The world as the launcher set it: WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
/// and MASTER_PORT (torchrun, with TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT
/// when its agent hosts the store), else an srun step of several tasks (SLURM_STEP_NUM_TASKS,
/// SLURM_PROCID, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE, with MASTER_ADDR from the job script
/// and MASTER_PORT 29500 unless set), else a single process. A sbatch script's own shell is not
/// an srun step and stays a single process. Throws DistError naming the variable that is missing
/// or wrong.
World world_from_environment(const EnvironmentFn& env);

/// The seed of process `world.rank`'s own random draws (crops, attack starts): `seed` itself for
/// rank 0 and a single process, unrelated seeds for the others.
uint64_t process_seed(uint64_t seed, const World& world);

/// CPU threads for one process when none were asked for: the machine's cores shared by the
/// processes on it (all of them for a single process: 0, LibTorch's default).
int64_t cpu_threads_per_process(const World& world);

/// "rank 1 of 4 (local 1 of 2, torchrun)": for the log.
std::string describe(const World& world);

}  // namespace advft::dist
