#include "advft/cli/inspect.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "advft/io/foreign.h"
#include "advft/io/printable.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/signals.h"

namespace advft::cli {

struct InspectCliOptions {
  std::string file;
  std::string key;
  bool json = false;
};

namespace {

std::string shape_text(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i)
    out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

// 11173962 -> "11,173,962"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n);
  for (int pos = static_cast<int>(digits.size()) - 3; pos > 0; pos -= 3)
    digits.insert(static_cast<size_t>(pos), ",");
  return digits;
}

// Names come from strangers' files: a control character in one (an escape sequence) must not
// reach the terminal. Whole, unlike in an error message: inspect is where a user reads them.
std::string shown(const std::string& name) {
  return io::printable(name, std::string::npos);
}

// ... and never let one throw while printing.
std::string dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json to_json(const io::FileInfo& info) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : info.tensors) {
    nlohmann::json entry = {
        {"name", t.name},
        {"shape", t.tensor.defined() ? t.tensor.sizes().vec() : std::vector<int64_t>{}},
        {"dtype",
         t.tensor.defined() ? io::dtype_name(t.tensor.scalar_type()) : std::string("undefined")}};
    tensors.push_back(std::move(entry));
  }
  return {{"file", info.path},           {"format", io::format_name(info.format)},
          {"keys", info.tensors.size()}, {"parameters", info.parameters},
          {"layout", info.layout},       {"metadata", info.metadata},
          {"tensors", tensors}};
}

// The train_state fields worth a line; the rest is in --json.
std::string train_state_summary(const nlohmann::json& state) {
  std::ostringstream out;
  const char* sep = "";
  for (const char* field :
       {"command", "epoch", "next_step", "total_steps", "best_epoch", "best_val_score"}) {
    const auto it = state.find(field);
    if (it != state.end() && !it->is_null()) {
      out << sep << field << " " << dump(*it);
      sep = ", ";
    }
  }
  const auto data = state.find("data");
  if (data != state.end() && data->is_object() && data->contains("dataset"))
    out << sep << "dataset " << dump(data->at("dataset"));
  return out.str();
}

void print_text(const io::FileInfo& info) {
  std::ostream& out = std::cout;
  out << "file:       " << info.path << "\n";
  out << "format:     " << io::format_name(info.format) << "\n";
  out << "keys:       " << info.tensors.size() << "\n";
  out << "parameters: " << grouped(info.parameters) << "\n";
  out << "layout:     " << shown(info.layout) << "\n";
  const auto& m = info.metadata;
  if (info.format == io::FileFormat::kAdvftCheckpoint) {
    out << "model:      " << shown(m.value("model", "")) << "\n";
    out << "model_spec: " << dump(m.at("model_spec")) << "\n";
    const std::string summary = train_state_summary(m.at("train_state"));
    if (!summary.empty()) out << "training:   " << summary << "\n";
  } else if (io::is_torch_save(info.format)) {
    const std::string chosen = m.value("chosen_key", "");
    out << "state_dict: "
        << (chosen.empty() ? std::string("the file itself") : "under key '" + shown(chosen) + "'")
        << "\n";
    if (!m.at("candidate_keys").empty())
      out << "candidates: " << dump(m.at("candidate_keys")) << "\n";
  } else if (info.format == io::FileFormat::kTorchScript) {
    out << "model:      a whole scripted or traced model (torch.jit.save): fine-tune or evaluate "
           "it with model.kind = \"torchscript\"\n";
  } else if (m.contains("metadata") && !m.at("metadata").empty()) {
    out << "metadata:   " << dump(m.at("metadata")) << "\n";
  }
  const std::string prefix = m.value("stripped_prefix", "");
  if (!prefix.empty()) out << "stripped:   prefix '" << shown(prefix) << "' of every name\n";

  size_t name_width = 4;
  size_t shape_width = 5;
  for (const auto& t : info.tensors) {
    name_width = std::max(name_width, shown(t.name).size());
    shape_width = std::max(shape_width, shape_text(t.tensor).size());
  }
  auto row = [&](const std::string& name, const std::string& shape, const std::string& dtype) {
    out << "  " << name << std::string(name_width - name.size() + 2, ' ') << shape
        << std::string(shape_width - shape.size() + 2, ' ') << dtype << "\n";
  };
  out << "\n";
  row("name", "shape", "dtype");
  for (const auto& t : info.tensors) {
    row(shown(t.name), shape_text(t.tensor),
        t.tensor.defined() ? io::dtype_name(t.tensor.scalar_type()) : std::string("undefined"));
  }
}

void run_inspect(const InspectCliOptions& o) {
  runtime::init_logging(false);
  const io::FileInfo info = io::inspect_file(o.file, o.key);
  runtime::throw_if_stopped("inspect");  // a Ctrl-C while a large file was read
  if (o.json) {
    std::cout << dump(to_json(info), 2) << std::endl;
  } else {
    print_text(info);
    std::cout << std::flush;
  }
}

}  // namespace

void setup_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectCliOptions>();
  auto* command = app.add_subcommand(
      "inspect",
      "Show what a checkpoint file holds: format, keys with shapes and dtypes, total "
      "parameters, detected architecture and metadata (advft, safetensors or torch.save)");
  command->add_option("file", o->file, "Checkpoint file (.safetensors, .pt, .pth, .tar, ...)")
      ->required();
  command->add_option("--key", o->key,
                      "torch.save files: the top-level key holding the state_dict");
  command->add_flag("--json", o->json, "Print everything as one JSON object");
  command->callback([o]() { run_inspect(*o); });
}

}  // namespace advft::cli
