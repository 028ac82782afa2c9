#pragma once
// From a DataConfig to the train / validation / test splits of a run.
#include <cstdint>

#include "advft/config/config.h"
#include "advft/data/dataset.h"

namespace advft::data {

/// The three splits of one run, all on the CPU.
struct DataSplits {
  Dataset train;  ///< the training set minus the validation hold-out, in file order
  Dataset val;    ///< cfg.val_size images held out of the training set, in file order
  Dataset test;   ///< the official test set
};

/// Reads cfg.dataset from cfg.dir (an image folder: the file list of cfg.dir/train and
/// cfg.dir/val, the training split with the random crops) and splits off the validation set: a
/// hold-out of cfg.val_size training images chosen by cfg.split_seed (identical on every platform),
/// then the first cfg.train_limit (if > 0) of the rest (of an image folder, that many spread
/// evenly over it, so that every class stays). With need_train false only the test set is
/// read and train/val are empty (0 examples, same image shape). Throws ConfigError for an unknown
/// data set and DataError for missing/malformed files or a val_size that leaves nothing to train
/// on.
DataSplits load_splits(const config::DataConfig& cfg, bool need_train = true);

/// Number of classes cfg.dataset has (cifar100: 20 with coarse_labels, else 100; an image
/// folder: its class folders under train/, read from the disk).
int64_t dataset_num_classes(const config::DataConfig& cfg);

}  // namespace advft::data
