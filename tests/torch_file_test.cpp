// torch.save files: what Python PyTorch writes loads with exact values, and what a stranger could
// write (code-running globals, truncated or lying archives) fails with a CheckpointError naming
// the file, never a crash. The fixtures come from tests/fixtures/make_torch_fixtures.py, run
// with Debian's python3-torch (/usr/bin/python3) once per build and script version.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "advft/error.h"
#include "advft/io/pickle.h"
#include "advft/io/torch_file.h"
#include "advft/io/zip_reader.h"
#include "checkpoint_bytes.h"
#include "expect_error.h"
#include "fixtures.h"
#include "numpy_pickle.h"

namespace {

using advft::CheckpointError;
using advft::io::decode_torch_file;
using advft::io::find_state_dict;
using advft::io::PickleValue;
using advft::io::read_torch_file;
using advft::io::StorageLoader;
using advft::io::TorchFileContent;
using advft::io::unpickle;
using advft::io::ZipReader;
using advft::testing::expect_checkpoint_error;
using advft::testing::pickle_p2;
using advft::testing::pickle_text;
using advft::testing::read_bytes;
using advft::testing::tensor_pickle;
using advft::testing::write_bytes;
using Kind = PickleValue::Kind;
using namespace std::string_literals;

const advft::testing::FixtureFiles& fixture_files() {
  return advft::testing::python_fixtures("make_torch_fixtures.py");
}

class TorchFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixture_files(); }
  // A missing python3-torch is a broken test set-up, not a reason to skip the safety tests.
  void SetUp() override {
    ASSERT_EQ(fixture_files().status, 0)
        << "fixture generation failed: " << fixture_files().command;
  }
  static std::string path(const std::string& name) { return fixture_files().path(name); }
};

class ZipReaderTest : public TorchFileTest {};
class PickleTest : public TorchFileTest {};

/// The values make_torch_fixtures.py writes: ((3 i + seed) mod 97 - 48) / 16.
torch::Tensor pattern(int64_t numel, int64_t seed, torch::ScalarType dtype = torch::kFloat32) {
  const auto i = torch::arange(numel, torch::kInt64);
  return ((i * 3 + seed).remainder(97) - 48).to(torch::kFloat64).div(16).to(dtype);
}

std::map<std::string, torch::Tensor> by_name(const TorchFileContent& content) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : content.tensors)
    out[t.name] = t.tensor;
  return out;
}

std::vector<std::string> names(const TorchFileContent& content) {
  std::vector<std::string> out;
  for (const auto& t : content.tensors)
    out.push_back(t.name);
  return out;
}

// Exact equality including dtype and shape.
void expect_tensor(const std::map<std::string, torch::Tensor>& tensors, const std::string& name,
                   const torch::Tensor& expected) {
  const auto it = tensors.find(name);
  ASSERT_NE(it, tensors.end()) << name;
  const torch::Tensor& got = it->second;
  EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
  EXPECT_EQ(got.sizes(), expected.sizes()) << name;
  EXPECT_TRUE(got.is_contiguous()) << name;
  if (got.scalar_type() == expected.scalar_type() && got.sizes() == expected.sizes()) {
    EXPECT_TRUE(torch::equal(got, expected)) << name << ": " << got << " vs " << expected;
  }
}

// The SmallConvNet state_dict of the fixture script: seed = position in the state_dict.
void expect_small_conv_net(const std::map<std::string, torch::Tensor>& t) {
  expect_tensor(t, "conv.weight", pattern(108, 0).reshape({4, 3, 3, 3}));
  expect_tensor(t, "bn.weight", pattern(4, 1));
  expect_tensor(t, "bn.bias", pattern(4, 2));
  expect_tensor(t, "bn.running_mean", pattern(4, 3));
  expect_tensor(t, "bn.running_var", pattern(4, 4));
  expect_tensor(t, "bn.num_batches_tracked", torch::tensor(5, torch::kInt64));
  expect_tensor(t, "fc.weight", pattern(40, 6).reshape({10, 4}));
  expect_tensor(t, "fc.bias", pattern(10, 7));
}

const std::vector<std::string> kConvNames = {"conv.weight",    "bn.weight",
                                             "bn.bias",        "bn.running_mean",
                                             "bn.running_var", "bn.num_batches_tracked",
                                             "fc.weight",      "fc.bias"};

// ---------------------------------------------------------------- torch.save files

TEST_F(TorchFileTest, ReadsOrderedDictStateDictOfEveryDtype) {
  const TorchFileContent content = read_torch_file(path("conv_state.pt"));
  EXPECT_EQ(content.chosen_key, "");
  EXPECT_EQ(content.stripped_prefix, "");
  EXPECT_TRUE(content.candidate_keys.empty());
  std::vector<std::string> expected_names = kConvNames;
  for (const char* extra : {"half", "bfloat16", "double", "long", "int32", "int16", "int8", "uint8",
                            "bool", "scalar", "empty"}) {
    expected_names.push_back(std::string("extra.") + extra);
  }
  EXPECT_EQ(names(content), expected_names);  // the file's order

  const auto t = by_name(content);
  expect_small_conv_net(t);
  expect_tensor(t, "extra.half", pattern(6, 8, torch::kFloat16).reshape({2, 3}));
  expect_tensor(t, "extra.bfloat16", pattern(5, 9, torch::kBFloat16));
  expect_tensor(t, "extra.double", pattern(4, 10, torch::kFloat64).reshape({2, 2}));
  expect_tensor(t, "extra.long", torch::arange(5, torch::kInt64) * (int64_t{1} << 40) - 7);
  expect_tensor(t, "extra.int32", (torch::arange(4, torch::kInt32) * 100000 - 3));
  expect_tensor(t, "extra.int16", (torch::arange(3, torch::kInt16) * 1000 - 1));
  expect_tensor(t, "extra.int8", (torch::arange(4, torch::kInt8) * 40 - 100));
  expect_tensor(t, "extra.uint8",
                torch::arange(300, torch::kInt64).remainder(256).to(torch::kUInt8));
  expect_tensor(t, "extra.bool", torch::arange(7).remainder(3) == 0);
  expect_tensor(t, "extra.scalar", torch::tensor(2.5f));
  expect_tensor(t, "extra.empty", torch::zeros({0, 3}));

  // The same archive laid out as PyTorch 2.x writes it, with unaligned records (Python's zipfile
  // does not pad), loads the same.
  const TorchFileContent layout2 = read_torch_file(path("torch2_layout.pt"));
  EXPECT_EQ(names(layout2), expected_names);
  for (const auto& [name, tensor] : by_name(layout2)) {
    expect_tensor(t, name, tensor);
  }
}

