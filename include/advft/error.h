#pragma once
// The one exception family of advft. Every failure a user can cause (bad config, bad data,
// bad checkpoint, existing run directory, diverging run, interruption) is one of these; main()
// catches them once, prints e.what() as one line and exits with exit_code().
#include <stdexcept>
#include <string>

namespace advft {

/// Documented process exit codes (README "Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,      ///< a bug or an unexpected library error
  kExitUsage = 2,         ///< command-line usage error (unknown flag, missing argument)
  kExitConfig = 3,        ///< config file or --set override is wrong
  kExitData = 4,          ///< data set files missing or malformed
  kExitCheckpoint = 5,    ///< checkpoint missing, truncated, foreign or not matching the model
  kExitRunDir = 6,        ///< run directory exists / cannot be written
  kExitDiverged = 7,      ///< loss became NaN/Inf; the last good checkpoint is kept
  kExitDistributed = 8,   ///< a distributed run could not start, or lost one of its processes
  kExitInterrupted = 130  ///< SIGINT (128 + 2; SIGTERM gives 143): training saves a resumable
                          ///< checkpoint unless no step ran; the other commands write nothing
};

/// Base of all advft errors; carries the exit code the process should end with.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int exit_code = kExitInternal)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

/// A config file, key or value is wrong; the message names the key path.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error("config: " + message, kExitConfig) {}
};

/// A data set file is missing or malformed; the message names the file.
class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error("data: " + message, kExitData) {}
};

/// A checkpoint is missing, truncated, foreign or does not fit the model.
class CheckpointError : public Error {
 public:
  explicit CheckpointError(const std::string& message)
      : Error("checkpoint: " + message, kExitCheckpoint) {}
};

/// A run directory problem (exists already, not writable).
class RunDirError : public Error {
 public:
  explicit RunDirError(const std::string& message)
      : Error("run directory: " + message, kExitRunDir) {}
};

/// The training loss became NaN or infinite.
class DivergedError : public Error {
 public:
  explicit DivergedError(const std::string& message) : Error(message, kExitDiverged) {}
};

/// The processes of a distributed run could not meet, or one of them stopped answering.
class DistError : public Error {
 public:
  explicit DistError(const std::string& message)
      : Error("distributed: " + message, kExitDistributed) {}
};

/// The run was stopped by a signal after saving what it could.
class InterruptedError : public Error {
 public:
  InterruptedError(const std::string& message, int exit_code) : Error(message, exit_code) {}
};

/// The command line is wrong in a way CLI11 cannot see (a combination of flags, a flag's value).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message, kExitUsage) {}
};

}  // namespace advft
