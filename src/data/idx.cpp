#include "advft/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "advft/error.h"

namespace advft::data {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dims
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dim
// Reading in bounded chunks means a corrupt header announcing billions of images fails on the
// missing bytes instead of on a huge allocation.
constexpr size_t kChunkBytes = size_t{1} << 24;
// Far above any real IDX file (MNIST train images: 47 MB); guards the dims product.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 36;

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

std::string hex32(uint32_t value) {
  std::array<char, 11> text{};
  std::snprintf(text.data(), text.size(), "0x%08x", value);
  return text.data();
}

/// Reads up to `size` bytes; returns how many were read (short only at end of data).
size_t gz_read(gzFile_s* file, uint8_t* out, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    const auto want = static_cast<unsigned>(std::min(size - done, kChunkBytes));
    const int got = gzread(file, out + done, want);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw DataError(path + ": cannot decompress: " + (message ? message : "zlib error"));
    }
    if (got == 0) {
      break;
    }
    done += static_cast<size_t>(got);
  }
  return done;
}

/// An IDX file's dims and payload, after checking magic, dims and size against `magic`.
struct IdxContents {
  std::vector<int64_t> dims;
  std::vector<uint8_t> payload;
};

IdxContents read_idx(const std::string& path, uint32_t magic, const char* what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw DataError(path + ": missing (expected an IDX file of " + what + ")");
  }
  // gzopen reads plain files transparently, so one code path serves .gz and uncompressed files.
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) {
    throw DataError(path + ": cannot open");
  }
  const auto ndims = static_cast<size_t>(magic & 0xFFu);
  std::vector<uint8_t> header(4 * (1 + ndims));
  const size_t header_read = gz_read(file.get(), header.data(), header.size(), path);
  auto be32 = [&](size_t at) {
    return (uint32_t{header[at]} << 24) | (uint32_t{header[at + 1]} << 16) |
           (uint32_t{header[at + 2]} << 8) | uint32_t{header[at + 3]};
  };
  if (header_read < 4) {
    throw DataError(path + ": truncated: " + std::to_string(header_read) +
                    " bytes, too short for an IDX header (expected " + what + ")");
  }
  const uint32_t found = be32(0);
  if (found != magic) {
    throw DataError(path + ": bad magic number " + hex32(found) + ", expected " + hex32(magic) +
                    " (IDX " + what + ")");
  }
  if (header_read < header.size()) {
    throw DataError(path + ": truncated IDX header: " + std::to_string(header_read) + " of " +
                    std::to_string(header.size()) + " bytes");
  }
  IdxContents contents;
  uint64_t payload_bytes = 1;
  for (size_t d = 0; d < ndims; ++d) {
    const uint32_t dim = be32(4 * (1 + d));
    if (dim == 0) {
      throw DataError(path + ": IDX dimension " + std::to_string(d) + " is 0");
    }
    payload_bytes *= dim;
    if (payload_bytes > kMaxPayloadBytes) {
      throw DataError(path + ": IDX dimensions announce more than " +
                      std::to_string(kMaxPayloadBytes) + " bytes; the header is corrupt");
    }
    contents.dims.push_back(static_cast<int64_t>(dim));
  }
  size_t done = 0;
  while (done < payload_bytes) {
    const size_t want = std::min(static_cast<size_t>(payload_bytes) - done, kChunkBytes);
    contents.payload.resize(done + want);
    const size_t got = gz_read(file.get(), contents.payload.data() + done, want, path);
    done += got;
    if (got < want) {
      throw DataError(path + ": truncated: " + std::to_string(done) + " of " +
                      std::to_string(payload_bytes) + " data bytes after the header");
    }
  }
  uint8_t extra = 0;
  if (gz_read(file.get(), &extra, 1, path) != 0) {
    throw DataError(path + ": has data after the " + std::to_string(payload_bytes) +
                    " bytes its header announces");
  }
  return contents;
}

