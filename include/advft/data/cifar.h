#pragma once
// Readers for CIFAR-10 and CIFAR-100 in both official releases: the binary one
// (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz) and the python one (cifar-10-python.tar.gz,
// cifar-100-python.tar.gz: what torchvision's download=True fetches). Both give the same tensors.
#include <string>

#include "advft/data/dataset.h"

namespace advft::data {

/// CIFAR-10: data_batch_1.bin..data_batch_5.bin (train) or test_batch.bin (test), each a
/// sequence of records of 1 label byte + 3072 pixel bytes (CHW); or the python release's
/// data_batch_1..data_batch_5 and test_batch, each a pickled dict of 'data' (a numpy uint8 array
/// [N, 3072], CHW rows) and 'labels'. `dir` is the folder holding the files or its parent holding
/// `cifar-10-batches-bin` or `cifar-10-batches-py`; the folder itself is looked at first, and the
/// binary release before the python one. Throws DataError naming the bad file.
Dataset read_cifar10(const std::string& dir, bool train);

/// CIFAR-100: train.bin or test.bin, records of coarse label byte, fine label byte and 3072
/// pixel bytes; or the python release's train and test ('data', 'fine_labels',
/// 'coarse_labels'). Fine labels (100 classes) by default, coarse ones (20 classes) on request.
/// `dir` is the folder holding the files or its parent holding `cifar-100-binary` or
/// `cifar-100-python`, looked for as for CIFAR-10.
Dataset read_cifar100(const std::string& dir, bool train, bool coarse_labels = false);

}  // namespace advft::data
