// Data component: the binary readers on files written here (plus the real Fashion-MNIST test set),
// the seeded validation split, the resumable batch order and the augmentation.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "advft/data/cifar.h"
#include "advft/data/dataset.h"
#include "advft/data/idx.h"
#include "advft/data/loader.h"
#include "advft/data/source.h"
#include "advft/error.h"
#include "numpy_pickle.h"
#include "test_util.h"

namespace {

using advft::DataError;
using advft::testing::TempDir;
using advft::testing::write_bytes;
namespace data = advft::data;

constexpr int kPixels = 3 * 32 * 32;

/// The byte every synthetic image has at (channel, y, x); `image` is its index in the split.
uint8_t pattern(int64_t image, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((image * 13 + c * 50 + y * 3 + x) & 0xFF);
}

std::string image_bytes(int64_t image) {
  std::string bytes(kPixels, '\0');
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        bytes[static_cast<size_t>(c * 1024 + y * 32 + x)] =
            static_cast<char>(pattern(image, c, y, x));
      }
    }
  }
  return bytes;
}

int64_t cifar10_label(int64_t image) {
  return (image * 3) % 10;
}
int64_t cifar100_fine(int64_t image) {
  return (image * 7) % 100;
}
int64_t cifar100_coarse(int64_t image) {
  return (image * 7) % 100 / 5;
}

constexpr int64_t kPerBatch = 4;  // records per data_batch_k.bin: 20 training images in all
constexpr int64_t kTestRecords = 6;

/// CIFAR-10 binary files in `dir`: 5 training batches of kPerBatch records and one test batch.
void write_cifar10(const std::filesystem::path& dir) {
  for (int b = 1; b <= 5; ++b) {
    std::string bytes;
    for (int64_t r = 0; r < kPerBatch; ++r) {
      const int64_t image = (b - 1) * kPerBatch + r;
      bytes += static_cast<char>(cifar10_label(image));
      bytes += image_bytes(image);
    }
    write_bytes((dir / ("data_batch_" + std::to_string(b) + ".bin")).string(), bytes);
  }
  std::string test;
  for (int64_t r = 0; r < kTestRecords; ++r) {
    test += static_cast<char>(cifar10_label(r));
    test += image_bytes(r);
  }
  write_bytes((dir / "test_batch.bin").string(), test);
}

/// CIFAR-100 train.bin (`train_records`) and test.bin (kTestRecords) in `dir`.
void write_cifar100(const std::filesystem::path& dir, int64_t train_records = 20) {
  for (const auto& [name, count] : {std::pair<std::string, int64_t>{"train.bin", train_records},
                                    std::pair<std::string, int64_t>{"test.bin", kTestRecords}}) {
    std::string bytes;
    for (int64_t r = 0; r < count; ++r) {
      bytes += static_cast<char>(cifar100_coarse(r));
      bytes += static_cast<char>(cifar100_fine(r));
      bytes += image_bytes(r);
    }
    write_bytes((dir / name).string(), bytes);
  }
}

/// Runs `fn`, expects a DataError and returns its message.
template <typename Fn>
std::string data_error(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    EXPECT_EQ(e.exit_code(), advft::kExitData);
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected advft::DataError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected advft::DataError, nothing was thrown";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "in: " << (text)

// ---- CIFAR ----------------------------------------------------------------------------------

void expect_cifar_images(const data::Dataset& d, int64_t count) {
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{count, 3, 32, 32}));
  EXPECT_EQ(d.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(d.images.is_contiguous());
  EXPECT_EQ(d.labels.sizes(), (std::vector<int64_t>{count}));
  EXPECT_EQ(d.labels.scalar_type(), torch::kLong);
  for (int64_t i : {int64_t{0}, int64_t{1}, count - 1}) {
    for (auto [c, y, x] : {std::array<int64_t, 3>{0, 0, 0}, {1, 5, 7}, {2, 31, 30}, {2, 17, 0}}) {
      EXPECT_EQ(d.images[i][c][y][x].item<int64_t>(), pattern(i, c, y, x))
          << "image " << i << " (" << c << "," << y << "," << x << ")";
    }
  }
}

TEST(Cifar10, ReadsTrainingAndTestBatches) {
  TempDir tmp;
  write_cifar10(tmp.path());
  const data::Dataset train = data::read_cifar10(tmp.path().string(), true);
  expect_cifar_images(train, 5 * kPerBatch);
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(train.name, "cifar10");
  for (int64_t i = 0; i < train.size(); ++i) {
    EXPECT_EQ(train.labels[i].item<int64_t>(), cifar10_label(i));
  }
  const data::Dataset test = data::read_cifar10(tmp.path().string(), false);
  expect_cifar_images(test, kTestRecords);
  EXPECT_EQ(test.labels[5].item<int64_t>(), cifar10_label(5));
}

TEST(Cifar10, AcceptsTheParentOfTheTarballFolder) {
  TempDir tmp;
  write_cifar10(tmp.path() / "cifar-10-batches-bin");
  const data::Dataset train = data::read_cifar10(tmp.path().string(), true);
  expect_cifar_images(train, 5 * kPerBatch);
}

TEST(Cifar10, MissingFolderOrFilesNameWhatIsExpected) {
  TempDir tmp;
  std::string msg = data_error([&] { data::read_cifar10(tmp.file("nope"), true); });
  EXPECT_CONTAINS(msg, tmp.file("nope"));
  msg = data_error([&] { data::read_cifar10(tmp.path().string(), true); });
  EXPECT_CONTAINS(msg, "no CIFAR-10 files found");
  EXPECT_CONTAINS(msg, "data_batch_1.bin..data_batch_5.bin and test_batch.bin");
  EXPECT_CONTAINS(msg, "cifar-10-batches-bin/");
  // Both releases: the python one is what torchvision downloads.
  EXPECT_CONTAINS(msg, "python release's data_batch_1..data_batch_5 and test_batch");
  EXPECT_CONTAINS(msg, "cifar-10-batches-py/");

  write_cifar10(tmp.path());
  std::filesystem::remove(tmp.path() / "data_batch_3.bin");
  msg = data_error([&] { data::read_cifar10(tmp.path().string(), true); });
  EXPECT_CONTAINS(msg, tmp.file("data_batch_3.bin"));
  EXPECT_CONTAINS(msg, "missing");
  EXPECT_NO_THROW(data::read_cifar10(tmp.path().string(), false));
}

