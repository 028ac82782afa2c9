#pragma once
// The files of one run, all in one directory, and the rules for (re)using it.
#include <string>

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

/// How an existing directory may be used.
enum class RunDirMode { kNew, kForce, kResume };

/// Creates or checks the directory: kNew refuses a non-empty one (RunDirError pointing at
/// --force / --resume), kForce reuses it, kResume requires its config and last checkpoint.
RunPaths prepare_run_dir(const std::string& dir, RunDirMode mode);

/// A fresh default name under runs/: "runs/<stem>-YYYYmmdd-HHMMSS".
std::string default_run_dir(const std::string& stem);

}  // namespace advft::io
