#include "advft/attacks/square.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "advft/attacks/losses.h"
#include "advft/error.h"
#include "shared.h"

namespace advft::attacks {
namespace {

using detail::Candidate;

// The milestones of AutoAttack's schedule for the window's share of the image, in queries: past
// each one the share halves. AutoAttack counts them as they come (SquareAttack with
// resc_schedule=False); the Square paper's own code stretches any run to 10,000 queries first.
constexpr int64_t kWindowMilestones[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};

// +1 or -1, evenly, in the images' dtype.
torch::Tensor random_sign(const torch::Tensor& like, std::vector<int64_t> shape) {
  return torch::randint(0, 2, shape, like.options()) * 2.0 - 1.0;
}

// Python's round (halves to even), which the schedule's window sides are computed with.
int64_t round_half_even(double value) {
  return static_cast<int64_t>(std::nearbyint(value));
}

// One random side x side window per image: a [B, 1, H, W] mask, and each pixel's row and column
// counted from the window's top-left corner.
struct Window {
  torch::Tensor mask;
  torch::Tensor row;     // [B, 1, H, 1]
  torch::Tensor column;  // [B, 1, 1, W]
};

Window random_window(const torch::Tensor& x, int64_t side) {
  const int64_t batch = x.size(0), height = x.size(2), width = x.size(3);
  const auto as_long = x.options().dtype(torch::kLong);
  // Every position, the last row and column included (AutoAttack's draw leaves them out).
  const torch::Tensor top = torch::randint(0, height - side + 1, {batch, 1, 1, 1}, as_long);
  const torch::Tensor left = torch::randint(0, width - side + 1, {batch, 1, 1, 1}, as_long);
  Window w;
  w.row = torch::arange(height, as_long).view({1, 1, height, 1}) - top;
  w.column = torch::arange(width, as_long).view({1, 1, 1, width}) - left;
  w.mask = w.row.ge(0) & w.row.lt(side) & w.column.ge(0) & w.column.lt(side);
  return w;
}

// What the search compares: the margin z_y - max_{j != y} z_j (<= 0: fooled) and the loss it
// lowers (minus the attack's loss, which grows towards misclassification).
struct Scores {
  torch::Tensor margin;
  torch::Tensor loss;
};

Scores query(models::ClassifierImpl& model, const torch::Tensor& x_adv, const torch::Tensor& y,
             const AttackOptions& o) {
  const torch::Tensor logits = model.forward(x_adv);
  detail::check_classes(o, logits.size(1));
  return {-cw_loss(logits, y), -attack_loss(o.loss, logits, y)};
}

// The best point of each image so far and its scores.
struct Search {
  torch::Tensor x_best;
  Scores scores;

  // Takes x_new where it lowers the loss or fools the model, for images not fooled yet.
  void offer(const torch::Tensor& x_new, const Scores& next) {
    const torch::Tensor active = scores.margin.gt(0);
    const torch::Tensor lower = next.loss.lt(scores.loss) & active;
    const torch::Tensor take = (lower | next.margin.le(0)) & active;
    scores.loss = torch::where(lower, next.loss, scores.loss);
    scores.margin = torch::where(take, next.margin, scores.margin);
    x_best = torch::where(take.view({-1, 1, 1, 1}), x_new, x_best);
  }

  Candidate candidate() const { return {x_best, scores.margin.le(0), -scores.loss}; }
};

Candidate linf_run(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                   const AttackOptions& o) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  // Vertical stripes: one sign per image, channel and column.
  const torch::Tensor start =
      (x + o.eps * random_sign(x, {batch, channels, 1, width})).clamp(0.0, 1.0);
  Search search{start, query(model, start, y, o)};
  for (int64_t i = 0; i < o.steps; ++i) {
    const double share = square_window_fraction(kSquareInitialFraction, i);
    const int64_t side =
        std::clamp<int64_t>(round_half_even(std::sqrt(share * static_cast<double>(height * width))),
                            1, std::min(height, width));
    const Window window = random_window(x, side);
    // The window's corner of the ball, one sign per image and channel: what AutoAttack's step of
    // 2 eps from the current point, projected back onto the ball, comes to.
    const torch::Tensor corner =
        (x + o.eps * random_sign(x, {batch, channels, 1, 1})).clamp(0.0, 1.0);
    const torch::Tensor x_new = torch::where(window.mask, corner, search.x_best);
    search.offer(x_new, query(model, x_new, y, o));
  }
  return search.candidate();
}

// The pattern placed in each image's window ([B, 1, H, W], zero outside it), transposed for a
// random half of the images.
torch::Tensor placed_pattern(const torch::Tensor& pattern, const Window& window,
                             const torch::Tensor& x) {
  const int64_t side = pattern.size(0);
  const torch::Tensor rows = window.row.clamp(0, side - 1);
  const torch::Tensor cols = window.column.clamp(0, side - 1);
  const torch::Tensor transpose =
      torch::randint(0, 2, {x.size(0), 1, 1, 1}, x.options().dtype(torch::kLong)).eq(1);
  const torch::Tensor index = torch::where(transpose, cols * side + rows, rows * side + cols);
  return torch::take(pattern, index) * window.mask.to(x.scalar_type());
}

// AutoAttack's L2 start: a grid of side // 5 patterns, each with a sign per image and channel
// and transposed for a random half of the images, scaled to norm eps.
torch::Tensor l2_start(const torch::Tensor& x, const AttackOptions& o) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t side = std::max<int64_t>(height / 5, 2);
  const torch::Tensor pattern = square_l2_pattern(side, x.options()).view({1, 1, side, side});
  const torch::Tensor transposed = pattern.transpose(2, 3);
  torch::Tensor delta = torch::zeros_like(x);
  const int64_t top0 = (height - side * (height / side)) / 2;
  const int64_t left0 = (width - side * (width / side)) / 2;
  for (int64_t top = top0; top + side <= height; top += side) {
    for (int64_t left = left0; left + side <= width; left += side) {
      const torch::Tensor flip =
          torch::randint(0, 2, {batch, 1, 1, 1}, x.options().dtype(torch::kLong)).eq(1);
      delta.slice(2, top, top + side)
          .slice(3, left, left + side)
          .add_(torch::where(flip, transposed, pattern) * random_sign(x, {batch, channels, 1, 1}));
    }
  }
  return (x + delta / detail::per_example_norm(delta) * o.eps).clamp(0.0, 1.0);
}