// The views the fixture script saves in views.pt and legacy_views.pt.
void expect_views(const std::map<std::string, torch::Tensor>& t) {
  const auto base = torch::arange(30, torch::kFloat32).reshape({5, 6});
  const auto shared = torch::arange(10, torch::kFloat64);
  expect_tensor(t, "base", base);
  expect_tensor(t, "view", base.slice(0, 1).slice(1, 0, 6, 2).contiguous());  // base[1:, ::2]
  expect_tensor(t, "column", base.select(1, 4).contiguous());
  expect_tensor(t, "transposed", base.t().contiguous());
  expect_tensor(t, "shared_a", shared.slice(0, 0, 6));
  expect_tensor(t, "shared_b", shared.slice(0, 4));
  expect_tensor(t, "expanded", torch::arange(3, torch::kFloat32).expand({4, 3}).contiguous());
  // Views of one storage load as separate tensors that own their memory.
  t.at("shared_a").fill_(-1);
  EXPECT_EQ(t.at("shared_b")[0].item<double>(), 4.0);
}

TEST_F(TorchFileTest, ResolvesOffsetsStridesAndSharedStorages) {
  expect_views(by_name(read_torch_file(path("views.pt"))));
}

// torch.save before PyTorch 1.6 (and with _use_new_zipfile_serialization=False since): the
// format of many released robust checkpoints. The same state_dict loads as from the zip file.
TEST_F(TorchFileTest, ReadsTheLegacyFormatLikeTheZipOne) {
  const TorchFileContent zip = read_torch_file(path("conv_state.pt"));
  EXPECT_FALSE(zip.legacy);
  for (const char* name : {"legacy.pt", "legacy_p4.pt"}) {
    SCOPED_TRACE(name);
    const TorchFileContent legacy = read_torch_file(path(name));
    EXPECT_TRUE(legacy.legacy);
    EXPECT_EQ(names(legacy), names(zip));
    const auto t = by_name(legacy);
    for (const auto& [key, tensor] : by_name(zip)) {
      expect_tensor(t, key, tensor);
    }
  }
  expect_views(by_name(read_torch_file(path("legacy_views.pt"))));

  const TorchFileContent epoch = read_torch_file(path("legacy_epoch_dict.pt"));
  EXPECT_EQ(epoch.chosen_key, "state_dict");
  EXPECT_EQ(epoch.stripped_prefix, "module.");
  EXPECT_EQ(names(epoch), kConvNames);
  expect_small_conv_net(by_name(epoch));
}

// PyTorch before 0.4 pickled tensors with _rebuild_tensor over storage views (view key, offset,
// size) into a root storage; the fixture writes that layout by hand (torch.load reads it too).
TEST_F(TorchFileTest, ReadsTheLegacyFormatsStorageViews) {
  const auto t = by_name(read_torch_file(path("legacy_old_views.pt")));
  ASSERT_EQ(t.size(), 2u);
  expect_tensor(t, "through_view", torch::tensor({3.f, 4.f, 5.f, 6.f}).reshape({2, 2}));
  expect_tensor(t, "whole", torch::arange(10, torch::kFloat32));
}

TEST_F(TorchFileTest, FindsStateDictUnderCommonKey) {
  const TorchFileContent content = read_torch_file(path("epoch_dict.pt"));
  EXPECT_EQ(content.chosen_key, "state_dict");
  EXPECT_EQ(content.candidate_keys, std::vector<std::string>{"state_dict"});
  EXPECT_EQ(names(content), kConvNames);
  expect_small_conv_net(by_name(content));
}

TEST_F(TorchFileTest, StripsDataParallelPrefix) {
  const TorchFileContent content = read_torch_file(path("module_prefix.pt"));
  EXPECT_EQ(content.stripped_prefix, "module.");
  EXPECT_EQ(names(content), kConvNames);
  expect_small_conv_net(by_name(content));
}

TEST_F(TorchFileTest, StripsDataParallelAndModelWrapperPrefixes) {
  const TorchFileContent content = read_torch_file(path("wrapped.pt"));
  EXPECT_EQ(content.stripped_prefix, "module.model.");
  EXPECT_EQ(names(content), kConvNames);
}

TEST_F(TorchFileTest, PrefersModelOverOptimizerInNestedCheckpoint) {
  const TorchFileContent content = read_torch_file(path("nested.pt"));
  EXPECT_EQ(content.chosen_key, "model");
  EXPECT_EQ(content.candidate_keys, (std::vector<std::string>{"model", "optimizer"}));
  expect_small_conv_net(by_name(content));

  // Another key on request; its nested dicts (int keys included) flatten with dots.
  const auto optimizer = by_name(read_torch_file(path("nested.pt"), "optimizer"));
  ASSERT_EQ(optimizer.size(), 5u);
  EXPECT_EQ(optimizer.at("state.0.momentum_buffer").sizes(), torch::IntArrayRef({4, 3, 3, 3}));
  EXPECT_EQ(optimizer.count("state.4.momentum_buffer"), 1u);
}

