#include "advft/attacks/fab.h"

#include <functional>
#include <vector>

#include "shared.h"

namespace advft::attacks {
namespace {

using detail::Candidate;

// The paper's (and AutoAttack's) constants: the largest weight of the clean image's projection,
// the overshoot past the linearized boundary, and how far back towards the clean image a fooling
// point is pulled.
constexpr double kAlphaMax = 0.1;
constexpr double kOvershoot = 1.05;
constexpr double kBacktrack = 0.9;
// Stands for "no fooling point yet" among distances in pixel units.
constexpr double kFar = 1e10;

// The norm of each row of [N, D].
torch::Tensor row_norm(const torch::Tensor& d, const std::string& norm) {
  return norm == "l2" ? d.norm(2, {1}) : d.abs().amax(1);
}

// A linearized decision boundary at a point: the logit difference z_k - z_y of the class k it
// separates from the true one (negative while the model is right) and its gradient.
struct Boundary {
  torch::Tensor difference;  // [N]
  torch::Tensor gradient;    // like the point
};
using BoundaryFn = std::function<Boundary(const torch::Tensor& at)>;

// FAB-T's boundary: towards a fixed target class per image.
Boundary boundary_to(models::ClassifierImpl& model, const torch::Tensor& at, const torch::Tensor& y,
                     const torch::Tensor& target) {
  torch::AutoGradMode enable_grad(true);
  const torch::Tensor input = at.detach().requires_grad_(true);
  const torch::Tensor logits = model.forward(input).to(torch::kFloat);
  const torch::Tensor difference = logits.gather(1, target.view({-1, 1})).squeeze(1) -
                                   logits.gather(1, y.view({-1, 1})).squeeze(1);
  const torch::Tensor grad = torch::autograd::grad({difference.sum()}, {input})[0];
  return {difference.detach(), grad.detach()};
}

// Untargeted FAB's boundary: per image, of all the classes, the one whose linearized boundary
// lies nearest in the attack's norm, |z_k - z_y| / ||grad (z_k - z_y)||_dual (the dual of Linf
// is L1). It needs every logit's gradient: one backward pass per class.
Boundary nearest_boundary(models::ClassifierImpl& model, const torch::Tensor& at,
                          const torch::Tensor& y, const std::string& norm) {
  torch::AutoGradMode enable_grad(true);
  const torch::Tensor input = at.detach().requires_grad_(true);
  const torch::Tensor logits = model.forward(input).to(torch::kFloat);
  const int64_t classes = logits.size(1);
  std::vector<torch::Tensor> grads;
  grads.reserve(static_cast<std::size_t>(classes));
  for (int64_t k = 0; k < classes; ++k) {
    grads.push_back(torch::autograd::grad({logits.select(1, k).sum()}, {input}, {},
                                          /*retain_graph=*/k + 1 < classes)[0]
                        .flatten(1));
  }
  const torch::Tensor all_grads = torch::stack(grads, 1);  // [N, classes, D]
  const int64_t dims = all_grads.size(2);
  const torch::Tensor z = logits.detach();
  const torch::Tensor differences = z - z.gather(1, y.view({-1, 1}));
  const torch::Tensor gradients =
      all_grads - all_grads.gather(1, y.view({-1, 1, 1}).expand({-1, 1, dims}));
  const torch::Tensor dual = norm == "l2" ? gradients.norm(2, {2}) : gradients.abs().sum(2);
  const torch::Tensor distance = (differences.abs() / dual.clamp_min(1e-12))
                                     .scatter(1, y.view({-1, 1}), kFar);  // not its own class
  const torch::Tensor nearest = distance.argmin(1);
  return {differences.gather(1, nearest.view({-1, 1})).squeeze(1),
          gradients.gather(1, nearest.view({-1, 1, 1}).expand({-1, 1, dims}))
              .squeeze(1)
              .view_as(at)
              .to(at.scalar_type())};
}

// One FAB run towards the boundaries `boundary_at` gives, from x or from a random point.
Candidate fab_run(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const BoundaryFn& boundary_at, const torch::Tensor& wrong, const AttackOptions& o,
                  bool from_random_point) {
  const int64_t batch = x.size(0);
  const torch::Tensor x_flat = x.flatten(1);
  // Restarts after the first start at half the radius, as AutoAttack's.
  torch::Tensor point = from_random_point ? detail::random_point_at(x, o, 0.5 * o.eps) : x.clone();
  torch::Tensor closest = x.clone();
  // Images the model already gets wrong need no search: distance 0.
  torch::Tensor closest_distance = torch::where(wrong, torch::zeros({batch}, x.options()),
                                                torch::full({batch}, kFar, x.options()));
  for (int64_t i = 0; i < o.steps; ++i) {
    const auto [difference, grad] = boundary_at(point);
    // The boundary linearized at `point`: w . x' = b.
    const torch::Tensor w = grad.flatten(1).to(x.scalar_type());
    const torch::Tensor b = (w * point.flatten(1)).sum(1) - difference.to(x.scalar_type());
    const torch::Tensor moves =
        project_onto_hyperplane_in_box(torch::cat({point.flatten(1), x_flat}, 0),
                                       torch::cat({w, w}, 0), torch::cat({b, b}, 0), o.norm);
    const torch::Tensor from_point = moves.slice(0, 0, batch).view_as(x);
    const torch::Tensor from_clean = moves.slice(0, batch).view_as(x);
    const torch::Tensor lengths = row_norm(moves, o.norm).clamp_min(1e-8);
    const torch::Tensor a1 = lengths.slice(0, 0, batch);
    const torch::Tensor a2 = lengths.slice(0, batch);
    // The closer the clean image's projection is compared with the point's, the more of it.
    const torch::Tensor alpha = (a1 / (a1 + a2)).clamp(0.0, kAlphaMax).view({-1, 1, 1, 1});
    point =
        ((point + kOvershoot * from_point) * (1.0 - alpha) + (x + kOvershoot * from_clean) * alpha)
            .clamp(0.0, 1.0);

    torch::Tensor fools;
    {
      torch::NoGradGuard no_grad;
      fools = model.forward(point).argmax(1).ne(y);
    }
    const torch::Tensor distance = row_norm((point - x).flatten(1), o.norm);
    const torch::Tensor closer = fools & distance.lt(closest_distance);
    closest = torch::where(closer.view({-1, 1, 1, 1}), point, closest);
    closest_distance = torch::where(closer, distance, closest_distance);
    point = torch::where(fools.view({-1, 1, 1, 1}), x + (point - x) * kBacktrack, point);
  }
  // Within the ball or not at all: an eps-bounded evaluation counts only those.
  // (The projection only trims rounding past the radius.)
  const torch::Tensor fooled = closest_distance.le(o.eps * (1.0 + 1e-6));
  const torch::Tensor inside = x + detail::project(x, closest - x, o);
  return {torch::where(fooled.view({-1, 1, 1, 1}), inside, x), fooled, -closest_distance};
}

// Which images the model already gets wrong: they need no search.
torch::Tensor misclassified(models::ClassifierImpl& model, const torch::Tensor& x,
                            const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  return model.forward(x).argmax(1).ne(y);
}

// options.restarts runs (the first from x, the others from random points), the worst case kept
// in `worst` (or started there).
void run_restarts(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const BoundaryFn& boundary, const torch::Tensor& wrong, const AttackOptions& o,
                  Candidate& worst) {
  for (int64_t r = 0; r < o.restarts; ++r) {
    detail::keep_worst(worst, fab_run(model, x, y, boundary, wrong, o, r > 0));
  }
}

}  // namespace

torch::Tensor project_onto_hyperplane_in_box(const torch::Tensor& points, const torch::Tensor& w,
                                             const torch::Tensor& b, const std::string& norm) {
  TORCH_CHECK(points.dim() == 2 && w.sizes() == points.sizes() && b.dim() == 1 &&
                  b.size(0) == points.size(0),
              "project_onto_hyperplane_in_box: points and w [N, D], b [N]");
  const int64_t dims = points.size(1);
  // Move towards the hyperplane: flip w where b lies below w . point, so that the move must
  // raise w . (point + d) by `need` >= 0.
  const torch::Tensor gap = b - (w * points).sum(1);
  const torch::Tensor side = gap.sign().unsqueeze(1);
  const torch::Tensor ws = w * side;
  const torch::Tensor need = gap.abs().unsqueeze(1);
  const torch::Tensor up = ws.gt(0);
  // How far each coordinate can move in its useful direction before leaving the box.
  const torch::Tensor room =
      torch::where(up, 1.0 - points, torch::where(ws.lt(0), points, 0.0 * points));
  const torch::Tensor a = ws.abs();
  // Moving coordinate i by min(t, room_i) (Linf: every coordinate by the same t) or by
  // min(t a_i, room_i) (L2: along w), w . d grows piecewise linearly in t, with a kink where each
  // coordinate hits the box. Sorted by those kinks, the kink where the growth reaches `need`
  // brackets the t that solves it.
  const bool l2 = norm == "l2";
  const torch::Tensor kink =
      l2 ? torch::where(a.gt(0), room / a.clamp_min(1e-30), torch::full_like(a, 1e30)) : room;
  const torch::Tensor slope = l2 ? a * a : a;
  const torch::Tensor capped = a * room;  // a coordinate's gain once it has hit the box
  const auto [sorted_kink, order] = kink.sort(1);
  const torch::Tensor sorted_slope = slope.gather(1, order);
  const torch::Tensor sorted_capped = capped.gather(1, order);
  const torch::Tensor capped_before = sorted_capped.cumsum(1) - sorted_capped;
  const torch::Tensor slope_from = sorted_slope.flip(1).cumsum(1).flip(1);
  const torch::Tensor gain_at_kink = capped_before + sorted_kink * slope_from;
  const torch::Tensor first = gain_at_kink.lt(need).sum(1, /*keepdim=*/true);  // [N, 1]
  const torch::Tensor reachable = first.lt(dims);
  const torch::Tensor at = first.clamp_max(dims - 1);
  torch::Tensor t =
      (need - capped_before.gather(1, at)) / slope_from.gather(1, at).clamp_min(1e-30);
  t = torch::where(reachable, t, torch::full_like(t, 1e30));  // out of reach: every room used
  const torch::Tensor magnitude = l2 ? torch::min(t * a, room) : torch::min(t, room);
  return ws.sign() * magnitude;  // w . d = side * (ws . d) = side * need = gap
}

torch::Tensor fab_targeted(models::ClassifierImpl& model, const torch::Tensor& x,
                           const torch::Tensor& y, const AttackOptions& options) {
  detail::check_inputs(x, y);
  if (options.eps == 0.0) return x.clone();
  const torch::Tensor targets = detail::ranked_targets(model, x, options);
  const torch::Tensor wrong = misclassified(model, x, y);
  Candidate worst;
  for (int64_t rank = 0; rank < targets.size(1); ++rank) {
    const torch::Tensor target = targets.select(1, rank);
    const BoundaryFn boundary = [&model, &y, target](const torch::Tensor& at) {
      return boundary_to(model, at, y, target);
    };
    run_restarts(model, x, y, boundary, wrong, options, worst);
  }
  return worst.x_adv.detach();
}

torch::Tensor fab(models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                  const AttackOptions& options) {
  detail::check_inputs(x, y);
  if (options.eps == 0.0) return x.clone();
  const torch::Tensor wrong = misclassified(model, x, y);
  const BoundaryFn boundary = [&model, &y, &options](const torch::Tensor& at) {
    return nearest_boundary(model, at, y, options.norm);
  };
  Candidate worst;
  run_restarts(model, x, y, boundary, wrong, options, worst);
  return worst.x_adv.detach();
}

}  // namespace advft::attacks
