// io: safetensors encoding and hostile decoding, atomic writes, checkpoints, metrics files.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "advft/error.h"
#include "advft/io/async_writer.h"
#include "advft/io/atomic_file.h"
#include "advft/io/checkpoint.h"
#include "advft/io/directory.h"
#include "advft/io/metrics.h"
#include "advft/io/safetensors.h"
#include "advft/models/classifier.h"
#include "test_util.h"

namespace {

using advft::CheckpointError;
using advft::io::NamedTensor;
using advft::testing::dir_entries;
using advft::testing::read_bytes;
using advft::testing::TempDir;
using advft::testing::write_bytes;
namespace fs = std::filesystem;

// ---- helpers --------------------------------------------------------------------------------

std::string u64_le(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  return out;
}

// A safetensors file built by hand, exactly as the spec describes, without padding.
std::string make_file(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

std::string float_bytes(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) {
    char b[4];
    std::memcpy(b, &v, 4);
    out.append(b, 4);
  }
  return out;
}

// Decoding `bytes` must throw CheckpointError naming the source, and nothing else.
void expect_rejected(const std::string& bytes, const std::string& expect_in_message = "") {
  const std::string source = "hostile/file.safetensors";
  try {
    advft::io::decode_safetensors(bytes, source);
    ADD_FAILURE() << "decoded without error; expected a CheckpointError";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(source), std::string::npos) << what;
    EXPECT_NE(what.find(expect_in_message), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "message is one line: " << what;
    EXPECT_EQ(e.exit_code(), advft::kExitCheckpoint);
  }
}

// A tiny classifier with the kinds of state real ones have: parameters without and with bias,
// BatchNorm running stats (float) and num_batches_tracked (int64), a nested Sequential, and a
// normalization submodule holding buffers.
struct TinyNormalizeImpl : torch::nn::Module {
  TinyNormalizeImpl() {
    mean = register_buffer("mean", torch::full({1, 3, 1, 1}, 0.5));
    std = register_buffer("std", torch::full({1, 3, 1, 1}, 0.25));
  }
  torch::Tensor mean, std;
};

class TinyNetImpl : public advft::models::ClassifierImpl {
 public:
  explicit TinyNetImpl(int64_t classes, int64_t hidden = 4) {
    normalize = register_module("normalize", std::make_shared<TinyNormalizeImpl>());
    conv1 = register_module(
        "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, hidden, 3).padding(1).bias(false)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(hidden));
    layer1 = register_module(
        "layer1",
        torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(hidden, hidden, 1))));
    linear = register_module("linear", torch::nn::Linear(hidden, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = (x - normalize->mean) / normalize->std;
    x = torch::relu(bn1(conv1(x)));
    x = layer1->forward(x);
    return linear(x.mean({2, 3}));
  }
  std::shared_ptr<TinyNormalizeImpl> normalize;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr};
  torch::nn::Linear linear{nullptr};
};

advft::models::ModelSpec tiny_spec(int64_t classes) {
  advft::models::ModelSpec spec;
  spec.arch = "tiny";
  spec.num_classes = classes;
  spec.input_size = 8;
  spec.mean = {0.5, 0.5, 0.5};
  spec.std = {0.25, 0.25, 0.25};
  spec.blocks = {1};
  spec.width = 4;
  spec.cifar_stem = true;
  return spec;
}

std::map<std::string, torch::Tensor> state_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) {
    out[p.key()] = p.value().detach().clone();
  }
  for (const auto& b : m.named_buffers()) {
    out[b.key()] = b.value().detach().clone();
  }
  return out;
}

void expect_same_state(const std::map<std::string, torch::Tensor>& a,
                       const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_EQ(b.count(name), 1u) << name;
    EXPECT_EQ(t.scalar_type(), b.at(name).scalar_type()) << name;
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

// ---- safetensors: round trips ---------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDtypeIncludingNonContiguous) {
  const std::vector<torch::ScalarType> types = {
      torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kFloat64, torch::kInt64,
      torch::kInt32,   torch::kInt16,   torch::kInt8,     torch::kUInt8,   torch::kBool};
  std::vector<NamedTensor> tensors;
  for (auto type : types) {
    const std::string name = c10::toString(type);
    // Small integers are exact in every dtype, so equality is the right check.
    torch::Tensor base = (torch::arange(12).reshape({3, 4}) - 5);
    if (type == torch::kUInt8) {
      base = base + 5;
    }
    torch::Tensor t = type == torch::kBool ? base.remainder(3).eq(0) : base.to(type);
    tensors.push_back({name, t});
    tensors.push_back({name + "_transposed", t.t()});  // non-contiguous
    tensors.push_back(
        {name + "_strided", t.index({torch::indexing::Slice(), torch::indexing::Slice(0, 4, 2)})});
  }
  tensors.push_back({"scalar", torch::tensor(3.5)});
  tensors.push_back({"empty", torch::zeros({0, 3})});

  const auto decoded =
      advft::io::decode_safetensors(advft::io::encode_safetensors(tensors, {}), "mem");
  ASSERT_EQ(decoded.tensors.size(), tensors.size());
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& nt : decoded.tensors) {
    by_name[nt.name] = nt.tensor;
  }
  for (const auto& nt : tensors) {
    ASSERT_EQ(by_name.count(nt.name), 1u) << nt.name;
    const torch::Tensor& got = by_name[nt.name];
    EXPECT_EQ(got.scalar_type(), nt.tensor.scalar_type()) << nt.name;
    EXPECT_EQ(got.sizes(), nt.tensor.sizes()) << nt.name;
    EXPECT_TRUE(got.is_contiguous()) << nt.name;
    EXPECT_TRUE(torch::equal(got, nt.tensor)) << nt.name;
  }
  EXPECT_TRUE(decoded.metadata.empty());
}

