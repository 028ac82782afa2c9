#include "advft/data/cifar.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "advft/error.h"

namespace advft::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 3;
constexpr int64_t kSide = 32;
constexpr int64_t kPixels = kChannels * kSide * kSide;  // 3072

/// What one of the two formats looks like on disk; drives reading and the error messages.
struct CifarFormat {
  const char* title;           // "CIFAR-10"
  const char* subdir;          // what the official tarball unpacks to
  const char* record_layout;   // for size errors
  const char* expected_files;  // for "no files found" errors
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
  int64_t label_bytes;
};

const CifarFormat& cifar10_format() {
  static const CifarFormat format{"CIFAR-10",
                                  "cifar-10-batches-bin",
                                  "1 label byte + 3072 pixels",
                                  "data_batch_1.bin..data_batch_5.bin and test_batch.bin",
                                  {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"},
                                  {"test_batch.bin"},
                                  1};
  return format;
}

const CifarFormat& cifar100_format() {
  static const CifarFormat format{"CIFAR-100",
                                  "cifar-100-binary",
                                  "coarse label byte + fine label byte + 3072 pixels",
                                  "train.bin and test.bin",
                                  {"train.bin"},
                                  {"test.bin"},
                                  2};
  return format;
}

bool holds_any(const fs::path& dir, const CifarFormat& format) {
  std::error_code ec;
  for (const auto* files : {&format.train_files, &format.test_files}) {
    for (const auto& name : *files) {
      if (fs::exists(dir / name, ec)) {
        return true;
      }
    }
  }
  return false;
}

// Users point `dir` at whatever they unpacked: the folder with the .bin files or its parent.
fs::path resolve_dir(const std::string& dir, const CifarFormat& format) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw DataError(dir + ": no such directory (expected the " + std::string(format.title) +
                    " binary files " + format.expected_files + ")");
  }
  if (holds_any(dir, format)) {
    return fs::path(dir);
  }
  const fs::path nested = fs::path(dir) / format.subdir;
  if (holds_any(nested, format)) {
    return nested;
  }
  throw DataError(dir + ": no " + std::string(format.title) + " files found (expected " +
                  format.expected_files + ", here or in " + format.subdir + "/)");
}

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

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& path,
                  const std::string& what) {
  const torch::Tensor bad = (labels >= num_classes).nonzero();
  if (bad.size(0) > 0) {
    const int64_t record = bad[0][0].item<int64_t>();
    throw DataError(path + ": record " + std::to_string(record) + " has " + what + " " +
                    std::to_string(labels[record].item<int64_t>()) + ", expected 0.." +
                    std::to_string(num_classes - 1));
  }
}

torch::Tensor pixels_of(const torch::Tensor& records, int64_t label_bytes) {
  // The record stores the image plane by plane (CHW), which is already our layout.
  return records.narrow(1, label_bytes, kPixels)
      .reshape({records.size(0), kChannels, kSide, kSide})
      .contiguous();
}

}  // namespace

Dataset read_cifar10(const std::string& dir, bool train) {
  const CifarFormat& format = cifar10_format();
  const fs::path root = resolve_dir(dir, format);
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  for (const auto& name : train ? format.train_files : format.test_files) {
    const std::string path = (root / name).string();
    const torch::Tensor records = read_records(path, format);
    torch::Tensor label = records.select(1, 0).to(torch::kLong);
    check_labels(label, 10, path, "CIFAR-10 label");
    labels.push_back(std::move(label));
    images.push_back(pixels_of(records, format.label_bytes));
  }
  Dataset data;
  data.images = images.size() == 1 ? images[0] : torch::cat(images, 0);
  data.labels = labels.size() == 1 ? labels[0] : torch::cat(labels, 0);
  data.num_classes = 10;
  data.name = "cifar10";
  return data;
}

Dataset read_cifar100(const std::string& dir, bool train, bool coarse_labels) {
  const CifarFormat& format = cifar100_format();
  const fs::path root = resolve_dir(dir, format);
  const std::string path = (root / (train ? format.train_files : format.test_files)[0]).string();
  const torch::Tensor records = read_records(path, format);
  torch::Tensor coarse = records.select(1, 0).to(torch::kLong);
  torch::Tensor fine = records.select(1, 1).to(torch::kLong);
  // Both are checked whichever is used: a bad byte in either means a malformed file.
  check_labels(coarse, 20, path, "CIFAR-100 coarse label");
  check_labels(fine, 100, path, "CIFAR-100 fine label");
  Dataset data;
  data.images = pixels_of(records, format.label_bytes);
  data.labels = coarse_labels ? coarse : fine;
  data.num_classes = coarse_labels ? 20 : 100;
  data.name = "cifar100";
  return data;
}

}  // namespace advft::data
