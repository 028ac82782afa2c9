#include "advft/models/normalize.h"

#include <ostream>

namespace advft::models {

namespace {

// A size-1 vector is broadcast to every channel so configs can say `"mean": [0.5]` for grayscale
// and RGB alike; the buffer is always full size so checkpoints have one shape per model.
torch::Tensor channel_buffer(const std::vector<double>& values, int64_t channels) {
  auto t = torch::tensor(values, torch::kDouble).to(torch::kFloat);
  if (t.numel() == 1) {
    t = t.expand({channels}).clone();
  }
  return t.reshape({1, channels, 1, 1});
}

}  // namespace

NormalizeImpl::NormalizeImpl(NormalizeOptions opts) : options(std::move(opts)) {
  reset();
}

void NormalizeImpl::reset() {
  const int64_t c = options.channels();
  TORCH_CHECK(c >= 1, "Normalize: channels must be >= 1, got ", c);
  const auto size_ok = [c](const std::vector<double>& v) {
    return v.size() == 1 || static_cast<int64_t>(v.size()) == c;
  };
  TORCH_CHECK(size_ok(options.mean()), "Normalize: mean must have 1 or ", c, " values, got ",
              options.mean().size());
  TORCH_CHECK(size_ok(options.std()), "Normalize: std must have 1 or ", c, " values, got ",
              options.std().size());
  for (double s : options.std()) {
    TORCH_CHECK(s > 0, "Normalize: std must be > 0, got ", s);
  }
  mean = register_buffer("mean", channel_buffer(options.mean(), c));
  std = register_buffer("std", channel_buffer(options.std(), c));
}

torch::Tensor NormalizeImpl::forward(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.channels(), "Normalize: expected an [N, ",
              options.channels(), ", H, W] batch, got ", x.sizes());
  return (x - mean) / std;
}

void NormalizeImpl::pretty_print(std::ostream& stream) const {
  stream << "advft::models::Normalize(channels=" << options.channels() << ")";
}

}  // namespace advft::models