TEST(Cifar10, TruncatedOrEmptyFileIsADataError) {
  TempDir tmp;
  write_cifar10(tmp.path());
  const std::string path = tmp.file("data_batch_3.bin");
  write_bytes(path, std::string(1000, '\0'));
  std::string msg = data_error([&] { data::read_cifar10(tmp.path().string(), true); });
  EXPECT_CONTAINS(msg, path + ": size 1000 is not a multiple of the CIFAR-10 record size 3073");
  EXPECT_EQ(msg.rfind("data: ", 0), 0u) << msg;

  write_bytes(path, "");
  msg = data_error([&] { data::read_cifar10(tmp.path().string(), true); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "empty");
}

TEST(Cifar10, LabelOutOfRangeNamesFileRecordAndValue) {
  TempDir tmp;
  write_cifar10(tmp.path());
  std::string bytes = advft::testing::read_bytes(tmp.file("test_batch.bin"));
  bytes[2 * (1 + kPixels)] = 17;  // label byte of record 2
  write_bytes(tmp.file("test_batch.bin"), bytes);
  const std::string msg = data_error([&] { data::read_cifar10(tmp.path().string(), false); });
  EXPECT_CONTAINS(msg, tmp.file("test_batch.bin"));
  EXPECT_CONTAINS(msg, "record 2");
  EXPECT_CONTAINS(msg, "17");
}

TEST(Cifar100, FineAndCoarseLabels) {
  TempDir tmp;
  write_cifar100(tmp.path());
  const data::Dataset fine = data::read_cifar100(tmp.path().string(), true, false);
  expect_cifar_images(fine, 20);
  EXPECT_EQ(fine.num_classes, 100);
  EXPECT_EQ(fine.name, "cifar100");
  const data::Dataset coarse = data::read_cifar100(tmp.path().string(), true, true);
  EXPECT_EQ(coarse.num_classes, 20);
  EXPECT_TRUE(torch::equal(coarse.images, fine.images));
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(fine.labels[i].item<int64_t>(), cifar100_fine(i));
    EXPECT_EQ(coarse.labels[i].item<int64_t>(), cifar100_coarse(i));
  }
  EXPECT_GT(fine.labels.max().item<int64_t>(), 19);  // the two really differ
  const data::Dataset test = data::read_cifar100(tmp.path().string(), false);
  expect_cifar_images(test, kTestRecords);
  EXPECT_EQ(test.num_classes, 100);
}

TEST(Cifar100, ParentFolderAndErrors) {
  TempDir tmp;
  write_cifar100(tmp.path() / "cifar-100-binary");
  EXPECT_EQ(data::read_cifar100(tmp.path().string(), false).size(), kTestRecords);

  // A CIFAR-10 record size is not a CIFAR-100 one.
  const std::string path = (tmp.path() / "cifar-100-binary" / "train.bin").string();
  write_bytes(path, std::string(3073 * 2, '\0'));
  std::string msg = data_error([&] { data::read_cifar100(tmp.path().string(), true); });
  EXPECT_CONTAINS(msg, path + ": size 6146 is not a multiple of the CIFAR-100 record size 3074");

  std::string bytes(3074, '\0');
  bytes[1] = static_cast<char>(100);  // fine label of record 0
  write_bytes(path, bytes);
  msg = data_error([&] { data::read_cifar100(tmp.path().string(), true, true); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "fine label 100");

  TempDir empty;
  msg = data_error([&] { data::read_cifar100(empty.path().string(), true); });
  EXPECT_CONTAINS(msg, "no CIFAR-100 files found");
}

// ---- CIFAR's python release (torchvision's download) ------------------------------------------

using advft::testing::cifar_py_batch;
using advft::testing::CifarPyBatch;
using PyStrings = advft::testing::Py2Pickle::Strings;

/// The pixel rows of images first..first+count-1, as the python release's 'data' holds them.
std::string pixel_rows(int64_t first, int64_t count) {
  std::string rows;
  for (int64_t i = 0; i < count; ++i)
    rows += image_bytes(first + i);
  return rows;
}

std::vector<int64_t> labels_of(int64_t first, int64_t count, int64_t (*label)(int64_t)) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i)
    out.push_back(label(first + i));
  return out;
}

/// The CIFAR-10 test batch of the python release, images and labels as write_cifar10's.
CifarPyBatch cifar10_py_test_batch() {
  return {pixel_rows(0, kTestRecords),
          {kTestRecords, kPixels},
          {{"labels", labels_of(0, kTestRecords, cifar10_label)}},
          "testing batch 1 of 1"};
}

/// batches.meta / meta: the class names, which advft does not need; written as the release has it.
std::string py_meta(const std::string& key, const std::vector<std::string>& names) {
  advft::testing::Py2Pickle p;
  p.op("}").put().op("(").str(key).str_list(names);
  return p.op("u").bytes();
}

