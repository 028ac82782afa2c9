#pragma once
// The files of one run, all in one directory, and the rules for (re)using it.
#include <string>
#include <utility>
#include <vector>

namespace advft::io {

/// Paths of everything a run writes.
struct RunPaths {
  std::string dir;
  std::string config;      ///< config.json: the resolved config
  std::string log;         ///< log.txt
  std::string metrics;     ///< metrics.jsonl
  std::string last;        ///< last.safetensors: model after the latest epoch / interruption
  std::string last_state;  ///< last.optim.safetensors: optimizer state beside it
  std::string best;        ///< best.safetensors: best robust validation accuracy
  std::string results;     ///< results.json
};

/// The paths of a run directory (nothing is created).
RunPaths run_paths(const std::string& dir);

/// The files above, without the directory.
std::vector<std::string> run_files(const RunPaths& paths);

/// Where --force keeps the run it replaces until the new run finishes: "<dir>/previous-run".
std::string previous_run_dir(const std::string& dir);

/// How an existing directory may be used.
enum class RunDirMode { kNew, kForce, kResume };

/// A directory made ready for a run, and what that took, so that finish_run_dir can undo it.
struct RunDir {
  RunPaths paths;
  bool created = false;  ///< it did not exist before
  /// Folders above it that did not exist either and were made for it, innermost first: removed
  /// with it when they are still empty (another process may have put something there since).
  std::vector<std::string> created_parents;
  bool replaced = false;  ///< previous_run_dir holds the run this one replaces (finish drops it)
};

/// Creates or checks the directory: kNew refuses a non-empty one (RunDirError pointing at
/// --force / --resume); kResume requires its config and last checkpoint; kForce moves the files of
/// an earlier run there (run_files, nothing else) into previous_run_dir, so that the new run's
/// config, log and metrics never mix with the old run's checkpoints. A previous_run_dir that holds
/// anything else is refused, never removed. Completes or undoes moves that a killed process left;
/// kForce and kResume also remove the temporary files of run files whose writer is gone.
RunDir prepare_run_dir(const std::string& dir, RunDirMode mode);

/// Called once the run has ended, however it ended. A run that finished (results.json) drops the
/// run it replaced. A run that stopped after a checkpoint keeps both: itself to --resume, the
/// earlier one aside. A run that stopped before its first checkpoint leaves the directory as it
/// found it: the directory it created is removed (with the parents made for it that are still
/// empty), or else its files are, and the run it moved aside comes back.
void finish_run_dir(const RunDir& run) noexcept;

/// Calls finish_run_dir when it goes out of scope, on success and on every error alike: hold one
/// from right after prepare_run_dir to the end of the run.
class RunDirGuard {
 public:
  explicit RunDirGuard(RunDir run) : run_(std::move(run)) {}
  ~RunDirGuard() { finish_run_dir(run_); }
  RunDirGuard(const RunDirGuard&) = delete;
  RunDirGuard& operator=(const RunDirGuard&) = delete;
  const RunDir& run() const { return run_; }

 private:
  RunDir run_;
};

/// A fresh default name under runs/: "runs/<stem>-YYYYmmdd-HHMMSS".
std::string default_run_dir(const std::string& stem);

}  // namespace advft::io
