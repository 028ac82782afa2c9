#include "advft/models/batch_norm_relu.h"

#include <atomic>
#include <cstdint>

#include "advft/runtime/switch.h"

#ifdef ADVFT_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "batch_norm_relu_kernels.h"
#endif

namespace advft::models {
namespace {

std::atomic<bool> fused_enabled{false};

#ifdef ADVFT_HAVE_CUDA_KERNELS

bool fused_applies(const torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  const auto& o = bn.options;
  if (!bn.is_training() || !x.is_cuda() || x.dim() != 4) return false;
  if (x.scalar_type() != torch::kBFloat16 && x.scalar_type() != torch::kHalf) return false;
  if (!x.is_contiguous(torch::MemoryFormat::ChannelsLast)) return false;
  if (x.size(1) % kernels::kChannelMultiple != 0 || x.size(0) * x.size(2) * x.size(3) < 2)
    return false;
  if (reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 != 0) return false;
  if (!o.affine() || !o.track_running_stats() || !o.momentum().has_value()) return false;
  for (const torch::Tensor* t : {&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var}) {
    if (t->scalar_type() != torch::kFloat || !t->is_contiguous() || t->device() != x.device())
      return false;
  }
  return true;
}

kernels::Shape shape_of(const torch::Tensor& x) {
  return {x.size(0) * x.size(2) * x.size(3), static_cast<int>(x.size(1))};
}

kernels::Element element_of(const torch::Tensor& x) {
  return x.scalar_type() == torch::kBFloat16 ? kernels::Element::kBFloat16
                                             : kernels::Element::kHalf;
}

float* floats(torch::Tensor& t) {
  return t.data_ptr<float>();
}

// The rows of the [4, channels] tensor the forward saves, in the one order both passes use:
// mean, invstd, scale, shift.
template <typename Args>
void point_at_statistics(const torch::Tensor& per_channel, Args& args) {
  float* rows = per_channel.data_ptr<float>();
  const int64_t channels = per_channel.size(1);
  args.save_mean = rows;
  args.save_invstd = rows + channels;
  args.scale = rows + 2 * channels;
  args.shift = rows + 3 * channels;
}

// The kernels as an autograd function: the forward saves x and four per-channel fp32 vectors
// (mean, invstd, scale, shift); the backward recomputes the ReLU's mask from them.
class FusedBatchNormRelu : public torch::autograd::Function<FusedBatchNormRelu> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps) {
    const c10::cuda::CUDAGuard device(x.device());
    const kernels::Shape shape = shape_of(x);
    const auto fp32 = weight.options();
    torch::Tensor workspace = torch::empty({kernels::workspace_floats(shape)}, fp32);
    torch::Tensor per_channel = torch::empty({4, shape.channels}, fp32);
    torch::Tensor y = torch::empty_like(x, x.options(), torch::MemoryFormat::ChannelsLast);
    kernels::ForwardArgs args;
    args.element = element_of(x);
    args.shape = shape;
    args.x = x.data_ptr();
    args.weight = weight.data_ptr<float>();
    args.bias = bias.data_ptr<float>();
    args.running_mean = floats(running_mean);
    args.running_var = floats(running_var);
    args.momentum = static_cast<float>(momentum);
    args.eps = static_cast<float>(eps);
    args.workspace = floats(workspace);
    point_at_statistics(per_channel, args);
    args.y = y.data_ptr();
    run(x.device(), [&](cudaStream_t stream) { kernels::forward(args, stream); });
    ctx->save_for_backward({x, weight, per_channel});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& per_channel = saved[2];
    // The kernels' results carry no autograd history of their own: a second derivative
    // (create_graph, which runs the backward in grad mode) would silently lose its terms.
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "advft's fused BatchNorm+ReLU has no second derivative; set fused_bn_relu to off");
    const c10::cuda::CUDAGuard device(x.device());
    torch::Tensor dy = grads[0].to(x.scalar_type()).contiguous(torch::MemoryFormat::ChannelsLast);
    // The kernels read 16 bytes at a time; a view at an odd offset gets an aligned copy.
    if (reinterpret_cast<std::uintptr_t>(dy.data_ptr()) % 16 != 0)
      dy = dy.clone(torch::MemoryFormat::ChannelsLast);
    const kernels::Shape shape = shape_of(x);
    const auto fp32 = weight.options();
    torch::Tensor workspace = torch::empty({kernels::workspace_floats(shape)}, fp32);
    torch::Tensor coefficients = torch::empty({3 * shape.channels}, fp32);
    torch::Tensor grad_weight = torch::empty_like(weight);
    torch::Tensor grad_bias = torch::empty_like(weight);
    torch::Tensor dx = torch::empty_like(x, x.options(), torch::MemoryFormat::ChannelsLast);
    kernels::BackwardArgs args;
    args.element = element_of(x);
    args.shape = shape;
    args.x = x.data_ptr();
    args.dy = dy.data_ptr();
    args.weight = weight.data_ptr<float>();
    point_at_statistics(per_channel, args);
    args.workspace = floats(workspace);
    args.coefficients = floats(coefficients);
    args.grad_weight = floats(grad_weight);
    args.grad_bias = floats(grad_bias);
    args.dx = dx.data_ptr();
    run(x.device(), [&](cudaStream_t stream) { kernels::backward(args, stream); });
    // One gradient per forward argument: x, weight, bias, then none for the statistics and scalars.
    return {dx,
            grad_weight,
            grad_bias,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }

 private:
  // The kernels' errors as LibTorch's, on the stream LibTorch is using (a capture's, in a graph).
  template <typename Launch>
  static void run(const torch::Device& device, Launch launch) {
    try {
      launch(c10::cuda::getCurrentCUDAStream(device.index()).stream());
    } catch (const std::runtime_error& e) {
      TORCH_CHECK(false, e.what());
    }
  }
};

#endif  // ADVFT_HAVE_CUDA_KERNELS

}  // namespace

torch::Tensor batch_norm_relu(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
#ifdef ADVFT_HAVE_CUDA_KERNELS
  if (fused_enabled.load(std::memory_order_relaxed) && fused_applies(bn, x)) {
    torch::Tensor y =
        FusedBatchNormRelu::apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                  *bn.options.momentum(), bn.options.eps());
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);  // BatchNorm2d's forward counts its training batches
    return y;
  }
#endif
  return torch::relu(bn.forward(x));
}

bool fused_batch_norm_relu_built() {
#ifdef ADVFT_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

void set_fused_batch_norm_relu(bool on) {
  fused_enabled.store(on, std::memory_order_relaxed);
}

bool resolve_fused_batch_norm_relu(const std::string& setting, const torch::Device& device,
                                   const std::string& where) {
  return runtime::resolve_switch(
      setting, fused_batch_norm_relu_built() && device.is_cuda(), where,
      "a CUDA device and an advft built with its CUDA kernels (a CUDA compiler at build time; " +
          device.str() + (fused_batch_norm_relu_built() ? " here" : ", no kernels in this build") +
          ")");
}

}  // namespace advft::models
