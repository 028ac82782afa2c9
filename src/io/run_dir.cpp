#include "advft/io/run_dir.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <utility>

#include <spdlog/spdlog.h>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/directory.h"

namespace advft::io {
namespace fs = std::filesystem;

namespace {

bool present(const fs::path& path) {
  std::error_code ignored;
  return fs::exists(fs::symlink_status(path, ignored));
}

bool real_directory(const fs::path& path) {
  std::error_code ignored;
  return fs::is_directory(fs::symlink_status(path, ignored));
}

std::vector<std::string> file_names(const RunPaths& paths) {
  std::vector<std::string> names;
  for (const std::string& file : run_files(paths))
    names.push_back(fs::path(file).filename().string());
  return names;
}

bool process_exists(long pid) {
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

/// Removes the temporary files of run files whose writer is gone: an advft killed mid-write
/// (SIGKILL, the OOM killer) leaves one, as large as the checkpoint it was writing, that nothing
/// else would remove. A writer that still runs keeps its file.
void remove_abandoned_temporaries(const RunPaths& paths) {
  const std::vector<std::string> names = file_names(paths);
  std::vector<std::pair<fs::path, long>> abandoned;
  std::error_code error;
  for (const std::string& candidate : directory_names(paths.dir, error)) {
    for (const std::string& name : names) {
      const long writer = temporary_file_writer(name, candidate);
      if (writer > 0 && !process_exists(writer))
        abandoned.emplace_back(fs::path(paths.dir) / candidate, writer);
    }
  }
  for (const auto& [path, writer] : abandoned) {
    std::error_code ignored;
    if (fs::remove(path, ignored)) {
      spdlog::info("removed {}: process {} was killed while writing it", path.string(), writer);
    }
  }
}

/// The folders above `dir` that do not exist, innermost first: what creating it will make.
/// "." and ".." steps are passed over (removing one would fail; the folder they name is listed
/// where the walk reaches it).
std::vector<std::string> missing_parents(fs::path dir) {
  if (!dir.has_filename()) dir = dir.parent_path();  // "a/b/": the run directory is "a/b"
  std::vector<std::string> missing;
  for (fs::path parent = dir.parent_path();
       !parent.empty() && parent != parent.root_path() && !present(parent);
       parent = parent.parent_path()) {
    if (parent.filename() != "." && parent.filename() != "..") missing.push_back(parent.string());
  }
  return missing;
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

/// Removes the named files of a run from `dir`, then `dir` itself when `and_dir` and nothing else
/// is left in it (files someone else put there stay).
void remove_run(const std::vector<std::string>& names, const fs::path& dir, bool and_dir) {
  std::error_code ignored;
  for (const std::string& name : names)
    fs::remove(dir / name, ignored);
  if (and_dir) fs::remove(dir, ignored);
}

// The moves between a run directory and its previous-run/ go through staging directories, so that
// a kill between two renames never leaves a run split in two: previous-run.partial/ is being
// filled (the whole run then becomes previous-run/ in one rename), previous-run.restoring/ is being
// emptied back into the directory.
fs::path partial_dir(const RunPaths& paths) {
  return previous_run_dir(paths.dir) + ".partial";
}
fs::path restoring_dir(const RunPaths& paths) {
  return previous_run_dir(paths.dir) + ".restoring";
}

/// A process killed in the middle of those moves left a staging directory: undo the move aside
/// (its files are the directory's run) or finish the move back.
void recover_interrupted_moves(const RunPaths& paths) {
  for (const fs::path& staging : {partial_dir(paths), restoring_dir(paths)}) {
    if (!real_directory(staging)) continue;
    move_files(file_names(paths), staging, paths.dir);
    std::error_code error;
    fs::remove(staging, error);
    if (error) {
      throw RunDirError(staging.string() + ": holds files advft did not put there (" +
                        error.message() + "); move them away");
    }
  }
}

/// previous-run/ is advft's when it is absent or a directory of a run's files: what is wrong with
/// it otherwise, or an empty string. --force refuses anything else before a file moves, never
/// removing it; --resume leaves it alone.
std::string previous_run_problem(const RunPaths& paths) {
  const fs::path aside = previous_run_dir(paths.dir);
  if (!present(aside)) return {};
  if (!real_directory(aside)) {
    return aside.string() +
           ": is not a directory; advft keeps a run that --force replaces there: move it away, or "
           "choose another --out";
  }
  const std::vector<std::string> names = file_names(paths);
  std::error_code error;
  for (const std::string& name : directory_names(aside.string(), error)) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return aside.string() + " holds " + name +
             ", which advft did not put there; move it away, or choose another --out";
    }
  }
  if (error) return aside.string() + ": cannot read: " + error.message();
  return {};
}

/// --force: the run kept in previous-run/ is the latest one that got as far as a checkpoint. The
/// directory's own files go there, unless they are an attempt without a checkpoint (a run killed
/// before finish_run_dir) and an earlier run is already kept: then the attempt is dropped instead.
void set_earlier_run_aside(const RunPaths& paths) {
  const fs::path aside = previous_run_dir(paths.dir);
  const std::vector<std::string> names = file_names(paths);
  if (!present(paths.last) && real_directory(aside)) {
    remove_run(names, paths.dir, /*and_dir=*/false);
    return;
  }
  const fs::path partial = partial_dir(paths);
  std::error_code error;
  if (!fs::create_directory(partial, error) || error) {
    throw RunDirError(partial.string() + ": cannot create it" +
                      (error ? ": " + error.message() : std::string(" (something is there)")) +
                      "; move it away, or choose another --out");
  }
  try {
    move_files(names, paths.dir, partial);
  } catch (const RunDirError&) {
    remove_run({}, partial, /*and_dir=*/true);
    throw;
  }
  remove_run(names, aside, /*and_dir=*/true);  // the run kept before: this one is newer
  fs::rename(partial, aside, error);
  if (error) {
    move_files(names, partial, paths.dir);
    remove_run({}, partial, /*and_dir=*/true);
    throw RunDirError(aside.string() + ": cannot keep the earlier run there (" + error.message() +
                      "); move away what is in it, or choose another --out");
  }
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
  RunDir run;
  run.paths = run_paths(dir);
  const RunPaths& paths = run.paths;
  const fs::path aside = previous_run_dir(dir);
  std::error_code error;
  const bool exists = fs::exists(dir, error);
  if (exists && !fs::is_directory(dir, error)) {
    throw RunDirError(dir + ": exists and is not a directory");
  }
  if (exists) recover_interrupted_moves(paths);
  // Only a command that takes the directory over: the writer of a file may be a process on
  // another host sharing the file system, whose pid means nothing here, and a new run is refused
  // a directory in use rather than allowed to touch it.
  if (exists && mode != RunDirMode::kNew) remove_abandoned_temporaries(paths);
  if (mode == RunDirMode::kResume) {
    if (!exists) throw RunDirError(dir + ": no such run directory to resume");
    const bool has_config = fs::is_regular_file(paths.config, error);
    if (!has_config || !fs::is_regular_file(paths.last, error)) {
      throw RunDirError(
          dir + ": cannot resume: it has no " +
          (has_config ? "last.safetensors: its run stopped before the first checkpoint (start "
                        "it again with --force)"
                      : "config.json and last.safetensors (was it interrupted before the "
                        "first checkpoint?)") +
          (real_directory(aside) ? "; the run it replaced is in " + aside.string() +
                                       ": move its files back to resume that one"
                                 : std::string()));
    }
    // A forced run that stopped after its first checkpoint left the run it replaced: it goes
    // when this run finishes, as it would have when the forced run did.
    run.replaced = real_directory(aside) && previous_run_problem(paths).empty();
    return run;
  }
  if (exists && mode == RunDirMode::kNew && !directory_names(dir, error).empty()) {
    throw RunDirError(dir + ": already exists and is not empty; use --resume " + dir +
                      " to continue it, --force to replace its run, or another --out");
  }
  if (!exists) run.created_parents = missing_parents(dir);
  fs::create_directories(dir, error);
  if (error) throw RunDirError(dir + ": cannot create: " + error.message());
  run.created = !exists;
  if (mode == RunDirMode::kForce) {
    if (const std::string problem = previous_run_problem(paths); !problem.empty()) {
      throw RunDirError(problem);
    }
    const std::vector<std::string> files = run_files(paths);
    if (std::any_of(files.begin(), files.end(), [](const std::string& f) { return present(f); }))
      set_earlier_run_aside(paths);
    run.replaced = real_directory(aside);
  }
  return run;
}

void finish_run_dir(const RunDir& run) noexcept try {
  const std::vector<std::string> names = file_names(run.paths);
  const fs::path aside = previous_run_dir(run.paths.dir);
  if (present(run.paths.results)) {  // it finished: it replaces the earlier run for good
    if (run.replaced) remove_run(names, aside, /*and_dir=*/true);
    return;
  }
  if (present(run.paths.last)) {  // stopped, resumable: both runs stay, each where it is
    if (run.replaced) {
      spdlog::info("the run this one replaces stays in {} until this one finishes (--resume {})",
                   aside.string(), run.paths.dir);
    }
    return;
  }
  if (run.created) {
    std::error_code ignored;
    remove_tree(run.paths.dir, ignored);
    for (const std::string& parent : run.created_parents) {
      if (!fs::remove(parent, ignored)) break;  // no longer empty: it and those above it stay
    }
    return;
  }
  remove_run(names, run.paths.dir, /*and_dir=*/false);
  if (!run.replaced) return;
  const fs::path restoring = restoring_dir(run.paths);
  try {
    std::error_code error;
    fs::rename(aside, restoring, error);
    if (error) throw RunDirError(aside.string() + ": " + error.message());
    move_files(names, restoring, run.paths.dir);
    remove_run({}, restoring, /*and_dir=*/true);
  } catch (const RunDirError& e) {
    spdlog::warn("cannot move the earlier run back: {}; its files are in {}", e.what(),
                 (real_directory(restoring) ? restoring : aside).string());
  }
} catch (...) {
  // Called from a destructor, where a throw would terminate: a failure here only leaves files
  // where the next command in the directory finds them (recover_interrupted_moves).
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
