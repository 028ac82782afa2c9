#pragma once
// The training loop: per step, PGD examples of the batch -> loss -> SGD with the scheduled lr;
// per epoch, clean and robust validation, `last` / `best` checkpoints and metrics records.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/config/config.h"
#include "advft/dist/process_group.h"
#include "advft/io/run_dir.h"

namespace advft::train {

/// What a run is, for the records it writes.
struct RunRequest {
  std::string command = "finetune";  ///< "finetune" or "train"
  config::RunConfig config;
  io::RunPaths paths;
  bool resume = false;  ///< continue from paths.last and its optimizer state
  /// --mean / --std as given: they replace the normalization the pretrained checkpoint records
  /// (empty: the checkpoint's own travels with its weights).
  std::vector<double> given_mean;
  std::vector<double> given_std;
  /// The processes of a data-parallel run (null: this one alone). Each trains on its shard of
  /// every batch (train.batch_size is their sum) and validates a shard of the validation set;
  /// only rank 0 writes to the run directory.
  dist::ProcessGroup* group = nullptr;
};

/// Runs (or resumes) a training and returns what results.json holds. Throws DivergedError on a
/// non-finite loss (the last good checkpoint stays) and InterruptedError after saving a
/// resumable checkpoint when SIGINT/SIGTERM arrived.
nlohmann::json run_training(const RunRequest& request);

/// The seed of the random draws (augmentation, PGD start) of one step; a pure function of the
/// run seed and the step, which is what makes a resumed run bit-identical on CPU.
uint64_t step_seed(uint64_t run_seed, int64_t step);

}  // namespace advft::train
