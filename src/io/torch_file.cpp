#include "advft/io/torch_file.h"

#include <algorithm>
#include <set>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/printable.h"
#include "advft/io/zip_reader.h"
#include "torch_legacy.h"

namespace advft::io {
namespace {

// Where training code commonly puts the state_dict, most specific first.
constexpr const char* kKnownKeys[] = {"state_dict", "model_state_dict", "model", "net",
                                      "ema",        "state_dict_ema",   "module"};
// DataParallel/DDP wrap the model as `module`; RobustBench-style wrappers as `model`.
constexpr const char* kWrapperPrefixes[] = {"module.", "model."};
constexpr size_t kMaxKeysListed = 20;
constexpr int kMaxNesting = 32;

// State_dict keys are strings; optimizer state uses ints. Anything else cannot name a tensor.
bool key_name(const PickleValue& key, std::string& out) {
  if (key.kind == PickleValue::Kind::kString) {
    out = key.text;
    return true;
  }
  if (key.kind == PickleValue::Kind::kInt) {
    out = std::to_string(key.integer);
    return true;
  }
  return false;
}

bool holds_tensors(const PickleValue& value, int depth = 0) {
  if (value.kind == PickleValue::Kind::kTensor) {
    return true;
  }
  if (value.kind != PickleValue::Kind::kDict || depth > kMaxNesting) {
    return false;
  }
  for (const auto& entry : value.entries) {
    std::string ignored;
    if (key_name(entry.key, ignored) && holds_tensors(entry.value, depth + 1)) {
      return true;
    }
  }
  return false;
}

bool all_tensors(const PickleValue& value) {
  if (value.kind != PickleValue::Kind::kDict || value.entries.empty()) {
    return false;
  }
  for (const auto& entry : value.entries) {
    if (entry.value.kind != PickleValue::Kind::kTensor ||
        entry.key.kind != PickleValue::Kind::kString) {
      return false;
    }
  }
  return true;
}

void flatten(const PickleValue& dict, const std::string& prefix, int depth,
             std::vector<NamedTensor>& out) {
  for (const auto& entry : dict.entries) {
    std::string name;
    if (!key_name(entry.key, name)) {
      continue;
    }
    if (entry.value.kind == PickleValue::Kind::kTensor) {
      out.push_back({prefix + name, entry.value.tensor});
    } else if (depth < kMaxNesting && holds_tensors(entry.value)) {
      flatten(entry.value, prefix + name + ".", depth + 1, out);
    }
  }
}

// "'epoch' (int), 'state_dict' (dict), ...": what the user can pass as the key.
std::string describe_keys(const PickleValue& root) {
  std::string out;
  size_t listed = 0;
  for (const auto& entry : root.entries) {
    if (listed == kMaxKeysListed) {
      out += ", and " + std::to_string(root.entries.size() - kMaxKeysListed) + " more";
      break;
    }
    std::string name;
    out += listed++ ? ", " : "";
    out += key_name(entry.key, name) ? "'" + printable(name) + "'" : entry.key.kind_name();
    out += std::string(" (") + entry.value.kind_name() + ")";
  }
  return out.empty() ? "none" : out;
}

// Names a file that is not a zip archive as precisely as its first bytes allow.
[[noreturn]] void fail_not_zip(const std::string& bytes, const std::string& path) {
  if (bytes.size() > 262 && bytes.compare(257, 5, "ustar") == 0) {
    throw CheckpointError(path +
                          ": a tar archive: torch.save's format before PyTorch 0.1.10, or not a "
                          "checkpoint; load it with an old PyTorch and save it again");
  }
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x80 && bytes[1] >= 1 &&
      bytes[1] <= 5) {
    throw CheckpointError(path + ": a plain Python pickle, not a torch.save archive");
  }
  if (bytes.size() > 9 && bytes[8] == '{') {
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) {
      header = (header << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
    }
    if (header <= bytes.size() - 8) {
      throw CheckpointError(path + ": a safetensors file, not a torch.save archive");
    }
    // The loaders send a safetensors file here when its header length does not fit the file
    // (a lying or truncated header); "no zip archive signature" would hide what is wrong.
    throw CheckpointError(path + ": a safetensors header of " + std::to_string(header) +
                          " bytes in a file of " + std::to_string(bytes.size()) +
                          " bytes: truncated or corrupt");
  }
  throw CheckpointError(path + ": not a torch.save file (no zip archive signature)");
}

// The archive's folder: torch.save names it after the file (1.x) or "archive" (2.x).
std::string find_record_prefix(const ZipReader& zip) {
  for (const auto& name : zip.names()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && slash > 0 &&
        name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      return name.substr(0, slash + 1);
    }
  }
  throw CheckpointError(zip.source() +
                        ": zip archive without a <folder>/data.pkl record: not a "
                        "torch.save file");
}

}  // namespace

