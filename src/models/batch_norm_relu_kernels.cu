#include "batch_norm_relu_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

namespace advft::models::kernels {
namespace {

constexpr int kVector = kChannelMultiple;  // 16-bit values per 16-byte load
constexpr int kThreads = 256;
constexpr int kFinalizeChannels = 32;  // channels per block of the finalize kernels
constexpr int kFinalizeLanes = 8;      // threads that share one channel's partial sums there
constexpr int kMinRowsPerThread = 8;   // fewer and the partial sums cost more than they save
constexpr int kBlocksPerSm = 4;        // reductions: enough blocks to keep every SM streaming

template <typename T>
__device__ __forceinline__ float to_float(T value);
template <>
__device__ __forceinline__ float to_float(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
template <>
__device__ __forceinline__ float to_float(__half value) {
  return __half2float(value);
}

template <typename T>
__device__ __forceinline__ T from_float(float value);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float value) {
  return __float2bfloat16_rn(value);
}
template <>
__device__ __forceinline__ __half from_float(float value) {
  return __float2half_rn(value);
}

template <typename T>
__device__ __forceinline__ void load_vector(const T* source, float (&out)[kVector]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(source));
  const T* values = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < kVector; ++j)
    out[j] = to_float(values[j]);
}

template <typename T>
__device__ __forceinline__ void store_vector(T* target, const float (&in)[kVector]) {
  uint4 raw;
  T* values = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int j = 0; j < kVector; ++j)
    values[j] = from_float<T>(in[j]);
  *reinterpret_cast<uint4*>(target) = raw;
}

// Eight consecutive per-channel constants (32-byte aligned: channel is a multiple of 8).
__device__ __forceinline__ void load_constants(const float* source, float (&out)[kVector]) {
  const float4 low = __ldg(reinterpret_cast<const float4*>(source));
  const float4 high = __ldg(reinterpret_cast<const float4*>(source) + 1);
  out[0] = low.x, out[1] = low.y, out[2] = low.z, out[3] = low.w;
  out[4] = high.x, out[5] = high.y, out[6] = high.z, out[7] = high.w;
}

// The forward's pre-activation, computed the same way in both passes so that the backward's ReLU
// mask is exactly the forward's.
__device__ __forceinline__ float normalized(float x, float scale, float shift) {
  return fmaf(x, scale, shift);
}

// Whether the ReLU let the gradient through: its output as stored (rounded to T) not <= 0, as
// PyTorch's threshold_backward decides; a tiny positive value that rounds to 0 blocks it, a NaN
// passes.
template <typename T>
__device__ __forceinline__ bool passed_relu(float x, float scale, float shift) {
  return !(to_float(from_float<T>(normalized(x, scale, shift))) <= 0.0f);
}

// torch.relu: NaN stays NaN (fmaxf alone would turn it into 0 and hide a divergence).
__device__ __forceinline__ float relu(float value) {
  return isnan(value) ? value : fmaxf(value, 0.0f);
}

// Sums of x - x[0] and of its square: shifting by one sample of the batch keeps the variance
// E[d^2] - E[d]^2 free of cancellation when a channel's mean is large against its spread.
template <typename T>
struct StatisticsTerm {
  static constexpr int kRowsInFlight = 4;  // rows whose loads a thread has in flight together
  const T* x;
  float first[kVector];

  __device__ void begin(int channel) { load_vector(x + channel, first); }
  __device__ void add(int64_t offset, float (&a)[kVector], float (&b)[kVector]) const {
    float values[kVector];
    load_vector(x + offset, values);
#pragma unroll
    for (int j = 0; j < kVector; ++j) {
      const float d = values[j] - first[j];
      a[j] += d;
      b[j] = fmaf(d, d, b[j]);
    }
  }
};

// Sums of g and g * (x - mean), g being dy where the forward's ReLU let the value through.
template <typename T>
struct GradientTerm {
  static constexpr int kRowsInFlight = 2;  // two loads a row: 4 in flight, and no spills
  const T* x;
  const T* dy;
  const float* scale_of;
  const float* shift_of;
  const float* mean_of;
  float scale[kVector];
  float shift[kVector];
  float mean[kVector];

