#include "advft/data/cifar.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "advft/error.h"
#include "advft/io/atomic_file.h"
#include "advft/io/pickle.h"

namespace advft::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 3;
constexpr int64_t kSide = 32;
constexpr int64_t kPixels = kChannels * kSide * kSide;  // 3072

/// What one of the two data sets looks like on disk, in both of its official releases; drives
/// reading and the error messages.
struct CifarFormat {
  const char* title;  // "CIFAR-10"
  const char* name;   // Dataset::name
  // The binary release (cifar-10-binary.tar.gz): files of fixed-size records.
  const char* subdir;          // what the tarball unpacks to
  const char* record_layout;   // for size errors
  const char* expected_files;  // for "no files found" errors
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
  int64_t label_bytes;
  // The python release (cifar-10-python.tar.gz, what torchvision downloads): each file one
  // pickled dict, with the pixels as a numpy uint8 array [N, 3072] in the records' CHW order.
  const char* python_subdir;
  const char* python_expected_files;
  std::vector<std::string> python_train_files;
  std::vector<std::string> python_test_files;
  const char* python_keys;  // what a batch holds, for missing-key errors
  // The labels: CIFAR-10's only ones, CIFAR-100's fine ones (its coarse ones are 20 classes).
  int64_t num_classes;
  const char* label_key;  // python release
  const char* label_what;
  const char* coarse_key;  // nullptr: no coarse labels
};

constexpr int64_t kCoarseClasses = 20;

const CifarFormat& cifar10_format() {
  static const CifarFormat format{
      "CIFAR-10",
      "cifar10",
      "cifar-10-batches-bin",
      "1 label byte + 3072 pixels",
      "data_batch_1.bin..data_batch_5.bin and test_batch.bin",
      {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
       "data_batch_5.bin"},
      {"test_batch.bin"},
      1,
      "cifar-10-batches-py",
      "data_batch_1..data_batch_5 and test_batch",
      {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"},
      {"test_batch"},
      "batch_label, labels, data, filenames",
      10,
      "labels",
      "CIFAR-10 label",
      nullptr};
  return format;
}

const CifarFormat& cifar100_format() {
  static const CifarFormat format{"CIFAR-100",
                                  "cifar100",
                                  "cifar-100-binary",
                                  "coarse label byte + fine label byte + 3072 pixels",
                                  "train.bin and test.bin",
                                  {"train.bin"},
                                  {"test.bin"},
                                  2,
                                  "cifar-100-python",
                                  "train and test",
                                  {"train"},
                                  {"test"},
                                  "filenames, batch_label, fine_labels, coarse_labels, data",
                                  100,
                                  "fine_labels",
                                  "CIFAR-100 fine label",
                                  "coarse_labels"};
  return format;
}

enum class Release { kBinary, kPython };

/// Where a split's files are and in which release.
struct CifarFiles {
  fs::path dir;
  Release release;
};

const std::vector<std::string>& file_names(const CifarFormat& format, Release release, bool train) {
  if (release == Release::kBinary) return train ? format.train_files : format.test_files;
  return train ? format.python_train_files : format.python_test_files;
}

bool holds_any(const fs::path& dir, const CifarFormat& format, Release release) {
  std::error_code ec;
  for (bool train : {true, false}) {
    for (const auto& name : file_names(format, release, train)) {
      if (fs::is_regular_file(dir / name, ec)) {
        return true;
      }
    }
  }
  return false;
}

// Users point `dir` at whatever they unpacked: the folder with the files or its parent. The
// binary release wins over the python one in the same place, the folder itself over its child.
CifarFiles find_files(const std::string& dir, const CifarFormat& format) {
  const std::string expected = "the binary release's " + std::string(format.expected_files) +
                               ", here or in " + format.subdir + "/, or the python release's " +
                               format.python_expected_files + ", here or in " +
                               format.python_subdir + "/";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw DataError(dir + ": no such directory (expected the " + std::string(format.title) +
                    " files: " + expected + ")");
  }
  const fs::path root(dir);
  for (const CifarFiles& candidate :
       {CifarFiles{root, Release::kBinary}, CifarFiles{root, Release::kPython},
        CifarFiles{root / format.subdir, Release::kBinary},
        CifarFiles{root / format.python_subdir, Release::kPython}}) {
    if (holds_any(candidate.dir, format, candidate.release)) {
      return candidate;
    }
  }
  throw DataError(dir + ": no " + std::string(format.title) + " files found (expected " + expected +
                  ")");
}