TEST_F(TorchFileTest, LoadsParametersSavedAsParameters) {
  const auto t = by_name(read_torch_file(path("parameters.pt")));
  ASSERT_EQ(t.size(), 5u);
  expect_tensor(t, "conv.weight", pattern(108, 0).reshape({4, 3, 3, 3}));
  expect_tensor(t, "bn.bias", pattern(4, 2));
  expect_tensor(t, "fc.weight", pattern(40, 6).reshape({10, 4}));
  EXPECT_FALSE(t.at("fc.weight").requires_grad());
}

TEST_F(TorchFileTest, AmbiguousCheckpointNeedsAKeyAndListsThem) {
  const std::string file = path("ambiguous.pt");
  expect_checkpoint_error([&] { read_torch_file(file); },
                          {file, "cannot tell", "'a' (dict)", "'b' (dict)"});
  const auto t = by_name(read_torch_file(file, "b"));
  EXPECT_EQ(t.size(), 2u);
  expect_tensor(t, "weight", pattern(40, 6).reshape({10, 4}));  // net.fc.state_dict()
}

TEST_F(TorchFileTest, UnknownKeyListsAvailableKeys) {
  const std::string file = path("epoch_dict.pt");
  expect_checkpoint_error(
      [&] { read_torch_file(file, "ema"); },
      {file, "no key 'ema'", "'epoch' (int)", "'arch' (str)", "'state_dict' (dict)"});
  expect_checkpoint_error([&] { read_torch_file(file, "epoch"); },
                          {file, "key 'epoch' holds a value of type int without tensors"});
}

TEST_F(TorchFileTest, RefusesEveryGlobalThatCouldRunCode) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hostile_os_system.pt", "os.system"},
      {"hostile_eval.pt", "builtins.eval"},
      {"hostile_stack_global.pt", "posix.system"},
      {"hostile_nested.pt", "subprocess.Popen"},
      {"legacy_hostile.pt", "subprocess.Popen"},
      // torch.save(model) of the fixture script's own class, in both formats.
      {"whole_model.pt", "__main__.SmallConvNet"},
      {"whole_model_legacy.pt", "__main__.SmallConvNet"}};
  for (const auto& [name, global] : cases) {
    const std::string file = path(name);
    expect_checkpoint_error([&] { read_torch_file(file); },
                            {"checkpoint: " + file + ": refuses to load global " + global +
                             ": loading a checkpoint must never run code"});
  }
  for (const char* name : {"whole_model.pt", "whole_model_legacy.pt"}) {
    expect_checkpoint_error([&] { read_torch_file(path(name)); },
                            {"a whole pickled model (torch.save(model)): save model.state_dict() "
                             "instead, or a TorchScript archive (torch.jit.save"});
  }
}

TEST_F(TorchFileTest, BrokenAndForeignFilesGiveClearErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated.pt", "truncated"},
      {"short_storage.pt", "holds 428 bytes, but the pickle claims 108 elements of 4 bytes"},
      {"missing_storage.pt", "data/1' is missing"},
      {"compressed.pt", "is compressed (method 8)"},
      {"big_endian.pt", "big-endian"},
      {"legacy_truncated.pt", "truncated: the record of storage '"},
      // Which record comes first depends on the storage keys (ids in the saving process).
      {"legacy_wrong_count.pt", "elements, but the pickle claims "},
      {"legacy_missing_record.pt", "storage 'root' that the pickle names has no record"},
      {"legacy_big_endian.pt", "saved on a big-endian machine"},
      {"torchscript.pt", "TorchScript archive"},
      {"notes.txt", "not a torch.save file"},
      {"plain_p2.pkl", "plain Python pickle"},
      {"does_not_exist.pt", "no such file"}};
  for (const auto& [name, what] : cases) {
    const std::string file = path(name);
    expect_checkpoint_error([&] { read_torch_file(file); }, {file, what});
  }
}

// Every strict prefix of a valid file, and random byte changes, end in CheckpointError or a
// successful load: never another exception, never a crash (the ASan build runs this too).
void expect_cuts_and_mutations_only_throw_checkpoint_error(const std::string& bytes) {
  ASSERT_GT(bytes.size(), 1000u);
  auto check = [&](const std::string& variant, const std::string& what) {
    try {
      decode_torch_file(variant, "variant.pt");
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("variant.pt"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << e.what();
    }
  };
  int cuts = 0;
  for (size_t length = 0; length < bytes.size(); length += length < 64 ? 1 : 17) {
    EXPECT_THROW(decode_torch_file(bytes.substr(0, length), "variant.pt"), CheckpointError)
        << length;
    ++cuts;
  }
  EXPECT_GT(cuts, 200);
  std::mt19937 rng(7);
  for (int i = 0; i < 400; ++i) {
    std::string variant = bytes;
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      variant[rng() % variant.size()] = static_cast<char>(rng());
    }
    check(variant, "mutation " + std::to_string(i));
  }
}

// A zip archive and a legacy file (which has no CRCs: changed storage bytes load as they are).
TEST_F(TorchFileTest, CutsAndMutationsOnlyEverThrowCheckpointError) {
  for (const char* name : {"conv_state.pt", "legacy.pt"}) {
    SCOPED_TRACE(name);
    expect_cuts_and_mutations_only_throw_checkpoint_error(read_bytes(path(name)));
  }
}

