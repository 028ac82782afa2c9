#include "advft/config/load.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "advft/attacks/attack_spec.h"
#include "advft/error.h"
#include "advft/io/directory.h"
#include "advft/runtime/device.h"
#include "advft/runtime/switch.h"
#include "json_reader.h"

namespace advft::config {
namespace fs = std::filesystem;
using detail::JsonReader;
using nlohmann::json;

RunConfig default_config(Command command) {
  RunConfig config;
  if (command == Command::kTrain) {
    // Training from scratch is the baseline the method is compared with: PGD-AT's classic
    // piecewise schedule (lr 0.1, x0.1 at 50% and 75%).
    config.schedule.kind = "piecewise";
    config.schedule.peak_lr = 0.1;
    config.train.epochs = 10;
  }
  return config;
}

namespace {

std::string executable_dir() {
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  return error ? std::string() : exe.parent_path().string();
}

// Where shipped configs can live: next to an installed binary, in the source tree it was
// built from, or wherever ADVFT_CONFIG_DIR points.
std::vector<fs::path> config_search_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("ADVFT_CONFIG_DIR")) dirs.emplace_back(env);
  std::string exe_dir = executable_dir();
  if (!exe_dir.empty()) {
    dirs.push_back(fs::path(exe_dir) / ".." / "share" / "advft" / "configs");
    dirs.push_back(fs::path(exe_dir) / ".." / "configs");
  }
#ifdef ADVFT_CONFIG_DIR
  dirs.emplace_back(ADVFT_CONFIG_DIR);
#endif
  return dirs;
}

}  // namespace

std::vector<std::string> shipped_config_names() {
  std::vector<std::string> names;
  for (const auto& dir : config_search_dirs()) {
    std::error_code error;
    for (const std::string& file : io::directory_names(dir, error)) {
      const fs::path path(file);
      if (path.extension() == ".json") names.push_back(path.stem().string());
    }
    if (!names.empty()) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_config_path(const std::string& path_or_name) {
  std::error_code error;
  if (fs::is_regular_file(path_or_name, error)) return path_or_name;
  std::string name = fs::path(path_or_name).filename().string();
  if (fs::path(name).extension() != ".json") name += ".json";
  // Only a bare name (or a path that does not exist) falls back to the shipped recipes.
  for (const auto& dir : config_search_dirs()) {
    fs::path candidate = dir / name;
    if (!fs::is_regular_file(candidate, error)) continue;
    const std::string shipped = fs::weakly_canonical(candidate).string();
    // A path to a file that is not there, taken to mean the shipped config of its name (so
    // that configs/x.json works from any directory): said, in case the path was a typo.
    if (fs::path(path_or_name).has_parent_path())
      spdlog::info("--config {}: no such file; using the shipped {}", path_or_name, shipped);
    return shipped;
  }
  std::string known;
  for (const auto& n : shipped_config_names())
    known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(path_or_name + ": no such config file, and no shipped config of that name" +
                    (known.empty() ? std::string() : " (shipped: " + known + ")"));
}

// JSON keeps the last of two equal keys in an object, silently: a config that sets a key twice
// (or has two "train" sections) loses one of them. The parser's callback sees every key.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        frames_.push_back({event == json::parse_event_t::object_start, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        Frame& frame = frames_.back();
        if (!frame.keys.insert(key).second && duplicate_.empty()) duplicate_ = path_to(key);
        frame.key = key;
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  }
  /// The first key found twice, as a dotted path ("train.epochs"), or "".
  const std::string& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string key;  // the latest key of an object
  };
  std::string path_to(const std::string& key) const {
    std::string path;
    for (std::size_t i = 0; i + 1 < frames_.size(); ++i)
      path += frames_[i].object ? frames_[i].key + "." : "";
    return path + key;
  }
  std::vector<Frame> frames_;
  std::string duplicate_;
};