/// The CIFAR-10 python release in `dir` with the data write_cifar10 writes in the binary one.
void write_cifar10_python(const std::filesystem::path& dir,
                          PyStrings strings = PyStrings::kPython2) {
  for (int b = 1; b <= 5; ++b) {
    const int64_t first = (b - 1) * kPerBatch;
    const CifarPyBatch batch{pixel_rows(first, kPerBatch),
                             {kPerBatch, kPixels},
                             {{"labels", labels_of(first, kPerBatch, cifar10_label)}},
                             "training batch " + std::to_string(b) + " of 5"};
    write_bytes((dir / ("data_batch_" + std::to_string(b))).string(),
                cifar_py_batch(batch, strings));
  }
  write_bytes((dir / "test_batch").string(), cifar_py_batch(cifar10_py_test_batch(), strings));
  write_bytes((dir / "batches.meta").string(), py_meta("label_names", {"airplane", "truck"}));
}

/// The CIFAR-100 python release in `dir` with the data write_cifar100 writes in the binary one.
void write_cifar100_python(const std::filesystem::path& dir,
                           PyStrings strings = PyStrings::kPython2) {
  for (const auto& [name, count] : {std::pair<std::string, int64_t>{"train", 20},
                                    std::pair<std::string, int64_t>{"test", kTestRecords}}) {
    const CifarPyBatch batch{pixel_rows(0, count),
                             {count, kPixels},
                             {{"fine_labels", labels_of(0, count, cifar100_fine)},
                              {"coarse_labels", labels_of(0, count, cifar100_coarse)}},
                             name};
    write_bytes((dir / name).string(), cifar_py_batch(batch, strings));
  }
  write_bytes((dir / "meta").string(), py_meta("fine_label_names", {"apple", "worm"}));
}