// The CRC check stops most mutations at the zip layer; this feeds changed pickles straight to the
// unpickler, with the real storages behind it.
TEST_F(PickleTest, MutatedPicklesOnlyEverThrowCheckpointError) {
  const ZipReader zip(read_bytes(path("views.pt")), "views.pt");
  std::string pickle_name;
  for (const auto& name : zip.names()) {
    if (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0) pickle_name = name;
  }
  ASSERT_FALSE(pickle_name.empty());
  const std::string folder = pickle_name.substr(0, pickle_name.size() - 8);
  const std::string pickle = zip.read(pickle_name);
  const StorageLoader loader = [&](const std::string& key) {
    const std::string name = folder + "data/" + key;
    if (!zip.has(name)) throw CheckpointError("views.pt: no " + name);
    return zip.view(name);
  };
  auto check = [&](const std::string& variant, const std::string& what) {
    try {
      const PickleValue root = unpickle(variant, "views.pt", loader);
      find_state_dict(root, "views.pt");
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << e.what();
    }
  };
  for (size_t length = 0; length < pickle.size(); ++length) {
    EXPECT_THROW(unpickle(pickle.substr(0, length), "views.pt", loader), CheckpointError);
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 600; ++i) {
    std::string variant = pickle;
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      // Small values hit sizes, strides, offsets, opcodes and memo indices more often.
      variant[rng() % variant.size()] = static_cast<char>(rng() % 2 ? rng() % 16 : rng());
    }
    check(variant, "mutation " + std::to_string(i));
  }
}

// ---------------------------------------------------------------- the zip layer

TEST_F(ZipReaderTest, IndexesTorchSaveArchive) {
  const ZipReader zip(read_bytes(path("conv_state.pt")), "conv_state.pt");
  ASSERT_FALSE(zip.names().empty());
  const std::string first = zip.names().front();
  const std::string folder = first.substr(0, first.find('/') + 1);
  EXPECT_TRUE(zip.has(folder + "data.pkl"));
  EXPECT_TRUE(zip.has(folder + "data/0"));
  EXPECT_FALSE(zip.has(folder + "data/999"));
  EXPECT_EQ(zip.view(folder + "data/0").size(), 108u * 4);  // conv.weight, float32
  EXPECT_FALSE(zip.read(folder + "version").empty());
  expect_checkpoint_error([&] { zip.view("nope"); }, {"conv_state.pt", "no entry 'nope'"});
}

TEST_F(ZipReaderTest, ReadsArchivesOfPythonsZipfileToo) {
  // zipfile writes no zip64 records for small archives; torch.save always does.
  const ZipReader zip(read_bytes(path("short_storage.pt")), "short_storage.pt");
  EXPECT_EQ(zip.names().size(), ZipReader(read_bytes(path("conv_state.pt")), "x").names().size());
}

TEST_F(ZipReaderTest, RejectsCompressedEntriesAndCorruptData) {
  const ZipReader compressed(read_bytes(path("compressed.pt")), "compressed.pt");
  expect_checkpoint_error([&] { compressed.view(compressed.names().front()); },
                          {"compressed.pt", "is compressed (method 8)", "re-zipped"});

  std::string bytes = read_bytes(path("conv_state.pt"));
  const ZipReader clean(bytes, "x");
  const std::string entry = clean.names()[1];
  // The view points into the reader's own copy; find the same bytes in ours.
  const std::string data(clean.view(entry));
  const size_t at = bytes.find(data);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
  const ZipReader corrupt(bytes, "corrupt.pt");
  expect_checkpoint_error([&] { corrupt.view(entry); }, {"corrupt.pt", "CRC-32 mismatch"});
}

TEST(ZipReaderHostileTest, LyingDirectoriesThrow) {
  auto end_record = [](uint16_t entries, uint32_t size, uint32_t offset) {
    std::string r("PK\x05\x06", 4);
    r += std::string(4, '\0');
    for (uint16_t v : {entries, entries})
      r += {static_cast<char>(v), static_cast<char>(v >> 8)};
    for (uint32_t v : {size, offset}) {
      for (int i = 0; i < 4; ++i)
        r += static_cast<char>(v >> (8 * i));
    }
    return r + std::string(2, '\0');
  };
  // Claims 60000 entries in a directory of 100 bytes, a directory past the end, and a zip64
  // locator that points nowhere.
  expect_checkpoint_error(
      [&] { ZipReader(std::string(100, 'x') + end_record(60000, 100, 0), "a"); },
      {"a: corrupt zip archive", "entries cannot fit"});
  expect_checkpoint_error([&] { ZipReader(end_record(1, 46, 4000), "b"); },
                          {"b: truncated or corrupt zip archive"});
  expect_checkpoint_error(
      [&] {
        ZipReader(std::string("PK\x06\x07", 4) + std::string(16, '\xff') +
                      end_record(0xffff, 0xffffffff, 0xffffffff),
                  "c");
      },
      {"c: truncated or corrupt zip archive"});
  expect_checkpoint_error([&] { ZipReader("PK", "d"); }, {"d: not a zip archive or truncated"});
  EXPECT_TRUE(ZipReader(end_record(0, 0, 0), "empty").names().empty());
}

// ---------------------------------------------------------------- the unpickler