std::string strip_wrapper_prefixes(std::vector<NamedTensor>& tensors) {
  std::string stripped;
  for (bool again = true; again && !tensors.empty();) {
    again = false;
    for (const std::string prefix : kWrapperPrefixes) {
      const bool all = std::all_of(tensors.begin(), tensors.end(), [&](const NamedTensor& t) {
        return t.name.size() > prefix.size() && t.name.compare(0, prefix.size(), prefix) == 0;
      });
      if (!all) continue;
      for (auto& t : tensors)
        t.name.erase(0, prefix.size());
      stripped += prefix;
      again = true;
    }
  }
  return stripped;
}

TorchFileContent find_state_dict(const PickleValue& root, const std::string& source,
                                 const std::string& key) {
  if (root.kind != PickleValue::Kind::kDict) {
    throw CheckpointError(source + ": holds a value of type " + root.kind_name() +
                          ", not a state_dict or a dict holding one");
  }
  TorchFileContent content;
  for (const auto& entry : root.entries) {
    // Only string keys: those are what a user can name.
    if (entry.key.kind == PickleValue::Kind::kString &&
        entry.value.kind == PickleValue::Kind::kDict && holds_tensors(entry.value)) {
      content.candidate_keys.push_back(entry.key.text);
    }
  }

  const PickleValue* chosen = nullptr;
  if (!key.empty()) {
    chosen = root.find(key);
    if (chosen == nullptr) {
      throw CheckpointError(source + ": has no key '" + printable(key) +
                            "'; its keys: " + describe_keys(root));
    }
    if (chosen->kind != PickleValue::Kind::kDict || !holds_tensors(*chosen)) {
      throw CheckpointError(source + ": key '" + printable(key) + "' holds a value of type " +
                            chosen->kind_name() + " without tensors, not a state_dict");
    }
    content.chosen_key = key;
  } else if (all_tensors(root)) {
    chosen = &root;
  } else {
    for (const char* known : kKnownKeys) {
      const PickleValue* value = root.find(known);
      if (value != nullptr && value->kind == PickleValue::Kind::kDict && holds_tensors(*value)) {
        chosen = value;
        content.chosen_key = known;
        break;
      }
    }
    if (chosen == nullptr && content.candidate_keys.size() == 1) {
      chosen = root.find(content.candidate_keys.front());
      content.chosen_key = content.candidate_keys.front();
    }
    if (chosen == nullptr && content.candidate_keys.empty() && holds_tensors(root)) {
      chosen = &root;  // a state_dict with a few non-tensor values beside the tensors
    }
    if (chosen == nullptr) {
      throw CheckpointError(
          source +
          ": cannot tell which value is the state_dict (choose one with a key); its keys: " +
          describe_keys(root));
    }
  }

  flatten(*chosen, "", 0, content.tensors);
  std::set<std::string> seen;
  for (const auto& t : content.tensors) {
    if (!seen.insert(t.name).second) {
      throw CheckpointError(source + ": the state_dict names tensor '" + printable(t.name) +
                            "' twice once nested dicts are flattened");
    }
  }
  content.stripped_prefix = strip_wrapper_prefixes(content.tensors);
  return content;
}

TorchFileContent decode_torch_file(std::string bytes, const std::string& source,
                                   const std::string& key) {
  if (detail::is_legacy_torch_save(bytes)) {
    TorchFileContent content =
        find_state_dict(detail::decode_legacy_torch_save(bytes, source), source, key);
    content.legacy = true;
    return content;
  }
  if (bytes.compare(0, 4, "PK\x03\x04", 4) != 0 && bytes.compare(0, 4, "PK\x05\x06", 4) != 0) {
    fail_not_zip(bytes, source);
  }
  const ZipReader zip(std::move(bytes), source);
  const std::string prefix = find_record_prefix(zip);
  if (zip.has(prefix + "constants.pkl")) {
    throw CheckpointError(source +
                          ": a TorchScript archive (torch.jit.save), not a torch.save "
                          "checkpoint");
  }
  if (zip.has(prefix + "byteorder")) {
    const std::string_view order = zip.view(prefix + "byteorder");
    if (order == "big") {
      throw CheckpointError(source +
                            ": saved on a big-endian machine; only little-endian "
                            "torch.save files are supported");
    }
    if (order != "little") {
      throw CheckpointError(source + ": unknown byteorder record '" + printable(order) + "'");
    }
  }
  const StorageLoader load_storage = [&](const std::string& storage_key) {
    const std::string name = prefix + "data/" + storage_key;
    if (!zip.has(name)) {
      throw CheckpointError(source + ": storage record '" + printable(name) +
                            "' is missing from the archive");
    }
    return zip.view(name);
  };
  const PickleValue root = unpickle(zip.view(prefix + "data.pkl"), source, load_storage);
  return find_state_dict(root, source, key);
}

TorchFileContent read_torch_file(const std::string& path, const std::string& key) {
  return decode_torch_file(read_checkpoint_bytes(path), path, key);
}

}  // namespace advft::io
