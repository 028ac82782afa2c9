#pragma once
// Work that runs beside the caller's: the CUDA context made while the data loads, checkpoints
// written while training goes on.
#include <functional>
#include <future>
#include <string>

namespace advft::runtime {

/// A function running on a thread of its own from construction on. wait() joins it and rethrows
/// what it threw; the destructor joins it too, but only logs an error nobody waited for, as a
/// warning that names `what`: it runs while another error unwinds, and that one is the error to
/// report. A default-constructed job has nothing to wait for.
class BackgroundJob {
 public:
  BackgroundJob() = default;
  BackgroundJob(std::string what, std::function<void()> fn);
  ~BackgroundJob();
  BackgroundJob(BackgroundJob&& other) noexcept = default;
  /// Waits for this job first (rethrowing its error), then takes over `other`'s.
  BackgroundJob& operator=(BackgroundJob&& other);
  BackgroundJob(const BackgroundJob&) = delete;
  BackgroundJob& operator=(const BackgroundJob&) = delete;

  /// Joins the job, if any; rethrows its error once.
  void wait();
  /// Whether a job was started and not yet waited for.
  bool pending() const { return done_.valid(); }

 private:
  std::string what_;
  std::future<void> done_;
};

}  // namespace advft::runtime
