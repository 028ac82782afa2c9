// io::prepare_run_dir / finish_run_dir: a run directory holds one run, and a failed run leaves it
// as it found it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "advft/error.h"
#include "advft/io/directory.h"
#include "advft/io/run_dir.h"
#include "test_util.h"

namespace advft::testing {
namespace {
namespace fs = std::filesystem;

/// Writes every file of a finished run, each holding `tag`, plus a file of the user's own.
void write_finished_run(const io::RunPaths& paths, const std::string& tag) {
  for (const std::string& file : io::run_files(paths))
    write_bytes(file, tag);
  write_bytes(paths.dir + "/notes.txt", "mine");
}

/// What a run writes before its first checkpoint.
void start_run(const io::RunPaths& paths, const std::string& tag) {
  write_bytes(paths.config, tag);
  write_bytes(paths.log, tag);
  write_bytes(paths.metrics, tag);
}

/// A forced run in `paths.dir` that writes what `run` writes and then fails, the directory held
/// by an io::RunDirGuard as the CLI holds it.
void fail_forced_run(const io::RunPaths& paths, const std::function<void()>& run) {
  try {
    const io::RunDirGuard guard(io::prepare_run_dir(paths.dir, io::RunDirMode::kForce));
    run();
    throw InterruptedError("stopped by signal 2", 130);
  } catch (const InterruptedError&) {
  }
}

void expect_run(const io::RunPaths& paths, const std::string& tag) {
  for (const std::string& file : io::run_files(paths)) {
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(read_bytes(file), tag) << file;
  }
}

TEST(RunDir, NewRefusesADirectoryInUseAndNamesTheWaysOut) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  try {
    io::prepare_run_dir(paths.dir, io::RunDirMode::kNew);
    FAIL() << "expected a RunDirError";
  } catch (const RunDirError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--resume"), std::string::npos) << message;
    EXPECT_NE(message.find("--force"), std::string::npos) << message;
  }
  expect_run(paths, "old");
}

TEST(RunDir, AFailedRunRemovesTheDirectoryItCreated) {
  TempDir tmp;
  const io::RunDir run = io::prepare_run_dir(tmp.file("a/b/run/"), io::RunDirMode::kNew);
  EXPECT_TRUE(run.created);
  EXPECT_FALSE(run.replaced);
  EXPECT_EQ(run.created_parents, (std::vector<std::string>{tmp.file("a/b"), tmp.file("a")}));
  start_run(run.paths, "new");
  io::finish_run_dir(run);
  EXPECT_FALSE(fs::exists(tmp.file("a")));  // the folders made for it went with it
  EXPECT_TRUE(fs::is_directory(tmp.path()));
}

TEST(RunDir, AFailedRunLeavesTheParentsItMadeThatOthersHaveUsedSince) {
  TempDir tmp;
  const io::RunDir run = io::prepare_run_dir(tmp.file("a/b/run"), io::RunDirMode::kNew);
  write_bytes(tmp.file("a/other.txt"), "another process's file");
  start_run(run.paths, "new");
  io::finish_run_dir(run);
  EXPECT_FALSE(fs::exists(tmp.file("a/b")));
  EXPECT_EQ(read_bytes(tmp.file("a/other.txt")), "another process's file");
}

TEST(RunDir, ForceSetsTheEarlierRunAsideAndPutsItBackWhenTheNewRunFails) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  const io::RunDir run = io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  EXPECT_FALSE(run.created);
  EXPECT_TRUE(run.replaced);
  // The new run starts with its own log and metrics, and no checkpoint of the old run to resume.
  for (const std::string& file : io::run_files(paths))
    EXPECT_FALSE(fs::exists(file)) << file;
  EXPECT_EQ(read_bytes(io::previous_run_dir(paths.dir) + "/last.safetensors"), "old");
  EXPECT_EQ(read_bytes(paths.dir + "/notes.txt"), "mine");
  start_run(paths, "new");
  io::finish_run_dir(run);  // no checkpoint: it failed
  expect_run(paths, "old");
  EXPECT_FALSE(fs::exists(io::previous_run_dir(paths.dir)));
  EXPECT_EQ(read_bytes(paths.dir + "/notes.txt"), "mine");
}

TEST(RunDir, ForceDropsTheEarlierRunWhenTheNewOneFinishes) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  const io::RunDir run = io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  write_finished_run(paths, "new");
  io::finish_run_dir(run);
  EXPECT_FALSE(fs::exists(io::previous_run_dir(paths.dir)));
  expect_run(paths, "new");
  EXPECT_EQ(read_bytes(paths.dir + "/notes.txt"), "mine");
}

