#pragma once
// Small helpers shared by the test files: a self-deleting temp directory and file writers.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "advft/io/directory.h"

namespace advft::testing {

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "advft-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {  // a null path would crash, not fail the test
      throw std::runtime_error("TempDir: cannot create " + pattern + ": " + std::strerror(errno) +
                               " (is TMPDIR writable?)");
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    advft::io::remove_tree(path_.string(), ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Writes bytes to a file, creating parent directories.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Reads a whole file (empty string when missing).
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The names in `dir`, sorted, without "." and ".."; throws when `dir` cannot be read, so that a
/// missing folder is not mistaken for an empty one.
inline std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::error_code error;
  std::vector<std::string> names = advft::io::directory_names(dir.string(), error);
  if (error) throw std::runtime_error(dir.string() + ": " + error.message());
  return names;
}

/// Copies the directory `from`, its subdirectories too, to a new `to` (advft::io::directory_names,
/// not std::filesystem::copy: see advft/io/directory.h).
inline void copy_directory(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  std::error_code error;
  for (const std::string& name : advft::io::directory_names(from, error)) {
    const std::string source = from + "/" + name;
    if (std::filesystem::is_directory(source)) {
      copy_directory(source, to + "/" + name);
    } else {
      write_bytes(to + "/" + name, read_bytes(source));
    }
  }
  if (error)
    throw std::runtime_error("copy_directory: cannot list " + from + ": " + error.message());
}

}  // namespace advft::testing