TEST_F(PickleTest, PlainValuesInEveryProtocol) {
  for (int protocol = 2; protocol <= 5; ++protocol) {
    SCOPED_TRACE(protocol);
    const std::string bytes = read_bytes(path("plain_p" + std::to_string(protocol) + ".pkl"));
    const PickleValue v = unpickle(bytes, "plain.pkl", nullptr);
    ASSERT_EQ(v.kind, Kind::kDict);
    const PickleValue* ints = v.find("ints");
    ASSERT_NE(ints, nullptr);
    ASSERT_EQ(ints->kind, Kind::kList);
    const std::vector<int64_t> expected = {0,
                                           1,
                                           -1,
                                           255,
                                           256,
                                           65535,
                                           -70000,
                                           int64_t{1} << 40,
                                           std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max()};
    ASSERT_EQ(ints->items.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(ints->items[i].kind, Kind::kInt);
      EXPECT_EQ(ints->items[i].integer, expected[i]) << i;
    }
    const PickleValue* floats = v.find("floats");
    ASSERT_EQ(floats->kind, Kind::kTuple);
    EXPECT_EQ(floats->items.at(0).real, 0.5);
    EXPECT_EQ(floats->items.at(1).real, -1e300);
    EXPECT_EQ(v.find("none")->kind, Kind::kNone);
    EXPECT_TRUE(v.find("flags")->items.at(0).boolean);
    EXPECT_FALSE(v.find("flags")->items.at(1).boolean);
    EXPECT_EQ(v.find("text")->text, "h\xc3\xa9llo \xe2\x82\xac");
    EXPECT_EQ(v.find("bytes")->kind, Kind::kBytes);  // protocol 2: _codecs.encode(..., 'latin1')
    EXPECT_EQ(v.find("bytes")->text, std::string("\x00\xff", 2));
    const PickleValue* by_int = v.find("by_int");
    ASSERT_EQ(by_int->entries.size(), 1u);
    EXPECT_EQ(by_int->entries[0].key.integer, 7);
    EXPECT_EQ(by_int->entries[0].value.text, "seven");
    EXPECT_EQ(v.find("shared")->items.at(1).text, "s");
  }
}

TEST(PickleHostileTest, RefusesGlobalsByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {pickle_p2("c__builtin__\nexec\n" + pickle_text("x") + "\x85R"), "__builtin__.exec"},
      {pickle_p2("ctorch\nload\n"), "torch.load"},
      {pickle_p2("ctorch._utils\n_rebuild_sparse_tensor\n"), "torch._utils._rebuild_sparse_tensor"},
      {pickle_p2(pickle_text("nt") + pickle_text("system") + "\x93"), "nt.system"},
      {pickle_p2("(ios\nsystem\n"), "os.system"},  // INST
      {pickle_p2("\x82\x01"), "from the copyreg extension registry (code 1)"},
  };
  for (const auto& [bytes, global] : cases) {
    expect_checkpoint_error([&] { unpickle(bytes, "evil.pt", nullptr); },
                            {"evil.pt: refuses to load global " + global, "never run code"});
  }
  // A class, not a function: the file is a pickled model, and the message says what to save.
  expect_checkpoint_error(
      [&] { unpickle(pickle_p2("ctorch.nn.modules.container\nSequential\n"), "m.pt", nullptr); },
      {"m.pt: refuses to load global torch.nn.modules.container.Sequential",
       "a whole pickled model (torch.save(model)): save model.state_dict() instead"});
  // The training code's own model class (the usual case) gets the hint, hedged; Python's and
  // NumPy's classes (an argparse.Namespace saved beside the weights) do not.
  expect_checkpoint_error(
      [&] { unpickle(pickle_p2("cmodels.wideresnet\nWideResNet\n"), "w.pt", nullptr); },
      {"w.pt: refuses to load global models.wideresnet.WideResNet",
       "if it is a model class, the file holds a whole pickled model (torch.save(model)): save "
       "model.state_dict() instead"});
  for (const char* global : {"cargparse\nNamespace\n", "csubprocess\nPopen\n"}) {
    try {
      unpickle(pickle_p2(global), "other.pt", nullptr);
      ADD_FAILURE() << global;
    } catch (const CheckpointError& e) {
      EXPECT_EQ(std::string(e.what()).find("state_dict"), std::string::npos) << e.what();
    }
  }
  try {
    unpickle(pickle_p2("(ios\nsystem\n"), "evil.pt", nullptr);
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()).find("state_dict"), std::string::npos) << e.what();
  }
  expect_checkpoint_error(
      [&] { unpickle(pickle_p2("ctorch\nComplexFloatStorage\n"), "c.pt", nullptr); },
      {"c.pt: unsupported storage type torch.ComplexFloatStorage"});
}

TEST(PickleHostileTest, MalformedPicklesThrow) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "ends without a STOP"},
      {"\x80\x02"s, "ends without a STOP"},
      {pickle_p2(""), "stack underflow"},
      {pickle_p2("h\x05"), "memo entry 5 was never stored"},
      {pickle_p2("}(K\x01u"), "odd number of dict items"},
      {pickle_p2(")K\x01"
                 "a"),
       "APPEND target must be of type list, got tuple"},
      {pickle_p2("]}b"), "BUILD (setting object state) on type list"},
      {pickle_p2("X\xff\xff\xff\x7f"), "runs past its end"},
      {pickle_p2("\x8a\x09\0\0\0\0\0\0\0\0\x01"s), "does not fit in 64 bits"},
      {std::string("\x80\x09.", 3), "unsupported pickle protocol 9"},
      {pickle_p2("S'abc'\n"), "unsupported pickle opcode 0x53"},
      {pickle_p2("ccollections\nOrderedDict\nK\x01\x85R"), "called with 1 arguments"},
      {pickle_p2("]q\0h\0a"s), "nested deeper"},  // a list that contains itself
  };
  for (const auto& [bytes, what] : cases) {
    SCOPED_TRACE(what);
    expect_checkpoint_error([&] { unpickle(bytes, "bad.pkl", nullptr); }, {"bad.pkl: ", what});
  }
  // 10^4 nested lists; and one list shared 2^60 times.
  const std::string chain = std::string(10000, ']') + std::string(9999, 'a');
  expect_checkpoint_error([&] { unpickle(pickle_p2(chain), "deep.pkl", nullptr); },
                          {"nested deeper"});
  std::string shared = "]r\0\0\0\0"s;
  for (uint32_t k = 1; k <= 60; ++k) {
    auto index = [](uint32_t v) {
      return std::string{static_cast<char>(v), static_cast<char>(v >> 8), 0, 0};
    };
    shared += "](j" + index(k - 1) + "j" + index(k - 1) + "er" + index(k);
  }
  expect_checkpoint_error([&] { unpickle(pickle_p2(shared), "wide.pkl", nullptr); },
                          {"shares values too many times"});
}