json read_config_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file: " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    DuplicateKeyFinder finder;
    json root = json::parse(
        buffer.str(),
        [&finder](int depth, json::parse_event_t event, json& parsed) {
          return finder(depth, event, parsed);
        },
        true, /*ignore_comments=*/true);
    if (!finder.duplicate().empty()) {
      throw ConfigError(path + ": key " + finder.duplicate() +
                        " is set twice; JSON would keep only the last, so delete the other");
    }
    if (!root.is_object()) {
      throw ConfigError(path + ": the config must be a JSON object ({...}), not " +
                        std::string(root.type_name()));
    }
    return root;
  } catch (const json::parse_error& e) {
    // nlohmann reports the byte offset; users want line:column.
    std::string text = buffer.str();
    std::size_t offset = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    std::size_t line = 1 + std::count(text.begin(), text.begin() + offset, '\n');
    std::size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
    std::size_t column = offset - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    throw ConfigError(path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                      ": not valid JSON (" + std::string(e.what()).substr(0, 120) + ")");
  } catch (const json::out_of_range& e) {  // a number no double holds, e.g. 1e400
    throw ConfigError(path + ": " + std::string(e.what()).substr(0, 120));
  }
}

void apply_override(json& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + assignment + ": expected key.path=value, e.g. train.epochs=5");
  }
  // "--set 'train.epochs = 2'" means train.epochs: spaces around the key are not part of it.
  std::string path = assignment.substr(0, eq);
  path.erase(path.find_last_not_of(" \t") + 1);
  path.erase(0, path.find_first_not_of(" \t"));
  std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words and fractions like 8/255 stay strings
  } catch (const json::out_of_range&) {
    throw ConfigError("--set " + assignment + ": the number is too large");
  }
  json* node = &root;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) throw ConfigError("--set " + assignment + ": empty key in '" + path + "'");
    if (!node->is_object()) {
      throw ConfigError("--set " + assignment + ": '" + path.substr(0, start - 1) +
                        "' is not an object");
    }
    if (dot == std::string::npos) {
      (*node)[key] = value;
      return;
    }
    node = &(*node)[key];
    if (node->is_null()) *node = json::object();
    start = dot + 1;
  }
}

std::optional<double> parse_whole_number(const std::string& text) {
  std::size_t used = 0;
  double number = 0.0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size()) return std::nullopt;
  return number;
}

double parse_number(const json& value, const std::string& key_path) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const std::string text = value.get<std::string>();
    auto parse_plain = [&](const std::string& part) {
      const std::optional<double> number = parse_whole_number(part);
      if (!number) {
        throw ConfigError(key_path + " = \"" + text +
                          "\": expected a number or a fraction like 8/255");
      }
      return *number;
    };
    auto slash = text.find('/');
    double number = 0.0;
    if (slash == std::string::npos) {
      number = parse_plain(text);
    } else {
      const double denominator = parse_plain(text.substr(slash + 1));
      if (denominator == 0.0) throw ConfigError(key_path + " = \"" + text + "\": division by zero");
      number = parse_plain(text.substr(0, slash)) / denominator;
    }
    // stod reads "nan" and "inf", which no setting means (JSON itself has neither).
    if (!std::isfinite(number))
      throw ConfigError(key_path + " = \"" + text + "\": expected a finite number");
    return number;
  }
  throw ConfigError(key_path + " = " + value.dump() +
                    ": expected a number or a fraction like 8/255");
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

