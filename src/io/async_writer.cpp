#include "advft/io/async_writer.h"

#include <utility>

namespace advft::io {

void AsyncWriter::submit(std::function<void()> job) {
  running_.wait();  // before the next job is started: a failure stops the writes after it
  running_ = runtime::BackgroundJob("writing a checkpoint", std::move(job));
}

}  // namespace advft::io