  __device__ void begin(int channel) {
    load_constants(scale_of + channel, scale);
    load_constants(shift_of + channel, shift);
    load_constants(mean_of + channel, mean);
  }
  __device__ void add(int64_t offset, float (&a)[kVector], float (&b)[kVector]) const {
    float values[kVector];
    float grads[kVector];
    load_vector(x + offset, values);
    load_vector(dy + offset, grads);
#pragma unroll
    for (int j = 0; j < kVector; ++j) {
      const float g = passed_relu<T>(values[j], scale[j], shift[j]) ? grads[j] : 0.0f;
      a[j] += g;
      b[j] = fmaf(g, values[j] - mean[j], b[j]);
    }
  }
};

// Two per-channel sums over the rows, as partial sums: partial[(split * 2 + k) * channels + c].
// Block: threadIdx.x walks 8-channel groups, threadIdx.y rows; grid: (channel groups, splits).
// Each split is a fixed set of rows, so the result does not depend on scheduling (no atomics).
// The launch bounds hold each thread to the registers that let kBlocksPerSm blocks share an SM,
// as many as reduction_splits launches per SM; with more, some blocks would wait for a second
// wave.
template <typename Term>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    channel_sums(Term term, int64_t rows, int channels, float* partial) {
  const int groups = channels / kVector;
  const int group = blockIdx.x * blockDim.x + threadIdx.x;
  float a[kVector] = {};
  float b[kVector] = {};
  if (group < groups) {
    term.begin(group * kVector);
    const int64_t stride = static_cast<int64_t>(gridDim.y) * blockDim.y;
    const int64_t column = group * kVector;
    int64_t row = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
    // Term::kRowsInFlight rows at a time with no branch between them, so that their loads are
    // all in flight together (one at a time, the loop waits on memory latency); the rows are
    // still added in order.
    constexpr int kRows = Term::kRowsInFlight;
    for (; row + (kRows - 1) * stride < rows; row += kRows * stride) {
#pragma unroll
      for (int k = 0; k < kRows; ++k)
        term.add((row + k * stride) * channels + column, a, b);
    }
    for (; row < rows; row += stride)
      term.add(row * channels + column, a, b);
  }
  // Per block: blockDim.y rows of (blockDim.x groups x 2 sums x 8 channels) values, summed down.
  extern __shared__ float shared[];
  const int width = blockDim.x * 2 * kVector;
  float* mine = shared + threadIdx.y * width + threadIdx.x * 2 * kVector;
#pragma unroll
  for (int j = 0; j < kVector; ++j) {
    mine[j] = a[j];
    mine[kVector + j] = b[j];
  }
  __syncthreads();
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  for (int i = thread; i < width; i += blockDim.x * blockDim.y) {
    float sum = 0.0f;
    for (int r = 0; r < static_cast<int>(blockDim.y); ++r)
      sum += shared[r * width + i];
    const int g = blockIdx.x * blockDim.x + i / (2 * kVector);
    const int k = (i / kVector) % 2;
    if (g < groups)
      partial[(static_cast<int64_t>(blockIdx.y) * 2 + k) * channels + g * kVector + i % kVector] =
          sum;
  }
}

// The two sums of each channel over all splits, in double. Block: (kFinalizeChannels channels,
// kFinalizeLanes lanes); the result is valid in lane 0.
__device__ void sum_splits(const float* partial, int splits, int channels, int channel, double& a,
                           double& b) {
  __shared__ double lanes[2][kFinalizeLanes][kFinalizeChannels];
  a = 0.0;
  b = 0.0;
  if (channel < channels) {
    for (int split = threadIdx.y; split < splits; split += kFinalizeLanes) {
      a += partial[(static_cast<int64_t>(split) * 2) * channels + channel];
      b += partial[(static_cast<int64_t>(split) * 2 + 1) * channels + channel];
    }
  }
  lanes[0][threadIdx.y][threadIdx.x] = a;
  lanes[1][threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int lane = 1; lane < kFinalizeLanes; ++lane) {
      a += lanes[0][lane][threadIdx.x];
      b += lanes[1][lane][threadIdx.x];
    }
  }
}

