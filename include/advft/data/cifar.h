#pragma once
// Readers for the official binary releases of CIFAR-10 and CIFAR-100
// (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz).
#include <string>

#include "advft/data/dataset.h"

namespace advft::data {

/// CIFAR-10: data_batch_1.bin..data_batch_5.bin (train) or test_batch.bin (test), each a
/// sequence of records of 1 label byte + 3072 pixel bytes (CHW). `dir` is the folder holding the
/// files or its parent holding `cifar-10-batches-bin`. Throws DataError naming the bad file.
Dataset read_cifar10(const std::string& dir, bool train);

/// CIFAR-100: train.bin or test.bin, records of coarse label byte, fine label byte and 3072
/// pixel bytes. Fine labels (100 classes) by default, coarse ones (20 classes) on request. `dir`
/// is the folder holding the files or its parent holding `cifar-100-binary`.
Dataset read_cifar100(const std::string& dir, bool train, bool coarse_labels = false);

}  // namespace advft::data