torch::Tensor to_tensor(std::vector<uint8_t>& payload, const std::vector<int64_t>& shape) {
  return torch::from_blob(payload.data(), shape, torch::kUInt8).clone();
}

/// The first existing of `stem` and `stem`.gz in `dir`, or "" if neither is there.
/// `stem` ("train-images-idx3-ubyte") or its .gz in `dir`, also under the name with a dot before
/// "idx" ("train-images.idx3-ubyte") that some copies of the files carry; "" when none is there.
std::string find_file(const fs::path& dir, const std::string& stem) {
  std::string dotted = stem;
  dotted[dotted.find("-idx")] = '.';
  std::error_code ec;
  for (const std::string& name : {stem, stem + ".gz", dotted, dotted + ".gz"}) {
    if (fs::is_regular_file(dir / name, ec)) {
      return (dir / name).string();
    }
  }
  return "";
}

/// Where the IDX files are: `dir` itself, or the `<Class>/raw` folder under it where
/// torchvision.datasets.MNIST / FashionMNIST(root=dir, download=True) puts them.
fs::path idx_folder(const std::string& dir, const std::string& dataset,
                    const std::string& images_stem) {
  const fs::path torchvision_raw =
      fs::path(dir) / (dataset == "fashion_mnist" ? "FashionMNIST" : "MNIST") / "raw";
  std::error_code ec;
  if (find_file(dir, images_stem).empty() && fs::is_directory(torchvision_raw, ec)) {
    return torchvision_raw;
  }
  return dir;
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  IdxContents idx = read_idx(path, kImagesMagic, "uint8 images [N, H, W]");
  return to_tensor(idx.payload, {idx.dims[0], 1, idx.dims[1], idx.dims[2]});
}

torch::Tensor read_idx_labels(const std::string& path) {
  IdxContents idx = read_idx(path, kLabelsMagic, "uint8 labels [N]");
  return to_tensor(idx.payload, {idx.dims[0]}).to(torch::kLong);
}

Dataset read_mnist_like(const std::string& dir, bool train, const std::string& name) {
  std::error_code ec;
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_stem = prefix + "-images-idx3-ubyte";
  const std::string labels_stem = prefix + "-labels-idx1-ubyte";
  if (!fs::is_directory(dir, ec)) {
    throw DataError(dir + ": no such directory (expected the " + name + " IDX files " +
                    images_stem + "[.gz] and " + labels_stem + "[.gz])");
  }
  const fs::path folder = idx_folder(dir, name, images_stem);
  const std::string images_path = find_file(folder, images_stem);
  const std::string labels_path = find_file(folder, labels_stem);
  auto require = [&](const std::string& found, const std::string& stem) {
    if (found.empty()) {
      throw DataError(folder.string() + ": no " + stem + " or " + stem + ".gz found (the " + name +
                      " " + (train ? "training" : "test") +
                      " set; data.dir may also be torchvision's root, holding " +
                      (name == "fashion_mnist" ? "FashionMNIST" : "MNIST") + "/raw)");
    }
  };
  require(images_path, images_stem);
  require(labels_path, labels_stem);
  Dataset data;
  data.images = read_idx_images(images_path);
  data.labels = read_idx_labels(labels_path);
  data.num_classes = 10;
  data.name = name;
  if (data.images.size(0) != data.labels.size(0)) {
    throw DataError(labels_path + ": has " + std::to_string(data.labels.size(0)) + " labels but " +
                    images_path + " has " + std::to_string(data.images.size(0)) + " images");
  }
  const torch::Tensor bad = (data.labels >= data.num_classes).nonzero();
  if (bad.size(0) > 0) {
    const int64_t at = bad[0][0].item<int64_t>();
    throw DataError(labels_path + ": label " + std::to_string(at) + " is " +
                    std::to_string(data.labels[at].item<int64_t>()) + ", expected 0..9");
  }
  return data;
}

}  // namespace advft::data
