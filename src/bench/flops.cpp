#include "advft/bench/flops.h"

#include <ATen/record_function.h>

#include <cstring>

namespace advft::bench {
namespace {

// RecordFunction callbacks are plain function pointers: their state is thread-local, and the
// counting forward runs on the thread that registered them.
thread_local int64_t counted_flops = 0;
thread_local int convolution_depth = 0;

int64_t product(c10::IntArrayRef sizes) {
  int64_t out = 1;
  for (int64_t s : sizes)
    out *= s;
  return out;
}

// aten::convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
// groups), and aten::_convolution with the same leading arguments.
int64_t convolution_flops(c10::ArrayRef<const c10::IValue> in) {
  if (in.size() < 9 || !in[0].isTensor() || !in[1].isTensor()) return 0;
  const at::Tensor& input = in[0].toTensor();
  const at::Tensor& weight = in[1].toTensor();
  if (input.dim() < 3 || weight.dim() != input.dim()) return 0;
  const auto stride = in[3].toIntVector();
  const auto padding = in[4].toIntVector();
  const auto dilation = in[5].toIntVector();
  const bool transposed = in[6].toBool();
  const size_t spatial = static_cast<size_t>(input.dim() - 2);
  if (stride.size() != spatial || padding.size() != spatial || dilation.size() != spatial) return 0;
  // Multiply-adds per output element: the weight's input channels times its kernel.
  const int64_t per_output = product(weight.sizes().slice(1));
  if (transposed) {
    // Weight [in, out/groups, k...]: every input element meets each of its output kernels.
    return 2 * product(input.sizes()) * per_output;
  }
  int64_t outputs = input.size(0) * weight.size(0);
  for (size_t d = 0; d < spatial; ++d) {
    const int64_t kernel = weight.size(static_cast<int64_t>(d + 2));
    outputs *= (input.size(static_cast<int64_t>(d + 2)) + 2 * padding[d] -
                dilation[d] * (kernel - 1) - 1) /
                   stride[d] +
               1;
  }
  return 2 * outputs * per_output;
}

// aten::addmm(bias, a, b), aten::mm(a, b), aten::bmm(a, b).
int64_t matmul_flops(c10::ArrayRef<const c10::IValue> in, size_t first) {
  if (in.size() < first + 2 || !in[first].isTensor() || !in[first + 1].isTensor()) return 0;
  const at::Tensor& a = in[first].toTensor();
  const at::Tensor& b = in[first + 1].toTensor();
  if (a.dim() < 2 || b.dim() < 2) return 0;
  return 2 * product(a.sizes()) * b.size(-1);
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const char* name = fn.name();
  if (std::strcmp(name, "aten::convolution") == 0) {
    if (convolution_depth++ == 0) counted_flops += convolution_flops(fn.inputs());
  } else if (std::strcmp(name, "aten::_convolution") == 0) {
    // A TorchScript graph calls it directly; below aten::convolution it is already counted.
    if (convolution_depth++ == 0) counted_flops += convolution_flops(fn.inputs());
  } else if (std::strcmp(name, "aten::addmm") == 0) {
    counted_flops += matmul_flops(fn.inputs(), 1);
  } else if (std::strcmp(name, "aten::mm") == 0 || std::strcmp(name, "aten::bmm") == 0) {
    counted_flops += matmul_flops(fn.inputs(), 0);
  }
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  const char* name = fn.name();
  if (std::strcmp(name, "aten::convolution") == 0 || std::strcmp(name, "aten::_convolution") == 0)
    --convolution_depth;
}

}  // namespace

int64_t forward_flops(models::ClassifierImpl& model, int64_t in_channels, int64_t size) {
  const bool was_training = model.is_training();
  model.eval();
  const torch::Tensor image = torch::rand({1, in_channels, size, size});
  counted_flops = 0;
  convolution_depth = 0;
  const at::CallbackHandle handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end).needsInputs(true));
  {
    torch::NoGradGuard no_grad;
    model.forward(image);
  }
  at::removeCallback(handle);
  model.train(was_training);
  return counted_flops;
}

}  // namespace advft::bench
