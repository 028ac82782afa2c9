#pragma once
// File writes on a background thread, so that training goes on while a checkpoint reaches the
// disk (hundreds of MB per epoch for a WRN-34-10 with its optimizer state; seconds on a cluster's
// network file system).
#include <functional>

#include "advft/runtime/background_job.h"

namespace advft::io {

/// Runs one job at a time, in the order submitted. A job's error is rethrown by the next
/// submit() or wait(), so no failed write goes unnoticed, and the job after it does not start;
/// the destructor waits and only logs (it runs while another error unwinds).
class AsyncWriter {
 public:
  /// Waits for the job before (rethrowing its error), then starts `job`.
  void submit(std::function<void()> job);
  /// Waits for the running job, if any; rethrows its error.
  void wait() { running_.wait(); }

 private:
  runtime::BackgroundJob running_;
};

}  // namespace advft::io
