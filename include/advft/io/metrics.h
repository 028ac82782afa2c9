#pragma once
// Run outputs that tools read while the run is going: metrics.jsonl (one JSON object per line,
// appended as training goes) and whole JSON documents such as results.json.
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace advft::io {

/// Appends one compact JSON object per line to a .jsonl file, flushed after every record so
/// `tail -f` and a crash both see whole lines.
class MetricsWriter {
 public:
  /// Opens `path`, truncating it unless `append`. When appending (resume), a torn last line
  /// left by a process that died mid-write is cut off first. advft::Error (kExitRunDir) if
  /// the file cannot be opened.
  explicit MetricsWriter(const std::string& path, bool append);

  /// Writes `record` as one line and flushes; advft::Error (kExitRunDir) on a write failure.
  void write(const nlohmann::json& record);

  /// The file written to.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

/// Writes `value` pretty-printed (2-space indent, trailing newline) via write_file_atomic.
void write_json_atomic(const std::string& path, const nlohmann::json& value);

/// Rewrites a .jsonl file (atomically) without the records for which `keep` is false, each kept
/// line as it was; a torn last line goes too. For a run resumed from a checkpoint older than its
/// last records (a process killed, a checkpoint that failed to write): it writes those again.
/// Returns how many records were dropped; advft::Error (kExitRunDir) as read_jsonl.
size_t drop_records(const std::string& path,
                    const std::function<bool(const nlohmann::json&)>& keep);

/// Every JSON value of a .jsonl file, skipping blank lines and a torn (unterminated, unparsable)
/// last line; advft::Error (kExitRunDir) naming path and line for an unreadable file or a bad line.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

}  // namespace advft::io