template <typename T>
__global__ void finalize_statistics(ForwardArgs args, int splits) {
  const int channels = args.shape.channels;
  const int channel = blockIdx.x * kFinalizeChannels + threadIdx.x;
  double sum = 0.0;
  double squares = 0.0;
  sum_splits(args.workspace, splits, channels, channel, sum, squares);
  if (threadIdx.y != 0 || channel >= channels) return;
  const double n = static_cast<double>(args.shape.rows);
  const double first = to_float(static_cast<const T*>(args.x)[channel]);
  const double shifted_mean = sum / n;
  const double variance = fmax(squares / n - shifted_mean * shifted_mean, 0.0);
  const double mean = first + shifted_mean;
  const double invstd = rsqrt(variance + static_cast<double>(args.eps));
  const double scale = static_cast<double>(args.weight[channel]) * invstd;
  args.save_mean[channel] = static_cast<float>(mean);
  args.save_invstd[channel] = static_cast<float>(invstd);
  args.scale[channel] = static_cast<float>(scale);
  args.shift[channel] = static_cast<float>(static_cast<double>(args.bias[channel]) - mean * scale);
  const double m = args.momentum;
  args.running_mean[channel] =
      static_cast<float>((1.0 - m) * args.running_mean[channel] + m * mean);
  args.running_var[channel] =
      static_cast<float>((1.0 - m) * args.running_var[channel] + m * variance * n / (n - 1.0));
}

// dx = p * g + q * x + r per channel, the BatchNorm backward of g = dy * mask:
// p (g - mean(g) - (x - mean) * invstd^2 * mean(g (x - mean))) with p = weight * invstd.
__global__ void finalize_gradients(BackwardArgs args, int splits) {
  const int channels = args.shape.channels;
  const int channel = blockIdx.x * kFinalizeChannels + threadIdx.x;
  double sum_g = 0.0;
  double sum_gx = 0.0;
  sum_splits(args.workspace, splits, channels, channel, sum_g, sum_gx);
  if (threadIdx.y != 0 || channel >= channels) return;
  const double n = static_cast<double>(args.shape.rows);
  const double invstd = args.save_invstd[channel];
  const double mean = args.save_mean[channel];
  args.grad_bias[channel] = static_cast<float>(sum_g);
  args.grad_weight[channel] = static_cast<float>(sum_gx * invstd);
  const double p = static_cast<double>(args.weight[channel]) * invstd;
  const double mean_g = sum_g / n;
  const double c = sum_gx * invstd * invstd / n;
  args.coefficients[channel] = static_cast<float>(p);
  args.coefficients[channels + channel] = static_cast<float>(-p * c);
  args.coefficients[2 * channels + channel] = static_cast<float>(p * (c * mean - mean_g));
}

template <typename T>
__global__ void apply_forward(const T* x, const float* scale_of, const float* shift_of, T* y,
                              int64_t vectors, int groups) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors;
       i += stride) {
    const int channel = static_cast<int>(i % groups) * kVector;
    float values[kVector];
    float scale[kVector];
    float shift[kVector];
    load_vector(x + i * kVector, values);
    load_constants(scale_of + channel, scale);
    load_constants(shift_of + channel, shift);
#pragma unroll
    for (int j = 0; j < kVector; ++j)
      values[j] = relu(normalized(values[j], scale[j], shift[j]));
    store_vector(y + i * kVector, values);
  }
}

template <typename T>
__global__ void apply_backward(const T* x, const T* dy, const float* scale_of,
                               const float* shift_of, const float* coefficients, T* dx,
                               int64_t vectors, int groups, int channels) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors;
       i += stride) {
    const int channel = static_cast<int>(i % groups) * kVector;
    float values[kVector];
    float grads[kVector];
    float scale[kVector];
    float shift[kVector];
    float p[kVector];
    float q[kVector];
    float r[kVector];
    load_vector(x + i * kVector, values);
    load_vector(dy + i * kVector, grads);
    load_constants(scale_of + channel, scale);
    load_constants(shift_of + channel, shift);
    load_constants(coefficients + channel, p);
    load_constants(coefficients + channels + channel, q);
    load_constants(coefficients + 2 * channels + channel, r);
#pragma unroll
    for (int j = 0; j < kVector; ++j) {
      const float g = passed_relu<T>(values[j], scale[j], shift[j]) ? grads[j] : 0.0f;
      values[j] = fmaf(p[j], g, fmaf(q[j], values[j], r[j]));
    }
    store_vector(dx + i * kVector, values);
  }
}