TEST(Safetensors, SpecialFloatValuesSurviveBitExact) {
  torch::Tensor t =
      torch::tensor({0.1f, -0.0f, 1e-40f, 3.4e38f, std::numeric_limits<float>::infinity(),
                     std::numeric_limits<float>::quiet_NaN()});
  const auto decoded =
      advft::io::decode_safetensors(advft::io::encode_safetensors({{"x", t}}), "mem");
  const torch::Tensor got = decoded.tensors.at(0).tensor;
  EXPECT_EQ(std::memcmp(got.data_ptr(), t.data_ptr(), 6 * sizeof(float)), 0);
}

TEST(Safetensors, ReturnedTensorsOwnTheirMemory) {
  std::string bytes = advft::io::encode_safetensors({{"x", torch::ones({4})}});
  const auto decoded = advft::io::decode_safetensors(bytes, "mem");
  std::fill(bytes.begin(), bytes.end(), '\0');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_TRUE(torch::equal(decoded.tensors.at(0).tensor, torch::ones({4})));
}

TEST(Safetensors, MetadataRoundTrips) {
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"empty", ""},
                                                       {"json", R"({"a": [1, 2], "b": "x\ny"})"},
                                                       {"utf8", "ε=8/255"}};
  const auto decoded = advft::io::decode_safetensors(
      advft::io::encode_safetensors({{"w", torch::ones({2})}}, metadata), "mem");
  EXPECT_EQ(decoded.metadata, metadata);
}

TEST(Safetensors, HeaderIsPaddedAndTensorsAligned) {
  for (size_t name_len = 1; name_len <= 16; ++name_len) {
    const std::vector<NamedTensor> tensors = {
        {std::string(name_len, 'a'), torch::ones({3}, torch::kUInt8)},
        {"f32", torch::ones({3})},
        {"f64", torch::ones({1}, torch::kFloat64)},
        {"f16", torch::ones({3}, torch::kFloat16)}};
    const std::string bytes =
        advft::io::encode_safetensors(tensors, {{"k", std::string(name_len, 'v')}});
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u) << name_len;
    const auto header = nlohmann::json::parse(bytes.substr(8, n));
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        continue;
      }
      const uint64_t begin = entry["data_offsets"][0];
      const uint64_t itemsize = entry["dtype"] == "F64"   ? 8
                                : entry["dtype"] == "F32" ? 4
                                : entry["dtype"] == "F16" ? 2
                                                          : 1;
      EXPECT_EQ((8 + n + begin) % itemsize, 0u) << name;
    }
    // The buffer is exactly the tensors, without gaps (the reference reader insists).
    EXPECT_EQ(bytes.size(), 8 + n + 3 + 12 + 8 + 6);
  }
}

TEST(Safetensors, TinyFileMatchesTheSpecByteForByte) {
  const std::string bytes = advft::io::encode_safetensors({{"x", torch::tensor({1.0f, 2.0f})}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) {
    n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  }
  const std::string json = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  EXPECT_EQ(n, padded.size());
  EXPECT_EQ(bytes.substr(8, n), padded);
  EXPECT_EQ(
      nlohmann::json::parse(bytes.substr(8, n)),
      nlohmann::json::parse(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})"));
  ASSERT_EQ(bytes.size(), 8 + n + 8);
  // 1.0f and 2.0f, little-endian IEEE 754.
  EXPECT_EQ(bytes.substr(8 + n), std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8));
}

TEST(Safetensors, ReadsFilesWrittenByOtherWriters) {
  // Unpadded header, metadata last, tensors listed out of buffer order, an I64 scalar.
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})";
  std::string data = u64_le(42) + float_bytes({1.5f, -2.0f});
  const auto content = advft::io::decode_safetensors(make_file(header, data), "other.safetensors");
  ASSERT_EQ(content.tensors.size(), 2u);
  EXPECT_EQ(content.tensors[0].name, "a");  // buffer order
  EXPECT_EQ(content.tensors[0].tensor.item<int64_t>(), 42);
  EXPECT_EQ(content.tensors[0].tensor.dim(), 0);
  EXPECT_EQ(content.tensors[1].name, "b");
  EXPECT_TRUE(torch::equal(content.tensors[1].tensor, torch::tensor({{1.5f, -2.0f}})));
  EXPECT_EQ(content.metadata.at("format"), "pt");
}

TEST(Safetensors, BoolBytesOtherThanZeroOrOneBecomeTrue) {
  const std::string header = R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  const auto content =
      advft::io::decode_safetensors(make_file(header, std::string("\x00\x01\x07", 3)), "m");
  EXPECT_TRUE(torch::equal(content.tensors[0].tensor, torch::tensor({false, true, true})));
}

TEST(Safetensors, EncodeRejectsDuplicateAndReservedNames) {
  EXPECT_THROW(advft::io::encode_safetensors({{"a", torch::ones(1)}, {"a", torch::ones(1)}}),
               advft::Error);
  EXPECT_THROW(advft::io::encode_safetensors({{"__metadata__", torch::ones(1)}}), advft::Error);
  EXPECT_THROW(advft::io::encode_safetensors({{"c", torch::ones(1, torch::kComplexFloat)}}),
               advft::Error);
}

// ---- safetensors: hostile input -------------------------------------------------------------

TEST(SafetensorsHostile, EmptyAndTooShortFiles) {
  expect_rejected("", "empty");
  expect_rejected("abc", "too short");
  expect_rejected(std::string(7, '\0'), "too short");
}

