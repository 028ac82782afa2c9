#include "advft/train/sgd.h"

#include <map>

#include "advft/error.h"

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
    momentum_[it->second] = item.tensor.to(p.device(), p.scalar_type()).clone();
  }
}

}  // namespace advft::train
