#pragma once
// Choosing where tensors live.
#include <string>

#include <torch/torch.h>

namespace advft::runtime {

/// "auto" (the GPU when there is one), "cpu", "cuda" or "cuda:N"; asking for CUDA where there
/// is none throws ConfigError naming the `device` setting.
torch::Device resolve_device(const std::string& name);

/// Sets LibTorch's CPU intra-op threads: n, or every core when n is 0.
void set_cpu_threads(int64_t n);

}  // namespace advft::runtime