void expect_same_data(const data::Dataset& got, const data::Dataset& expected) {
  EXPECT_EQ(got.name, expected.name);
  EXPECT_EQ(got.num_classes, expected.num_classes);
  EXPECT_EQ(got.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(got.labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(got.images.is_contiguous());
  ASSERT_EQ(got.images.sizes(), expected.images.sizes());
  EXPECT_TRUE(torch::equal(got.images, expected.images));
  EXPECT_TRUE(torch::equal(got.labels, expected.labels));
}

TEST(Cifar10Python, LoadsTheSameTensorsAsTheBinaryRelease) {
  TempDir binary;
  TempDir python;
  write_cifar10(binary.path());
  write_cifar10_python(python.path());
  for (bool train : {true, false}) {
    SCOPED_TRACE(train);
    const data::Dataset expected = data::read_cifar10(binary.path().string(), train);
    const data::Dataset got = data::read_cifar10(python.path().string(), train);
    expect_same_data(got, expected);
    expect_cifar_images(got, train ? 5 * kPerBatch : kTestRecords);
  }
}

// torchvision unpacks into root/cifar-10-batches-py; a batch re-pickled by Python 3 (bytes keys
// and data, protocol 2's _codecs.encode) reads the same.
TEST(Cifar10Python, ParentFolderAndPython3Repickles) {
  TempDir binary;
  write_cifar10(binary.path());
  for (PyStrings strings : {PyStrings::kPython2, PyStrings::kPython3Bytes}) {
    TempDir root;
    write_cifar10_python(root.path() / "cifar-10-batches-py", strings);
    for (bool train : {true, false}) {
      expect_same_data(data::read_cifar10(root.path().string(), train),
                       data::read_cifar10(binary.path().string(), train));
    }
  }
}

TEST(Cifar10Python, TheBinaryReleaseIsReadWhenBothArePresent) {
  TempDir tmp;
  write_cifar10(tmp.path());
  for (const char* name : {"data_batch_1", "test_batch"})
    write_bytes(tmp.file(name), "not a pickle");
  EXPECT_EQ(data::read_cifar10(tmp.path().string(), true).size(), 5 * kPerBatch);

  // The folder itself before the tarball folders, and of these the binary one first.
  TempDir parent;
  write_cifar10(parent.path() / "cifar-10-batches-bin");
  write_bytes((parent.path() / "cifar-10-batches-py" / "test_batch").string(), "not a pickle");
  EXPECT_EQ(data::read_cifar10(parent.path().string(), false).size(), kTestRecords);
  write_bytes(parent.file("test_batch"), cifar_py_batch(cifar10_py_test_batch()));
  EXPECT_EQ(data::read_cifar10(parent.path().string(), false).size(), kTestRecords);
  const std::string msg = data_error([&] { data::read_cifar10(parent.path().string(), true); });
  EXPECT_CONTAINS(msg, parent.file("data_batch_1") +
                           ": missing (the CIFAR-10 python release has "
                           "data_batch_1..data_batch_5 and test_batch)");
}

TEST(Cifar100Python, FineAndCoarseLabelsAsTheBinaryRelease) {
  TempDir binary;
  write_cifar100(binary.path());
  for (PyStrings strings : {PyStrings::kPython2, PyStrings::kPython3Bytes}) {
    TempDir here;
    TempDir parent;
    write_cifar100_python(here.path(), strings);
    write_cifar100_python(parent.path() / "cifar-100-python", strings);
    for (const TempDir* dir : {&here, &parent}) {
      for (bool train : {true, false}) {
        for (bool coarse : {false, true}) {
          SCOPED_TRACE(dir->path().string() + (train ? " train" : " test") +
                       (coarse ? " coarse" : " fine"));
          expect_same_data(data::read_cifar100(dir->path().string(), train, coarse),
                           data::read_cifar100(binary.path().string(), train, coarse));
        }
      }
    }
  }
  TempDir empty;
  const std::string msg = data_error([&] { data::read_cifar100(empty.path().string(), true); });
  EXPECT_CONTAINS(msg, "python release's train and test, here or in cifar-100-python/");
}

// Every way a batch can be wrong is one DataError line naming the file and what is wrong.
TEST(CifarPython, MalformedBatchesNameTheFileAndTheFault) {
  const std::string good = cifar_py_batch(cifar10_py_test_batch());
  std::vector<std::pair<std::string, std::string>> cases;  // (test_batch's bytes, message part)
  cases.emplace_back(good.substr(0, good.size() / 2),
                     "truncated pickle: a 18432-byte field runs past its end");
  cases.emplace_back("", "file is empty (expected a pickled CIFAR-10 batch)");
  cases.emplace_back(advft::testing::Py2Pickle().int_list({1, 2}).bytes(),
                     "holds a pickled list, expected the dict of a CIFAR-10 python batch");
  {
    CifarPyBatch b = cifar10_py_test_batch();
    b.shape = {kTestRecords, kPixels - 1};
    b.pixels = std::string(static_cast<size_t>(kTestRecords * (kPixels - 1)), '\7');
    cases.emplace_back(cifar_py_batch(b),
                       "'data' is a numpy array of Byte and shape [6, 3071], expected uint8");
  }
  {
    CifarPyBatch b = cifar10_py_test_batch();
    b.pixels.pop_back();
    cases.emplace_back(cifar_py_batch(b),
                       "numpy array of shape (6, 3072) and dtype 'u1' needs "
                       "18432 bytes, its data holds 18431");
  }
  {
    CifarPyBatch b = cifar10_py_test_batch();
    b.labels[0].second.pop_back();
    cases.emplace_back(cifar_py_batch(b), "'labels' has 5 labels for the 6 images of 'data'");
  }
  for (int64_t bad : {int64_t{10}, int64_t{-1}}) {
    CifarPyBatch b = cifar10_py_test_batch();
    b.labels[0].second[3] = bad;
    cases.emplace_back(cifar_py_batch(b),
                       "record 3 has CIFAR-10 label " + std::to_string(bad) + ", expected 0..9");
  }
  {
    CifarPyBatch b = cifar10_py_test_batch();
    b.labels[0].first = "fine_labels";
    cases.emplace_back(cifar_py_batch(b),
                       "no 'labels' in the pickled dict (a CIFAR-10 python batch holds "
                       "batch_label, labels, data, filenames)");
  }
  {
    std::string evil = good;
    const std::string numpy = "cnumpy.core.multiarray\n_reconstruct\n";
    evil.replace(evil.find(numpy), numpy.size(), "cos\nsystem\n");
    cases.emplace_back(evil,
                       "refuses to load global os.system: loading a data file must never run code");
  }
  {
    advft::testing::Py2Pickle p;
    p.op("}").put().op("(").str("data");
    p.ndarray({2, kPixels}, "u1", "|", std::string(2 * kPixels, '\0'), /*fortran=*/true);
    cases.emplace_back(p.op("u").bytes(), "Fortran-order numpy arrays are not supported");
  }
  {
    advft::testing::Py2Pickle p;
    p.op("}").put().op("(").str("data");
    p.ndarray({kPixels}, "O8", "|", std::string(8 * kPixels, '\0'));
    cases.emplace_back(p.op("u").bytes(), "numpy dtype 'O8' is not supported (an object array");
  }
  {
    advft::testing::Py2Pickle p;
    p.op("}").put().op("(").str("data");
    p.ndarray({1, kPixels}, "i8", "<", std::string(8 * kPixels, '\0'));
    cases.emplace_back(p.op("u").bytes(), "'data' is a numpy array of Long and shape [1, 3072]");
  }
  for (const auto& [bytes, what] : cases) {
    SCOPED_TRACE(what);
    TempDir tmp;
    write_cifar10_python(tmp.path());
    write_bytes(tmp.file("test_batch"), bytes);
    const std::string msg = data_error([&] { data::read_cifar10(tmp.path().string(), false); });
    EXPECT_EQ(msg.rfind("data: " + tmp.file("test_batch") + ": ", 0), 0u) << msg;
    EXPECT_CONTAINS(msg, what);
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// A missing label list of CIFAR-100 (both are checked, whichever is used, as in the binary files).
TEST(CifarPython, Cifar100NeedsBothLabelLists) {
  TempDir tmp;
  write_cifar100_python(tmp.path());
  CifarPyBatch b{pixel_rows(0, 2), {2, kPixels}, {{"fine_labels", {1, 99}}}, "test"};
  write_bytes(tmp.file("test"), cifar_py_batch(b));
  std::string msg = data_error([&] { data::read_cifar100(tmp.path().string(), false, false); });
  EXPECT_CONTAINS(msg, tmp.file("test") + ": no 'coarse_labels' in the pickled dict");
  b.labels.emplace_back("coarse_labels", std::vector<int64_t>{0, 20});
  write_bytes(tmp.file("test"), cifar_py_batch(b));
  msg = data_error([&] { data::read_cifar100(tmp.path().string(), false, false); });
  EXPECT_CONTAINS(msg, "record 1 has CIFAR-100 coarse label 20, expected 0..19");
}

// ---- IDX ------------------------------------------------------------------------------------

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string idx_images(int64_t n, int64_t h, int64_t w) {
  std::string bytes = be32(0x803) + be32(static_cast<uint32_t>(n)) +
                      be32(static_cast<uint32_t>(h)) + be32(static_cast<uint32_t>(w));
  for (int64_t i = 0; i < n * h * w; ++i) {
    bytes += static_cast<char>((i * 7) & 0xFF);
  }
  return bytes;
}

std::string idx_labels(int64_t n) {
  std::string bytes = be32(0x801) + be32(static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    bytes += static_cast<char>(i % 10);
  }
  return bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

void expect_idx_images(const torch::Tensor& images, int64_t n, int64_t h, int64_t w) {
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{n, 1, h, w}));
  EXPECT_EQ(images.scalar_type(), torch::kUInt8);
  const torch::Tensor expected =
      (torch::arange(n * h * w, torch::kLong) * 7).remainder(256).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(images.flatten(), expected));
}

TEST(Idx, PlainAndGzipReadTheSame) {
  TempDir tmp;
  write_bytes(tmp.file("img"), idx_images(5, 4, 3));
  write_gz(tmp.file("img.gz"), idx_images(5, 4, 3));
  write_bytes(tmp.file("lab"), idx_labels(5));
  write_gz(tmp.file("lab.gz"), idx_labels(5));
  expect_idx_images(data::read_idx_images(tmp.file("img")), 5, 4, 3);
  expect_idx_images(data::read_idx_images(tmp.file("img.gz")), 5, 4, 3);
  for (const char* name : {"lab", "lab.gz"}) {
    const torch::Tensor labels = data::read_idx_labels(tmp.file(name));
    EXPECT_EQ(labels.scalar_type(), torch::kLong);
    EXPECT_TRUE(torch::equal(labels, torch::arange(5, torch::kLong)));
  }
}

TEST(Idx, BadMagicTruncationAndTrailingBytes) {
  TempDir tmp;
  write_bytes(tmp.file("lab"), idx_labels(5));
  std::string msg = data_error([&] { data::read_idx_images(tmp.file("lab")); });
  EXPECT_CONTAINS(msg, tmp.file("lab"));
  EXPECT_CONTAINS(msg, "bad magic number 0x00000801, expected 0x00000803");

  std::string full = idx_images(5, 4, 3);
  write_bytes(tmp.file("short"), full.substr(0, full.size() - 1));
  msg = data_error([&] { data::read_idx_images(tmp.file("short")); });
  EXPECT_CONTAINS(msg, tmp.file("short") + ": truncated");

  write_gz(tmp.file("short.gz"), full.substr(0, 30));
  msg = data_error([&] { data::read_idx_images(tmp.file("short.gz")); });
  EXPECT_CONTAINS(msg, tmp.file("short.gz") + ": truncated");

  // A gzip stream cut in the middle of its compressed bytes.
  write_gz(tmp.file("cut.gz"), full);
  const std::string gz = advft::testing::read_bytes(tmp.file("cut.gz"));
  write_bytes(tmp.file("cut.gz"), gz.substr(0, gz.size() / 2));
  msg = data_error([&] { data::read_idx_images(tmp.file("cut.gz")); });
  EXPECT_CONTAINS(msg, tmp.file("cut.gz"));

  write_bytes(tmp.file("hdr"), full.substr(0, 10));
  msg = data_error([&] { data::read_idx_images(tmp.file("hdr")); });
  EXPECT_CONTAINS(msg, tmp.file("hdr") + ": truncated IDX header");

  write_bytes(tmp.file("long"), idx_labels(5) + "x");
  msg = data_error([&] { data::read_idx_labels(tmp.file("long")); });
  EXPECT_CONTAINS(msg, tmp.file("long"));

  write_bytes(tmp.file("empty"), "");
  msg = data_error([&] { data::read_idx_labels(tmp.file("empty")); });
  EXPECT_CONTAINS(msg, tmp.file("empty"));

  // A corrupt header announcing ~2^64 bytes fails cleanly instead of allocating.
  write_bytes(tmp.file("huge"), be32(0x803) + be32(0xFFFFFFFF) + be32(0xFFFFFF) + be32(0xFFFF));
  msg = data_error([&] { data::read_idx_images(tmp.file("huge")); });
  EXPECT_CONTAINS(msg, tmp.file("huge"));

  msg = data_error([&] { data::read_idx_images(tmp.file("absent")); });
  EXPECT_CONTAINS(msg, tmp.file("absent") + ": missing");
}

TEST(Idx, MnistLikeFolder) {
  TempDir tmp;
  write_gz(tmp.file("train-images-idx3-ubyte.gz"), idx_images(12, 28, 28));
  write_bytes(tmp.file("train-labels-idx1-ubyte"), idx_labels(12));
  const data::Dataset train = data::read_mnist_like(tmp.path().string(), true, "mnist");
  expect_idx_images(train.images, 12, 28, 28);
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(train.name, "mnist");
  EXPECT_EQ(train.labels[11].item<int64_t>(), 1);

  std::string msg = data_error([&] { data::read_mnist_like(tmp.path().string(), false, "mnist"); });
  EXPECT_CONTAINS(msg, "t10k-images-idx3-ubyte");

  write_bytes(tmp.file("t10k-images-idx3-ubyte"), idx_images(3, 28, 28));
  write_bytes(tmp.file("t10k-labels-idx1-ubyte"), idx_labels(4));
  msg = data_error([&] { data::read_mnist_like(tmp.path().string(), false, "mnist"); });
  EXPECT_CONTAINS(msg, tmp.file("t10k-labels-idx1-ubyte"));
  EXPECT_CONTAINS(msg, "4 labels");

  std::string labels = idx_labels(3);
  labels[9] = 12;
  write_bytes(tmp.file("t10k-labels-idx1-ubyte"), labels);
  msg = data_error([&] { data::read_mnist_like(tmp.path().string(), false, "mnist"); });
  EXPECT_CONTAINS(msg, tmp.file("t10k-labels-idx1-ubyte"));
  EXPECT_CONTAINS(msg, "12");
}

// torchvision.datasets.FashionMNIST(root, download=True) keeps the files in root/FashionMNIST/raw
// (MNIST: root/MNIST/raw); some copies name them with a dot ("t10k-images.idx3-ubyte").
TEST(Idx, TorchvisionRootAndDottedNames) {
  TempDir tmp;
  const std::filesystem::path raw = tmp.path() / "FashionMNIST" / "raw";
  std::filesystem::create_directories(raw);
  write_gz((raw / "t10k-images-idx3-ubyte.gz").string(), idx_images(5, 28, 28));
  write_bytes((raw / "t10k-labels-idx1-ubyte").string(), idx_labels(5));
  const data::Dataset test = data::read_mnist_like(tmp.path().string(), false, "fashion_mnist");
  expect_idx_images(test.images, 5, 28, 28);
  // The root of another data set does not hold it: the message says where it looked.
  const std::string msg =
      data_error([&] { data::read_mnist_like(tmp.path().string(), false, "mnist"); });
  EXPECT_CONTAINS(msg, "MNIST/raw");

  TempDir dotted;
  write_bytes(dotted.file("t10k-images.idx3-ubyte"), idx_images(4, 28, 28));
  write_bytes(dotted.file("t10k-labels.idx1-ubyte"), idx_labels(4));
  EXPECT_EQ(data::read_mnist_like(dotted.path().string(), false, "mnist").labels.size(0), 4);
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("ADVFT_FASHION_MNIST_DIR");
  return env ? env : "/usr/share/datasets/fashion-mnist";
}

TEST(Idx, RealFashionMnistTestSet) {
  const std::string dir = fashion_mnist_dir();
  // scripts/test.sh installs Debian's dataset-fashion-mnist: its absence is a failure, not a skip.
  ASSERT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / "t10k-images-idx3-ubyte.gz"))
      << "Fashion-MNIST not found in " << dir
      << " (install dataset-fashion-mnist or set ADVFT_FASHION_MNIST_DIR)";
  const data::Dataset test = data::read_mnist_like(dir, false, "fashion_mnist");
  ASSERT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  ASSERT_EQ(test.labels.sizes(), (std::vector<int64_t>{10000}));
  EXPECT_EQ(test.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(test.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(test.labels[0].item<int64_t>(), 9);  // the first test image is an ankle boot
  // Balanced: 1000 images of every class.
  EXPECT_TRUE(torch::equal(torch::bincount(test.labels), torch::full({10}, 1000, torch::kLong)));
  EXPECT_GT(test.images.to(torch::kFloat).mean().item<double>(), 10.0);  // not all black
}

// ---- splits ---------------------------------------------------------------------------------

TEST(Splits, SeededPermutationIsFixedAcrossPlatforms) {
  // Golden values: a change here silently changes every user's validation split.
  EXPECT_EQ(data::seeded_permutation(10, 0), (std::vector<int64_t>{7, 2, 0, 8, 3, 9, 6, 1, 5, 4}));
  EXPECT_EQ(data::seeded_permutation(10, 42), (std::vector<int64_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6}));
  EXPECT_TRUE(data::seeded_permutation(0, 1).empty());
  std::vector<int64_t> sorted = data::seeded_permutation(1000, 7);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  }
}

