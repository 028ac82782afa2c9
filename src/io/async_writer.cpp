#include "advft/io/async_writer.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

namespace advft::io {

AsyncWriter::~AsyncWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
}

void AsyncWriter::submit(std::function<void()> job) {
  wait();
  running_ = std::async(std::launch::async, std::move(job));
}

void AsyncWriter::wait() {
  if (!running_.valid()) return;
  std::future<void> done = std::move(running_);  // invalid from here, even if get() throws
  done.get();
}

}  // namespace advft::io
