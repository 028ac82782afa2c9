#include "json_reader.h"

#include <cmath>
#include <limits>

#include "advft/config/load.h"
#include "advft/error.h"

namespace advft::config::detail {

JsonReader::JsonReader(const nlohmann::json& object, std::string path)
    : object_(object), path_(std::move(path)) {
  if (!object_.is_object()) {
    throw ConfigError((path_.empty() ? std::string("the top level") : path_) +
                      " must be a JSON object, got " + object_.dump());
  }
}

std::string JsonReader::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

const nlohmann::json* JsonReader::find(const std::string& key) {
  known_.insert(key);
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

void JsonReader::type_error(const std::string& key, const char* expected) const {
  throw ConfigError(key_path(key) + " = " + object_.at(key).dump() + ": expected " + expected);
}

void JsonReader::read(const std::string& key, bool& out) {
  if (const auto* v = find(key)) {
    if (!v->is_boolean()) type_error(key, "true or false");
    out = v->get<bool>();
  }
}

void JsonReader::read(const std::string& key, int64_t& out) {
  if (const auto* v = find(key)) {
    // Beyond 2^63 an unsigned literal would wrap to a negative number and a double's cast is
    // undefined: both are refused as what the user wrote.
    constexpr double kLimit = 9.2e18;
    if (v->is_number_unsigned() &&
        v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw ConfigError(key_path(key) + " = " + v->dump() + ": too large");
    }
    const double d = v->is_number_float() ? v->get<double>() : 0.0;
    if (v->is_number_integer()) {
      out = v->get<int64_t>();
    } else if (v->is_number_float() && std::isfinite(d) && std::abs(d) >= kLimit) {
      throw ConfigError(key_path(key) + " = " + v->dump() + ": too large");
    } else if (v->is_number_float() && d == static_cast<double>(static_cast<int64_t>(d))) {
      out = static_cast<int64_t>(d);  // 1e3 is a fine way to write 1000
    } else {
      type_error(key, "an integer");
    }
  }
}

void JsonReader::read(const std::string& key, uint64_t& out) {
  int64_t value = static_cast<int64_t>(out);
  read(key, value);
  if (value < 0)
    throw ConfigError(key_path(key) + " = " + std::to_string(value) + ": must be >= 0");
  out = static_cast<uint64_t>(value);
}

void JsonReader::read(const std::string& key, double& out) {
  if (const auto* v = find(key)) out = parse_number(*v, key_path(key));
}

void JsonReader::read(const std::string& key, std::string& out) {
  if (const auto* v = find(key)) {
    if (!v->is_string()) type_error(key, "a string");
    out = v->get<std::string>();
  }
}

void JsonReader::read(const std::string& key, std::vector<double>& out) {
  if (const auto* v = find(key)) {
    if (!v->is_array()) type_error(key, "an array of numbers");
    out.clear();
    for (std::size_t i = 0; i < v->size(); ++i) {
      out.push_back(parse_number((*v)[i], key_path(key) + "[" + std::to_string(i) + "]"));
    }
  }
}

void JsonReader::read(const std::string& key, std::vector<int64_t>& out) {
  if (const auto* v = find(key)) {
    if (!v->is_array()) type_error(key, "an array of integers");
    out.clear();
    for (const auto& item : *v) {
      if (!item.is_number_integer()) type_error(key, "an array of integers");
      out.push_back(item.get<int64_t>());
    }
  }
}

void JsonReader::read(const std::string& key, std::vector<std::string>& out) {
  if (const auto* v = find(key)) {
    if (!v->is_array()) type_error(key, "an array of strings");
    out.clear();
    for (const auto& item : *v) {
      if (!item.is_string()) type_error(key, "an array of strings");
      out.push_back(item.get<std::string>());
    }
  }
}

const nlohmann::json* JsonReader::object(const std::string& key) {
  const auto* v = find(key);
  if (v != nullptr && !v->is_object()) type_error(key, "an object { ... }");
  return v;
}

void JsonReader::finish() const {
  for (const auto& item : object_.items()) {
    if (known_.count(item.key()) != 0) continue;
    std::string best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto& candidate : known_) {
      std::size_t d = edit_distance(item.key(), candidate);
      if (d < best_distance) {
        best_distance = d;
        best = candidate;
      }
    }
    std::string message = "unknown key " + key_path(item.key());
    if (!best.empty() && best_distance <= std::max<std::size_t>(2, item.key().size() / 3)) {
      message += " (did you mean " + key_path(best) + "?)";
    } else {
      std::string all;
      for (const auto& candidate : known_)
        all += (all.empty() ? "" : ", ") + candidate;
      message +=
          " (known keys" + (path_.empty() ? std::string() : " of " + path_) + ": " + all + ")";
    }
    throw ConfigError(message);
  }
}

}  // namespace advft::config::detail