// ---------------------------------------------------------------- numpy arrays (data files only)

using advft::testing::Py2Pickle;

advft::io::UnpickleOptions numpy_allowed() {
  advft::io::UnpickleOptions options;
  options.numpy_arrays = true;
  return options;
}

std::string raw_bytes(const torch::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
}

std::string ndarray_pickle(const std::vector<int64_t>& shape, const std::string& code,
                           const std::string& order, const std::string& data,
                           bool fortran = false) {
  Py2Pickle p;
  p.ndarray(shape, code, order, data, fortran);
  return p.bytes();
}

// A torch.save checkpoint holding a numpy array (an old training script's extra state) is
// refused as torch.load(weights_only=True) refuses it: numpy is opt-in for data files.
TEST(PickleNumpyTest, CheckpointsStillRefuseNumpyGlobals) {
  const std::string array = ndarray_pickle({2}, "i8", "<", std::string(16, '\1'));
  for (const auto& [bytes, global] : std::vector<std::pair<std::string, std::string>>{
           {array, "numpy.core.multiarray._reconstruct"},
           {pickle_p2("cnumpy\ndtype\n"), "numpy.dtype"},
           {pickle_p2("cnumpy\nndarray\n"), "numpy.ndarray"},
           {pickle_p2("cnumpy.core.numeric\n_frombuffer\n"), "numpy.core.numeric._frombuffer"}}) {
    expect_checkpoint_error([&] { unpickle(bytes, "arr.pt", nullptr); },
                            {"arr.pt: refuses to load global " + global +
                             ": loading a checkpoint must never run code"});
  }
  expect_checkpoint_error(
      [&] { decode_torch_file(advft::testing::torch_save_zip(array, ""), "np.pt"); },
      {"np.pt: refuses to load global numpy.core.multiarray._reconstruct: loading a checkpoint "
       "must never run code"});
}

TEST(PickleNumpyTest, ReadsPlainDtypesAsNumpyPicklesThem) {
  struct Case {
    std::string code;
    std::string order;
    torch::Tensor expected;
  };
  const std::vector<Case> cases = {
      {"u1", "|", torch::tensor({0, 7, 255}, torch::kUInt8)},
      {"i1", "|", torch::tensor({-128, 0, 127}, torch::kInt8)},
      {"b1", "|", torch::tensor({true, false, true})},
      {"i2", "<", torch::tensor({-300, 2, 30000}, torch::kInt16)},
      {"i4", "<", torch::tensor({-70000, 1, 2}, torch::kInt32)},
      {"i8", "<", torch::tensor({int64_t{1} << 40, int64_t{-2}, int64_t{3}}, torch::kInt64)},
      {"f2", "<", torch::tensor({0.5, -2.0, 1024.0}, torch::kFloat16)},
      {"f4", "<", torch::tensor({0.25f, -1.5f, 3e38f})},
      {"f8", "<", torch::tensor({1e-300, -0.0, 2.5}, torch::kFloat64)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.code);
    const torch::Tensor expected = c.expected.reshape({3, 1});
    // Python 2 (str data), Python 3's protocol 2 (_codecs.encode), numpy 2's module name.
    for (auto strings : {Py2Pickle::Strings::kPython2, Py2Pickle::Strings::kPython3Bytes}) {
      for (const char* module : {"numpy.core.multiarray", "numpy._core.multiarray"}) {
        Py2Pickle p(strings);
        p.ndarray({3, 1}, c.code, c.order, raw_bytes(c.expected), false, module);
        const PickleValue v = unpickle(p.bytes(), "a.pkl", nullptr, nullptr, numpy_allowed());
        ASSERT_EQ(v.kind, Kind::kTensor);
        EXPECT_EQ(v.tensor.scalar_type(), expected.scalar_type());
        EXPECT_TRUE(torch::equal(v.tensor, expected));
      }
    }
    // Protocol 5: _frombuffer(bytearray, dtype, shape, 'C') through STACK_GLOBAL, as Python 3.8+
    // writes it (numpy 1.16+).
    Py2Pickle dtype(Py2Pickle::Strings::kPython3Bytes);
    dtype.dtype(c.code, c.order);
    const std::string data = raw_bytes(c.expected);
    std::string p5 = "\x80\x05"s + pickle_text("numpy.core.numeric") + pickle_text("_frombuffer") +
                     "\x93(\x96" + advft::testing::le_bytes(data.size(), 8) + data;
    const std::string dtype_ops = dtype.bytes();
    p5 += dtype_ops.substr(2, dtype_ops.size() - 3) + "K\x03K\x01\x86" + pickle_text("C") + "tR.";
    const PickleValue v = unpickle(p5, "p5.pkl", nullptr, nullptr, numpy_allowed());
    ASSERT_EQ(v.kind, Kind::kTensor);
    EXPECT_TRUE(torch::equal(v.tensor, expected));
  }
  // Keys: Python 2's str and Python 3's bytes are both found by their text.
  Py2Pickle py3(Py2Pickle::Strings::kPython3Bytes);
  py3.op("}").put().op("(").str("labels").int_list({3, 1}).op("u");
  const PickleValue dict = unpickle(py3.bytes(), "d.pkl", nullptr);
  EXPECT_EQ(dict.find("labels"), nullptr);
  ASSERT_NE(dict.find_str_or_bytes("labels"), nullptr);
  EXPECT_EQ(dict.find_str_or_bytes("labels")->items.at(1).integer, 1);
}