torch::Tensor channel_norm(const torch::Tensor& t) {
  return t.pow(2).sum({2, 3}, /*keepdim=*/true).sqrt();
}

Candidate l2_run(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                 const AttackOptions& o) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const torch::Tensor start = l2_start(x, o);
  Search search{start, query(model, start, y, o)};
  std::map<int64_t, torch::Tensor> patterns;  // by side: the schedule has a few
  for (int64_t i = 0; i < o.steps; ++i) {
    const double share = square_window_fraction(kSquareInitialFraction, i);
    int64_t side = std::max<int64_t>(
        round_half_even(std::sqrt(share * static_cast<double>(height * width))), 3);
    if (side % 2 == 0) ++side;  // an odd side, as AutoAttack's: the bumps have a centre
    side = std::min({side, height, width});
    auto& pattern = patterns[side];
    if (!pattern.defined()) pattern = square_l2_pattern(side, x.options());

    // The perturbation's mass in two windows is redistributed: the second window's is moved
    // into the first, on top of a fresh pattern there, and the whole rescaled to norm eps.
    const torch::Tensor delta = search.x_best - x;
    const Window first = random_window(x, side);
    const Window second = random_window(x, side);
    const torch::Tensor first_mask = first.mask.to(x.scalar_type());
    const torch::Tensor in_first = delta * first_mask;
    const torch::Tensor image_norm = detail::per_example_norm(delta);
    const torch::Tensor windows_norm =
        detail::per_example_norm(delta * (first.mask | second.mask).to(x.scalar_type()));
    torch::Tensor fresh =
        placed_pattern(pattern, first, x) * random_sign(x, {batch, channels, 1, 1}) +
        in_first / (channel_norm(in_first) + 1e-12);
    const torch::Tensor budget =
        ((o.eps * o.eps - image_norm.pow(2)).clamp_min(0.0) / static_cast<double>(channels) +
         windows_norm.pow(2))
            .sqrt();
    fresh = fresh / (channel_norm(fresh) + 1e-12) * budget;
    torch::Tensor moved = torch::where(second.mask, torch::zeros_like(delta), delta);
    moved = torch::where(first.mask, fresh, moved);
    const torch::Tensor x_new =
        (x + moved / detail::per_example_norm(moved) * o.eps).clamp(0.0, 1.0);
    search.offer(x_new, query(model, x_new, y, o));
  }
  return search.candidate();
}

// A bump of Square's L2 pattern: at Chebyshev distance d from the centre (rows // 2, cols // 2),
// the sum of 1 / (k + 1)^2 for k from d to max(rows, cols) // 2: nested rectangles, the
// innermost weighted most. Unit L2 norm.
torch::Tensor bump(int64_t rows, int64_t cols, const torch::TensorOptions& options) {
  const auto as_long = options.dtype(torch::kLong);
  const int64_t rings = std::max(rows / 2, cols / 2) + 1;
  const torch::Tensor weights =
      torch::arange(1, rings + 1, options.dtype(torch::kDouble)).pow(-2.0);
  const torch::Tensor from_ring = weights.flip(0).cumsum(0).flip(0);  // sum over k >= d
  const torch::Tensor dr = (torch::arange(rows, as_long) - rows / 2).abs().view({rows, 1});
  const torch::Tensor dc = (torch::arange(cols, as_long) - cols / 2).abs().view({1, cols});
  const torch::Tensor values =
      from_ring.index_select(0, torch::max(dr, dc).flatten()).view({rows, cols});
  return values / values.pow(2).sum().sqrt();
}

}  // namespace

double square_window_fraction(double initial, int64_t step) {
  double share = initial;
  for (const int64_t milestone : kWindowMilestones) {
    if (step > milestone) share /= 2.0;
  }
  return share;
}

torch::Tensor square_l2_pattern(int64_t side, const torch::TensorOptions& options) {
  TORCH_CHECK(side >= 2, "square_l2_pattern: the side must be at least 2, got ", side);
  const int64_t upper = side / 2;
  const torch::Tensor pattern =
      torch::cat({bump(upper, side, options), -bump(side - upper, side, options)}, 0);
  return (pattern / pattern.pow(2).sum().sqrt()).to(options.dtype());
}

torch::Tensor square(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                     const AttackOptions& options) {
  detail::check_inputs(x, y);
  torch::NoGradGuard no_grad;  // queries only: no gradient is ever taken
  if (options.eps == 0.0) return x.clone();
  if (options.norm == "l2" && std::min(x.size(2), x.size(3)) < 3) {
    throw ConfigError("attack " + describe_attack(options) +
                      ": the L2 Square Attack needs images of at least 3x3 pixels, got " +
                      std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)));
  }
  const auto run = [&] {
    return options.norm == "l2" ? l2_run(model, x, y, options) : linf_run(model, x, y, options);
  };
  Candidate worst = run();
  for (int64_t r = 1; r < options.restarts; ++r)
    detail::keep_worst(worst, run());
  return worst.x_adv.detach();
}

}  // namespace advft::attacks
