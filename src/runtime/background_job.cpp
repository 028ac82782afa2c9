#include "advft/runtime/background_job.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

namespace advft::runtime {

BackgroundJob::BackgroundJob(std::string what, std::function<void()> fn)
    : what_(std::move(what)), done_(std::async(std::launch::async, std::move(fn))) {}

BackgroundJob::~BackgroundJob() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::warn("{}: {}", what_, e.what());
  }
}

BackgroundJob& BackgroundJob::operator=(BackgroundJob&& other) {
  wait();
  what_ = std::move(other.what_);
  done_ = std::move(other.done_);
  return *this;
}

void BackgroundJob::wait() {
  if (!done_.valid()) return;
  std::future<void> done = std::move(done_);  // nothing pending from here, even if get() throws
  done.get();
}

}  // namespace advft::runtime
