#include "advft/data/loader.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include <spdlog/spdlog.h>

#include "advft/data/prefetcher.h"
#include "advft/error.h"
#include "advft/runtime/device.h"

namespace advft::data {

Placement resolve_placement(const std::string& setting, const Dataset& data,
                            const torch::Device& device) {
  if (!data.in_memory()) {
    if (setting == "device") {
      throw ConfigError("data.placement = \"device\": " + data.name +
                        " is decoded from its image files batch by batch and cannot live on the "
                        "device; use auto or host");
    }
    spdlog::info("data: {} images of {} are decoded from their files on {} threads and prefetched",
                 data.size(), data.name, at::get_num_threads());
    return Placement::kHost;
  }
  if (!device.is_cuda()) return setting == "host" ? Placement::kHost : Placement::kDevice;
  const int64_t bytes = data.images.defined() ? data.images.numel() : 0;
  Placement placement = setting == "host" ? Placement::kHost : Placement::kDevice;
  std::string why;
  if (setting == "auto" && bytes >= runtime::device_total_memory(device) / 4) {
    placement = Placement::kHost;
    why = " (over a quarter of the GPU's memory)";
  }
  spdlog::info("data: {} images ({} MB) {}{}", data.size(), bytes >> 20,
               placement == Placement::kDevice ? "live on the GPU"
                                               : "stay in host memory and are prefetched",
               why);
  return placement;
}

std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, int64_t size) {
  // Mixing both through SplitMix64 keeps (seed, epoch) and (seed + 1, epoch - 1) unrelated.
  const uint64_t epoch_seed = mix_seed(seed ^ mix_seed(static_cast<uint64_t>(epoch)));
  return seeded_permutation(size, epoch_seed);
}

std::vector<int64_t> shard_order(const std::vector<int64_t>& order, int64_t batch_size,
                                 Shard shard) {
  TORCH_CHECK(shard.size >= 1 && shard.rank >= 0 && shard.rank < shard.size, "shard_order: rank ",
              shard.rank, " of ", shard.size);
  TORCH_CHECK(batch_size >= shard.size && batch_size % shard.size == 0, "shard_order: a batch of ",
              batch_size, " does not split over ", shard.size, " processes");
  const int64_t part = batch_size / shard.size;
  const int64_t batches = static_cast<int64_t>(order.size()) / batch_size;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(batches * part));
  for (int64_t b = 0; b < batches; ++b) {
    const auto first = order.begin() + b * batch_size + shard.rank * part;
    mine.insert(mine.end(), first, first + part);
  }
  return mine;
}

Dataset shard_of(const Dataset& data, Shard shard) {
  return subset(data, torch::arange(shard.rank, data.size(), shard.size, torch::kLong));
}

namespace {

// The examples a loader's process draws in `epoch`, batch after batch (empty: in file order).
// A free function of values: the prefetcher's thread calls it, and a loader can move.
std::vector<int64_t> examples_of(int64_t epoch, int64_t size, bool shuffle, uint64_t seed,
                                 int64_t batch_size, Shard shard) {
  std::vector<int64_t> order;
  if (shuffle) {
    order = epoch_order(seed, epoch, size);
  } else if (shard.size > 1) {
    order.resize(static_cast<size_t>(size));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  return shard.size > 1 ? shard_order(order, batch_size, shard) : order;
}

}  // namespace

BatchLoader::BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, bool drop_last,
                         uint64_t seed, torch::Device device, Placement placement, Shard shard)
    : batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      device_(device),
      shard_(shard) {
  TORCH_CHECK(batch_size > 0, "BatchLoader: batch_size must be > 0, got ", batch_size);
  TORCH_CHECK(shard.size == 1 || (drop_last && batch_size % shard.size == 0),
              "BatchLoader: a shard of ", shard.size,
              " processes needs drop_last and a batch "
              "size that splits over them, got ",
              batch_size);
  TORCH_CHECK(data.labels.defined(), "BatchLoader: empty Dataset");
  if (!data.in_memory()) placement = Placement::kHost;  // image files are decoded as drawn
  const torch::Device home = placement == Placement::kDevice ? device_ : torch::Device(torch::kCPU);
  labels_ = data.labels.to(home, torch::kLong).contiguous();
  Dataset host = data;
  host.labels = labels_;
  if (data.in_memory()) {
    TORCH_CHECK(data.images.dim() == 4, "BatchLoader: images must be [N, C, H, W], got ",
                data.images.sizes());
    TORCH_CHECK(data.images.size(0) == data.labels.size(0), "BatchLoader: ", data.images.size(0),
                " images but ", data.labels.size(0), " labels");
    images_ = data.images.to(home, torch::kUInt8).contiguous();
    host.images = images_;
  }
  if (placement == Placement::kHost && batches_per_epoch() > 0) {
    HostPrefetcher::OrderFn order;
    if (shuffle_ || shard_.size > 1) {
      order = [n = size(), shuffle = shuffle_, seed, batch = batch_size_, shard](int64_t epoch) {
        return examples_of(epoch, n, shuffle, seed, batch, shard);
      };
    }
    prefetcher_ = std::make_unique<HostPrefetcher>(std::move(host), local_batch_size(),
                                                   batches_per_epoch(), order, seed, device_);
  }
}

