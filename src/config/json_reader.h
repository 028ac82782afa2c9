#pragma once
// Strict, typed reading of one JSON object of a config: every key read is remembered so that
// finish() can reject the rest by name, with a "did you mean" from the keys this object knows.
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace advft::config::detail {

class JsonReader {
 public:
  /// `path` is the key path of `object` ("" for the root), used in every message.
  JsonReader(const nlohmann::json& object, std::string path);

  void read(const std::string& key, bool& out);
  void read(const std::string& key, int64_t& out);
  void read(const std::string& key, uint64_t& out);
  void read(const std::string& key, double& out);  ///< accepts "8/255"
  void read(const std::string& key, std::string& out);
  void read(const std::string& key, std::vector<double>& out);
  void read(const std::string& key, std::vector<int64_t>& out);
  void read(const std::string& key, std::vector<std::string>& out);

  /// The sub-object at key, or nullptr when absent (marks the key as known).
  const nlohmann::json* object(const std::string& key);

  /// Full key path of a key of this object ("train.epochs").
  std::string key_path(const std::string& key) const;

  /// Throws ConfigError for the first key that no read() or object() asked for.
  void finish() const;

 private:
  const nlohmann::json* find(const std::string& key);
  [[noreturn]] void type_error(const std::string& key, const char* expected) const;

  const nlohmann::json& object_;
  std::string path_;
  std::set<std::string> known_;
};

}  // namespace advft::config::detail
