#include "advft/data/image_folder.h"

#include <ATen/Parallel.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <system_error>
#include <utility>

#include "advft/data/image_file.h"
#include "advft/error.h"
#include "advft/io/directory.h"

namespace advft::data {
namespace {

std::string lower_extension(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return "";
  std::string ext = name.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

/// The images torchvision's ImageFolder takes that we read: JPEG and PNG (decoded by content).
bool is_image_name(const std::string& name) {
  const std::string ext = lower_extension(name);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

/// torchvision's other IMG_EXTENSIONS: images it would read and we cannot.
bool is_other_image_name(const std::string& name) {
  static const char* const kOthers[] = {".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
  const std::string ext = lower_extension(name);
  return std::find(std::begin(kOthers), std::end(kOthers), ext) != std::end(kOthers);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);  // follows links, as os.walk
}

std::vector<std::string> list_or_throw(const std::string& dir) {
  std::error_code error;
  std::vector<std::string> names = io::directory_names(dir, error);
  if (error) throw DataError(dir + ": cannot list: " + error.message());
  return names;
}

/// Every folder under `dir` (itself included) with its files' names, as os.walk finds them.
/// Depth-limited, so a link cycle ends in an error instead of a hang.
void walk(const std::string& dir, int depth,
          std::vector<std::pair<std::string, std::vector<std::string>>>& folders) {
  if (depth > 32) throw DataError(dir + ": folders nested over 32 deep (a link cycle?)");
  folders.emplace_back(dir, std::vector<std::string>());
  const size_t mine = folders.size() - 1;
  for (const std::string& name : list_or_throw(dir)) {
    // Image names are taken for files without asking the disk: ImageNet's 1.28 million stat
    // calls would cost seconds, on a network file system minutes.
    if (!is_image_name(name) && !is_other_image_name(name) && is_directory(dir + "/" + name)) {
      walk(dir + "/" + name, depth + 1, folders);
    } else {
      folders[mine].second.push_back(name);
    }
  }
}

/// Appends the images under `dir` in torchvision's order: folders sorted by path (its
/// sorted(os.walk(...)); "a/b-c" comes before "a/b/c"), and each folder's files by name.
void collect_images(const std::string& dir, std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, std::vector<std::string>>> folders;
  walk(dir, 0, folders);
  std::sort(folders.begin(), folders.end());
  for (const auto& [folder, names] : folders) {
    for (const std::string& name : names) {  // directory_names sorted them
      const std::string path = folder + "/" + name;
      if (is_image_name(name)) {
        paths.push_back(path);
      } else if (is_other_image_name(name)) {
        throw DataError(path +
                        ": only JPEG and PNG images are read from image folders; convert it "
                        "(e.g. `convert " +
                        name + " " + name.substr(0, name.rfind('.')) + ".png`) or move it out");
      }
    }
  }
}

}  // namespace

bool has_split(const std::string& dir, const std::string& split) {
  return is_directory(dir + "/" + split);
}

std::vector<std::string> image_folder_classes(const std::string& split_dir) {
  if (!is_directory(split_dir)) {
    throw DataError(split_dir +
                    ": no such folder; an image folder holds one folder per class "
                    "with its JPEG or PNG images (torchvision's ImageFolder layout)");
  }
  std::vector<std::string> classes;
  int64_t loose_images = 0;
  for (const std::string& name : list_or_throw(split_dir)) {
    if (is_directory(split_dir + "/" + name)) {
      classes.push_back(name);
    } else if (is_image_name(name)) {
      ++loose_images;
    }
  }
  if (classes.empty()) {
    // ImageNet's validation images come in one flat folder, labelled by a separate file.
    const std::string flat =
        loose_images == 0
            ? ""
            : "; its " + std::to_string(loose_images) +
                  " images lie loose, as ImageNet's validation set comes: sort them into their "
                  "class folders first (torchvision.datasets.ImageNet does it from the devkit, "
                  "the usual valprep.sh from its list of moves)";
    throw DataError(split_dir +
                    ": holds no class folders; an image folder holds one folder per "
                    "class with its JPEG or PNG images (torchvision's ImageFolder layout)" +
                    flat);
  }
  return classes;
}

Dataset read_image_folder(const std::string& split_dir, const std::vector<std::string>& classes,
                          const ImageTransform& transform, const std::string& name) {
  const std::vector<std::string> found = image_folder_classes(split_dir);
  if (found != classes) {
    std::string odd;
    for (const auto& c : found) {
      if (!std::binary_search(classes.begin(), classes.end(), c))
        odd = "\"" + c + "\" is here only";
    }
    for (const auto& c : classes) {
      if (odd.empty() && !std::binary_search(found.begin(), found.end(), c))
        odd = "\"" + c + "\" is missing here";
    }
    throw DataError(split_dir + ": its " + std::to_string(found.size()) +
                    " class folders differ from the training set's " +
                    std::to_string(classes.size()) + " (" + odd +
                    "); both splits need the same class folders so that labels agree");
  }
  auto files = std::make_shared<ImageFiles>();
  files->transform = transform;
  std::vector<int64_t> labels;
  for (size_t label = 0; label < classes.size(); ++label) {
    const std::string class_dir = split_dir + "/" + classes[label];
    const size_t before = files->paths.size();
    collect_images(class_dir, files->paths);
    if (files->paths.size() == before) {
      throw DataError(class_dir +
                      ": class folder without images (.jpg, .jpeg, .png); every class "
                      "needs at least one");
    }
    labels.resize(files->paths.size(), static_cast<int64_t>(label));
  }
  Dataset data;
  data.labels = torch::tensor(labels, torch::kLong);
  data.num_classes = static_cast<int64_t>(classes.size());
  data.name = name;
  data.files = std::move(files);
  return data;
}

void decode_examples(const ImageFiles& files, const std::vector<int64_t>& indices, uint64_t seed,
                     torch::Tensor images) {
  const auto count = static_cast<int64_t>(indices.size());
  TORCH_CHECK(images.dim() == 4 && images.size(0) >= count,
              "decode_examples: images must be [K, 3, S, S] with K >= ", count);
  // One image per task: decoding one (milliseconds) dwarfs the scheduling.
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t index = indices[static_cast<size_t>(k)];
      const std::string& path = files.paths.at(static_cast<size_t>(index));
      transform_image(read_image(path), files.transform,
                      mix_seed(seed + static_cast<uint64_t>(index)), images[k]);
    }
  });
}

}  // namespace advft::data