TEST(PickleNumpyTest, RefusesWhatIsNotAPlainLittleEndianCOrderArray) {
  const std::string eight(8, '\0');
  Py2Pickle subarray;
  subarray.global("numpy", "dtype").native("u1").integer(0).integer(1).op("\x87R").put();
  subarray.op("(K\x03").native("|").op("K\x01NN").integer(-1).integer(-1).integer(0).op("tb");
  Py2Pickle bare;  // _reconstruct without the BUILD that brings shape, dtype and data
  bare.global("numpy.core.multiarray", "_reconstruct").global("numpy", "ndarray").int_tuple({0});
  bare.str("b").op("\x87R");
  Py2Pickle not_ndarray;
  not_ndarray.global("numpy.core.multiarray", "_reconstruct").global("collections", "OrderedDict");
  not_ndarray.int_tuple({0}).str("b").op("\x87R");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {ndarray_pickle({1}, "i8", ">", eight),
       "big-endian numpy arrays ('>i8') are not supported: convert with .astype('<i8')"},
      {ndarray_pickle({1}, "i8", "|", eight),
       "numpy dtype 'i8' with byte order '|' is not supported"},
      {ndarray_pickle({2, 4}, "u1", "|", eight, /*fortran=*/true),
       "Fortran-order numpy arrays are not supported"},
      {ndarray_pickle({1}, "O8", "|", eight), "numpy dtype 'O8' is not supported (an object array"},
      {ndarray_pickle({1}, "U2", "<", eight), "numpy dtype 'U2' is not supported (not a number"},
      {ndarray_pickle({1}, "u8", "<", eight), "numpy dtype 'u8' is not supported"},
      {ndarray_pickle({2}, "i4", "<", eight.substr(1)),
       "numpy array of shape (2,) and dtype 'i4' needs 8 bytes, its data holds 7"},
      {ndarray_pickle({-1, 0}, "i4", "<", ""), "numpy array has a negative size"},
      {ndarray_pickle({int64_t{1} << 31, int64_t{1} << 31, 8}, "f8", "<", ""),
       "numpy array size overflows"},
      {ndarray_pickle({2}, "b1", "|", "\x01\x02"),
       "numpy bool array holds a byte other than 0 or 1"},
      {subarray.bytes(), "structured or subarray numpy dtypes are not supported"},
      {bare.bytes(), "a numpy array without its state (no BUILD)"},
      {not_ndarray.bytes(), "numpy _reconstruct of collections.OrderedDict, not numpy.ndarray"},
      {pickle_p2("cnumpy\nndarray\n)R"), "calling numpy.ndarray is not allowed"},
      {pickle_p2("cnumpy\ndtype\n" + pickle_text("u1") + "\x85R"),
       "the pickle holds a numpy dtype by itself"},
      {pickle_p2("cnumpy.core.multiarray\nscalar\n"),
       "refuses to load global numpy.core.multiarray.scalar"},
  };
  for (const auto& [bytes, what] : cases) {
    SCOPED_TRACE(what);
    expect_checkpoint_error([&] { unpickle(bytes, "a.pkl", nullptr, nullptr, numpy_allowed()); },
                            {"a.pkl: ", what});
  }
  // One data string BUILT into many arrays would let a small file fill the memory.
  Py2Pickle shared;
  shared.op("(");
  for (int i = 0; i < 2; ++i) {
    shared.global("numpy.core.multiarray", "_reconstruct").global("numpy", "ndarray");
    shared.int_tuple({0}).str("b").op("\x87R").put().op("(").integer(1).int_tuple({4096});
    shared.dtype("u1", "|").op("\x89");
    shared.op(i == 0 ? "T" + advft::testing::le_bytes(4096, 4) + std::string(4096, 'x') + "q\xfa"
                     : "h\xfa");
    shared.op("tb");
  }
  expect_checkpoint_error(
      [&] { unpickle(shared.op("l").bytes(), "a.pkl", nullptr, nullptr, numpy_allowed()); },
      {"numpy arrays hold more bytes than the pickle"});
}

// A data file's errors are DataErrors (exit code 4), and its refusals say so.
TEST(PickleNumpyTest, DataFileErrorsAreDataErrors) {
  advft::io::UnpickleOptions options = numpy_allowed();
  options.data_file = true;
  for (const auto& [bytes, what] : std::vector<std::pair<std::string, std::string>>{
           {pickle_p2("cos\nsystem\n"),
            "data: b.pkl: refuses to load global os.system: loading a data file must never run "
            "code"},
           {pickle_p2("cmodels\nNet\n"), "data file must never run code"},
           {"\x80\x02"s, "data: b.pkl: truncated pickle"}}) {
    try {
      unpickle(bytes, "b.pkl", nullptr, nullptr, options);
      ADD_FAILURE() << "no error: " << what;
    } catch (const advft::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("state_dict"), std::string::npos) << e.what();
    }
  }
}

TEST(PickleTensorTest, RebuildsViewsAndChecksThemAgainstTheirStorage) {
  std::vector<float> values(12);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<float>(i);
  const std::string storage(reinterpret_cast<const char*>(values.data()), 48);
  const StorageLoader loader = [&](const std::string& key) {
    EXPECT_EQ(key, "0");
    return std::string_view(storage);
  };
  const PickleValue v = unpickle(tensor_pickle(1, {2, 3}, {4, 2}, 12), "t.pt", loader);
  ASSERT_EQ(v.kind, Kind::kTensor);
  EXPECT_TRUE(torch::equal(v.tensor, torch::tensor({{1.f, 3.f, 5.f}, {5.f, 7.f, 9.f}})));

  expect_checkpoint_error(
      [&] {
        unpickle(tensor_pickle(1, {2, 3}, {6, 3}, 12), "t.pt", loader);
      },
      {"t.pt: tensor view", "reaching element 13", "of 12 elements"});
  expect_checkpoint_error([&] { unpickle(tensor_pickle(0, {2}, {1}, 13), "t.pt", loader); },
                          {"t.pt: storage '0' holds 48 bytes, but the pickle claims 13 elements"});
  expect_checkpoint_error([&] { unpickle(tensor_pickle(0, {2}, {1}, 12), "t.pt", nullptr); },
                          {"no archive holds storages"});
  // A bool storage must hold 0 or 1 only; 0x02 would be undefined behaviour in every kernel.
  expect_checkpoint_error(
      [&] { unpickle(tensor_pickle(0, {2}, {1}, 12, "BoolStorage"), "t.pt", loader); },
      {"bool storage '0' holds a byte other than 0 or 1"});
  // Stride 0 over 12 floats: 200 x 200 x 200 x 200 elements is refused before allocating.
  expect_checkpoint_error(
      [&] {
        unpickle(tensor_pickle(0, {200, 200, 200, 200}, {0, 0, 0, 0}, 12), "t.pt", loader);
      },
      {"expand to far more memory"});
}