// Stopped (Ctrl-C, diverged) after a checkpoint: the new run can be resumed, the earlier one is
// still wanted until it finishes. The guard settles the directory on the error path too.
TEST(RunDir, ForcedRunThatStopsAfterACheckpointKeepsBothRuns) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  fail_forced_run(paths, [&] {
    start_run(paths, "new");
    write_bytes(paths.last, "new");
  });
  EXPECT_EQ(read_bytes(paths.last), "new");
  EXPECT_EQ(read_bytes(io::previous_run_dir(paths.dir) + "/last.safetensors"), "old");
  EXPECT_EQ(read_bytes(io::previous_run_dir(paths.dir) + "/results.json"), "old");
}

TEST(RunDir, GuardPutsTheEarlierRunBackWhenTheCommandFailsBeforeTraining) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  fail_forced_run(paths, [&] { write_bytes(paths.config, "half written"); });
  expect_run(paths, "old");
  EXPECT_FALSE(fs::exists(io::previous_run_dir(paths.dir)));
}

// A run killed before finish_run_dir (SIGKILL, a lost node) leaves the earlier run aside and its
// own start in the directory. The next --force keeps the run that got as far as a checkpoint.
TEST(RunDir, ForceAfterAKilledAttemptKeepsTheRunWithACheckpoint) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  start_run(paths, "killed");  // and never ended
  const io::RunDir again = io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  EXPECT_TRUE(again.replaced);
  EXPECT_FALSE(fs::exists(paths.config));
  EXPECT_EQ(read_bytes(io::previous_run_dir(paths.dir) + "/config.json"), "old");
  io::finish_run_dir(again);
  expect_run(paths, "old");

  // A killed attempt that did write a checkpoint is the one kept.
  io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  start_run(paths, "second");
  write_bytes(paths.last, "second");
  const io::RunDir third = io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  EXPECT_EQ(read_bytes(io::previous_run_dir(paths.dir) + "/last.safetensors"), "second");
  EXPECT_FALSE(fs::exists(io::previous_run_dir(paths.dir) + "/results.json"));
  io::finish_run_dir(third);
  EXPECT_EQ(read_bytes(paths.last), "second");
}

// A kill between two of the renames: the staging directories make the split run whole again.
TEST(RunDir, AKillDuringTheMovesLeavesNoRunSplitInTwo) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  const std::string aside = io::previous_run_dir(paths.dir);
  // Killed while setting the directory's run aside: half of it in previous-run.partial/.
  write_finished_run(paths, "old");
  fs::create_directory(aside + ".partial");
  fs::rename(paths.config, aside + ".partial/config.json");
  fs::rename(paths.last, aside + ".partial/last.safetensors");
  io::RunDir run = io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  EXPECT_FALSE(fs::exists(aside + ".partial"));
  EXPECT_EQ(read_bytes(aside + "/last.safetensors"), "old");
  EXPECT_EQ(read_bytes(aside + "/results.json"), "old");
  // Killed while moving it back: half of it in previous-run.restoring/.
  fs::rename(aside, aside + ".restoring");
  fs::rename(aside + ".restoring/results.json", paths.results);
  run = io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
  expect_run(paths, "old");
  EXPECT_FALSE(fs::exists(aside + ".restoring"));
  EXPECT_FALSE(run.replaced);
}

TEST(RunDir, ForceRefusesAPreviousRunItDidNotMake) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  write_finished_run(paths, "old");
  const std::string aside = io::previous_run_dir(paths.dir);
  write_bytes(aside, "a file of the user's");
  EXPECT_THROW(io::prepare_run_dir(paths.dir, io::RunDirMode::kForce), RunDirError);
  EXPECT_EQ(read_bytes(aside), "a file of the user's");
  EXPECT_FALSE(io::prepare_run_dir(paths.dir, io::RunDirMode::kResume).replaced);  // left alone
  fs::remove(aside);
  write_bytes(aside + "/plot.png", "mine");
  try {
    io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
    FAIL() << "expected a RunDirError";
  } catch (const RunDirError& e) {
    EXPECT_NE(std::string(e.what()).find("plot.png"), std::string::npos) << e.what();
  }
  expect_run(paths, "old");  // nothing moved
  EXPECT_EQ(read_bytes(aside + "/plot.png"), "mine");
  EXPECT_FALSE(io::prepare_run_dir(paths.dir, io::RunDirMode::kResume).replaced);
  std::error_code removed;
  io::remove_tree(aside, removed);
  ASSERT_FALSE(removed) << removed.message();
  write_bytes(aside + ".partial", "a file of the user's");  // where the moves would stage
  EXPECT_THROW(io::prepare_run_dir(paths.dir, io::RunDirMode::kForce), RunDirError);
  expect_run(paths, "old");
  EXPECT_EQ(read_bytes(aside + ".partial"), "a file of the user's");
}