TEST(SafetensorsHostile, TruncatedAtEveryPosition) {
  const std::string good = advft::io::encode_safetensors(
      {{"w", torch::arange(16, torch::kFloat32)}, {"b", torch::ones({3}, torch::kInt64)}},
      {{"k", "v"}});
  for (size_t cut = 0; cut < good.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    expect_rejected(good.substr(0, cut));
  }
  EXPECT_NO_THROW(advft::io::decode_safetensors(good, "good"));
}

TEST(SafetensorsHostile, HeaderLengthLies) {
  expect_rejected(u64_le(1000) + "{}", "exceeds the file size");
  // 2 GB claimed: must be refused before anything that large is allocated.
  expect_rejected(u64_le(2'000'000'000ull) + std::string(64, 'x'), "100 MB");
  expect_rejected(u64_le(~0ull) + "{}", "100 MB");
  expect_rejected(u64_le(0), "does not start");
}

TEST(SafetensorsHostile, HeaderNotJsonOrNotAnObject) {
  expect_rejected(make_file("{\"x\": nope", ""), "not valid JSON");
  expect_rejected(make_file(std::string("{\x01\x02\xff garbage", 12), ""), "not valid JSON");
  expect_rejected(make_file("[1, 2, 3]", ""), "does not start");
  expect_rejected(make_file("{} trailing", ""), "not valid JSON");
  expect_rejected(make_file(R"({"x": 5})", ""), "'x'");
  expect_rejected(make_file(R"({"__metadata__": [1]})", ""), "__metadata__");
  expect_rejected(make_file(R"({"__metadata__": {"k": 1}})", ""), "\"k\"");
}

TEST(SafetensorsHostile, BadTensorEntriesNameTheTensor) {
  const std::string eight(8, '\0');
  const auto entry = [](const std::string& body) {
    return std::string(R"({"bad.weight": )") + body + "}";
  };
  // offsets past the end
  expect_rejected(make_file(entry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), eight),
                  "'bad.weight'");
  expect_rejected(make_file(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,16]})"), eight),
                  "past the end");
  // begin > end
  expect_rejected(make_file(entry(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), eight),
                  "begin 8 > end 0");
  // size != prod(shape) * itemsize
  expect_rejected(make_file(entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), eight),
                  "needs 12");
  expect_rejected(make_file(entry(R"({"dtype":"F16","shape":[2],"data_offsets":[0,8]})"), eight),
                  "'bad.weight'");
  // unknown dtype
  expect_rejected(
      make_file(entry(R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"), eight),
      "unsupported dtype \"F8_E4M3\"");
  // negative / non-integer dims
  expect_rejected(make_file(entry(R"({"dtype":"U8","shape":[-8],"data_offsets":[0,8]})"), eight),
                  "negative");
  expect_rejected(make_file(entry(R"({"dtype":"U8","shape":[8.0],"data_offsets":[0,8]})"), eight),
                  "'bad.weight'");
  // shapes whose byte count overflows 64 bits must not wrap around to a small number
  expect_rejected(
      make_file(entry(R"({"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]})"),
                eight),
      "impossibly large");
  expect_rejected(
      make_file(entry(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]})"),
                eight),
      "'bad.weight'");
  expect_rejected(
      make_file(
          entry(
              R"({"dtype":"U8","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]})"),
          eight),
      "impossibly large");
  // negative / missing offsets, missing fields
  expect_rejected(make_file(entry(R"({"dtype":"U8","shape":[8],"data_offsets":[-1,7]})"), eight),
                  "non-negative");
  expect_rejected(make_file(entry(R"({"dtype":"U8","shape":[8],"data_offsets":[0]})"), eight),
                  "data_offsets");
  expect_rejected(make_file(entry(R"({"shape":[8],"data_offsets":[0,8]})"), eight), "dtype");
  expect_rejected(make_file(entry(R"({"dtype":"U8","data_offsets":[0,8]})"), eight), "shape");
  // a control character in a hostile name must not break the one-line message
  expect_rejected(make_file(R"({"evil\nname": {"dtype":"X","shape":[],"data_offsets":[0,0]}})", ""),
                  "evil?name");
}

// The reference implementation's rule: tensors lie back to back from 0 to the end of the data.
// Anything else reads weights from the wrong bytes, so it is refused rather than decoded.
TEST(SafetensorsHostile, TensorsMustTileTheDataBuffer) {
  const std::string four("\x01\x02\x03\x04", 4);
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                            four + "zz"),
                  "overlaps");
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                            R"("b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})",
                            four),
                  "gap");
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", four),
                  "gap");
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", four),
                  "cover 2 of the 4");
  expect_rejected(make_file("{}", four), "cover 0 of the 4");

  // A header length one byte short (its last padding space read as data) shifts every tensor.
  const std::string good = advft::io::encode_safetensors(
      {{"w", torch::arange(16, torch::kFloat32)}, {"b", torch::ones({3}, torch::kInt64)}});
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  ASSERT_EQ(good[8 + header_len - 1], ' ');
  expect_rejected(u64_le(header_len - 1) + good.substr(8), "header length wrong");
  expect_rejected(good + "JUNK", "bytes appended");

  // An empty tensor may share the offset where the next one starts, listed before or after it.
  for (const char* order : {R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                            R"("f":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                            R"({"f":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                            R"("e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})"}) {
    const auto content = advft::io::decode_safetensors(make_file(order, four), "m");
    ASSERT_EQ(content.tensors.size(), 2u);
    EXPECT_EQ(content.tensors[1].tensor[2].item<int64_t>(), 3);
  }
}