advft::config::DataConfig cifar10_config(const std::string& dir) {
  advft::config::DataConfig cfg;
  cfg.dataset = "cifar10";
  cfg.dir = dir;
  cfg.val_size = 5;
  cfg.split_seed = 3;
  return cfg;
}

/// Training-set indices of the examples in `part` (every synthetic image is unique).
std::vector<int64_t> origin_of(const data::Dataset& part) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < part.size(); ++i) {
    const auto first = part.images[i][0][0][0].item<int64_t>();  // pattern(image, 0, 0, 0)
    const auto second = part.images[i][2][31][31].item<int64_t>();
    int64_t found = -1;
    for (int64_t j = 0; j < 5 * kPerBatch; ++j) {
      if (pattern(j, 0, 0, 0) == first && pattern(j, 2, 31, 31) == second) {
        found = j;
      }
    }
    EXPECT_GE(found, 0);
    EXPECT_EQ(part.labels[i].item<int64_t>(), cifar10_label(found));
    out.push_back(found);
  }
  return out;
}

TEST(Splits, HoldOutIsSeededDisjointAndInFileOrder) {
  TempDir tmp;
  write_cifar10(tmp.path());
  auto cfg = cifar10_config(tmp.path().string());
  const data::DataSplits a = data::load_splits(cfg);
  EXPECT_EQ(a.train.size(), 15);
  EXPECT_EQ(a.val.size(), 5);
  EXPECT_EQ(a.test.size(), kTestRecords);
  EXPECT_EQ(a.train.num_classes, 10);
  EXPECT_TRUE(a.train.images.is_contiguous());
  const std::vector<int64_t> train = origin_of(a.train);
  const std::vector<int64_t> val = origin_of(a.val);
  EXPECT_TRUE(std::is_sorted(train.begin(), train.end()));
  EXPECT_TRUE(std::is_sorted(val.begin(), val.end()));
  std::set<int64_t> all(train.begin(), train.end());
  all.insert(val.begin(), val.end());
  EXPECT_EQ(all.size(), 20u);  // disjoint and together the whole training set

  const data::DataSplits again = data::load_splits(cfg);
  EXPECT_EQ(origin_of(again.val), val);
  EXPECT_TRUE(torch::equal(again.train.images, a.train.images));

  cfg.split_seed = 4;
  EXPECT_NE(origin_of(data::load_splits(cfg).val), val);

  cfg.split_seed = 3;
  cfg.train_limit = 6;
  const data::DataSplits limited = data::load_splits(cfg);
  EXPECT_EQ(origin_of(limited.val), val);  // the limit never changes the validation set
  EXPECT_EQ(origin_of(limited.train), std::vector<int64_t>(train.begin(), train.begin() + 6));

  cfg.train_limit = 0;
  cfg.val_size = 0;
  const data::DataSplits no_val = data::load_splits(cfg);
  EXPECT_EQ(no_val.train.size(), 20);
  EXPECT_EQ(no_val.val.size(), 0);
  EXPECT_EQ(no_val.val.images.sizes(), (std::vector<int64_t>{0, 3, 32, 32}));
}

