#include "advft/train/sgd.h"

#include <map>

#include "advft/error.h"
#include "advft/runtime/compat.h"

namespace advft::train {

Sgd::Sgd(torch::nn::Module& module, const config::OptimizerConfig& options) : options_(options) {
  for (const auto& item : module.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    names_.push_back(item.key());
    params_.push_back(item.value());
  }
  momentum_.resize(params_.size());
  const torch::Device device = params_.empty() ? torch::Device(torch::kCPU) : params_[0].device();
  lr_tensor_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device));
}

void Sgd::set_lr(double lr) {
  lr_ = lr;
  torch::NoGradGuard no_grad;
  lr_tensor_.fill_(lr);
}

void Sgd::zero_grad() {
  for (auto& p : params_)
    p.mutable_grad() = torch::Tensor();
}

void Sgd::step() {
  torch::NoGradGuard no_grad;
  if (fused_step()) return;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    torch::Tensor d_p = p.grad();
    if (options_.weight_decay != 0.0) d_p = d_p.add(p, options_.weight_decay);
    if (options_.momentum != 0.0) {
      torch::Tensor& buf = momentum_[i];
      if (!buf.defined()) {
        buf = d_p.clone();  // PyTorch: the first step starts the buffer at the gradient
      } else {
        buf.mul_(options_.momentum).add_(d_p);
      }
      d_p = options_.nesterov ? d_p.add(buf, options_.momentum) : buf;
    }
    p.addcmul_(d_p, lr_tensor_, -1.0);  // p -= lr * d_p, with lr read from the device
  }
}

bool Sgd::fused_step() {
#ifdef ADVFT_HAVE_FUSED_SGD
  // The kernel walks the parameter, gradient and momentum lists element by element, so each
  // triple must share dtype, device and strides; anything else (a CPU run, a missing gradient,
  // the first step, which creates the buffers) takes the loop below.
  if (params_.empty() || !params_[0].is_cuda()) return false;
  const bool momentum = options_.momentum != 0.0;
  std::vector<torch::Tensor> grads;
  grads.reserve(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& p = params_[i];
    const torch::Tensor& g = p.grad();
    if (!g.defined() || p.scalar_type() != torch::kFloat || g.scalar_type() != torch::kFloat ||
        p.device() != params_[0].device() || !p.is_non_overlapping_and_dense() ||
        g.strides() != p.strides())
      return false;
    if (momentum && (!momentum_[i].defined() || momentum_[i].strides() != p.strides()))
      return false;
    grads.push_back(g);
  }
  at::_fused_sgd_(params_, grads, momentum ? momentum_ : std::vector<torch::Tensor>{},
                  options_.weight_decay, options_.momentum, lr_tensor_, /*dampening=*/0.0,
                  options_.nesterov, /*maximize=*/false, /*is_first_step=*/false);
  return true;
#else
  return false;
#endif
}

std::vector<io::NamedTensor> Sgd::state() const {
  std::vector<io::NamedTensor> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (momentum_[i].defined()) out.push_back({names_[i], momentum_[i]});
  }
  return out;
}

void Sgd::load_state(const std::vector<io::NamedTensor>& state, const std::string& source) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < names_.size(); ++i)
    index[names_[i]] = i;
  for (const auto& item : state) {
    auto it = index.find(item.name);
    if (it == index.end()) {
      throw CheckpointError(source + ": optimizer state for unknown parameter " + item.name);
    }
    const torch::Tensor& p = params_[it->second];
    if (item.tensor.sizes() != p.sizes()) {
      throw CheckpointError(source + ": optimizer state " + item.name + " has the wrong shape");
    }
    // In the parameter's layout (channels-last for convolutions on CUDA), as the buffers that
    // step() creates are: the fused update needs the two to match.
    momentum_[it->second] = torch::empty_like(p).copy_(item.tensor);
  }
}

}  // namespace advft::train
