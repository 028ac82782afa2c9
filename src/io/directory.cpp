#include "advft/io/directory.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace advft::io {
namespace {

std::error_code last_error() {
  return {errno, std::generic_category()};
}

void keep_first(std::error_code& error, std::error_code next) {
  if (!error) error = next;
}

}  // namespace

std::vector<std::string> directory_names(const std::string& dir, std::error_code& error) {
  error.clear();
  std::vector<std::string> names;
  const std::unique_ptr<DIR, int (*)(DIR*)> stream(::opendir(dir.c_str()), &::closedir);
  if (!stream) {
    error = last_error();
    return names;
  }
  for (;;) {
    errno = 0;  // readdir returns null both at the end and on an error; only errno tells which
    const dirent* entry = ::readdir(stream.get());
    if (entry == nullptr) {
      if (errno != 0) error = last_error();
      break;
    }
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
      names.emplace_back(entry->d_name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void remove_tree(const std::string& path, std::error_code& error) {
  error.clear();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) error = last_error();
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    std::error_code listed;
    for (const std::string& name : directory_names(path, listed)) {
      std::error_code removed;
      remove_tree(path + "/" + name, removed);
      keep_first(error, removed);
    }
    keep_first(error, listed);
    if (::rmdir(path.c_str()) != 0) keep_first(error, last_error());
    return;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) keep_first(error, last_error());
}

}  // namespace advft::io