TEST(SafetensorsHostile, TorchSaveFilesAreNamed) {
  expect_rejected(std::string("PK\x03\x04\x00\x00\x08\x08\x00\x00", 10) + std::string(100, 'z'),
                  "zip archive");
  expect_rejected(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8", 12), "pickle");
}

TEST(SafetensorsHostile, RandomCorruptionNeverCrashes) {
  const std::string good =
      advft::io::encode_safetensors({{"layer1.0.conv1.weight", torch::randn({4, 3, 3, 3})},
                                     {"bn.num_batches_tracked", torch::tensor(7, torch::kInt64)},
                                     {"mask", torch::ones({5}, torch::kBool)}},
                                    {{"format", "advft-checkpoint"}});
  uint64_t header_end = 8;
  std::memcpy(&header_end, good.data(), 8);
  header_end += 8;
  // Mostly characters that keep the header JSON-ish, so the checks past the parser get exercised.
  const std::string alphabet = "0123456789-,[]{}\":. eE";
  std::mt19937 rng(1234);
  int decoded = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) {
      const size_t pos = rng() % 4 == 0 ? rng() % bytes.size() : rng() % header_end;
      bytes[pos] = rng() % 2 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng() & 0xff);
    }
    if (rng() % 8 == 0) {
      bytes.resize(rng() % bytes.size());
    }
    try {
      advft::io::decode_safetensors(bytes, "fuzz");
      ++decoded;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("fuzz"), std::string::npos);
    }
  }
  EXPECT_GT(decoded, 0);  // some mutations are harmless (digits in data, names, metadata)
}

// ---- directories ----------------------------------------------------------------------------

TEST(Directory, NamesAreSortedAndLeaveOutDotEntries) {
  TempDir dir;
  for (const char* name : {"b.json", ".hidden", "a", "c.tmp.1.2"})
    write_bytes(dir.file(name), "x");
  fs::create_directory(dir.file("sub"));
  std::error_code error;
  EXPECT_EQ(advft::io::directory_names(dir.path().string(), error),
            (std::vector<std::string>{".hidden", "a", "b.json", "c.tmp.1.2", "sub"}));
  EXPECT_FALSE(error) << error.message();
  EXPECT_TRUE(advft::io::directory_names(dir.file("missing"), error).empty());
  EXPECT_EQ(error, std::errc::no_such_file_or_directory);
  EXPECT_TRUE(advft::io::directory_names(dir.file("a"), error).empty());
  EXPECT_EQ(error, std::errc::not_a_directory);
}

// remove_tree is remove_all: nested folders go, a link to a folder goes as a link and what it
// points to stays, and a path that is not there is no error.
TEST(Directory, RemoveTreeRemovesNestedFoldersAndLinksButNotTheirTargets) {
  TempDir dir;
  write_bytes(dir.file("kept/inside"), "kept");
  write_bytes(dir.file("tree/a/b/c.bin"), "deep");
  write_bytes(dir.file("tree/top"), "top");
  fs::create_directory_symlink(dir.file("kept"), dir.file("tree/a/link"));
  std::error_code error;
  advft::io::remove_tree(dir.file("tree"), error);
  EXPECT_FALSE(error) << error.message();
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir.file("tree"))));
  EXPECT_EQ(read_bytes(dir.file("kept/inside")), "kept");
  advft::io::remove_tree(dir.file("tree"), error);
  EXPECT_FALSE(error) << "a missing path: " << error.message();
  advft::io::remove_tree(dir.file("kept/inside"), error);
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(dir_entries(dir.file("kept")), std::vector<std::string>{});
}

// ---- atomic files ---------------------------------------------------------------------------

TEST(AtomicFile, WritesAndReplacesLeavingNoTempFiles) {
  TempDir dir;
  const std::string path = dir.file("results.json");
  advft::io::write_file_atomic(path, "old contents that are longer");
  advft::io::write_file_atomic(path, "new");
  EXPECT_EQ(read_bytes(path), "new");
  EXPECT_EQ(advft::io::read_file_bytes(path), "new");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"results.json"});
  advft::io::write_file_atomic(path, "");
  EXPECT_EQ(advft::io::read_file_bytes(path), "");
}

// "<path>.tmp.<pid>.<n>" is a temporary file of `path`'s; nothing else is, not even close names.
TEST(AtomicFile, TemporaryFileWriterReadsTheWritersProcessId) {
  using advft::io::temporary_file_writer;
  EXPECT_EQ(temporary_file_writer("/r/last.safetensors", "/r/last.safetensors.tmp.4242.0"), 4242);
  EXPECT_EQ(temporary_file_writer("best.safetensors", "best.safetensors.tmp.7.123"), 7);
  for (const char* other :
       {"best.safetensors.tmp.7.123", "last.safetensors", "last.safetensors.tmp.",
        "last.safetensors.tmp.12", "last.safetensors.tmp.12.", "last.safetensors.tmp..1",
        "last.safetensors.tmp.x.1", "last.safetensors.tmp.12.1x",
        "last.safetensors.tmp.1234567890.1", "last.safetensors.tmp.-3.1"}) {
    EXPECT_EQ(temporary_file_writer("last.safetensors", other), 0) << other;
  }
}