/// One file's images and labels (CIFAR-100's fine ones in `labels`).
struct CifarBatch {
  torch::Tensor images;  // uint8 [N, 3, 32, 32]
  torch::Tensor labels;  // int64 [N]
  torch::Tensor coarse;  // int64 [N], CIFAR-100 only
};

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& path,
                  const std::string& what) {
  // The binary release's bytes cannot be negative; a pickled list of ints can.
  const torch::Tensor bad = ((labels < 0) | (labels >= num_classes)).nonzero();
  if (bad.size(0) > 0) {
    const int64_t record = bad[0][0].item<int64_t>();
    throw DataError(path + ": record " + std::to_string(record) + " has " + what + " " +
                    std::to_string(labels[record].item<int64_t>()) + ", expected 0.." +
                    std::to_string(num_classes - 1));
  }
}

// ---- the binary release ----

// The whole file as uint8 [records, record_size]; every way it can be malformed is a DataError.
torch::Tensor read_records(const std::string& path, const CifarFormat& format) {
  const int64_t record_size = format.label_bytes + kPixels;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw DataError(path + ": missing (the " + std::string(format.title) + " binary release has " +
                    format.expected_files + ")");
  }
  const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) {
    throw DataError(path + ": cannot read its size: " + ec.message());
  }
  if (bytes == 0) {
    throw DataError(path + ": file is empty (expected " + std::string(format.title) +
                    " records of " + std::to_string(record_size) + " bytes)");
  }
  if (bytes % record_size != 0) {
    throw DataError(path + ": size " + std::to_string(bytes) + " is not a multiple of the " +
                    format.title + " record size " + std::to_string(record_size) + " (" +
                    format.record_layout + ")");
  }
  torch::Tensor records = torch::empty({bytes / record_size, record_size}, torch::kUInt8);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(records.data_ptr<uint8_t>()), bytes);
  if (!in || in.gcount() != bytes) {
    throw DataError(path + ": read only " + std::to_string(in.gcount()) + " of " +
                    std::to_string(bytes) + " bytes");
  }
  return records;
}

torch::Tensor pixels_of(const torch::Tensor& records, int64_t label_bytes) {
  // The record stores the image plane by plane (CHW), which is already our layout.
  return records.narrow(1, label_bytes, kPixels)
      .reshape({records.size(0), kChannels, kSide, kSide})
      .contiguous();
}

CifarBatch read_binary_batch(const std::string& path, const CifarFormat& format) {
  const torch::Tensor records = read_records(path, format);
  CifarBatch batch;
  batch.images = pixels_of(records, format.label_bytes);
  if (format.coarse_key != nullptr) {
    // Both are checked whichever is used: a bad byte in either means a malformed file.
    batch.coarse = records.select(1, 0).to(torch::kLong);
    check_labels(batch.coarse, kCoarseClasses, path, "CIFAR-100 coarse label");
  }
  batch.labels = records.select(1, format.label_bytes - 1).to(torch::kLong);
  check_labels(batch.labels, format.num_classes, path, format.label_what);
  return batch;
}

// ---- the python release ----

// Read once into memory: a batch is one ~31 MB pickle, and the unpickler wants all of it.
std::string read_whole_file(const std::string& path, const CifarFormat& format) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw DataError(path + ": missing (the " + std::string(format.title) + " python release has " +
                    format.python_expected_files + ")");
  }
  std::string bytes;
  try {
    bytes = io::read_file_bytes(path);
  } catch (const Error& e) {
    throw DataError(e.what());  // "cannot read <path>: <reason>", a data error here
  }
  if (bytes.empty()) {
    throw DataError(path + ": file is empty (expected a pickled " + std::string(format.title) +
                    " batch)");
  }
  return bytes;
}

const io::PickleValue& batch_entry(const io::PickleValue& batch, const std::string& key,
                                   const std::string& path, const CifarFormat& format) {
  // Python 2 wrote the keys as str; a batch re-pickled by Python 3 has them as bytes.
  const io::PickleValue* value = batch.find_str_or_bytes(key);
  if (value == nullptr) {
    throw DataError(path + ": no '" + key + "' in the pickled dict (a " + format.title +
                    " python batch holds " + format.python_keys + ")");
  }
  return *value;
}

torch::Tensor python_images(const io::PickleValue& batch, const std::string& path,
                            const CifarFormat& format) {
  const io::PickleValue& data = batch_entry(batch, "data", path, format);
  if (data.kind != io::PickleValue::Kind::kTensor) {
    throw DataError(path + ": 'data' is a " + data.kind_name() +
                    ", expected a numpy uint8 array of shape [N, 3072]");
  }
  const torch::Tensor& pixels = data.tensor;
  if (pixels.scalar_type() != torch::kUInt8 || pixels.dim() != 2 || pixels.size(1) != kPixels) {
    throw DataError(path + ": 'data' is a numpy array of " +
                    c10::str(pixels.scalar_type(), " and shape ", pixels.sizes()) +
                    ", expected uint8 (Byte) and shape [N, 3072] (3x32x32 pixels per row)");
  }
  // Each row is the R, G and B planes in turn (CHW), as in the binary release: a view.
  return pixels.reshape({pixels.size(0), kChannels, kSide, kSide});
}

