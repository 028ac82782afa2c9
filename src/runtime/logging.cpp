#include "advft/runtime/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace advft::runtime {

void init_logging(bool verbose) {
  auto logger = std::make_shared<spdlog::logger>(
      "advft", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern("[%H:%M:%S] %^%l%$: %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void set_log_rank(int rank, bool verbose) {
  auto logger = spdlog::default_logger();
  logger->set_pattern("[%H:%M:%S] rank " + std::to_string(rank) + " %^%l%$: %v");
  if (rank > 0 && !verbose) logger->set_level(spdlog::level::warn);
}

void add_log_file(const std::string& path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l: %v");
  spdlog::default_logger()->sinks().push_back(sink);
  spdlog::default_logger()->flush_on(spdlog::level::info);
}

}  // namespace advft::runtime