TEST(AtomicFile, FailureIntoMissingDirectoryThrowsAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/best.safetensors");
  try {
    advft::io::write_file_atomic(path, "data");
    FAIL() << "expected an error";
  } catch (const advft::Error& e) {
    EXPECT_EQ(e.exit_code(), advft::kExitRunDir);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(dir_entries(dir.path()).empty());
}

// bench and eval ask before their work whether their --json can be written at the end.
TEST(AtomicFile, CheckFileWritableNamesWhatStandsInTheWayAndLeavesNothing) {
  TempDir dir;
  const auto error_of = [](const std::string& path) -> std::string {
    try {
      advft::io::check_file_writable(path, "--json");
    } catch (const advft::Error& e) {
      EXPECT_EQ(e.exit_code(), advft::kExitRunDir) << e.what();
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of(dir.file("results.json")), "");
  write_bytes(dir.file("old.json"), "kept");
  EXPECT_EQ(error_of(dir.file("old.json")), "");  // replaced at the end, not now
  EXPECT_EQ(read_bytes(dir.file("old.json")), "kept");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"old.json"});

  const std::string missing = dir.file("no/such/results.json");
  EXPECT_EQ(error_of(missing), "--json " + missing + ": cannot create a file in " +
                                   dir.file("no/such") +
                                   ": No such file or directory; name a file in a folder that "
                                   "exists and can be written");
  write_bytes(dir.file("folder/inside"), "x");
  EXPECT_EQ(error_of(dir.file("folder")),
            "--json " + dir.file("folder") + ": is a folder; name a file");
  EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"folder", "old.json"}));
  EXPECT_EQ(dir_entries(dir.file("folder")), std::vector<std::string>{"inside"});
}

TEST(AtomicFile, FailedRenameRemovesTheTempFileAndKeepsTheTarget) {
  TempDir dir;
  // Renaming a file over a non-empty directory fails after the temp file was fully written.
  const std::string path = dir.file("target");
  write_bytes(dir.file("target/keep"), "kept");
  EXPECT_THROW(advft::io::write_file_atomic(path, "data"), advft::Error);
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"target"});
  EXPECT_EQ(read_bytes(dir.file("target/keep")), "kept");
}

// best.safetensors of a run without validation is a second name of last.safetensors: it must
// stay what it was when last.safetensors is replaced, and never be a half-written file.
TEST(AtomicFile, LinkIsASnapshotThatSurvivesReplacingTheOriginal) {
  TempDir dir;
  const std::string last = dir.file("last.safetensors");
  const std::string best = dir.file("best.safetensors");
  advft::io::write_file_atomic(last, "epoch 1");
  advft::io::write_file_atomic(best, "an older best");
  advft::io::link_file_atomic(last, best);
  EXPECT_EQ(read_bytes(best), "epoch 1");
  advft::io::write_file_atomic(last, "epoch 2");
  EXPECT_EQ(read_bytes(best), "epoch 1");
  EXPECT_EQ(read_bytes(last), "epoch 2");
  EXPECT_EQ(dir_entries(dir.path()),
            (std::vector<std::string>{"best.safetensors", "last.safetensors"}));
  try {
    advft::io::link_file_atomic(dir.file("missing"), best);
    FAIL() << "expected an error";
  } catch (const advft::Error& e) {
    EXPECT_EQ(e.exit_code(), advft::kExitRunDir);
    EXPECT_NE(std::string(e.what()).find(dir.file("missing")), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(best), "epoch 1");
}

// Checkpoints are written behind the training loop: in order, one at a time, and a failed write
// is reported by the next call rather than lost.
TEST(AsyncWriter, RunsJobsInOrderAndRethrowsAFailureAtTheNextCall) {
  std::vector<int> done;
  {
    advft::io::AsyncWriter writer;
    for (int i = 0; i < 5; ++i) {
      writer.submit([&done, i] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 - i));
        done.push_back(i);
      });
    }
    writer.wait();
    EXPECT_EQ(done, (std::vector<int>{0, 1, 2, 3, 4}));
    writer.submit([] { throw advft::Error("cannot write last.safetensors: disk full", 6); });
    try {
      writer.submit([&done] { done.push_back(5); });
      FAIL() << "expected the first job's error";
    } catch (const advft::Error& e) {
      EXPECT_STREQ(e.what(), "cannot write last.safetensors: disk full");
    }
    EXPECT_EQ(done.size(), 5U);  // the job after a failure was not started
    EXPECT_NO_THROW(writer.wait());
    writer.submit([&done] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      done.push_back(6);
    });
  }  // the destructor waits for the job in flight
  EXPECT_EQ(done.back(), 6);
}

// A snapshot is what was written, whatever happens to the model after it was taken.
TEST(Checkpoint, ImageIsACopyThatLaterStepsDoNotChange) {
  TempDir dir;
  auto model = std::make_shared<TinyNetImpl>(10);
  const advft::io::CheckpointImage image =
      advft::io::checkpoint_image(*model, tiny_spec(10), {{"epoch", 1}});
  const torch::Tensor before = model->linear->weight.detach().clone();
  {
    torch::NoGradGuard no_grad;
    model->linear->weight.add_(1.0);
  }
  advft::io::write_checkpoint_image(dir.file("last.safetensors"), image);
  const auto loaded = advft::io::load_checkpoint(dir.file("last.safetensors"));
  EXPECT_EQ(loaded.train_state["epoch"], 1);
  bool found = false;
  for (const auto& nt : loaded.tensors) {
    if (nt.name == "linear.weight") {
      found = true;
      EXPECT_TRUE(torch::equal(nt.tensor, before));
    }
  }
  EXPECT_TRUE(found);
  const std::vector<advft::io::NamedTensor> momentum = {{"w", torch::ones({3})}};
  const auto copy = advft::io::snapshot_tensors(momentum);
  momentum[0].tensor.add_(1.0);
  EXPECT_TRUE(torch::equal(copy[0].tensor, torch::ones({3})));
}

