#pragma once
// What `finetune` and `train` share: the flags that pick the config, the run directory and the
// few settings worth a named flag, and the code that turns them into a run.
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "advft/config/load.h"
#include "advft/dist/process_group.h"

namespace advft::cli {

/// --mean/--std: the normalization of a PyTorch model that did it outside the network.
struct NormalizationFlags {
  std::vector<double> mean;
  std::vector<double> std;
};

/// Binds --mean and --std (comma-separated per-channel values) on a subcommand.
void add_normalization_flags(CLI::App& command, NormalizationFlags& flags);

/// Appends the given flags as `model.mean=[...]` / `model.std=[...]` config overrides.
void append_normalization_overrides(const NormalizationFlags& flags,
                                    std::vector<std::string>& overrides);

struct RunOptions {
  std::string config;
  std::string checkpoint;            ///< finetune: the pretrained model
  std::string key;                   ///< finetune: state_dict key in a torch.save checkpoint
  bool non_strict = false;           ///< finetune: load what fits of the checkpoint
  bool reset_head = false;           ///< finetune: new head when the class count differs
  NormalizationFlags normalization;  ///< finetune: model.mean/std of a PyTorch checkpoint
  std::string out;
  std::vector<std::string> sets;
  std::string resume;
  bool force = false;
  std::string device;
  std::string data_dir;
  int64_t epochs = 0;
  int64_t batch_size = 0;
  int64_t threads = 0;
  int64_t nproc = 0;  ///< start this many local processes as one data-parallel run
  bool verbose = false;
};

/// Binds --nproc N (the count of local processes for one data-parallel run) on a subcommand.
void add_nproc_flag(CLI::App& command, int64_t& nproc);

/// Whether --nproc asked for several processes; if so, starts them (this process only waits)
/// and throws an advft::Error with the exit code of the first one that failed.
bool ran_as_local_processes(int64_t nproc);

/// This process's place under torchrun or srun and, when there are several processes, the
/// group of all of them, met (the log then names the rank); a single process: no group.
struct LaunchedProcesses {
  dist::World world;
  std::unique_ptr<dist::ProcessGroup> group;
};
LaunchedProcesses meet_launched_processes(bool verbose);

/// Binds the shared flags on a subcommand.
void add_run_options(CLI::App& command, RunOptions& options, bool pretrained_checkpoint);

/// Resolves the config and run directory and trains (errors are thrown as advft::Error).
void run_training_command(const RunOptions& options, config::Command command);

}  // namespace advft::cli
