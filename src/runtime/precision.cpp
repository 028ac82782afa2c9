#include "advft/runtime/precision.h"

#include <ATen/Context.h>

#include "advft/error.h"
#include "advft/runtime/compat.h"

namespace advft::runtime {

Precision resolve_precision(const std::string& name, const torch::Device& device,
                            const std::string& where, Precision auto_on_cuda) {
  const bool cuda = device.is_cuda();
  if (name == "auto") {
    // Every GPU advft targets (Ampere and later) computes bf16 and TF32 at full rate.
    if (cuda && at::globalContext().hasCUDA()) return auto_on_cuda;
    return Precision::kFp32;
  }
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "tf32" || name == "fp16") {
    if (!cuda) {
      throw ConfigError(where + " = \"" + name +
                        "\" needs a CUDA device (on the CPU use fp32 or "
                        "bf16)");
    }
    return name == "tf32" ? Precision::kTf32 : Precision::kFp16;
  }
  throw ConfigError(where + " = \"" + name + "\": must be auto, fp32, tf32, bf16 or fp16");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kTf32:
      return "tf32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "fp32";
}

void configure_matmul_precision(Precision precision) {
  if (!at::globalContext().hasCUDA()) return;
  const bool tf32 = precision == Precision::kTf32;
  at::globalContext().setAllowTF32CuBLAS(tf32);
  at::globalContext().setAllowTF32CuDNN(tf32);
}

AutocastGuard::AutocastGuard(Precision precision, const torch::Device& device) {
  if (precision != Precision::kBf16 && precision != Precision::kFp16) return;
  active_ = true;
  device_type_ = device.type();
  previous_enabled_ = compat::autocast_enabled(device_type_);
  previous_dtype_ = compat::autocast_dtype(device_type_);
  compat::set_autocast(device_type_, true,
                       precision == Precision::kBf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast(device_type_, previous_enabled_, previous_dtype_);
}

void drop_autocast_cache() {
  at::autocast::clear_cache();
}

}  // namespace advft::runtime