TEST(AtomicFile, ReadMissingFileNamesIt) {
  TempDir dir;
  try {
    advft::io::read_file_bytes(dir.file("missing.bin"));
    FAIL() << "expected an error";
  } catch (const advft::Error& e) {
    EXPECT_EQ(e.exit_code(), advft::kExitRunDir);
    EXPECT_NE(std::string(e.what()).find("cannot read " + dir.file("missing.bin")),
              std::string::npos);
  }
  EXPECT_THROW(advft::io::read_file_bytes(dir.path().string()), advft::Error);
}

TEST(AtomicFile, SafetensorsFilesRoundTripOnDisk) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  advft::io::write_safetensors(path, {{"w", torch::arange(6).reshape({2, 3})}}, {{"k", "v"}});
  const auto content = advft::io::read_safetensors(path);
  ASSERT_EQ(content.tensors.size(), 1u);
  EXPECT_TRUE(torch::equal(content.tensors[0].tensor, torch::arange(6).reshape({2, 3})));
  EXPECT_EQ(content.metadata.at("k"), "v");
  EXPECT_THROW(advft::io::read_safetensors(dir.file("nope.safetensors")), CheckpointError);
}

// ---- checkpoints ----------------------------------------------------------------------------

TEST(Checkpoint, SpecJsonRoundTrips) {
  advft::models::ModelSpec spec = tiny_spec(100);
  spec.arch = "wide_resnet";
  spec.depth = 28;
  spec.widen_factor = 4;
  spec.in_channels = 1;
  spec.mean = {0.2860};
  spec.std = {0.3530};
  spec.blocks = {3, 4, 6, 3};
  spec.width = 16;
  spec.cifar_stem = false;
  const nlohmann::json j = advft::models::spec_to_json(spec);
  const auto back = advft::io::spec_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(advft::models::spec_to_json(back), j);
  EXPECT_EQ(back.arch, "wide_resnet");
  EXPECT_EQ(back.num_classes, 100);
  EXPECT_EQ(back.mean, std::vector<double>{0.2860});
  EXPECT_EQ(back.blocks, (std::vector<int64_t>{3, 4, 6, 3}));
}

TEST(Checkpoint, SpecFromJsonNamesMissingAndMistypedFields) {
  nlohmann::json j = advft::models::spec_to_json(tiny_spec(10));
  const auto expect_field_error = [](const nlohmann::json& bad, const std::string& field) {
    try {
      advft::io::spec_from_json(bad);
      ADD_FAILURE() << "expected an error for " << field;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + field + "\""), std::string::npos) << e.what();
    }
  };
  nlohmann::json missing = j;
  missing.erase("num_classes");
  expect_field_error(missing, "num_classes");
  nlohmann::json mistyped = j;
  mistyped["num_classes"] = "10";
  expect_field_error(mistyped, "num_classes");
  mistyped = j;
  mistyped["input_size"] = 32.5;
  expect_field_error(mistyped, "input_size");
  mistyped = j;
  mistyped["mean"] = {0.5, "x"};
  expect_field_error(mistyped, "mean");
  mistyped = j;
  mistyped["cifar_stem"] = 1;
  expect_field_error(mistyped, "cifar_stem");
  EXPECT_THROW(advft::io::spec_from_json(nlohmann::json::array()), CheckpointError);
  nlohmann::json extra = j;
  extra["future_field"] = 1;  // newer writers may add fields
  EXPECT_NO_THROW(advft::io::spec_from_json(extra));
}

TEST(Checkpoint, SaveLoadRoundTrip) {
  torch::manual_seed(0);
  TempDir dir;
  auto model = std::make_shared<TinyNetImpl>(10);
  model->train();
  model->forward(torch::rand({4, 3, 8, 8}));  // moves BN running stats and num_batches_tracked
  const auto spec = tiny_spec(10);
  const nlohmann::json train_state = {{"epoch", 2},
                                      {"step", 1234},
                                      {"best_robust_acc", 0.4321},
                                      {"rng", {1, 2, 3}},
                                      {"note", "ε path/ü"}};
  const std::string path = dir.file("best.safetensors");
  advft::io::save_checkpoint(path, *model, spec, train_state);
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"best.safetensors"});

  const auto loaded = advft::io::load_checkpoint(path);
  EXPECT_EQ(loaded.path, path);
  EXPECT_EQ(advft::models::spec_to_json(loaded.spec), advft::models::spec_to_json(spec));
  EXPECT_EQ(loaded.train_state, train_state);
  std::set<std::string> names;
  for (const auto& nt : loaded.tensors) {
    names.insert(nt.name);
  }
  EXPECT_EQ(names, (std::set<std::string>{
                       "normalize.mean", "normalize.std", "conv1.weight", "bn1.weight", "bn1.bias",
                       "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                       "layer1.0.weight", "layer1.0.bias", "linear.weight", "linear.bias"}));

  auto fresh = std::make_shared<TinyNetImpl>(10);
  const auto report = advft::io::load_weights(*fresh, loaded.tensors, path);
  EXPECT_TRUE(report.ok());
  expect_same_state(state_of(*model), state_of(*fresh));
  EXPECT_EQ(state_of(*fresh).at("bn1.num_batches_tracked").scalar_type(), torch::kInt64);
  EXPECT_EQ(state_of(*fresh).at("bn1.num_batches_tracked").item<int64_t>(), 1);
  // Still a parameter the optimizer can train: the copy kept requires_grad.
  EXPECT_TRUE(fresh->linear->weight.requires_grad());

  const auto raw = advft::io::read_safetensors(path);
  EXPECT_EQ(raw.metadata.at("format"), "advft-checkpoint");
  EXPECT_EQ(raw.metadata.at("format_version"), "1");
  EXPECT_EQ(raw.metadata.at("advft_version"), ADVFT_VERSION);
  EXPECT_EQ(nlohmann::json::parse(raw.metadata.at("model_spec")),
            advft::models::spec_to_json(spec));
}

TEST(Checkpoint, LoadConvertsDtype) {
  auto model = std::make_shared<TinyNetImpl>(10);
  std::vector<NamedTensor> tensors;
  for (const auto& [name, t] : state_of(*model)) {
    tensors.push_back({name, t.is_floating_point() ? (t + 1).to(torch::kFloat64) : t});
  }
  auto target = std::make_shared<TinyNetImpl>(10);
  advft::io::load_weights(*target, tensors, "mem");
  EXPECT_EQ(target->linear->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(target->linear->weight, model->linear->weight + 1));
}

TEST(Checkpoint, SavesFromAndLoadsOntoTheGpu_CUDA) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device";
  }
  TempDir dir;
  auto model = std::make_shared<TinyNetImpl>(10);
  model->to(torch::kCUDA);
  const std::string path = dir.file("gpu.safetensors");
  advft::io::save_checkpoint(path, *model, tiny_spec(10), {});
  const auto loaded = advft::io::load_checkpoint(path);
  for (const auto& nt : loaded.tensors) {
    EXPECT_TRUE(nt.tensor.device().is_cpu()) << nt.name;
  }
  auto target = std::make_shared<TinyNetImpl>(10);
  target->to(torch::kCUDA);
  EXPECT_TRUE(advft::io::load_weights(*target, loaded.tensors, path).ok());
  EXPECT_TRUE(target->linear->weight.device().is_cuda());
  EXPECT_TRUE(torch::equal(target->linear->weight.cpu(), model->linear->weight.cpu()));
}