// Found with the conversion check of fuzz/unpickle_fuzzer.cpp: a zero size made the element
// count 0 and hid that the other sizes multiply past int64, which torch::empty then overflowed
// computing strides; safetensors (what `advft convert` writes) could not hold the shape either.
// A legacy file's pickle comes before its storages: scanning it finds its length and what it
// names, with the view checks of unpickling, and never asks for storage bytes.
TEST(PickleTensorTest, ScanningFindsTheLengthAndTheStoragesWithoutLoadingThem) {
  const std::string pickle = tensor_pickle(1, {2, 3}, {4, 2}, 12);
  const advft::io::PickleScan scan = advft::io::scan_pickle(pickle + "trailing bytes", "t.pt");
  EXPECT_EQ(scan.length, pickle.size());
  ASSERT_EQ(scan.storages.size(), 1u);
  EXPECT_EQ(scan.storages[0].key, "0");
  EXPECT_EQ(scan.storages[0].type, torch::kFloat32);
  EXPECT_EQ(scan.storages[0].numel, 12);
  size_t length = 0;
  const std::string storage(48, '\0');
  unpickle(
      pickle + "more", "t.pt", [&](const std::string&) { return std::string_view(storage); },
      &length);
  EXPECT_EQ(length, pickle.size());

  expect_checkpoint_error(
      [] {
        advft::io::scan_pickle(tensor_pickle(1, {2, 3}, {6, 3}, 12), "t.pt");
      },
      {"t.pt: tensor view", "reaching element 13", "of 12 elements"});
  // No storage can be larger than the bytes it would follow: 2^30 floats after a 100-byte pickle.
  expect_checkpoint_error(
      [] { advft::io::scan_pickle(tensor_pickle(0, {2}, {1}, 1 << 30), "t.pt"); },
      {"t.pt: storage '0' claims 1073741824 elements of 4 bytes, more than the file holds"});
}

TEST(PickleTensorTest, RefusesEmptyTensorsWhoseShapeOverflows) {
  const std::string storage(48, '\0');
  const StorageLoader loader = [&](const std::string&) { return std::string_view(storage); };
  const int big = std::numeric_limits<int32_t>::max();
  for (const std::vector<int>& size : {std::vector<int>{0, big, big, big}, {big, big, big, 0}}) {
    expect_checkpoint_error(
        [&] {
          unpickle(tensor_pickle(0, size, {0, 0, 0, 0}, 12), "t.pt", loader);
        },
        {"t.pt: tensor size overflows"});
  }
  const PickleValue empty = unpickle(tensor_pickle(0, {0, big, 2}, {0, 0, 0}, 12), "t.pt", loader);
  EXPECT_EQ(empty.tensor.sizes(), (std::vector<int64_t>{0, big, 2}));
}

// Found by the torch_file fuzzer: an empty storage in an unaligned record took the copy path
// and passed the empty tensor's null buffer to memcpy (undefined behaviour, UBSan's nonnull).
TEST(PickleTensorTest, EmptyStorageInAnUnalignedRecordLoads) {
  const std::string buffer(16, '\0');
  const StorageLoader unaligned = [&](const std::string&) {
    return std::string_view(buffer).substr(1, 0);
  };
  const PickleValue empty = unpickle(tensor_pickle(0, {0}, {1}, 0), "e.pt", unaligned);
  EXPECT_EQ(empty.tensor.numel(), 0);
}

TEST(PickleStateDictTest, FlattensNestedDictsAndSkipsOtherValues) {
  auto tensor_value = [](float x) {
    PickleValue v;
    v.kind = Kind::kTensor;
    v.tensor = torch::full({1}, x);
    return v;
  };
  auto string_value = [](const std::string& s) {
    PickleValue v;
    v.kind = Kind::kString;
    v.text = s;
    return v;
  };
  PickleValue inner;
  inner.kind = Kind::kDict;
  inner.entries.push_back({string_value("b"), tensor_value(2)});
  PickleValue root;
  root.kind = Kind::kDict;
  root.entries.push_back({string_value("a"), tensor_value(1)});
  root.entries.push_back({string_value("nested"), inner});
  root.entries.push_back({string_value("note"), string_value("skipped")});
  // Inside the chosen state_dict, nested tensor dicts flatten with dots; other values drop.
  PickleValue wrapper;
  wrapper.kind = Kind::kDict;
  wrapper.entries.push_back({string_value("state_dict"), root});
  const TorchFileContent content = find_state_dict(wrapper, "n.pt");
  EXPECT_EQ(content.chosen_key, "state_dict");
  EXPECT_EQ(names(content), (std::vector<std::string>{"a", "nested.b"}));
  // At the top level, the only value holding tensors is the state_dict.
  const TorchFileContent top = find_state_dict(root, "n.pt");
  EXPECT_EQ(top.candidate_keys, std::vector<std::string>{"nested"});
  EXPECT_EQ(top.chosen_key, "nested");
  EXPECT_EQ(names(top), std::vector<std::string>{"b"});
}

}  // namespace
