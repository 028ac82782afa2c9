#include "advft/data/source.h"

#include <algorithm>
#include <string>
#include <vector>

#include "advft/data/cifar.h"
#include "advft/data/idx.h"
#include "advft/data/image_folder.h"
#include "advft/error.h"

namespace advft::data {
namespace {

[[noreturn]] void unknown_dataset(const std::string& name) {
  throw ConfigError(
      "data.dataset: unknown data set \"" + name +
      "\" (allowed: cifar10, cifar100, mnist, fashion_mnist, imagenet, image_folder)");
}

bool is_image_folder(const std::string& dataset) {
  return dataset == "imagenet" || dataset == "image_folder";
}

std::string train_folder(const config::DataConfig& cfg) {
  return cfg.dir + "/train";
}

/// ImageNet's official validation set is everyone's test set: val/. A folder of one's own data
/// may call it test/ instead.
std::string test_folder(const config::DataConfig& cfg) {
  if (cfg.dataset == "image_folder" && !has_split(cfg.dir, "val") && has_split(cfg.dir, "test"))
    return cfg.dir + "/test";
  return cfg.dir + "/val";
}

ImageTransform image_transform(const config::DataConfig& cfg, bool random) {
  ImageTransform t;
  t.image_size = cfg.image_size;
  t.resize_size = cfg.resize_size;
  t.min_crop_scale = cfg.min_crop_scale;
  t.horizontal_flip = cfg.horizontal_flip;
  t.random = random;
  return t;
}

/// The same files through another pipeline: the validation images, held out of a training set
/// read with the training pipeline, are seen as evaluation sees them (a copy of their paths
/// only, not of the training set's).
void use_transform(Dataset& data, const ImageTransform& transform) {
  auto files = std::make_shared<ImageFiles>(*data.files);
  files->transform = transform;
  data.files = std::move(files);
}

/// Both splits of an image folder number their labels over the training set's classes, an
/// evaluation too, so that a label means what it meant in training; only a folder without
/// train/ numbers the test split's own folders.
std::vector<std::string> class_list(const config::DataConfig& cfg, bool need_train) {
  return image_folder_classes(need_train || has_split(cfg.dir, "train") ? train_folder(cfg)
                                                                        : test_folder(cfg));
}

Dataset read_split(const config::DataConfig& cfg, bool train) {
  if (cfg.dataset == "cifar10") {
    return read_cifar10(cfg.dir, train);
  }
  if (cfg.dataset == "cifar100") {
    return read_cifar100(cfg.dir, train, cfg.coarse_labels);
  }
  if (cfg.dataset == "mnist" || cfg.dataset == "fashion_mnist") {
    return read_mnist_like(cfg.dir, train, cfg.dataset);
  }
  unknown_dataset(cfg.dataset);
}

torch::Tensor to_index_tensor(const std::vector<int64_t>& indices) {
  return torch::tensor(indices, torch::kLong);
}

}  // namespace

DataSplits load_splits(const config::DataConfig& cfg, bool need_train) {
  if (cfg.val_size < 0) {
    throw ConfigError("data.val_size: must be >= 0, got " + std::to_string(cfg.val_size));
  }
  if (cfg.train_limit < 0) {
    throw ConfigError("data.train_limit: must be >= 0, got " + std::to_string(cfg.train_limit));
  }
  DataSplits splits;
  // Validate the name before touching the disk, so a typo is reported as a typo.
  if (!is_image_folder(cfg.dataset)) dataset_num_classes(cfg);
  std::vector<std::string> classes;
  if (is_image_folder(cfg.dataset)) {
    classes = class_list(cfg, need_train);
    splits.test =
        read_image_folder(test_folder(cfg), classes, image_transform(cfg, false), cfg.dataset);
  } else {
    splits.test = read_split(cfg, /*train=*/false);
  }
  if (!need_train) {
    splits.train = head(splits.test, 0);
    splits.val = head(splits.test, 0);
    return splits;
  }
  const Dataset full = is_image_folder(cfg.dataset)
                           ? read_image_folder(train_folder(cfg), classes,
                                               image_transform(cfg, /*random=*/true), cfg.dataset)
                           : read_split(cfg, /*train=*/true);
  const int64_t n = full.size();
  if (cfg.val_size >= n) {
    throw DataError(cfg.dir + ": data.val_size = " + std::to_string(cfg.val_size) +
                    " leaves no training images: the " + cfg.dataset + " training set has only " +
                    std::to_string(n) + " images");
  }
  const std::vector<int64_t> perm = seeded_permutation(n, cfg.split_seed);
  std::vector<int64_t> val(perm.begin(), perm.begin() + cfg.val_size);
  std::vector<int64_t> train(perm.begin() + cfg.val_size, perm.end());
  // File order within each split: the split depends on the seed, the order does not.
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  if (cfg.train_limit > 0 && cfg.train_limit < static_cast<int64_t>(train.size())) {
    if (is_image_folder(cfg.dataset)) {
      // Files are sorted by class: the first N would be the first few classes.
      std::vector<int64_t> kept;
      for (const int64_t position :
           spread_positions(static_cast<int64_t>(train.size()), cfg.train_limit))
        kept.push_back(train[static_cast<size_t>(position)]);
      train = std::move(kept);
    } else {
      train.resize(static_cast<size_t>(cfg.train_limit));
    }
  }
  splits.train = subset(full, to_index_tensor(train));
  splits.val = subset(full, to_index_tensor(val));
  if (splits.val.files) use_transform(splits.val, image_transform(cfg, /*random=*/false));
  return splits;
}

int64_t dataset_num_classes(const config::DataConfig& cfg) {
  if (cfg.dataset == "cifar10" || cfg.dataset == "mnist" || cfg.dataset == "fashion_mnist") {
    return 10;
  }
  if (cfg.dataset == "cifar100") {
    return cfg.coarse_labels ? 20 : 100;
  }
  if (is_image_folder(cfg.dataset)) {
    return static_cast<int64_t>(class_list(cfg, /*need_train=*/true).size());
  }
  unknown_dataset(cfg.dataset);
}

}  // namespace advft::data