TEST(Splits, TestOnlyAndErrors) {
  TempDir tmp;
  write_cifar10(tmp.path());
  auto cfg = cifar10_config(tmp.path().string());
  std::filesystem::remove(tmp.path() / "data_batch_1.bin");  // never read without need_train
  const data::DataSplits only_test = data::load_splits(cfg, false);
  EXPECT_EQ(only_test.test.size(), kTestRecords);
  EXPECT_EQ(only_test.train.size(), 0);
  EXPECT_EQ(only_test.val.size(), 0);
  EXPECT_EQ(only_test.train.images.sizes(), (std::vector<int64_t>{0, 3, 32, 32}));

  write_cifar10(tmp.path());
  cfg.val_size = 20;
  std::string msg = data_error([&] { data::load_splits(cfg); });
  EXPECT_CONTAINS(msg, "val_size");
  EXPECT_CONTAINS(msg, "20");

  cfg.dataset = "imagenet21k";
  try {
    data::load_splits(cfg);
    ADD_FAILURE() << "expected ConfigError";
  } catch (const advft::ConfigError& e) {
    EXPECT_CONTAINS(e.what(), "data.dataset");
    EXPECT_CONTAINS(e.what(), "imagenet21k");
    EXPECT_CONTAINS(e.what(), "cifar10, cifar100, mnist, fashion_mnist");
  }
  EXPECT_THROW(data::dataset_num_classes(cfg), advft::ConfigError);
}