// A forced run stopped after its first checkpoint: --resume continues it and drops the run it
// replaced when it finishes, not before; a resume that cannot start points at that run.
TEST(RunDir, ResumeOfAForcedRunDropsTheRunItReplacedWhenItFinishes) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  const std::string aside = io::previous_run_dir(paths.dir);
  write_finished_run(paths, "old");
  io::prepare_run_dir(paths.dir, io::RunDirMode::kForce);
  start_run(paths, "new");  // killed before its first checkpoint
  try {
    io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
    FAIL() << "expected a RunDirError";
  } catch (const RunDirError& e) {
    EXPECT_NE(std::string(e.what()).find(aside), std::string::npos) << e.what();
  }
  write_bytes(paths.last, "new");  // killed after it
  const io::RunDir failed = io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
  EXPECT_TRUE(failed.replaced);
  io::finish_run_dir(failed);  // the resume stopped (bad data, say): nothing is dropped
  EXPECT_EQ(read_bytes(aside + "/last.safetensors"), "old");
  const io::RunDir resumed = io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
  write_bytes(paths.results, "new");
  io::finish_run_dir(resumed);
  EXPECT_FALSE(fs::exists(aside));
  EXPECT_EQ(read_bytes(paths.last), "new");
}

TEST(RunDir, ForceOnAnEmptyOrForeignDirectoryHasNothingToSetAside) {
  TempDir tmp;
  write_bytes(tmp.file("run/notes.txt"), "mine");
  const io::RunDir run = io::prepare_run_dir(tmp.file("run"), io::RunDirMode::kForce);
  EXPECT_FALSE(run.created);
  EXPECT_FALSE(run.replaced);
  EXPECT_FALSE(fs::exists(io::previous_run_dir(run.paths.dir)));
  start_run(run.paths, "new");
  io::finish_run_dir(run);  // not created here: the directory stays, without the run's files
  EXPECT_FALSE(fs::exists(run.paths.config));
  EXPECT_EQ(read_bytes(tmp.file("run/notes.txt")), "mine");
}

TEST(RunDir, ResumeNeedsTheConfigAndTheLastCheckpoint) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  EXPECT_THROW(io::prepare_run_dir(paths.dir, io::RunDirMode::kResume), RunDirError);
  start_run(paths, "killed");
  // Killed before its first checkpoint (a second Ctrl-C): the message says what is missing.
  try {
    io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
    ADD_FAILURE() << "resumed a run without a checkpoint";
  } catch (const RunDirError& e) {
    EXPECT_NE(std::string(e.what()).find("it has no last.safetensors: its run stopped before the "
                                         "first checkpoint (start it again with --force)"),
              std::string::npos)
        << e.what();
  }
  write_bytes(paths.last, "ckpt");
  const io::RunDir run = io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
  EXPECT_FALSE(run.created || run.replaced);
}

// The id of a process that has exited (and been reaped): no process has it now.
pid_t exited_process() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// A run killed while writing a checkpoint leaves the writer's temporary file, as large as the
// checkpoint. The next command in the directory removes it; a file whose writer still runs, and
// any other name, stay.
TEST(RunDir, TemporaryFilesOfKilledWritersAreRemoved) {
  TempDir tmp;
  const io::RunPaths paths = io::run_paths(tmp.file("run"));
  start_run(paths, "killed");
  write_bytes(paths.last, "killed");
  const std::string dead = std::to_string(exited_process());
  const std::string abandoned = paths.last + ".tmp." + dead + ".3";
  const std::vector<std::string> kept = {
      paths.best + ".tmp." + std::to_string(::getpid()) + ".0",  // a writer that runs
      paths.last + ".tmp." + dead + ".3.bak",                    // not a writer's name
      paths.dir + "/notes.txt.tmp." + dead + ".0",               // not a run file's
  };
  write_bytes(abandoned, "half a checkpoint");
  for (const std::string& file : kept)
    write_bytes(file, "mine");
  io::prepare_run_dir(paths.dir, io::RunDirMode::kResume);
  EXPECT_FALSE(fs::exists(abandoned));
  for (const std::string& file : kept)
    EXPECT_TRUE(fs::exists(file)) << file;
  EXPECT_EQ(read_bytes(paths.last), "killed");

  // A new run is refused the directory and touches nothing in it (the writer may be a process
  // on another host); --force takes it over.
  const io::RunPaths other = io::run_paths(tmp.file("other"));
  const std::string other_abandoned = other.config + ".tmp." + dead + ".0";
  fs::create_directories(other.dir);
  write_bytes(other_abandoned, "{");
  EXPECT_THROW(io::prepare_run_dir(other.dir, io::RunDirMode::kNew), RunDirError);
  EXPECT_TRUE(fs::exists(other_abandoned));
  io::prepare_run_dir(other.dir, io::RunDirMode::kForce);
  EXPECT_TRUE(fs::is_empty(other.dir));
}

}  // namespace
}  // namespace advft::testing
