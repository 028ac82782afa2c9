#pragma once
// Whole-file reads and crash-safe whole-file writes. Everything advft leaves on disk (checkpoints,
// results.json, resolved configs) goes through write_file_atomic so that a crash or a full disk
// leaves either the old file or the new one, never a torn mix.
#include <string>

namespace advft::io {

/// Replaces `path` with `bytes` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. On failure the temp file is removed and advft::Error (kExitRunDir)
/// names the path and the system error; an existing `path` is then left untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Checks, before work whose result goes to `path` at the end (a benchmark, an evaluation), that
/// write_file_atomic can write there: `path` is not a folder and a file can be created beside it
/// (created and removed again). advft::Error (kExitRunDir) "<option> <path>: ..." otherwise, so
/// that a typo costs a second rather than the whole run.
void check_file_writable(const std::string& path, const std::string& option);

/// The process id in `candidate` when it is one of the temporary files that write_file_atomic
/// and link_file_atomic give `path` ("<path>.tmp.<pid>.<n>", in path's directory), else 0. A
/// process killed mid-write leaves such a file behind.
long temporary_file_writer(const std::string& path, const std::string& candidate);

/// Makes `to` a second name of the file `from` (a hard link, published by rename, so `to` is
/// replaced atomically and stays a snapshot when `from` is later replaced by write_file_atomic).
/// Where the file system has no hard links it copies through write_file_atomic instead.
void link_file_atomic(const std::string& from, const std::string& to);

/// The whole content of `path`; throws advft::Error (kExitRunDir) "cannot read <path>: <reason>".
/// Callers that read checkpoints or data rethrow it as their own error type.
std::string read_file_bytes(const std::string& path);

/// read_file_bytes for a checkpoint someone named: every failure is a CheckpointError, and a
/// file that is definitely not there reads "<path>: no such file".
std::string read_checkpoint_bytes(const std::string& path);

}  // namespace advft::io