namespace {

void read_attack(JsonReader& parent, const std::string& key, AttackConfig& attack) {
  const json* object = parent.object(key);
  if (object == nullptr) return;
  JsonReader r(*object, parent.key_path(key));
  r.read("kind", attack.kind);
  r.read("norm", attack.norm);
  r.read("eps", attack.eps);
  r.read("step_size", attack.step_size);
  r.read("steps", attack.steps);
  r.read("restarts", attack.restarts);
  r.read("random_start", attack.random_start);
  r.read("loss", attack.loss);
  r.read("targets", attack.targets);
  r.read("eot", attack.eot);
  r.finish();
}

void read_model(JsonReader& root, models::ModelSpec& m) {
  const json* object = root.object("model");
  if (object == nullptr) return;
  JsonReader r(*object, "model");
  r.read("kind", m.kind);
  r.read("path", m.path);
  r.read("arch", m.arch);
  r.read("num_classes", m.num_classes);
  r.read("in_channels", m.in_channels);
  r.read("input_size", m.input_size);
  r.read("mean", m.mean);
  r.read("std", m.std);
  r.read("blocks", m.blocks);
  r.read("width", m.width);
  r.read("cifar_stem", m.cifar_stem);
  r.read("depth", m.depth);
  r.read("widen_factor", m.widen_factor);
  r.finish();
}

void read_data(JsonReader& root, DataConfig& d) {
  const json* object = root.object("data");
  if (object == nullptr) return;
  JsonReader r(*object, "data");
  r.read("dataset", d.dataset);
  r.read("dir", d.dir);
  r.read("coarse_labels", d.coarse_labels);
  r.read("val_size", d.val_size);
  r.read("split_seed", d.split_seed);
  r.read("crop_padding", d.crop_padding);
  r.read("horizontal_flip", d.horizontal_flip);
  r.read("image_size", d.image_size);
  r.read("resize_size", d.resize_size);
  r.read("min_crop_scale", d.min_crop_scale);
  r.read("train_limit", d.train_limit);
  r.read("placement", d.placement);
  r.finish();
}

void read_optimizer(JsonReader& root, OptimizerConfig& o) {
  const json* object = root.object("optimizer");
  if (object == nullptr) return;
  JsonReader r(*object, "optimizer");
  r.read("momentum", o.momentum);
  r.read("nesterov", o.nesterov);
  r.read("weight_decay", o.weight_decay);
  r.finish();
}

void read_schedule(JsonReader& root, ScheduleConfig& s) {
  const json* object = root.object("schedule");
  if (object == nullptr) return;
  JsonReader r(*object, "schedule");
  r.read("kind", s.kind);
  r.read("start_lr", s.start_lr);
  r.read("peak_lr", s.peak_lr);
  r.read("end_lr", s.end_lr);
  r.read("warmup", s.warmup);
  r.read("decay", s.decay);
  r.read("milestones", s.milestones);
  r.read("gamma", s.gamma);
  r.finish();
}

void read_train(JsonReader& root, TrainConfig& t) {
  const json* object = root.object("train");
  if (object == nullptr) return;
  JsonReader r(*object, "train");
  r.read("epochs", t.epochs);
  r.read("batch_size", t.batch_size);
  r.read("seed", t.seed);
  r.read("adversarial", t.adversarial);
  r.read("clean_weight", t.clean_weight);
  r.read("objective", t.objective);
  r.read("trades_beta", t.trades_beta);
  r.read("init_checkpoint", t.init_checkpoint);
  r.read("init_key", t.init_key);
  r.read("init_strict", t.init_strict);
  r.read("init_reset_head", t.init_reset_head);
  r.read("log_every", t.log_every);
  read_attack(r, "val_attack", t.val_attack);
  r.read("val_batch_size", t.val_batch_size);
  r.finish();
}

void read_eval(JsonReader& root, EvalConfig& e) {
  const json* object = root.object("eval");
  if (object == nullptr) return;
  JsonReader r(*object, "eval");
  r.read("batch_size", e.batch_size);
  r.read("attacks", e.attacks);
  r.read("limit", e.limit);
  r.read("cascade", e.cascade);
  r.finish();
}

void require(bool ok, const std::string& key, const std::string& value, const std::string& rule) {
  if (!ok) throw ConfigError(key + " = " + value + ": " + rule);
}

std::string num(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

void check_attack_ranges(const AttackConfig& a, const std::string& prefix) {
  // The farthest two images are apart: 1 per pixel in Linf, sqrt(pixels) in L2 (388 for
  // 224x224x3), so 1000 bounds every ball that is not the whole image space.
  const bool l2 = a.norm == "l2";
  const double widest = l2 ? 1000.0 : 1.0;
  const std::string range =
      l2 ? "[0, 1000] (an L2 length in pixel units)" : "[0, 1] (pixel units; write 8/255, not 8)";
  require(std::isfinite(a.eps) && a.eps >= 0.0 && a.eps <= widest, prefix + "eps", num(a.eps),
          "must be in " + range);
  if (a.kind == "pgd" || a.kind == "fgsm") {  // the others choose their own steps
    require(std::isfinite(a.step_size) && a.step_size >= 0.0 && a.step_size <= widest,
            prefix + "step_size", num(a.step_size), "must be in " + range);
    require(a.step_size > 0.0 || a.eps == 0.0, prefix + "step_size", "0",
            "must be > 0: a zero step never leaves the start, and the robust accuracy would be "
            "the clean one");
  }
  // Bounds that keep a typo (steps=1000000000) from running for days before anyone notices.
  require(a.steps >= 1 && a.steps <= 100000, prefix + "steps", std::to_string(a.steps),
          "must be in [1, 100000]");
  require(a.restarts >= 1 && a.restarts <= 1000, prefix + "restarts", std::to_string(a.restarts),
          "must be in [1, 1000]");
  require(a.targets >= 1 && a.targets <= 1000, prefix + "targets", std::to_string(a.targets),
          "must be in [1, 1000]");
  require(a.eot >= 1 && a.eot <= 1000, prefix + "eot", std::to_string(a.eot),
          "must be in [1, 1000]");
}

namespace {

void validate_attack(const AttackConfig& a, const std::string& path) {
  require(a.kind == "pgd" || a.kind == "fgsm" || a.kind == "apgd" || a.kind == "apgd_t",
          path + ".kind", "\"" + a.kind + "\"",
          "must be \"pgd\", \"fgsm\", \"apgd\" or \"apgd_t\"");
  require(a.loss == "ce" || a.loss == "cw" || a.loss == "dlr", path + ".loss", "\"" + a.loss + "\"",
          "must be \"ce\", \"cw\" or \"dlr\"");
  require(a.norm == "linf" || a.norm == "l2", path + ".norm", "\"" + a.norm + "\"",
          "must be \"linf\" or \"l2\"");
  check_attack_ranges(a, path + ".");
  require(a.eot == 1 || a.kind == "apgd" || a.kind == "apgd_t", path + ".eot",
          std::to_string(a.eot), "only apgd and apgd_t average gradients over several forwards");
  require(a.restarts == 1 || a.kind != "fgsm", path + ".restarts", std::to_string(a.restarts),
          "FGSM is one step from one start; use attack.kind = \"pgd\" for restarts");
  require(a.targets == 9 || a.kind == "apgd_t", path + ".targets", std::to_string(a.targets),
          "only apgd_t attacks target classes; drop it");
}

}  // namespace

RunConfig parse_run_config(const json& root, RunConfig base) {
  JsonReader r(root, "");
  read_model(r, base.model);
  read_data(r, base.data);
  read_attack(r, "attack", base.attack);
  read_optimizer(r, base.optimizer);
  read_schedule(r, base.schedule);
  read_train(r, base.train);
  read_eval(r, base.eval);
  r.read("device", base.device);
  r.read("threads", base.threads);
  r.read("precision", base.precision);
  r.read("channels_last", base.channels_last);
  r.read("cuda_graphs", base.cuda_graphs);
  r.read("fused_bn_relu", base.fused_bn_relu);
  r.read("cudnn_benchmark_limit", base.cudnn_benchmark_limit);
  r.finish();
  return base;
}

void validate(const RunConfig& c) {
  validate_attack(c.attack, "attack");
  validate_attack(c.train.val_attack, "train.val_attack");
  const auto& s = c.schedule;
  const std::vector<std::string> kinds = {"slow_start_fast_decay", "piecewise", "cosine",
                                          "constant"};
  require(std::find(kinds.begin(), kinds.end(), s.kind) != kinds.end(), "schedule.kind",
          "\"" + s.kind + "\"",
          "must be one of slow_start_fast_decay, piecewise, cosine, constant");
  require(s.decay == "exponential" || s.decay == "linear" || s.decay == "cosine", "schedule.decay",
          "\"" + s.decay + "\"", "must be exponential, linear or cosine");
  // The update multiplies fp32 weights by the lr: one past fp32's range cannot be applied at all.
  const double max_lr = std::numeric_limits<float>::max();
  const std::string lr_range = " and at most " + num(max_lr) + " (fp32's largest)";
  require(s.start_lr >= 0.0 && s.start_lr <= max_lr, "schedule.start_lr", num(s.start_lr),
          "must be >= 0" + lr_range);
  require(s.peak_lr > 0.0 && s.peak_lr <= max_lr, "schedule.peak_lr", num(s.peak_lr),
          "must be > 0" + lr_range);
  require(s.end_lr >= 0.0 && s.end_lr <= max_lr, "schedule.end_lr", num(s.end_lr),
          "must be >= 0" + lr_range);
  require(!(s.kind == "slow_start_fast_decay" && s.decay == "exponential" && s.end_lr <= 0.0),
          "schedule.end_lr", num(s.end_lr), "must be > 0 for an exponential decay");
  require(s.warmup >= 0.0 && s.warmup < 1.0, "schedule.warmup", num(s.warmup),
          "must be a fraction of all iterations in [0, 1)");
  require(s.gamma > 0.0 && s.gamma <= 1.0, "schedule.gamma", num(s.gamma), "must be in (0, 1]");
  for (std::size_t i = 0; i < s.milestones.size(); ++i) {
    double m = s.milestones[i];
    require(m > 0.0 && m < 1.0 && (i == 0 || m > s.milestones[i - 1]),
            "schedule.milestones[" + std::to_string(i) + "]", num(m),
            "milestones must be increasing fractions of all iterations in (0, 1)");
  }
  require(c.optimizer.momentum >= 0.0 && c.optimizer.momentum < 1.0, "optimizer.momentum",
          num(c.optimizer.momentum), "must be in [0, 1)");
  require(!(c.optimizer.nesterov && c.optimizer.momentum == 0.0), "optimizer.nesterov", "true",
          "needs optimizer.momentum > 0");
  // Above 1 the decay alone would flip the weights' signs at an lr of 1.
  require(c.optimizer.weight_decay >= 0.0 && c.optimizer.weight_decay <= 1.0,
          "optimizer.weight_decay", num(c.optimizer.weight_decay), "must be in [0, 1]");
  require(c.train.epochs >= 1 && c.train.epochs <= 100000, "train.epochs",
          std::to_string(c.train.epochs), "must be in [1, 100000]");
  require(c.train.batch_size >= 1, "train.batch_size", std::to_string(c.train.batch_size),
          "must be >= 1");
  require(c.train.val_batch_size >= 1, "train.val_batch_size",
          std::to_string(c.train.val_batch_size), "must be >= 1");
  require(c.train.clean_weight >= 0.0 && c.train.clean_weight <= 1.0, "train.clean_weight",
          num(c.train.clean_weight), "must be in [0, 1]");
  require(c.train.objective == "pgd_at" || c.train.objective == "trades", "train.objective",
          "\"" + c.train.objective + "\"", "must be \"pgd_at\" or \"trades\"");
  require(std::isfinite(c.train.trades_beta) && c.train.trades_beta >= 0.0, "train.trades_beta",
          num(c.train.trades_beta), "must be >= 0");
  if (c.train.objective == "trades" && c.train.adversarial) {
    require(c.attack.kind == "pgd", "attack.kind", "\"" + c.attack.kind + "\"",
            "train.objective = trades builds its examples with PGD on the KL divergence; use "
            "\"pgd\"");
    require(c.train.clean_weight == 0.0, "train.clean_weight", num(c.train.clean_weight),
            "train.objective = trades has its own clean term (weighted by train.trades_beta); "
            "set 0");
    // Its examples come from one ascent on the KL divergence from x + 0.001 N(0, 1): these keys
    // of the attack section would be recorded and logged without changing a step.
    require(c.attack.loss == "ce", "attack.loss", "\"" + c.attack.loss + "\"",
            "train.objective = trades ascends the KL divergence, not attack.loss; leave it "
            "\"ce\" (the default)");
    require(c.attack.restarts == 1, "attack.restarts", std::to_string(c.attack.restarts),
            "train.objective = trades builds one set of examples per step; set 1");
    require(c.attack.random_start, "attack.random_start", "false",
            "train.objective = trades starts from x + 0.001 N(0, 1), as its reference code; "
            "set true");
  }
  require(c.train.log_every >= 1, "train.log_every", std::to_string(c.train.log_every),
          "must be >= 1");
  require(c.data.val_size >= 0, "data.val_size", std::to_string(c.data.val_size), "must be >= 0");
  require(c.data.crop_padding >= 0 && c.data.crop_padding <= 64, "data.crop_padding",
          std::to_string(c.data.crop_padding), "must be in [0, 64]");
  require(c.data.train_limit >= 0, "data.train_limit", std::to_string(c.data.train_limit),
          "must be >= 0");
  require(c.data.image_size >= 1 && c.data.image_size <= 4096, "data.image_size",
          std::to_string(c.data.image_size), "must be in [1, 4096]");
  require(c.data.resize_size >= c.data.image_size && c.data.resize_size <= 8192, "data.resize_size",
          std::to_string(c.data.resize_size),
          "must be in [data.image_size, 8192] (evaluation crops image_size out of it)");
  require(c.data.min_crop_scale > 0.0 && c.data.min_crop_scale <= 1.0, "data.min_crop_scale",
          num(c.data.min_crop_scale), "must be in (0, 1]");
  require(c.eval.batch_size >= 1, "eval.batch_size", std::to_string(c.eval.batch_size),
          "must be >= 1");
  require(c.eval.limit >= 0, "eval.limit", std::to_string(c.eval.limit), "must be >= 0");
  for (std::size_t i = 0; i < c.eval.attacks.size(); ++i) {
    // Parsing is the validation: it throws a ConfigError naming the spec.
    attacks::parse_attack_specs(c.eval.attacks[i], c.attack,
                                "eval.attacks[" + std::to_string(i) + "]");
  }
  require(c.threads >= 0 && c.threads <= 1024, "threads", std::to_string(c.threads),
          "must be in [0, 1024] (0: every core)");
  const std::vector<std::string> precisions = {"auto", "fp32", "tf32", "bf16", "fp16"};
  require(std::find(precisions.begin(), precisions.end(), c.precision) != precisions.end(),
          "precision", "\"" + c.precision + "\"", "must be auto, fp32, tf32, bf16 or fp16");
  runtime::parse_switch(c.channels_last, "channels_last");  // each throws a ConfigError naming it
  runtime::parse_switch(c.cuda_graphs, "cuda_graphs");
  runtime::parse_switch(c.fused_bn_relu, "fused_bn_relu");
  runtime::check_cudnn_benchmark_limit(c.cudnn_benchmark_limit);
  const std::string& p = c.data.placement;
  require(p == "auto" || p == "device" || p == "host", "data.placement", "\"" + p + "\"",
          "must be auto, device or host");
  runtime::check_device_name(c.device);
}

RunConfig load_run_config(Command command, const std::string& path_or_name,
                          const std::vector<std::string>& overrides) {
  json root = json::object();
  if (!path_or_name.empty()) root = read_config_json(resolve_config_path(path_or_name));
  return load_run_config_over(command, std::move(root), overrides);
}

RunConfig parse_run_config_over(Command command, json root,
                                const std::vector<std::string>& overrides) {
  for (const auto& assignment : overrides)
    apply_override(root, assignment);
  RunConfig config = parse_run_config(root, default_config(command));
  // Run directories and checkpoints record the spec: a TorchScript model must be found from
  // wherever they are used later.
  if (!config.model.path.empty())
    config.model.path = std::filesystem::absolute(config.model.path).lexically_normal().string();
  return config;
}

RunConfig load_run_config_over(Command command, json root,
                               const std::vector<std::string>& overrides) {
  RunConfig config = parse_run_config_over(command, std::move(root), overrides);
  validate(config);
  return config;
}

json attack_to_json(const AttackConfig& a) {
  return {{"kind", a.kind},
          {"norm", a.norm},
          {"eps", a.eps},
          {"step_size", a.step_size},
          {"steps", a.steps},
          {"restarts", a.restarts},
          {"random_start", a.random_start},
          {"loss", a.loss},
          {"targets", a.targets},
          {"eot", a.eot}};
}

json to_json(const RunConfig& c) {
  return {
      {"model", models::spec_to_json(c.model)},
      {"data",
       {{"dataset", c.data.dataset},
        {"dir", c.data.dir},
        {"coarse_labels", c.data.coarse_labels},
        {"val_size", c.data.val_size},
        {"split_seed", c.data.split_seed},
        {"crop_padding", c.data.crop_padding},
        {"horizontal_flip", c.data.horizontal_flip},
        {"image_size", c.data.image_size},
        {"resize_size", c.data.resize_size},
        {"min_crop_scale", c.data.min_crop_scale},
        {"train_limit", c.data.train_limit},
        {"placement", c.data.placement}}},
      {"attack", attack_to_json(c.attack)},
      {"optimizer",
       {{"momentum", c.optimizer.momentum},
        {"nesterov", c.optimizer.nesterov},
        {"weight_decay", c.optimizer.weight_decay}}},
      {"schedule",
       {{"kind", c.schedule.kind},
        {"start_lr", c.schedule.start_lr},
        {"peak_lr", c.schedule.peak_lr},
        {"end_lr", c.schedule.end_lr},
        {"warmup", c.schedule.warmup},
        {"decay", c.schedule.decay},
        {"milestones", c.schedule.milestones},
        {"gamma", c.schedule.gamma}}},
      {"train",
       {{"epochs", c.train.epochs},
        {"batch_size", c.train.batch_size},
        {"seed", c.train.seed},
        {"adversarial", c.train.adversarial},
        {"clean_weight", c.train.clean_weight},
        {"objective", c.train.objective},
        {"trades_beta", c.train.trades_beta},
        {"init_checkpoint", c.train.init_checkpoint},
        {"init_key", c.train.init_key},
        {"init_strict", c.train.init_strict},
        {"init_reset_head", c.train.init_reset_head},
        {"log_every", c.train.log_every},
        {"val_attack", attack_to_json(c.train.val_attack)},
        {"val_batch_size", c.train.val_batch_size}}},
      {"eval",
       {{"batch_size", c.eval.batch_size},
        {"attacks", c.eval.attacks},
        {"limit", c.eval.limit},
        {"cascade", c.eval.cascade}}},
      {"device", c.device},
      {"threads", c.threads},
      {"precision", c.precision},
      {"channels_last", c.channels_last},
      {"cuda_graphs", c.cuda_graphs},
      {"fused_bn_relu", c.fused_bn_relu},
      {"cudnn_benchmark_limit", c.cudnn_benchmark_limit},
  };
}

}  // namespace advft::config
