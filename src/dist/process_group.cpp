#include "advft/dist/process_group.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <utility>

#include <spdlog/spdlog.h>

#include "advft/error.h"

#if ADVFT_HAVE_DIST
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace advft::dist {
namespace {

constexpr std::chrono::minutes kDefaultTimeout{30};  // torch.distributed's default

// c10d's messages carry a C++ backtrace and Gloo's a source location: the first line is the
// part a user can act on.
std::string first_line(const std::exception& e) {
  std::string text = e.what();
#if ADVFT_HAVE_DIST
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) text = c10->what_without_backtrace();
#endif
  const size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace

std::chrono::milliseconds timeout_from_environment(const EnvironmentFn& env) {
  const char* text = env("ADVFT_DIST_TIMEOUT");
  if (text == nullptr || *text == '\0') return kDefaultTimeout;
  errno = 0;
  char* end = nullptr;
  const long long seconds = std::strtoll(text, &end, 10);
  if (*end != '\0' || errno == ERANGE || seconds < 1 || seconds > 7 * 24 * 3600) {
    throw DistError(std::string("ADVFT_DIST_TIMEOUT = '") + text +
                    "' is not a whole number of seconds in [1, 604800]");
  }
  return std::chrono::seconds(seconds);
}

#if ADVFT_HAVE_DIST

bool available() {
  return true;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::chrono::milliseconds timeout;

  // Runs one collective and waits for it; a peer that died or hung becomes a DistError.
  template <typename Start>
  void wait_for(const char* what, int rank, Start&& start) {
    try {
      start()->wait(timeout);
    } catch (const std::exception& e) {
      throw DistError("rank " + std::to_string(rank) + " lost the other processes during " + what +
                      " (" + first_line(e) +
                      "); one of them stopped or crashed: its own log says why");
    }
  }
};

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const World& world,
                                                    std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->timeout = timeout;
  const std::string where = world.master_addr + ":" + std::to_string(world.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(world.master_port);
    // Under a torchrun agent that serves the store, its port is taken: everyone is a client.
    options.isServer = world.rank == 0 && !world.agent_store;
    options.numWorkers = static_cast<size_t>(world.size);
    options.waitWorkers = !world.agent_store;
    options.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
    if (!world.store_prefix.empty()) {
      impl->store = c10::make_intrusive<c10d::PrefixStore>(world.store_prefix, impl->store);
    }
    // A roll call, so that a missing process is named as one here, whatever the store's own
    // waiting does (LibTorch 1.13's server does not wait for its workers).
    if (impl->store->add("advft/arrived", 1) == world.size) {
      impl->store->set("advft/all arrived", std::vector<uint8_t>{1});
    }
    impl->store->wait({"advft/all arrived"}, timeout);
  } catch (const std::exception& e) {
    std::string arrived;
    try {
      if (impl->store)
        arrived = std::to_string(impl->store->add("advft/arrived", 0)) + " of " +
                  std::to_string(world.size) + " arrived; ";
    } catch (const std::exception&) {
    }
    throw DistError(
        "rank " + std::to_string(world.rank) + " could not meet the other " +
        std::to_string(world.size - 1) + " process(es) at " + where + " (" + arrived +
        first_line(e) +
        "); check MASTER_ADDR/MASTER_PORT, that every process was started, and that the port is "
        "free (ADVFT_DIST_TIMEOUT sets how long to wait)");
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = timeout;
    // Like torch.distributed: GLOO_SOCKET_IFNAME picks the network interfaces; on one machine
    // the loopback device is always there, whatever the host name resolves to.
    if (const char* names = std::getenv("GLOO_SOCKET_IFNAME"); names != nullptr && *names) {
      std::string list = names;
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) {
          options->devices.push_back(
              c10d::ProcessGroupGloo::createDeviceForInterface(list.substr(start, comma - start)));
        }
        start = comma + 1;
      }
    } else if (world.local_size == world.size) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    impl->gloo =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, world.rank, world.size, options);
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(world.rank) + " reached the store at " + where +
                    " but could not connect to the other processes (" + first_line(e) +
                    "); set GLOO_SOCKET_IFNAME to the network interface they share");
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(world, std::move(impl)));
}

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  for (torch::Tensor& t : tensors) {
    std::vector<torch::Tensor> one{t};
    impl_->wait_for("a sum", rank(), [&] { return impl_->gloo->allreduce(one); });
  }
}

void ProcessGroup::average(const std::vector<torch::Tensor>& tensors) {
  if (size() == 1) return;
  torch::NoGradGuard no_grad;
  // One flat buffer per (device, dtype): a ResNet's hundred-odd gradients in one collective.
  std::map<std::pair<std::string, int>, std::vector<torch::Tensor>> groups;
  for (const torch::Tensor& t : tensors) {
    if (t.defined() && t.numel() > 0)
      groups[{t.device().str(), static_cast<int>(t.scalar_type())}].push_back(t);
  }
  for (auto& [key, members] : groups) {
    std::vector<torch::Tensor> flat_parts;
    flat_parts.reserve(members.size());
    for (const torch::Tensor& t : members)
      flat_parts.push_back(t.reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(flat_parts)};
    impl_->wait_for("the gradient average", rank(), [&] { return impl_->gloo->allreduce(flat); });
    flat[0].div_(size());
    int64_t offset = 0;
    for (const torch::Tensor& t : members) {
      t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

int64_t ProcessGroup::max(int64_t value) {
  std::vector<torch::Tensor> one{torch::tensor({value}, torch::kLong)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  impl_->wait_for("a vote", rank(), [&] { return impl_->gloo->allreduce(one, options); });
  return one[0].item<int64_t>();
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  c10d::BroadcastOptions options;
  options.rootRank = root;
  for (const torch::Tensor& t : tensors) {
    // Gloo broadcasts contiguous memory: a channels-last weight goes through a dense copy.
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    impl_->wait_for("a broadcast", rank(), [&] { return impl_->gloo->broadcast(one, options); });
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

std::string ProcessGroup::share(const std::string& key, const std::string& value) {
  const std::string name = "advft/" + key;
  try {
    if (rank() == 0) {
      impl_->store->set(name, std::vector<uint8_t>(value.begin(), value.end()));
      return value;
    }
    const std::vector<uint8_t> bytes = impl_->store->get(name);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(rank()) + " did not hear from rank 0 about " + key +
                    " (" + first_line(e) + "); rank 0's log says why");
  }
}

#else  // no c10d with Gloo in this LibTorch

bool available() {
  return false;
}

struct ProcessGroup::Impl {};

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const World& world, std::chrono::milliseconds) {
  throw DistError(
      "this advft was built without distributed support (its LibTorch has no c10d "
      "with Gloo headers), so it cannot be rank " +
      std::to_string(world.rank) + " of " + std::to_string(world.size) +
      "; rebuild with Gloo's headers (Debian: libgloo-dev) or run one process");
}

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>&) {}
void ProcessGroup::average(const std::vector<torch::Tensor>&) {}
int64_t ProcessGroup::max(int64_t value) {
  return value;
}
void ProcessGroup::broadcast(const std::vector<torch::Tensor>&, int) {}
std::string ProcessGroup::share(const std::string&, const std::string& value) {
  return value;
}

#endif

ProcessGroup::ProcessGroup(World world, std::unique_ptr<Impl> impl)
    : world_(std::move(world)), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

}  // namespace advft::dist
