#pragma once
// One logger for the whole program: stderr always, plus the run directory's log file.
#include <string>

namespace advft::runtime {

/// Sets up the default spdlog logger on stderr ("info", or "debug" when verbose).
void init_logging(bool verbose);

/// In a run of several processes: every line names the process's rank, and the ranks but 0 say
/// only warnings and errors (all of it when verbose), so that the terminal reads as one run's.
void set_log_rank(int rank, bool verbose);

/// Also writes every log line to `path` (the run directory's log.txt), appending.
void add_log_file(const std::string& path);

}  // namespace advft::runtime
