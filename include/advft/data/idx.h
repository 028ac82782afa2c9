#pragma once
// Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
#include <string>

#include "advft/data/dataset.h"

namespace advft::data {

/// Images of an IDX file with magic 0x00000803 (uint8, 3 big-endian dims N, H, W), plain or
/// .gz, as uint8 [N, 1, H, W]. Throws DataError on a bad magic, bad dims or truncation.
torch::Tensor read_idx_images(const std::string& path);

/// Labels of an IDX file with magic 0x00000801 (uint8, 1 big-endian dim N) as int64 [N].
torch::Tensor read_idx_labels(const std::string& path);

/// The training or test split of an MNIST-like data set (10 classes) in `dir`, or in
/// `dir`/FashionMNIST/raw (MNIST/raw), where torchvision's download puts it:
/// {train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte (or "-images.idx3-ubyte"),
/// each with or without .gz. `name` ("mnist", "fashion_mnist") becomes Dataset::name.
Dataset read_mnist_like(const std::string& dir, bool train, const std::string& name);

}  // namespace advft::data
