#include "advft/io/metrics.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "advft/error.h"
#include "advft/io/atomic_file.h"

namespace advft::io {
namespace {

// Never throws on odd strings: records may carry user-provided paths or names.
std::string dump_line(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A process killed mid-write leaves a line without its newline; appending after it would glue
// two records into one unparsable line.
void drop_torn_last_line(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return;
  }
  const std::string bytes = read_file_bytes(path);
  if (bytes.empty() || bytes.back() == '\n') {
    return;
  }
  const auto last_newline = bytes.find_last_of('\n');
  const auto keep = last_newline == std::string::npos ? 0 : last_newline + 1;
  std::filesystem::resize_file(path, keep, ec);
  if (ec) {
    throw Error("cannot write " + path + ": cutting its torn last line: " + ec.message(),
                kExitRunDir);
  }
}

// One record of a .jsonl file and where its line lies in the bytes, newline included.
struct JsonlRecord {
  nlohmann::json value;
  size_t begin = 0;
  size_t end = 0;
  bool terminated = true;  ///< false: the last line, without its newline
};

// The records of a .jsonl file's bytes, skipping blank lines and a torn (unterminated,
// unparsable) last line; advft::Error (kExitRunDir) naming path and line for a bad line.
std::vector<JsonlRecord> parse_jsonl(const std::string& bytes, const std::string& path) {
  std::vector<JsonlRecord> out;
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < bytes.size()) {
    ++line_number;
    const size_t newline = bytes.find('\n', pos);
    const bool terminated = newline != std::string::npos;
    const size_t end = terminated ? newline : bytes.size();
    const std::string line = bytes.substr(pos, end - pos);
    const size_t begin = pos;
    pos = terminated ? newline + 1 : bytes.size();
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      continue;
    }
    try {
      out.push_back({nlohmann::json::parse(line), begin, pos, terminated});
    } catch (const nlohmann::json::exception& e) {
      if (!terminated) {
        break;  // torn by a crash mid-write; the records before it are whole
      }
      throw Error(path + ":" + std::to_string(line_number) + ": not valid JSON (" + e.what() + ")",
                  kExitRunDir);
    }
  }
  return out;
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path) {
  if (append) {
    drop_torn_last_line(path);
  }
  out_.open(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  if (!out_) {
    throw Error("cannot open " + path + " for writing: " + std::strerror(errno), kExitRunDir);
  }
}

void MetricsWriter::write(const nlohmann::json& record) {
  const std::string line = dump_line(record, -1) + "\n";
  out_.write(line.data(), static_cast<std::streamsize>(line.size()));
  out_.flush();
  if (!out_) {
    throw Error("cannot write " + path_ + ": " + std::strerror(errno), kExitRunDir);
  }
}

void write_json_atomic(const std::string& path, const nlohmann::json& value) {
  write_file_atomic(path, dump_line(value, 2) + "\n");
}

size_t drop_records(const std::string& path,
                    const std::function<bool(const nlohmann::json&)>& keep) {
  const std::string bytes = read_file_bytes(path);
  std::string kept;
  size_t dropped = 0;
  for (const JsonlRecord& record : parse_jsonl(bytes, path)) {
    // An unterminated last line goes, as MetricsWriter cuts it when appending.
    if (!record.terminated) break;
    if (keep(record.value)) {
      kept.append(bytes, record.begin, record.end - record.begin);
    } else {
      ++dropped;
    }
  }
  if (kept.size() != bytes.size()) write_file_atomic(path, kept);
  return dropped;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (JsonlRecord& record : parse_jsonl(read_file_bytes(path), path))
    out.push_back(std::move(record.value));
  return out;
}

}  // namespace advft::io