TEST(Splits, NumClasses) {
  advft::config::DataConfig cfg;
  for (const auto& [name, coarse, classes] :
       {std::tuple<std::string, bool, int64_t>{"cifar10", false, 10},
        {"cifar100", false, 100},
        {"cifar100", true, 20},
        {"mnist", false, 10},
        {"fashion_mnist", false, 10}}) {
    cfg.dataset = name;
    cfg.coarse_labels = coarse;
    EXPECT_EQ(data::dataset_num_classes(cfg), classes) << name;
  }
}

TEST(Splits, Cifar100AndFashionMnistDispatch) {
  TempDir tmp;
  write_cifar100(tmp.path(), 30);
  advft::config::DataConfig cfg;
  cfg.dataset = "cifar100";
  cfg.dir = tmp.path().string();
  cfg.val_size = 10;
  cfg.coarse_labels = true;
  const data::DataSplits splits = data::load_splits(cfg);
  EXPECT_EQ(splits.train.size(), 20);
  EXPECT_EQ(splits.val.num_classes, 20);
  EXPECT_LT(splits.train.labels.max().item<int64_t>(), 20);

  const std::string dir = fashion_mnist_dir();
  if (std::filesystem::exists(std::filesystem::path(dir) / "t10k-images-idx3-ubyte.gz")) {
    cfg.dataset = "fashion_mnist";
    cfg.dir = dir;
    const data::DataSplits fm = data::load_splits(cfg, false);
    EXPECT_EQ(fm.test.size(), 10000);
    EXPECT_EQ(fm.test.name, "fashion_mnist");
  }
}

// ---- loader ---------------------------------------------------------------------------------

data::Dataset counting_dataset(int64_t n) {
  data::Dataset d;
  // Image i is filled with the value i, so a batch's images reveal which examples it holds.
  d.images = torch::arange(n, torch::kLong)
                 .to(torch::kUInt8)
                 .view({n, 1, 1, 1})
                 .expand({n, 2, 3, 3})
                 .contiguous();
  d.labels = torch::arange(n, torch::kLong);
  d.num_classes = n;
  d.name = "counting";
  return d;
}

TEST(BatchLoader, SameEpochAndIndexGiveTheSameBatch) {
  const data::Dataset d = counting_dataset(50);
  data::BatchLoader loader(d, 8, true, false, 11, torch::kCPU);
  EXPECT_EQ(loader.size(), 50);
  EXPECT_EQ(loader.batches_per_epoch(), 7);
  const data::Batch a = loader.batch(2, 3);
  loader.batch(5, 0);  // move the cache elsewhere and back
  const data::Batch b = loader.batch(2, 3);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));

  // A fresh loader (a resumed run) agrees without having seen earlier epochs.
  data::BatchLoader resumed(d, 8, true, false, 11, torch::kCPU);
  EXPECT_TRUE(torch::equal(resumed.batch(2, 3).labels, a.labels));
  data::BatchLoader other_seed(d, 8, true, false, 12, torch::kCPU);
  EXPECT_FALSE(torch::equal(other_seed.batch(2, 3).labels, a.labels));
}

TEST(BatchLoader, EveryExampleOncePerEpochAndEpochsDiffer) {
  const data::Dataset d = counting_dataset(50);
  data::BatchLoader loader(d, 8, true, false, 0, torch::kCPU);
  std::vector<torch::Tensor> epoch_orders;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<torch::Tensor> labels;
    for (int64_t i = 0; i < loader.batches_per_epoch(); ++i) {
      const data::Batch b = loader.batch(epoch, i);
      EXPECT_EQ(b.images.scalar_type(), torch::kFloat);
      EXPECT_EQ(b.images.size(0), i < 6 ? 8 : 2);
      EXPECT_GE(b.images.min().item<float>(), 0.0f);
      EXPECT_LE(b.images.max().item<float>(), 1.0f);
      // Images stay paired with their labels.
      EXPECT_TRUE(torch::allclose(b.images.select(1, 0).select(1, 0).select(1, 0),
                                  b.labels.to(torch::kFloat) / 255.0f));
      labels.push_back(b.labels);
    }
    const torch::Tensor all = torch::cat(labels);
    EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), torch::arange(50, torch::kLong)));
    epoch_orders.push_back(all);
  }
  EXPECT_FALSE(torch::equal(epoch_orders[0], epoch_orders[1]));
  EXPECT_FALSE(torch::equal(epoch_orders[1], epoch_orders[2]));
}