torch::Tensor python_labels(const io::PickleValue& batch, const std::string& key, int64_t count,
                            int64_t num_classes, const std::string& what, const std::string& path,
                            const CifarFormat& format) {
  const io::PickleValue& value = batch_entry(batch, key, path, format);
  torch::Tensor labels;
  if (value.kind == io::PickleValue::Kind::kList) {
    labels = torch::empty({static_cast<int64_t>(value.items.size())}, torch::kLong);
    auto* out = labels.data_ptr<int64_t>();
    for (size_t i = 0; i < value.items.size(); ++i) {
      if (value.items[i].kind != io::PickleValue::Kind::kInt) {
        throw DataError(path + ": '" + key + "' item " + std::to_string(i) + " is a " +
                        value.items[i].kind_name() + ", expected an int");
      }
      out[i] = value.items[i].integer;
    }
  } else if (value.kind == io::PickleValue::Kind::kTensor && value.tensor.dim() == 1 &&
             !value.tensor.is_floating_point() && value.tensor.scalar_type() != torch::kBool) {
    labels = value.tensor.to(torch::kLong);  // a batch re-saved with a numpy array of labels
  } else {
    throw DataError(path + ": '" + key + "' is a " + value.kind_name() +
                    ", expected a list of ints");
  }
  if (labels.size(0) != count) {
    throw DataError(path + ": '" + key + "' has " + std::to_string(labels.size(0)) +
                    " labels for the " + std::to_string(count) + " images of 'data'");
  }
  check_labels(labels, num_classes, path, what);
  return labels;
}

CifarBatch read_python_batch(const std::string& path, const CifarFormat& format) {
  io::UnpickleOptions options;
  options.numpy_arrays = true;
  options.data_file = true;  // its errors are DataErrors naming `path`
  const io::PickleValue batch =
      io::unpickle(read_whole_file(path, format), path, nullptr, nullptr, options);
  if (batch.kind != io::PickleValue::Kind::kDict) {
    throw DataError(path + ": holds a pickled " + std::string(batch.kind_name()) +
                    ", expected the dict of a " + format.title + " python batch");
  }
  CifarBatch out;
  out.images = python_images(batch, path, format);
  const int64_t count = out.images.size(0);
  if (format.coarse_key != nullptr) {
    out.coarse = python_labels(batch, format.coarse_key, count, kCoarseClasses,
                               "CIFAR-100 coarse label", path, format);
  }
  out.labels = python_labels(batch, format.label_key, count, format.num_classes, format.label_what,
                             path, format);
  return out;
}

// ---- both ----

std::vector<CifarBatch> read_cifar_split(const std::string& dir, const CifarFormat& format,
                                         bool train) {
  const CifarFiles files = find_files(dir, format);
  std::vector<CifarBatch> batches;
  for (const auto& name : file_names(format, files.release, train)) {
    const std::string path = (files.dir / name).string();
    batches.push_back(files.release == Release::kBinary ? read_binary_batch(path, format)
                                                        : read_python_batch(path, format));
  }
  return batches;
}

torch::Tensor concat(const std::vector<CifarBatch>& batches, torch::Tensor CifarBatch::*part) {
  if (batches.size() == 1) return batches[0].*part;
  std::vector<torch::Tensor> parts;
  for (const CifarBatch& batch : batches)
    parts.push_back(batch.*part);
  return torch::cat(parts, 0);
}

}  // namespace

Dataset read_cifar10(const std::string& dir, bool train) {
  const CifarFormat& format = cifar10_format();
  const std::vector<CifarBatch> batches = read_cifar_split(dir, format, train);
  Dataset data;
  data.images = concat(batches, &CifarBatch::images);
  data.labels = concat(batches, &CifarBatch::labels);
  data.num_classes = format.num_classes;
  data.name = format.name;
  return data;
}

Dataset read_cifar100(const std::string& dir, bool train, bool coarse_labels) {
  const CifarFormat& format = cifar100_format();
  const std::vector<CifarBatch> batches = read_cifar_split(dir, format, train);
  Dataset data;
  data.images = concat(batches, &CifarBatch::images);
  data.labels = concat(batches, coarse_labels ? &CifarBatch::coarse : &CifarBatch::labels);
  data.num_classes = coarse_labels ? kCoarseClasses : format.num_classes;
  data.name = format.name;
  return data;
}

}  // namespace advft::data
