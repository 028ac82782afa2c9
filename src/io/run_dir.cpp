#include "advft/io/run_dir.h"

#include <ctime>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "advft/error.h"

namespace advft::io {
namespace fs = std::filesystem;

namespace {

bool present(const fs::path& path) {
  std::error_code ignored;
  return fs::exists(fs::symlink_status(path, ignored));
}

/// Moves the named files that exist from one directory to another (same file system: renames).
/// On a failure, what moved goes back before the error is thrown.
void move_files(const std::vector<std::string>& names, const fs::path& from, const fs::path& to) {
  std::vector<std::string> moved;
  for (const std::string& name : names) {
    if (!present(from / name)) continue;
    std::error_code error;
    fs::rename(from / name, to / name, error);
    if (error) {
      std::error_code ignored;
      for (const std::string& back : moved)
        fs::rename(to / back, from / back, ignored);
      throw RunDirError((from / name).string() + ": cannot move it to " + to.string() + ": " +
                        error.message());
    }
    moved.push_back(name);
  }
}

std::vector<std::string> file_names(const RunPaths& paths) {
  std::vector<std::string> names;
  for (const std::string& file : run_files(paths))
    names.push_back(fs::path(file).filename().string());
  return names;
}

void remove_files(const RunPaths& paths) {
  std::error_code ignored;
  for (const std::string& file : run_files(paths))
    fs::remove(file, ignored);
}

/// --force: the run kept aside is the latest one that got as far as a checkpoint. The directory's
/// own files move there, unless they are an attempt without a checkpoint (a run killed before
/// finish_run_dir) and an earlier run is already kept: then the attempt is dropped instead.
void set_earlier_run_aside(const RunPaths& paths) {
  const fs::path aside = previous_run_dir(paths.dir);
  const std::vector<std::string> names = file_names(paths);
  if (!present(paths.last) && fs::is_directory(aside)) {
    remove_files(paths);
    return;
  }
  std::error_code error;
  fs::remove_all(aside, error);
  if (!error) fs::create_directory(aside, error);
  if (error)
    throw RunDirError(aside.string() + ": cannot make room for the earlier run: " +
                      error.message() + "; remove it, or choose another --out");
  move_files(names, paths.dir, aside);
}

}  // namespace

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

std::vector<std::string> run_files(const RunPaths& paths) {
  return {paths.config,     paths.log,  paths.metrics, paths.last,
          paths.last_state, paths.best, paths.results};
}

std::string previous_run_dir(const std::string& dir) {
  return (fs::path(dir) / "previous-run").string();
}

RunDir prepare_run_dir(const std::string& dir, RunDirMode mode) {
  RunDir run{run_paths(dir)};
  const RunPaths& paths = run.paths;
  std::error_code error;
  const bool exists = fs::exists(dir, error);
  if (mode == RunDirMode::kResume) {
    if (!exists) throw RunDirError(dir + ": no such run directory to resume");
    if (!fs::is_regular_file(paths.config, error) || !fs::is_regular_file(paths.last, error)) {
      throw RunDirError(dir +
                        ": cannot resume: it has no config.json and last.safetensors "
                        "(was it interrupted before the first checkpoint?)");
    }
    return run;
  }
  if (exists && !fs::is_directory(dir, error)) {
    throw RunDirError(dir + ": exists and is not a directory");
  }
  if (exists && mode == RunDirMode::kNew && !fs::is_empty(dir, error)) {
    throw RunDirError(dir + ": already exists and is not empty; use --resume " + dir +
                      " to continue it, --force to replace its run, or another --out");
  }
  fs::create_directories(dir, error);
  if (error) throw RunDirError(dir + ": cannot create: " + error.message());
  run.created = !exists;
  if (mode == RunDirMode::kForce) {
    bool earlier = false;
    for (const std::string& file : run_files(paths))
      earlier = earlier || present(file);
    if (earlier) {
      set_earlier_run_aside(paths);
      run.replaced = true;
    }
  }
  return run;
}

void finish_run_dir(const RunDir& run) {
  std::error_code ignored;
  const fs::path aside = previous_run_dir(run.paths.dir);
  if (present(run.paths.last)) {
    if (run.replaced) fs::remove_all(aside, ignored);
    return;
  }
  if (run.created) {
    fs::remove_all(run.paths.dir, ignored);
    return;
  }
  remove_files(run.paths);
  if (!run.replaced) return;
  try {
    move_files(file_names(run.paths), aside, run.paths.dir);
    fs::remove(aside, ignored);  // only when empty: files someone else put there stay
  } catch (const RunDirError& e) {
    spdlog::warn("{}; the earlier run stays in {}", e.what(), aside.string());
  }
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
