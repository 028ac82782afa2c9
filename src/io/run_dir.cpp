#include "advft/io/run_dir.h"

#include <ctime>
#include <filesystem>

#include "advft/error.h"

namespace advft::io {
namespace fs = std::filesystem;

RunPaths run_paths(const std::string& dir) {
  fs::path d(dir);
  return RunPaths{dir,
                  (d / "config.json").string(),
                  (d / "log.txt").string(),
                  (d / "metrics.jsonl").string(),
                  (d / "last.safetensors").string(),
                  (d / "last.optim.safetensors").string(),
                  (d / "best.safetensors").string(),
                  (d / "results.json").string()};
}

RunPaths prepare_run_dir(const std::string& dir, RunDirMode mode) {
  RunPaths paths = run_paths(dir);
  std::error_code error;
  const bool exists = fs::exists(dir, error);
  if (mode == RunDirMode::kResume) {
    if (!exists) throw RunDirError(dir + ": no such run directory to resume");
    if (!fs::is_regular_file(paths.config, error) || !fs::is_regular_file(paths.last, error)) {
      throw RunDirError(dir +
                        ": cannot resume: it has no config.json and last.safetensors "
                        "(was it interrupted before the first checkpoint?)");
    }
    return paths;
  }
  if (exists && !fs::is_directory(dir, error)) {
    throw RunDirError(dir + ": exists and is not a directory");
  }
  if (exists && mode == RunDirMode::kNew && !fs::is_empty(dir, error)) {
    throw RunDirError(dir + ": already exists and is not empty; use --resume " + dir +
                      " to continue it, --force to reuse it, or another --out");
  }
  fs::create_directories(dir, error);
  if (error) throw RunDirError(dir + ": cannot create: " + error.message());
  return paths;
}

std::string default_run_dir(const std::string& stem) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &local);
  return (fs::path("runs") / (stem + "-" + stamp)).string();
}

}  // namespace advft::io
