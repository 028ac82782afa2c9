#pragma once
// Data sets laid out as torchvision's ImageFolder reads them, ImageNet's usual layout:
// <split>/<class>/<image>.JPEG (or .png), classes numbered in the sorted order of their folder
// names.
#include <cstdint>
#include <string>
#include <vector>

#include "advft/data/dataset.h"
#include "advft/data/image_transform.h"

namespace advft::data {

/// Whether `dir` holds a folder `split` (train, val, test): which layout a folder has.
bool has_split(const std::string& dir, const std::string& split);

/// The class folders of `split_dir`, sorted by name (their labels are their positions).
/// Throws DataError when `split_dir` is missing or holds no folders.
std::vector<std::string> image_folder_classes(const std::string& split_dir);

/// One split: every JPEG and PNG under each class folder (subfolders included, sorted by path as
/// torchvision sorts them) with the class's label. `classes` are the ones the labels count
/// (another split's list, so that both number alike); they must equal this split's folders.
/// Files that are not images are passed over, as torchvision does; images in other formats
/// (BMP, TIFF, ...) and classes without images are a DataError naming the file or folder.
Dataset read_image_folder(const std::string& split_dir, const std::vector<std::string>& classes,
                          const ImageTransform& transform, const std::string& name);

/// Decodes example `indices[k]` of `files` into images[k] (uint8 [K, 3, S, S]) through its
/// transform, on all cores. Each example's random crop and flip depend only on `seed` and its
/// index, not on the batch it falls in or the thread that decodes it.
void decode_examples(const ImageFiles& files, const std::vector<int64_t>& indices, uint64_t seed,
                     torch::Tensor images);

}  // namespace advft::data
