#pragma once
// Choosing where tensors live.
#include <string>

#include <torch/torch.h>

#include "advft/runtime/background_job.h"

namespace advft::runtime {

/// "auto" (the GPU when there is one, said in the log), "cpu", "cuda" or "cuda:N"; asking for
/// CUDA where there is none throws ConfigError naming the `device` setting. Choosing a GPU turns
/// cuDNN's autotuning on: every loop of advft runs one batch shape over and over.
torch::Device resolve_device(const std::string& name);

/// Throws ConfigError naming the `device` setting unless name has one of resolve_device's forms
/// (N: decimal digits). Checked before anything asks CUDA, so that a typo such as "cuda:x" is
/// named as one on every machine rather than as LibTorch's "Invalid device string" on a GPU.
void check_device_name(const std::string& name);

/// torch.backends.cudnn.benchmark_limit's default, and the largest limit advft accepts.
constexpr int64_t kDefaultCudnnBenchmarkLimit = 10;
constexpr int64_t kMaxCudnnBenchmarkLimit = 10000;

/// Throws ConfigError naming `cudnn_benchmark_limit` unless 0 <= limit <= kMaxCudnnBenchmarkLimit.
void check_cudnn_benchmark_limit(int64_t limit);

/// How many of cuDNN's candidate algorithms its autotuning times per convolution shape (0: all),
/// as torch.backends.cudnn.benchmark_limit does, from the next new shape on; checked as above. A
/// value other than PyTorch's default is logged for a GPU.
void set_cudnn_benchmark_limit(int64_t limit, const torch::Device& device);

/// "NVIDIA H100 80GB HBM3" for a GPU, "CPU, 2 threads" for the CPU.
std::string device_name(const torch::Device& device);

/// Bytes of memory of a CUDA device, 0 for the CPU.
int64_t device_total_memory(const torch::Device& device);

/// Creates the CUDA context of a GPU on a background thread while the caller reads its data and
/// checkpoint (each takes about half a second on an H200), so that the two overlap; the job's
/// wait() rethrows what the thread threw. Nothing to wait for on the CPU.
BackgroundJob warm_up_device(const torch::Device& device);

/// Sets LibTorch's CPU intra-op threads: n, or every core when n is 0.
void set_cpu_threads(int64_t n);

}  // namespace advft::runtime