TEST(BatchLoader, SequentialAndDropLast) {
  const data::Dataset d = counting_dataset(50);
  data::BatchLoader seq(d, 8, false, false, 0, torch::kCPU);
  EXPECT_TRUE(torch::equal(seq.batch(4, 6).labels, torch::arange(48, 50, torch::kLong)));
  EXPECT_TRUE(torch::equal(seq.batch(0, 1).labels, seq.batch(9, 1).labels));
  const data::Batch first = seq.batch(0, 0);
  EXPECT_FLOAT_EQ(first.images[7][1][2][2].item<float>(), 7.0f / 255.0f);

  data::BatchLoader dropping(d, 8, true, true, 0, torch::kCPU);
  EXPECT_EQ(dropping.batches_per_epoch(), 6);
  EXPECT_EQ(dropping.batch(0, 5).labels.size(0), 8);
  EXPECT_THROW(dropping.batch(0, 6), c10::Error);
  data::BatchLoader tiny(counting_dataset(3), 8, true, true, 0, torch::kCPU);
  EXPECT_EQ(tiny.batches_per_epoch(), 0);
}

// Host placement: batches come from the background prefetcher, and must be the very batches
// the device-resident loader gives, in order, after a jump (a resumed run) and across epochs.
TEST(BatchLoader, HostPlacementPrefetchesTheSameBatches) {
  const data::Dataset d = counting_dataset(50);
  for (bool shuffle : {true, false}) {
    data::BatchLoader on_device(d, 8, shuffle, false, 7, torch::kCPU, data::Placement::kDevice);
    data::BatchLoader on_host(d, 8, shuffle, false, 7, torch::kCPU, data::Placement::kHost);
    std::vector<std::pair<int64_t, int64_t>> visits;
    for (int64_t epoch = 0; epoch < 3; ++epoch)
      for (int64_t i = 0; i < 7; ++i)
        visits.emplace_back(epoch, i);
    visits.emplace_back(1, 4);  // back in time: the read-ahead restarts there
    visits.emplace_back(1, 5);
    visits.emplace_back(6, 2);  // far ahead
    visits.emplace_back(6, 2);  // the same batch twice
    for (const auto& [epoch, index] : visits) {
      const data::Batch want = on_device.batch(epoch, index);
      const data::Batch got = on_host.batch(epoch, index);
      EXPECT_TRUE(torch::equal(want.images, got.images)) << epoch << "," << index;
      EXPECT_TRUE(torch::equal(want.labels, got.labels)) << epoch << "," << index;
    }
  }
  // Destroyed while its thread is reading ahead: no hang, no crash.
  data::BatchLoader abandoned(d, 4, true, true, 0, torch::kCPU, data::Placement::kHost);
  abandoned.batch(0, 0);
}

TEST(BatchLoader, PlacementSettingResolves) {
  const data::Dataset d = counting_dataset(10);
  EXPECT_EQ(data::resolve_placement("auto", d, torch::kCPU), data::Placement::kDevice);
  EXPECT_EQ(data::resolve_placement("device", d, torch::kCPU), data::Placement::kDevice);
  EXPECT_EQ(data::resolve_placement("host", d, torch::kCPU), data::Placement::kHost);
}

// ---- augment --------------------------------------------------------------------------------

torch::Tensor random_batch(int64_t b) {
  torch::manual_seed(123);
  return torch::rand({b, 3, 8, 6});
}

TEST(Augment, OffIsIdentity) {
  const torch::Tensor x = random_batch(4);
  EXPECT_TRUE(torch::equal(data::augment(x, {}), x));
}

TEST(Augment, FlipMirrorsSomeExamplesExactly) {
  const torch::Tensor x = random_batch(64);
  torch::manual_seed(5);
  const torch::Tensor y = data::augment(x, {0, true});
  ASSERT_EQ(y.sizes(), x.sizes());
  const torch::Tensor flipped = torch::flip(x, {3});
  int64_t mirrored = 0;
  for (int64_t i = 0; i < 64; ++i) {
    if (torch::equal(y[i], flipped[i])) {
      ++mirrored;
    } else {
      EXPECT_TRUE(torch::equal(y[i], x[i])) << "example " << i;
    }
  }
  EXPECT_GT(mirrored, 10);
  EXPECT_LT(mirrored, 54);
}

/// Whether `out` is a (possibly mirrored) HxW window of `image` zero-padded by `pad`.
bool is_padded_crop(const torch::Tensor& out, const torch::Tensor& image, int64_t pad) {
  const torch::Tensor padded = torch::constant_pad_nd(image, {pad, pad, pad, pad}, 0);
  const int64_t h = image.size(1);
  const int64_t w = image.size(2);
  for (int64_t dy = 0; dy <= 2 * pad; ++dy) {
    for (int64_t dx = 0; dx <= 2 * pad; ++dx) {
      const torch::Tensor window = padded.narrow(1, dy, h).narrow(2, dx, w);
      if (torch::equal(out, window) || torch::equal(out, torch::flip(window, {2}))) {
        return true;
      }
    }
  }
  return false;
}

TEST(Augment, CropIsAPaddedWindowAndReproducible) {
  const torch::Tensor x = random_batch(32);
  torch::manual_seed(9);
  const torch::Tensor y = data::augment(x, {2, true});
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), x.scalar_type());
  EXPECT_GE(y.min().item<float>(), 0.0f);
  EXPECT_LE(y.max().item<float>(), 1.0f);
  int64_t moved = 0;
  for (int64_t i = 0; i < 32; ++i) {
    EXPECT_TRUE(is_padded_crop(y[i], x[i], 2)) << "example " << i;
    moved += torch::equal(y[i], x[i]) ? 0 : 1;
  }
  EXPECT_GT(moved, 16);  // offsets are drawn per example, not once per batch
  torch::manual_seed(9);
  EXPECT_TRUE(torch::equal(data::augment(x, {2, true}), y));

  // uint8 batches work the same way.
  const torch::Tensor bytes = (x * 255).to(torch::kUInt8);
  const torch::Tensor cropped = data::augment(bytes, {3, false});
  EXPECT_EQ(cropped.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(is_padded_crop(cropped[0], bytes[0], 3));
}

}  // namespace