TEST(Checkpoint, MissingForeignAndWrongFormatFiles) {
  TempDir dir;
  const auto expect_error = [](const std::string& path, const std::string& text) {
    try {
      advft::io::load_checkpoint(path);
      ADD_FAILURE() << "expected an error for " << path;
    } catch (const CheckpointError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find(text), std::string::npos) << what;
    }
  };
  expect_error(dir.file("missing.safetensors"), "no such file");

  advft::io::write_safetensors(dir.file("plain.safetensors"), {{"w", torch::ones(2)}});
  expect_error(dir.file("plain.safetensors"), "not an advft checkpoint");

  advft::io::write_safetensors(dir.file("hf.safetensors"), {{"w", torch::ones(2)}},
                               {{"format", "pt"}});
  expect_error(dir.file("hf.safetensors"), "\"pt\"");

  advft::io::save_tensor_state(dir.file("opt.safetensors"), {}, {{"step", 1}});
  expect_error(dir.file("opt.safetensors"), "not an advft checkpoint");

  advft::io::write_safetensors(dir.file("nospec.safetensors"), {},
                               {{"format", "advft-checkpoint"}, {"format_version", "1"}});
  expect_error(dir.file("nospec.safetensors"), "model_spec");

  advft::io::write_safetensors(dir.file("future.safetensors"), {},
                               {{"format", "advft-checkpoint"}, {"format_version", "2"}});
  expect_error(dir.file("future.safetensors"), "format_version \"2\"");

  nlohmann::json bad_spec = advft::models::spec_to_json(tiny_spec(10));
  bad_spec.erase("arch");
  advft::io::write_safetensors(
      dir.file("badspec.safetensors"), {},
      {{"format", "advft-checkpoint"}, {"format_version", "1"}, {"model_spec", bad_spec.dump()}});
  expect_error(dir.file("badspec.safetensors"), "\"arch\"");

  write_bytes(dir.file("torch.pt"),
              std::string("PK\x03\x04\x14\x00\x00\x00", 8) + "archive/data.pkl");
  expect_error(dir.file("torch.pt"), "torch.save");

  const std::string good =
      advft::io::encode_safetensors({{"w", torch::ones(64)}}, {{"format", "advft-checkpoint"}});
  write_bytes(dir.file("truncated.safetensors"), good.substr(0, good.size() - 10));
  expect_error(dir.file("truncated.safetensors"), "truncated");
}

TEST(Checkpoint, StrictLoadListsEveryProblemAndChangesNothing) {
  auto source = std::make_shared<TinyNetImpl>(100);
  std::vector<NamedTensor> tensors;
  for (const auto& [name, t] : state_of(*source)) {
    if (name != "bn1.running_var") {
      tensors.push_back({name, t});
    }
  }
  tensors.push_back({"fc.weight", torch::ones({2, 2})});
  auto model = std::make_shared<TinyNetImpl>(10);
  const auto before = state_of(*model);
  try {
    advft::io::load_weights(*model, tensors, "run/best.safetensors", true,
                            "preact_resnet18, 10 classes");
    FAIL() << "expected an error";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("checkpoint: run/best.safetensors does not fit the model "
                         "(preact_resnet18, 10 classes):",
                         0),
              0u)
        << what;
    EXPECT_NE(what.find("linear.weight (checkpoint [100, 4] vs model [10, 4])"), std::string::npos)
        << what;
    EXPECT_NE(what.find("linear.bias (checkpoint [100] vs model [10])"), std::string::npos) << what;
    EXPECT_NE(what.find("missing: bn1.running_var"), std::string::npos) << what;
    EXPECT_NE(what.find("unexpected: fc.weight"), std::string::npos) << what;
  }
  expect_same_state(before, state_of(*model));
}

