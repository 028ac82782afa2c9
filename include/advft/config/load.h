#pragma once
// Building a RunConfig: defaults < config file < --set overrides (named flags are applied by
// the CLI afterwards), with strict key checking and one validation pass.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "advft/config/config.h"

namespace advft::config {

/// Which subcommand the config is for; it picks the defaults that a file may leave out.
enum class Command { kFinetune, kTrain, kEval, kSchedule };

/// The defaults of a command before any file is read (finetune: slow-start fast-decay).
RunConfig default_config(Command command);

/// Finds a config: an existing file path, else a shipped config of that name ("cifar10",
/// "cifar10.json"). Throws ConfigError listing the shipped names when neither exists.
std::string resolve_config_path(const std::string& path_or_name);

/// Names of the configs shipped in configs/ (without .json).
std::vector<std::string> shipped_config_names();

/// Reads a JSON file (ConfigError with the line/column on a syntax error).
nlohmann::json read_config_json(const std::string& path);

/// Applies one `key.path=value` override; value is JSON when it parses as JSON, else a string.
void apply_override(nlohmann::json& root, const std::string& assignment);

/// Strictly parses `root` over `base`: unknown keys (with the nearest known key suggested),
/// wrong types and out-of-range values throw ConfigError naming the key path.
RunConfig parse_run_config(const nlohmann::json& root, RunConfig base);

/// Checks cross-field rules of a complete config (called after named flags are applied too).
void validate(const RunConfig& config);

/// The ranges an attack's settings must lie in, wherever they were given (a config's attack
/// section, an attack spec): a ConfigError "<prefix><key> = <value>: <rule>" for the first
/// outside them.
void check_attack_ranges(const AttackConfig& attack, const std::string& prefix);

/// Full chain for a command: defaults, file (may be empty), overrides, validation.
RunConfig load_run_config(Command command, const std::string& path_or_name,
                          const std::vector<std::string>& overrides);

/// The same chain with settings recorded elsewhere in the file's place (what a checkpoint says of
/// the run that made it: `eval` without a config file): defaults, recorded, overrides, validation.
RunConfig load_run_config_over(Command command, nlohmann::json recorded,
                               const std::vector<std::string>& overrides);

/// load_run_config_over without the validation, for a caller that needs part of a config (the
/// model) before the rest can be checked.
RunConfig parse_run_config_over(Command command, nlohmann::json recorded,
                                const std::vector<std::string>& overrides);

/// The resolved config as JSON (what the run directory's config.json holds; parses back).
nlohmann::json to_json(const RunConfig& config);

/// An attack's options as JSON (configs, checkpoint metadata, evaluation results).
nlohmann::json attack_to_json(const AttackConfig& attack);

/// Parses a number that may be written as a fraction ("8/255") or as a JSON number.
double parse_number(const nlohmann::json& value, const std::string& key_path);

/// `text` read whole as one number in std::stod's syntax ("nan" and "inf" included, for the
/// caller to refuse), or nullopt when it is not one or has anything after it.
std::optional<double> parse_whole_number(const std::string& text);

/// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace advft::config