int multiprocessors() {
  static std::atomic<int> counts[64];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 132;
  int count = counts[device].load(std::memory_order_relaxed);
  if (count == 0) {
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        count <= 0)
      count = 132;
    counts[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

void check_launch(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess)
    throw std::runtime_error(std::string("fused BatchNorm+ReLU: ") + what +
                             " failed: " + cudaGetErrorString(error));
}

// The reductions' block shape: up to 32 channel groups across, the rest of kThreads down rows.
dim3 reduction_block(const Shape& shape) {
  const int groups = shape.channels / kVector;
  const int across = std::min(groups, 32);
  return dim3(across, kThreads / across);
}

dim3 reduction_grid(const Shape& shape) {
  const dim3 block = reduction_block(shape);
  return dim3((shape.channels / kVector + block.x - 1) / block.x, reduction_splits(shape));
}

size_t reduction_shared_bytes(const Shape& shape) {
  const dim3 block = reduction_block(shape);
  return static_cast<size_t>(block.x) * block.y * 2 * kVector * sizeof(float);
}

int apply_blocks(int64_t vectors) {
  const int64_t needed = (vectors + kThreads - 1) / kThreads;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(needed, static_cast<int64_t>(multiprocessors()) * 8)));
}

void check_shape(const Shape& shape) {
  if (shape.rows < 2 || shape.channels <= 0 || shape.channels % kVector != 0)
    throw std::runtime_error("fused BatchNorm+ReLU: needs at least 2 rows and a multiple of " +
                             std::to_string(kVector) + " channels");
}

template <typename T>
void forward_as(const ForwardArgs& args, cudaStream_t stream) {
  const Shape& shape = args.shape;
  const int splits = reduction_splits(shape);
  const T* x = static_cast<const T*>(args.x);
  channel_sums<<<reduction_grid(shape), reduction_block(shape), reduction_shared_bytes(shape),
                 stream>>>(StatisticsTerm<T>{x, {}}, shape.rows, shape.channels, args.workspace);
  check_launch("the statistics pass");
  finalize_statistics<T><<<(shape.channels + kFinalizeChannels - 1) / kFinalizeChannels,
                           dim3(kFinalizeChannels, kFinalizeLanes), 0, stream>>>(args, splits);
  check_launch("the statistics' finalize");
  const int64_t vectors = shape.rows * (shape.channels / kVector);
  apply_forward<T><<<apply_blocks(vectors), kThreads, 0, stream>>>(
      x, args.scale, args.shift, static_cast<T*>(args.y), vectors, shape.channels / kVector);
  check_launch("the normalizing pass");
}

template <typename T>
void backward_as(const BackwardArgs& args, cudaStream_t stream) {
  const Shape& shape = args.shape;
  const int splits = reduction_splits(shape);
  const T* x = static_cast<const T*>(args.x);
  const T* dy = static_cast<const T*>(args.dy);
  GradientTerm<T> term{x, dy, args.scale, args.shift, args.save_mean, {}, {}, {}};
  channel_sums<<<reduction_grid(shape), reduction_block(shape), reduction_shared_bytes(shape),
                 stream>>>(term, shape.rows, shape.channels, args.workspace);
  check_launch("the gradient reduction");
  finalize_gradients<<<(shape.channels + kFinalizeChannels - 1) / kFinalizeChannels,
                       dim3(kFinalizeChannels, kFinalizeLanes), 0, stream>>>(args, splits);
  check_launch("the gradients' finalize");
  const int64_t vectors = shape.rows * (shape.channels / kVector);
  apply_backward<T><<<apply_blocks(vectors), kThreads, 0, stream>>>(
      x, dy, args.scale, args.shift, args.coefficients, static_cast<T*>(args.dx), vectors,
      shape.channels / kVector, shape.channels);
  check_launch("the input-gradient pass");
}

}  // namespace

int reduction_splits(const Shape& shape) {
  check_shape(shape);
  const dim3 block = reduction_block(shape);
  const int64_t across = (shape.channels / kVector + block.x - 1) / block.x;
  const int64_t by_rows = std::max<int64_t>(1, shape.rows / (block.y * kMinRowsPerThread));
  const int64_t by_occupancy =
      std::max<int64_t>(1, static_cast<int64_t>(multiprocessors()) * kBlocksPerSm / across);
  return static_cast<int>(std::min(by_rows, by_occupancy));
}

int64_t workspace_floats(const Shape& shape) {
  return static_cast<int64_t>(reduction_splits(shape)) * 2 * shape.channels;
}

void forward(const ForwardArgs& args, cudaStream_t stream) {
  check_shape(args.shape);
  if (args.element == Element::kBFloat16)
    forward_as<__nv_bfloat16>(args, stream);
  else
    forward_as<__half>(args, stream);
}

void backward(const BackwardArgs& args, cudaStream_t stream) {
  check_shape(args.shape);
  if (args.element == Element::kBFloat16)
    backward_as<__nv_bfloat16>(args, stream);
  else
    backward_as<__half>(args, stream);
}

}  // namespace advft::models::kernels