TEST(Checkpoint, LongProblemListsAreTruncated) {
  auto model = std::make_shared<TinyNetImpl>(10);
  try {
    advft::io::load_weights(*model, {}, "empty.safetensors");
    FAIL() << "expected an error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(" and 7 more"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, NonStrictLoadReportsAndLoadsTheRest) {
  auto source = std::make_shared<TinyNetImpl>(100);
  std::vector<NamedTensor> tensors;
  for (const auto& [name, t] : state_of(*source)) {
    if (name != "bn1.running_var") {
      tensors.push_back({name, t});
    }
  }
  tensors.push_back({"fc.weight", torch::ones({2, 2})});
  auto model = std::make_shared<TinyNetImpl>(10);
  const auto before = state_of(*model);
  const auto report = advft::io::load_weights(*model, tensors, "mem", /*strict=*/false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"bn1.running_var"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"fc.weight"});
  EXPECT_EQ(report.mismatched, (std::vector<std::string>{"linear.weight", "linear.bias"}));
  EXPECT_FALSE(report.ok());
  const auto after = state_of(*model);
  const auto src = state_of(*source);
  EXPECT_TRUE(torch::equal(after.at("conv1.weight"), src.at("conv1.weight")));
  EXPECT_TRUE(torch::equal(after.at("normalize.mean"), src.at("normalize.mean")));
  EXPECT_TRUE(torch::equal(after.at("linear.weight"), before.at("linear.weight")));
  EXPECT_TRUE(torch::equal(after.at("bn1.running_var"), before.at("bn1.running_var")));
}

TEST(Checkpoint, TensorStateRoundTrips) {
  TempDir dir;
  const std::string path = dir.file("best.optim.safetensors");
  const std::vector<NamedTensor> momentum = {{"linear.weight", torch::randn({10, 4})},
                                             {"conv1.weight", torch::randn({4, 3, 3, 3})}};
  const nlohmann::json state = {{"optimizer", "sgd"}, {"lr", 0.05}, {"step", 99}};
  advft::io::save_tensor_state(path, momentum, state);
  const auto [tensors, loaded_state] = advft::io::load_tensor_state(path);
  EXPECT_EQ(loaded_state, state);
  ASSERT_EQ(tensors.size(), 2u);
  for (const auto& nt : tensors) {
    const auto it = std::find_if(momentum.begin(), momentum.end(),
                                 [&](const NamedTensor& m) { return m.name == nt.name; });
    ASSERT_NE(it, momentum.end());
    EXPECT_TRUE(torch::equal(it->tensor, nt.tensor));
  }
  auto model = std::make_shared<TinyNetImpl>(10);
  advft::io::save_checkpoint(dir.file("ckpt.safetensors"), *model, tiny_spec(10), {});
  EXPECT_THROW(advft::io::load_tensor_state(dir.file("ckpt.safetensors")), CheckpointError);
}

// ---- metrics --------------------------------------------------------------------------------

TEST(Metrics, WritesOneCompactObjectPerLine) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    advft::io::MetricsWriter writer(path, false);
    writer.write({{"step", 1}, {"loss", 2.5}});
    EXPECT_EQ(read_bytes(path), "{\"loss\":2.5,\"step\":1}\n");  // flushed immediately
    writer.write({{"step", 2}, {"note", "a\nb"}});
  }
  const auto records = advft::io::read_jsonl(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["note"], "a\nb");
  // append=false starts over
  advft::io::MetricsWriter(path, false).write({{"step", 3}});
  EXPECT_EQ(advft::io::read_jsonl(path).size(), 1u);
}

TEST(Metrics, AppendDropsATornLastLine) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  write_bytes(path, "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"lo");
  EXPECT_EQ(advft::io::read_jsonl(path).size(), 2u);  // readers skip the torn line too
  {
    advft::io::MetricsWriter writer(path, true);
    writer.write({{"step", 3}});
  }
  EXPECT_EQ(read_bytes(path), "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n");

  write_bytes(path, "{\"torn");  // only a torn line
  advft::io::MetricsWriter(path, true).write({{"a", 1}});
  EXPECT_EQ(read_bytes(path), "{\"a\":1}\n");

  advft::io::MetricsWriter(dir.file("new.jsonl"), true).write({{"b", 2}});
  EXPECT_EQ(read_bytes(dir.file("new.jsonl")), "{\"b\":2}\n");
}

TEST(Metrics, ReadJsonlRejectsACorruptMiddleLine) {
  TempDir dir;
  const std::string path = dir.file("m.jsonl");
  write_bytes(path, "{\"a\":1}\nnot json\n{\"b\":2}\n");
  try {
    advft::io::read_jsonl(path);
    FAIL() << "expected an error";
  } catch (const advft::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2"), std::string::npos) << e.what();
  }
}

TEST(Metrics, WriteJsonAtomicIsPrettyWithTrailingNewline) {
  TempDir dir;
  const std::string path = dir.file("results.json");
  advft::io::write_json_atomic(path, {{"clean_acc", 0.9}, {"attacks", {{"pgd", 0.5}}}});
  EXPECT_EQ(read_bytes(path),
            "{\n  \"attacks\": {\n    \"pgd\": 0.5\n  },\n  \"clean_acc\": 0.9\n}\n");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"results.json"});
}

TEST(Metrics, UnwritablePathThrows) {
  TempDir dir;
  EXPECT_THROW(advft::io::MetricsWriter(dir.file("missing/metrics.jsonl"), false), advft::Error);
}

}  // namespace
