#pragma once
// Numeric precision of the forward passes: fp32, tf32 (fp32 storage, TensorFloat-32 matrix
// products on CUDA), bf16 or fp16 autocast. Weights, optimizer state and losses stay fp32.
#include <string>

#include <torch/torch.h>

namespace advft::runtime {

enum class Precision { kFp32, kTf32, kBf16, kFp16 };

/// "fp32" | "tf32" | "bf16" | "fp16", or "auto": `auto_on_cuda` (bf16, training's speed-up) on a
/// CUDA device, else fp32. ConfigError naming `where` for other names, and for tf32/fp16 off CUDA
/// (the CPU has no TensorFloat-32, and LibTorch's CPU autocast only knows bf16).
Precision resolve_precision(const std::string& name, const torch::Device& device,
                            const std::string& where, Precision auto_on_cuda = Precision::kBf16);

/// "fp32", "tf32", "bf16", "fp16".
const char* precision_name(Precision precision);

/// Sets the process-wide TensorFloat-32 switches of cuBLAS and cuDNN for `precision` (on only for
/// tf32, so fp32 means fp32); a no-op without CUDA.
void configure_matmul_precision(Precision precision);

/// Autocast to bf16/fp16 on `device` for its lifetime (nothing for fp32/tf32), restoring the
/// previous state after and dropping autocast's cast cache when the outermost guard ends, as
/// Python's torch.autocast does.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, const torch::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_type_ = c10::DeviceType::CPU;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

/// Drops autocast's cached casts of the weights inside a region. The training step calls it
/// between the attack and the training forward: a cast made under no_grad (TRADES' clean pass,
/// APGD-T's ranking of targets) has no autograd history, and a training forward that reused it
/// would leave those weights without gradients (the cache ignores grad mode up to LibTorch 2.10).
void drop_autocast_cache();

}  // namespace advft::runtime