BatchLoader::~BatchLoader() = default;
BatchLoader::BatchLoader(BatchLoader&&) noexcept = default;
BatchLoader& BatchLoader::operator=(BatchLoader&&) noexcept = default;

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

int64_t BatchLoader::size() const {
  return labels_.size(0);
}

double BatchLoader::input_wait_seconds() const {
  return prefetcher_ ? prefetcher_->waited_seconds() : 0.0;
}

const torch::Tensor& BatchLoader::order_of(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_order_ = torch::tensor(examples_of(epoch, size(), shuffle_, seed_, batch_size_, shard_),
                                  torch::kLong)
                        .to(device_);
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

Batch BatchLoader::batch(int64_t epoch, int64_t index) {
  TORCH_CHECK(epoch >= 0, "BatchLoader::batch: epoch must be >= 0, got ", epoch);
  TORCH_CHECK(index >= 0 && index < batches_per_epoch(), "BatchLoader::batch: index ", index,
              " out of range [0, ", batches_per_epoch(), ")");
  if (prefetcher_) {
    auto [images, labels] = prefetcher_->get(epoch, index);
    return {images.to(torch::kFloat).div_(255.0), labels};
  }
  const int64_t start = index * local_batch_size();
  const int64_t count = std::min(local_batch_size(), size() - start);
  torch::Tensor images;
  torch::Tensor labels;
  if (shuffle_ || shard_.size > 1) {
    const torch::Tensor picks = order_of(epoch).narrow(0, start, count);
    images = images_.index_select(0, picks);
    labels = labels_.index_select(0, picks);
  } else {
    images = images_.narrow(0, start, count);
    labels = labels_.narrow(0, start, count);
  }
  return {images.to(torch::kFloat).div_(255.0), labels};
}

torch::Tensor augment(const torch::Tensor& images, const AugmentOptions& opts) {
  TORCH_CHECK(images.dim() == 4, "augment: images must be [B, C, H, W], got ", images.sizes());
  TORCH_CHECK(opts.crop_padding >= 0, "augment: crop_padding must be >= 0, got ",
              opts.crop_padding);
  const int64_t b = images.size(0);
  if ((opts.crop_padding == 0 && !opts.horizontal_flip) || b == 0) {
    return images;
  }
  const int64_t c = images.size(1);
  const int64_t h = images.size(2);
  const int64_t w = images.size(3);
  const int64_t pad = opts.crop_padding;
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(images.device());

  // Each output pixel (i, j) of example n reads padded pixel (row[n][i], col[n][j]): a crop is
  // an offset, a flip reverses the columns, so both become one pair of gathers with no loop.
  torch::Tensor row = torch::arange(h, long_opts).unsqueeze(0).expand({b, h});
  torch::Tensor col = torch::arange(w, long_opts).unsqueeze(0).expand({b, w});
  torch::Tensor source = images;
  if (pad > 0) {
    const torch::Tensor dy = torch::randint(0, 2 * pad + 1, {b, 1}, long_opts);
    const torch::Tensor dx = torch::randint(0, 2 * pad + 1, {b, 1}, long_opts);
    row = row + dy;
    col = col + dx;
    source = torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0);
  }
  if (opts.horizontal_flip) {
    const torch::Tensor flip = torch::randint(0, 2, {b, 1}, long_opts).to(torch::kBool);
    // Reversing the window [x, x + w) of the padded row: column x + j becomes x + w - 1 - j.
    const torch::Tensor first = col.narrow(1, 0, 1);
    col = torch::where(flip, 2 * first + (w - 1) - col, col);
  }
  const int64_t padded_w = source.size(3);
  const torch::Tensor rows = row.reshape({b, 1, h, 1}).expand({b, c, h, padded_w});
  const torch::Tensor cropped_rows = source.gather(2, rows);
  const torch::Tensor cols = col.reshape({b, 1, 1, w}).expand({b, c, h, w});
  return cropped_rows.gather(3, cols);
}

}  // namespace advft::data
