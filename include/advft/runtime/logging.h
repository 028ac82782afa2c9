#pragma once
// One logger for the whole program: stderr always, plus the run directory's log file.
#include <string>

namespace advft::runtime {

/// Sets up the default spdlog logger on stderr ("info", or "debug" when verbose).
void init_logging(bool verbose);

/// Also writes every log line to `path` (the run directory's log.txt), appending.
void add_log_file(const std::string& path);

}  // namespace advft::runtime
